/* open_dispute(reason)
 * Accounts: work_order (writable), party (signer), agent (writable), reputation (writable). */
#pragma once

#include "work_order_progress.h"

/* A dispute is open to either party only while neither can settle the order alone: an accepted order
 * until its deadline (then the client's refund is due), a delivery within its review period (then the
 * provider's claim is), a rejection while the provider may still answer it (then the refund is). */
static uint64_t require_disputable(const WorkOrder *order, int64_t now) {
    switch (order->status) {
    case GP_WORK_ORDER_STATUS_ACCEPTED:
        return now <= order->deadline ? 0 : gp_fail(GP_ERR_DEADLINE_PASSED);
    case GP_WORK_ORDER_STATUS_SUBMITTED:
        return now < order->delivered_at + order->review_period_seconds ? 0 : gp_fail(GP_ERR_REVIEW_PERIOD_OVER);
    case GP_WORK_ORDER_STATUS_REJECTED:
        return rejection_answerable(order, now) ? 0 : gp_fail(GP_ERR_GRACE_PERIOD_OVER);
    default:
        return gp_fail(GP_ERR_INVALID_WORK_ORDER_STATUS);
    }
}

/* Either party freezes the order for the arbiter, whose ruling is then due within
 * DISPUTE_RULING_SECONDS; the provider's metrics count the dispute. */
static uint64_t open_dispute(const GpInput *in, BorshReader *r) {
    GpSlice reason;
    TRY(parse_reason(r, &reason));
    if (in->account_count < OPEN_DISPUTE_ACCOUNT_COUNT) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    const SolAccountInfo *work_order = &in->accounts[OPEN_DISPUTE_ACCOUNT_WORK_ORDER];
    const SolAccountInfo *party = &in->accounts[OPEN_DISPUTE_ACCOUNT_PARTY];
    const SolAccountInfo *agent = &in->accounts[OPEN_DISPUTE_ACCOUNT_AGENT];
    WorkOrder *order;
    TRY(load_work_order(in, work_order, &order));
    TRY(gp_require_signer(party, "party"));
    if (!sol_pubkey_eq(party->key, &order->client) && !sol_pubkey_eq(party->key, &order->provider_owner))
        return gp_fail_account(GP_ERR_NOT_WORK_ORDER_PARTY, "party");
    TRY(load_order_agent(in, order, agent));
    TRY(load_reputation(in, agent, &in->accounts[OPEN_DISPUTE_ACCOUNT_REPUTATION]));
    int64_t now = gp_unix_timestamp();
    TRY(require_disputable(order, now));
    order->status = GP_WORK_ORDER_STATUS_DISPUTED;
    order->disputed_at = now;
    order->updated_at = now;
    ReputationMetrics *metrics = reputation_metrics(&in->accounts[OPEN_DISPUTE_ACCOUNT_REPUTATION]);
    metrics->total_disputes = saturating_inc_u32(metrics->total_disputes);
    roll_payment_history(metrics, day_of(now));
    metrics->updated_at = now;
    GpEvent event;
    work_order_event_begin(&event, GP_EVENT_DISPUTE_OPENED, work_order, order);
    emit_with_reason(&event, party->key, reason, now);
    update_reputation_score(agent, metrics, now);
    return 0;
}
