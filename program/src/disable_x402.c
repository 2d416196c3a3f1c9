/* disable_x402()
 * Accounts: agent (writable), owner (signer). */
#pragma once

#include "x402_config.h"

static uint64_t disable_x402(const GpInput *in, BorshReader *r) {
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    const SolAccountInfo *agent;
    TRY(load_x402_agent(in, &agent));
    AgentFixed *fixed = agent_fixed(agent);
    fixed->x402_enabled = 0;
    fixed->updated_at = gp_unix_timestamp();
    GpEvent event;
    gp_event_begin(&event, GP_EVENT_X402_DISABLED);
    borsh_write_pubkey(&event.w, agent->key);
    borsh_write_i64(&event.w, fixed->updated_at);
    gp_event_emit(&event);
    return 0;
}
