/* GhostPay on-chain program: entrypoint and instruction dispatch.
 *
 * One file per instruction under src/, included below in the IDL's order: the
 * whole program is one translation unit, so every internal call is
 * pc-relative and the post-link step stays small. */
#include "sdk/anchor.h"
#include "src/register_agent.c"
#include "src/update_agent.c"
#include "src/configure_x402.c"
#include "src/set_x402_price.c"
#include "src/set_x402_tokens.c"
#include "src/set_x402_endpoint.c"
#include "src/disable_x402.c"
#include "src/set_agent_active.c"
#include "src/close_agent.c"
#include "src/record_x402_payment.c"
#include "src/submit_feedback.c"
#include "src/close_receipt.c"
#include "src/close_payer_stats.c"
#include "src/refresh_reputation.c"
#include "src/create_work_order.c"
#include "src/accept_work_order.c"
#include "src/submit_work_delivery.c"
#include "src/reject_delivery.c"
#include "src/release_payment.c"
#include "src/claim_payment.c"
#include "src/open_dispute.c"
#include "src/resolve_dispute.c"
#include "src/cancel_work_order.c"
#include "src/decline_work_order.c"
#include "src/claim_refund.c"
#include "src/settle_by_default.c"

/* Escrow instructions, tried after the registry and payment ones and kept out
 * of line: inlined, their code changes how clang lays out the hot handlers
 * (about +20 CU on every owner update and on record_x402_payment). */
__attribute__((noinline)) static uint64_t dispatch_work_order(const GpInput *in, uint64_t discriminator, BorshReader *args) {
    switch (discriminator) {
    case GP_IX_CREATE_WORK_ORDER:
        return create_work_order(in, args);
    case GP_IX_ACCEPT_WORK_ORDER:
        return accept_work_order(in, args);
    case GP_IX_SUBMIT_WORK_DELIVERY:
        return submit_work_delivery(in, args);
    case GP_IX_REJECT_DELIVERY:
        return reject_delivery(in, args);
    case GP_IX_RELEASE_PAYMENT:
        return release_payment(in, args);
    case GP_IX_CLAIM_PAYMENT:
        return claim_payment(in, args);
    case GP_IX_OPEN_DISPUTE:
        return open_dispute(in, args);
    case GP_IX_RESOLVE_DISPUTE:
        return resolve_dispute(in, args);
    case GP_IX_CANCEL_WORK_ORDER:
        return cancel_work_order(in, args);
    case GP_IX_CLAIM_REFUND:
        return claim_refund(in, args);
    case GP_IX_DECLINE_WORK_ORDER:
        return decline_work_order(in, args);
    case GP_IX_SETTLE_BY_DEFAULT:
        return settle_by_default(in, args);
    default:
        return gp_fail(GP_ERR_INSTRUCTION_FALLBACK_NOT_FOUND);
    }
}

static inline __attribute__((always_inline)) uint64_t dispatch(const GpInput *in) {
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
    case GP_IX_CLOSE_PAYER_STATS:
        return close_payer_stats(in, &args);
    case GP_IX_CLOSE_RECEIPT:
        return close_receipt(in, &args);
    case GP_IX_REFRESH_REPUTATION:
        return refresh_reputation(in, &args);
    default:
        return dispatch_work_order(in, discriminator, &args);
    }
}

uint64_t entrypoint(const uint8_t *input) {
    GpInput in;
    gp_deserialize(input, &in);
    return dispatch(&in);
}
