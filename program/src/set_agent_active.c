/* set_agent_active(is_active)
 * Accounts: agent (writable), owner (signer). */
#pragma once

#include "reputation.h"

static uint64_t set_agent_active(const GpInput *in, BorshReader *r) {
    bool is_active = borsh_read_bool(r);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    const SolAccountInfo *agent;
    TRY(load_owned_agent(in, &agent));
    AgentFixed *fixed = agent_fixed(agent);
    fixed->is_active = is_active;
    fixed->updated_at = gp_unix_timestamp();
    GpEvent event;
    gp_event_begin(&event, GP_EVENT_AGENT_STATUS_CHANGED);
    borsh_write_pubkey(&event.w, agent->key);
    borsh_write_bool(&event.w, is_active);
    borsh_write_i64(&event.w, fixed->updated_at);
    gp_event_emit(&event);
    return 0;
}
