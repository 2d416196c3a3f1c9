/* GhostPay on-chain program: entrypoint and instruction dispatch.
 *
 * The whole program is one translation unit (handlers are included below) so
 * every internal call is pc-relative and the post-link step stays small. */
#include "sdk/anchor.h"
#include "src/agent_lifecycle.c"
#include "src/feedback.c"
#include "src/record_x402_payment.c"
#include "src/register_agent.c"
#include "src/update_agent.c"
#include "src/x402_config.c"

static uint64_t dispatch(const GpInput *in) {
    if (in->data_len < GP_DISCRIMINATOR_BYTES) return gp_fail(GP_ERR_INSTRUCTION_FALLBACK_NOT_FOUND);
    uint64_t discriminator = gp_load_u64(in->data);
    BorshReader args = borsh_reader(in->data + GP_DISCRIMINATOR_BYTES, in->data_len - GP_DISCRIMINATOR_BYTES);
    switch (discriminator) {
    case GP_IX_REGISTER_AGENT:
        return register_agent(in, &args);
    case GP_IX_UPDATE_AGENT:
        return update_agent(in, &args);
    case GP_IX_CONFIGURE_X402:
        return configure_x402(in, &args);
    case GP_IX_SET_X402_PRICE:
        return set_x402_price(in, &args);
    case GP_IX_SET_X402_TOKENS:
        return set_x402_tokens(in, &args);
    case GP_IX_SET_X402_ENDPOINT:
        return set_x402_endpoint(in, &args);
    case GP_IX_DISABLE_X402:
        return disable_x402(in, &args);
    case GP_IX_SET_AGENT_ACTIVE:
        return set_agent_active(in, &args);
    case GP_IX_CLOSE_AGENT:
        return close_agent(in, &args);
    case GP_IX_RECORD_X402_PAYMENT:
        return record_x402_payment(in, &args);
    case GP_IX_SUBMIT_FEEDBACK:
        return submit_feedback(in, &args);
    case GP_IX_CLOSE_RECEIPT:
        return close_receipt(in, &args);
    case GP_IX_REFRESH_REPUTATION:
        return refresh_reputation(in, &args);
    default:
        return gp_fail(GP_ERR_INSTRUCTION_FALLBACK_NOT_FOUND);
    }
}

uint64_t entrypoint(const uint8_t *input) {
    GpInput in;
    gp_deserialize(input, &in);
    return dispatch(&in);
}
