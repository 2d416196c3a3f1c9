/* What the work-order steps that move no tokens share: accept_work_order, submit_work_delivery,
 * reject_delivery and open_dispute. */
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
_Static_assert(REJECT_DELIVERY_ACCOUNT_WORK_ORDER == PROGRESS_WORK_ORDER &&
                   REJECT_DELIVERY_ACCOUNT_CLIENT == PROGRESS_SIGNER &&
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
