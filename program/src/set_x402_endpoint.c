/* set_x402_endpoint(service_endpoint)
 * Accounts: agent (writable), owner (signer). */
#pragma once

#include "x402_config.h"

static uint64_t set_x402_endpoint(const GpInput *in, BorshReader *r) {
    GpSlice endpoint = borsh_read_bytes(r);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    const SolAccountInfo *agent;
    TRY(load_x402_agent(in, &agent));
    TRY(validate_endpoint(endpoint));
    AgentTail tail;
    TRY(read_agent_tail(agent->data, &tail));
    splice_agent_tail(&tail, span_of_bytes(tail.service_endpoint), span_of_bytes(endpoint));
    tail.service_endpoint = endpoint;
    AgentFixed *fixed = agent_fixed(agent);
    fixed->updated_at = gp_unix_timestamp();
    /* The tokens precede the endpoint and did not move; the endpoint comes from the instruction. */
    emit_x402_configured(agent, &tail);
    return 0;
}
