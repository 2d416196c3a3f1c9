/* The x402 pricing instructions: configure_x402, set_x402_price,
 * set_x402_tokens, set_x402_endpoint, disable_x402.
 * Accounts: agent (writable), owner (signer), then the accepted mints for the
 * instructions that set tokens (configure_x402, set_x402_tokens). */
#pragma once

#include "agent.h"

static void emit_x402_configured(const SolAccountInfo *agent, const AgentTail *tail) {
    const AgentFixed *fixed = agent_fixed(agent);
    GpEvent event;
    gp_event_begin(&event, GP_EVENT_X402_CONFIGURED);
    borsh_write_pubkey(&event.w, agent->key);
    borsh_write_pubkey(&event.w, &fixed->x402_payment_address);
    borsh_write_u32(&event.w, tail->token_count);
    borsh_write_raw(&event.w, tail->tokens, (uint64_t)tail->token_count * TOKEN_PRICE_BYTES);
    borsh_write_bytes(&event.w, tail->service_endpoint);
    borsh_write_i64(&event.w, fixed->updated_at);
    gp_event_emit(&event);
}

static inline const SolAccountInfo *mint_accounts(const GpInput *in) { return &in->accounts[OWNED_AGENT_MINTS]; }
static inline uint64_t mint_account_count(const GpInput *in) { return in->account_count - OWNED_AGENT_MINTS; }

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

/* The agent for the set_x402_* instructions: owned, and with x402 enabled. */
static uint64_t load_x402_agent(const GpInput *in, const SolAccountInfo **agent) {
    TRY(load_owned_agent(in, agent));
    return agent_fixed(*agent)->x402_enabled ? 0 : gp_fail(GP_ERR_X402_NOT_ENABLED);
}

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
