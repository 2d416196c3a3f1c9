/* reject_delivery(reason)
 * Accounts: work_order (writable), client (signer). */
#pragma once

#include "work_order_progress.h"

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
