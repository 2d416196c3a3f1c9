/* GhostPay on-chain program: entrypoint and instruction dispatch.
 *
 * The whole program is one translation unit (handlers are included below) so
 * every internal call is pc-relative and the post-link step stays small. */
#include "sdk/anchor.h"
#include "src/register_agent.c"

static uint64_t dispatch(const GpInput *in) {
    if (in->data_len < GP_DISCRIMINATOR_BYTES) return gp_fail(GP_ERR_INSTRUCTION_FALLBACK_NOT_FOUND);
    uint64_t discriminator = gp_load_u64(in->data);
    BorshReader args = borsh_reader(in->data + GP_DISCRIMINATOR_BYTES, in->data_len - GP_DISCRIMINATOR_BYTES);
    switch (discriminator) {
    case GP_IX_REGISTER_AGENT:
        return register_agent(in, &args);
    default:
        return gp_fail(GP_ERR_INSTRUCTION_FALLBACK_NOT_FOUND);
    }
}

uint64_t entrypoint(const uint8_t *input) {
    GpInput in;
    gp_deserialize(input, &in);
    return dispatch(&in);
}
