/* accept_work_order(arbiter)
 * Accounts: work_order (writable), provider (signer). */
#pragma once

#include "work_order_progress.h"

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
