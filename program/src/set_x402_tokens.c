/* set_x402_tokens(accepted_tokens)
 * Accounts: agent (writable), owner (signer).
 * Then one mint account per accepted token. */
#pragma once

#include "x402_config.h"

static uint64_t set_x402_tokens(const GpInput *in, BorshReader *r) {
    uint32_t count;
    const TokenPrice *tokens;
    read_token_prices(r, &count, &tokens);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    const SolAccountInfo *agent;
    TRY(load_x402_agent(in, &agent));
    TRY(validate_tokens(count, tokens, mint_accounts(in), mint_account_count(in)));
    TRY(reserve_earnings_slots(agent, tokens, count));
    AgentTail tail;
    TRY(read_agent_tail(agent->data, &tail));
    BorshSpan old_tokens = span_of_prices(tail.tokens, tail.token_count);
    BorshSpan new_tokens = span_of_prices(tokens, count);
    splice_agent_tail(&tail, old_tokens, new_tokens);
    /* The endpoint moved with the splice; the event reads the new tokens from the instruction data. */
    tail.service_endpoint.ptr += new_tokens.len - old_tokens.len;
    tail.token_count = count;
    tail.tokens = tokens;
    AgentFixed *fixed = agent_fixed(agent);
    fixed->updated_at = gp_unix_timestamp();
    emit_x402_configured(agent, &tail);
    return 0;
}
