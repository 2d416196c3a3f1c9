/* set_x402_price(prices)
 * Accounts: agent (writable), owner (signer). */
#pragma once

#include "x402_config.h"

/* Reprices accepted mints in place: every listed mint must be accepted
 * already, so no mint account is needed and the tail does not move. */
static uint64_t set_x402_price(const GpInput *in, BorshReader *r) {
    uint32_t count;
    const TokenPrice *prices;
    read_token_prices(r, &count, &prices);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    if (count == 0) return gp_fail(GP_ERR_NO_ACCEPTED_TOKENS);
    const SolAccountInfo *agent;
    TRY(load_x402_agent(in, &agent));
    AgentTail tail;
    TRY(read_agent_tail(agent->data, &tail));
    for (uint32_t i = 0; i < count; i++) {
        uint64_t price = token_price_of(&prices[i]);
        TRY(validate_price(price));
        TokenPrice *entry = (TokenPrice *)agent_token_price(agent->data, &prices[i].mint);
        if (!entry) return gp_fail(GP_ERR_PAYMENT_MINT_NOT_ACCEPTED);
        token_price_store(entry, price);
    }
    AgentFixed *fixed = agent_fixed(agent);
    fixed->updated_at = gp_unix_timestamp();
    emit_x402_configured(agent, &tail);
    return 0;
}
