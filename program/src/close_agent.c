/* close_agent()
 * Accounts: agent (writable), owner (writable, signer). */
#pragma once

#include "reputation.h"

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
