/* What the x402 pricing instructions share: configure_x402, set_x402_price, set_x402_tokens,
 * set_x402_endpoint, disable_x402. Accounts: agent (writable), owner (signer), then the accepted mints for
 * the instructions that set tokens (configure_x402, set_x402_tokens). */
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

/* The agent for the set_x402_* instructions: owned, and with x402 enabled. */
static uint64_t load_x402_agent(const GpInput *in, const SolAccountInfo **agent) {
    TRY(load_owned_agent(in, agent));
    return agent_fixed(*agent)->x402_enabled ? 0 : gp_fail(GP_ERR_X402_NOT_ENABLED);
}
