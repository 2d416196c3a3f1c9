/* The work-order steps that move no tokens: accept_work_order(arbiter),
 * submit_work_delivery(deliverable_uri, content_hash),
 * reject_delivery(reason) and open_dispute(reason). */
#pragma once

#include "work_order.h"

/* accept_work_order, submit_work_delivery (signed by the provider) and reject_delivery (by the client) take
 * the same accounts: the work order, then its signer. */
enum {
    PROGRESS_WORK_ORDER = ACCEPT_WORK_ORDER_ACCOUNT_WORK_ORDER,
    PROGRESS_SIGNER = ACCEPT_WORK_ORDER_ACCOUNT_PROVIDER,
    PROGRESS_ACCOUNT_COUNT = ACCEPT_WORK_ORDER_ACCOUNT_COUNT
};
_Static_assert(SUBMIT_WORK_DELIVERY_ACCOUNT_WORK_ORDER == PROGRESS_WORK_ORDER &&
                   SUBMIT_WORK_DELIVERY_ACCOUNT_PROVIDER == PROGRESS_SIGNER &&
                   SUBMIT_WORK_DELIVERY_ACCOUNT_COUNT == PROGRESS_ACCOUNT_COUNT,
               "submit_work_delivery takes the progress accounts");
_Static_assert(REJECT_DELIVERY_ACCOUNT_WORK_ORDER == PROGRESS_WORK_ORDER && REJECT_DELIVERY_ACCOUNT_CLIENT == PROGRESS_SIGNER &&
                   REJECT_DELIVERY_ACCOUNT_COUNT == PROGRESS_ACCOUNT_COUNT,
               "reject_delivery takes the progress accounts");

/* A reason for an event: at most MAX_REASON_LEN bytes of UTF-8, the whole rest of the data. */
static uint64_t parse_reason(BorshReader *r, GpSlice *reason) {
    *reason = borsh_read_bytes(r);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    return require_text(*reason, 0, GP_MAX_REASON_LEN, GP_ERR_REASON_TOO_LONG);
}

/* The work order signed for by its provider agent's owner or its client. */
static uint64_t load_progress(const GpInput *in, WorkOrder **order, bool by_provider) {
    if (in->account_count < PROGRESS_ACCOUNT_COUNT) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    TRY(load_work_order(in, &in->accounts[PROGRESS_WORK_ORDER], order));
    const SolAccountInfo *signer = &in->accounts[PROGRESS_SIGNER];
    return by_provider ? require_party(signer, &(*order)->provider_owner, "provider", GP_ERR_NOT_WORK_ORDER_PROVIDER)
                       : require_party(signer, &(*order)->client, "client", GP_ERR_NOT_WORK_ORDER_CLIENT);
}

#define BY_PROVIDER true
#define BY_CLIENT false

/* Finishes and logs an event begun with work_order_event_begin: [by,] reason, timestamp. */
static void emit_with_reason(GpEvent *event, const SolPubkey *by, GpSlice reason, int64_t now) {
    if (by) borsh_write_pubkey(&event->w, by);
    borsh_write_bytes(&event->w, reason);
    borsh_write_i64(&event->w, now);
    gp_event_emit(event);
}

/* The provider consents to the arbiter by naming it: the client chose it alone at creation. */
static uint64_t accept_work_order(const GpInput *in, BorshReader *r) {
    const SolPubkey *arbiter = borsh_read_pubkey(r);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    WorkOrder *order;
    TRY(load_progress(in, &order, BY_PROVIDER));
    TRY(require_status(order, GP_WORK_ORDER_STATUS_CREATED));
    if (!sol_pubkey_eq(arbiter, &order->arbiter)) return gp_fail(GP_ERR_ARBITER_NOT_AGREED);
    int64_t now = gp_unix_timestamp();
    if (now > order->deadline) return gp_fail(GP_ERR_DEADLINE_PASSED);
    order->status = GP_WORK_ORDER_STATUS_ACCEPTED;
    order->accepted_at = now;
    order->updated_at = now;
    GpEvent event;
    work_order_event_begin(&event, GP_EVENT_WORK_ORDER_ACCEPTED, &in->accounts[PROGRESS_WORK_ORDER], order);
    borsh_write_pubkey(&event.w, &order->provider_owner);
    borsh_write_i64(&event.w, now);
    gp_event_emit(&event);
    return 0;
}

