/* submit_work_delivery(deliverable_uri, content_hash)
 * Accounts: work_order (writable), provider (signer). */
#pragma once

#include "work_order_progress.h"

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
