/* resolve_dispute(client_share_bps)
 * Accounts: work_order (writable), vault (writable), arbiter (signer), client (writable), client_token_account
 * (writable), provider_token_account (writable), agent (writable), reputation (writable), mint, token_program. */
#pragma once

#include "settlement.h"

static const SettleAccounts RESOLVE_ACCOUNTS = {
    SETTLE_ACCOUNTS(RESOLVE_DISPUTE, ARBITER),
    .provider_token_account = RESOLVE_DISPUTE_ACCOUNT_PROVIDER_TOKEN_ACCOUNT,
    .reputation = RESOLVE_DISPUTE_ACCOUNT_REPUTATION,
};

/* The arbiter splits the remainder. A ruling wholly for the provider counts
 * exactly as a release by the client would: the dispute is erased (an
 * innocent provider's score must not suffer from it) and the job completed.
 * Any other ruling counts a resolved dispute and a payment: failed when the
 * client gets everything, else successful. */
static uint64_t resolve_dispute(const GpInput *in, BorshReader *r) {
    uint16_t client_share_bps = borsh_read_u16(r);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    Settlement s;
    TRY(load_settlement(in, &RESOLVE_ACCOUNTS, SIGNED_BY_ARBITER, &s));
    TRY(require_status(s.order, GP_WORK_ORDER_STATUS_DISPUTED));
    if (client_share_bps > GP_MAX_SHARE_BPS) return gp_fail(GP_ERR_SHARE_OUT_OF_RANGE);
    TRY(bind_settlement(in, &RESOLVE_ACCOUNTS, &s));
    WorkOrder *order = s.order;
    uint64_t remaining = work_order_remaining(order);
    /* remaining <= MAX_WORK_ORDER_AMOUNT (10^12), so the product stays below 2^64. */
    uint64_t client_amount = remaining * client_share_bps / GP_MAX_SHARE_BPS;
    uint64_t provider_amount = remaining - client_amount;
    TRY(vault_pay(&s.vault, s.client_token_account, client_amount));
    TRY(vault_pay(&s.vault, s.provider_token_account, provider_amount));
    order->released += provider_amount;
    TRY(count_escrow_earnings(&s, provider_amount));
    if (client_share_bps == 0) {
        if (s.metrics->total_disputes) s.metrics->total_disputes--;
        count_completed_job(&s);
    } else {
        s.metrics->disputes_resolved = saturating_inc_u32(s.metrics->disputes_resolved);
        if (client_share_bps == GP_MAX_SHARE_BPS)
            count_failed_payment(s.metrics, s.now);
        else
            count_successful_payment(s.metrics, s.now);
    }

    GpEvent event;
    work_order_event_begin(&event, GP_EVENT_DISPUTE_RESOLVED, s.vault.work_order, order);
    borsh_write_pubkey(&event.w, &order->arbiter);
    borsh_write_u16(&event.w, client_share_bps);
    borsh_write_u64(&event.w, client_amount);
    borsh_write_u64(&event.w, provider_amount);
    borsh_write_i64(&event.w, s.now);
    gp_event_emit(&event);
    settle_metrics_touched(&s);
    return close_vault(&s.vault, s.client, s.client_token_account, s.agent);
}