/* Writes the deliverable URI, the tail's last field, zeroing what a shorter one frees. */
static uint64_t write_deliverable_uri(const SolAccountInfo *work_order, GpSlice uri) {
    uint64_t tail_capacity = GP_WORK_ORDER_SPACE - GP_WORK_ORDER_OFFSET_TITLE;
    uint8_t *tail = work_order->data + GP_WORK_ORDER_OFFSET_TITLE;
    BorshReader r = borsh_reader(tail, tail_capacity);
    borsh_read_bytes(&r); /* title */
    borsh_read_bytes(&r); /* description */
    uint32_t requirements = borsh_read_u32(&r);
    for (uint32_t i = 0; i < requirements && r.ok; i++) borsh_read_bytes(&r);
    uint64_t uri_at = r.pos;
    GpSlice old_uri = borsh_read_bytes(&r);
    if (!r.ok) return gp_fail_account(GP_ERR_ACCOUNT_DID_NOT_DESERIALIZE, "work_order");
    BorshWriter w = borsh_writer(tail + uri_at, tail_capacity - uri_at);
    borsh_write_bytes(&w, uri);
    if (uri.len < old_uri.len) sol_memset_(tail + uri_at + w.pos, 0, old_uri.len - uri.len);
    return 0;
}

static uint64_t submit_work_delivery(const GpInput *in, BorshReader *r) {
    GpSlice uri = borsh_read_bytes(r);
    const uint8_t *content_hash = borsh_take(r, WORK_ORDER_HASH_BYTES);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    if (uri.len == 0 || uri.len > GP_MAX_DELIVERABLE_URI_LEN || !text_is_printable_ascii_from(uri, 0))
        return gp_fail(GP_ERR_DELIVERABLE_URI_INVALID);
    WorkOrder *order;
    TRY(load_progress(in, &order, BY_PROVIDER));
    int64_t now = gp_unix_timestamp();
    /* Before the deadline; a rejected delivery may also be redone within the grace period. */
    if (order->status == GP_WORK_ORDER_STATUS_REJECTED) {
        if (!rejection_answerable(order, now)) return gp_fail(GP_ERR_DEADLINE_PASSED);
    } else {
        TRY(require_status(order, GP_WORK_ORDER_STATUS_ACCEPTED));
        if (now > order->deadline) return gp_fail(GP_ERR_DEADLINE_PASSED);
    }
    const SolAccountInfo *work_order = &in->accounts[PROGRESS_WORK_ORDER];
    TRY(write_deliverable_uri(work_order, uri));
    sol_memcpy_(order->content_hash, content_hash, WORK_ORDER_HASH_BYTES);
    order->status = GP_WORK_ORDER_STATUS_SUBMITTED;
    order->delivered_at = now;
    order->updated_at = now;
    GpEvent event;
    work_order_event_begin(&event, GP_EVENT_WORK_DELIVERED, work_order, order);
    borsh_write_bytes(&event.w, uri);
    borsh_write_raw(&event.w, content_hash, WORK_ORDER_HASH_BYTES);
    borsh_write_i64(&event.w, now);
    gp_event_emit(&event);
    return 0;
}

static uint64_t reject_delivery(const GpInput *in, BorshReader *r) {
    GpSlice reason;
    TRY(parse_reason(r, &reason));
    WorkOrder *order;
    TRY(load_progress(in, &order, BY_CLIENT));
    TRY(require_status(order, GP_WORK_ORDER_STATUS_SUBMITTED));
    int64_t now = gp_unix_timestamp();
    if (now >= order->delivered_at + order->review_period_seconds) return gp_fail(GP_ERR_REVIEW_PERIOD_OVER);
    order->status = GP_WORK_ORDER_STATUS_REJECTED;
    order->rejected_at = now;
    order->updated_at = now;
    GpEvent event;
    work_order_event_begin(&event, GP_EVENT_DELIVERY_REJECTED, &in->accounts[PROGRESS_WORK_ORDER], order);
    emit_with_reason(&event, NULL, reason, now);
    return 0;
}

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
