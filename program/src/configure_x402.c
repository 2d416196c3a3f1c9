/* configure_x402(config)
 * Accounts: agent (writable), owner (signer).
 * Then one mint account per accepted token. */
#pragma once

#include "x402_config.h"

static uint64_t configure_x402(const GpInput *in, BorshReader *r) {
    X402Config config;
    parse_x402_config(r, &config);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    const SolAccountInfo *agent;
    TRY(load_owned_agent(in, &agent));
    TRY(validate_x402_config(&config, mint_accounts(in), mint_account_count(in)));
    TRY(reserve_earnings_slots(agent, config.tokens, config.token_count));

    AgentTail tail;
    TRY(read_agent_tail(agent->data, &tail));
    /* The endpoint follows the tokens: splice it first. */
    splice_agent_tail(&tail, span_of_bytes(tail.service_endpoint), span_of_bytes(config.service_endpoint));
    splice_agent_tail(&tail, span_of_prices(tail.tokens, tail.token_count),
                      span_of_prices(config.tokens, config.token_count));
    /* The event reads the new tokens and endpoint from the instruction data. */
    tail.token_count = config.token_count;
    tail.tokens = config.tokens;
    tail.service_endpoint = config.service_endpoint;

    AgentFixed *fixed = agent_fixed(agent);
    fixed->x402_enabled = 1;
    fixed->x402_payment_address = *config.payment_address;
    fixed->updated_at = gp_unix_timestamp();
    emit_x402_configured(agent, &tail);
    return 0;
}
