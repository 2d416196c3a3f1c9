/* close_receipt()
 * Accounts: receipt (writable), authority (signer), rent_payer (writable).
 * Legacy: the program no longer creates receipts. */
#pragma once

#include "receipt.h"

/* The payer or the rent payer closes a receipt once it can no longer be
 * rated; the rent always goes back to whoever paid it. */
static uint64_t close_receipt(const GpInput *in, BorshReader *r) {
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    if (in->account_count < CLOSE_RECEIPT_ACCOUNT_COUNT) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    const SolAccountInfo *receipt = &in->accounts[CLOSE_RECEIPT_ACCOUNT_RECEIPT];
    const SolAccountInfo *authority = &in->accounts[CLOSE_RECEIPT_ACCOUNT_AUTHORITY];
    const SolAccountInfo *rent_payer = &in->accounts[CLOSE_RECEIPT_ACCOUNT_RENT_PAYER];
    TRY(gp_require_signer(authority, "authority"));
    TRY(gp_require_writable(rent_payer, "rent_payer"));
    TRY(load_receipt(in, receipt));
    const X402Receipt *paid = x402_receipt(receipt);
    if (!sol_pubkey_eq(authority->key, &paid->payer) && !sol_pubkey_eq(authority->key, &paid->rent_payer))
        return gp_fail(GP_ERR_NOT_RECEIPT_PAYER);
    if (!sol_pubkey_eq(rent_payer->key, &paid->rent_payer)) return gp_fail_account(GP_ERR_NOT_RECEIPT_RENT_PAYER, "rent_payer");
    if (!paid->feedback_submitted && gp_unix_timestamp() < paid->paid_at + GP_FEEDBACK_WINDOW_SECONDS)
        return gp_fail(GP_ERR_RECEIPT_STILL_OPEN);
    gp_close_account(receipt, rent_payer);
    return 0;
}
