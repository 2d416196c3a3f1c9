/* set_agent_active(is_active) and close_agent().
 * Accounts: agent (writable), owner (signer; writable for close_agent). */
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

/* Closes the agent; its ReputationMetrics stays (see register_agent). Not
 * before every paid call of this registration has had its feedback window: a
 * registration after the close would void that feedback (the calls expire at
 * their pair's next payment, a legacy receipt is ReceiptFromEarlierRegistration)
 * and keep the score it would have lowered. The last payment's window ends
 * last; an agent never paid has none open.
 * Deactivating stops new payments, so the owner can wait one window out. */
static uint64_t close_agent(const GpInput *in, BorshReader *r) {
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    const SolAccountInfo *agent;
    TRY(load_owned_agent(in, &agent));
    const SolAccountInfo *owner = &in->accounts[OWNED_AGENT_OWNER];
    TRY(gp_require_writable(owner, "owner"));
    const AgentFixed *fixed = agent_fixed(agent);
    if (fixed->open_work_orders != 0) return gp_fail(GP_ERR_AGENT_HAS_OPEN_WORK_ORDERS);
    int64_t now = gp_unix_timestamp();
    if (fixed->last_payment_at != 0 && now < fixed->last_payment_at + GP_FEEDBACK_WINDOW_SECONDS)
        return gp_fail(GP_ERR_FEEDBACK_WINDOW_OPEN);

    GpEvent event;
    gp_event_begin(&event, GP_EVENT_AGENT_CLOSED);
    borsh_write_pubkey(&event.w, agent->key);
    borsh_write_pubkey(&event.w, owner->key);
    borsh_write_u64(&event.w, *agent->lamports);
    borsh_write_i64(&event.w, now);
    gp_close_account(agent, owner);
    gp_event_emit(&event);
    return 0;
}
