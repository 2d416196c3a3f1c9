/* close_payer_stats()
 * Accounts: payer_stats (writable), authority (signer), rent_payer (writable). */
#pragma once

#include "payer_stats.h"

/* The payer closes its PayerStats any time, forfeiting the calls it could still
 * rate; the rent payer only once the pair has been idle for the feedback window
 * (it must not take the payer's ratings away). The rent goes back to whoever
 * paid it. */
static uint64_t close_payer_stats(const GpInput *in, BorshReader *r) {
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    if (in->account_count < CLOSE_PAYER_STATS_ACCOUNT_COUNT) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    const SolAccountInfo *account = &in->accounts[CLOSE_PAYER_STATS_ACCOUNT_PAYER_STATS];
    const SolAccountInfo *authority = &in->accounts[CLOSE_PAYER_STATS_ACCOUNT_AUTHORITY];
    const SolAccountInfo *rent_payer = &in->accounts[CLOSE_PAYER_STATS_ACCOUNT_RENT_PAYER];
    TRY(gp_require_signer(authority, "authority"));
    TRY(gp_require_writable(rent_payer, "rent_payer"));
    TRY(load_payer_stats(in, account));
    const PayerStats *stats = payer_stats(account);
    bool by_payer = sol_pubkey_eq(authority->key, &stats->payer);
    if (!by_payer && !sol_pubkey_eq(authority->key, &stats->rent_payer)) return gp_fail(GP_ERR_NOT_RECEIPT_PAYER);
    if (!sol_pubkey_eq(rent_payer->key, &stats->rent_payer))
        return gp_fail_account(GP_ERR_NOT_RECEIPT_RENT_PAYER, "rent_payer");
    int64_t now = gp_unix_timestamp();
    bool window_open = feedback_window_open(stats, now);
    if (!by_payer && window_open) return gp_fail(GP_ERR_RECEIPT_STILL_OPEN);

    GpEvent event;
    gp_event_begin(&event, GP_EVENT_PAYER_STATS_CLOSED);
    borsh_write_pubkey(&event.w, &stats->agent);
    borsh_write_pubkey(&event.w, &stats->payer);
    borsh_write_pubkey(&event.w, &stats->rent_payer);
    borsh_write_u64(&event.w, *account->lamports);
    borsh_write_u64(&event.w, stats->paid_calls);
    borsh_write_u64(&event.w, window_open ? open_calls(stats) : 0);
    borsh_write_i64(&event.w, now);
    gp_event_emit(&event);
    gp_close_account(account, rent_payer);
    return 0;
}
