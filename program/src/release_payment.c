/* release_payment(amount)
 * Accounts: work_order (writable), vault (writable), client (writable, signer), client_token_account (writable),
 * provider_token_account (writable), agent (writable), reputation (writable), mint, token_program. */
#pragma once

#include "settlement.h"

static const SettleAccounts RELEASE_ACCOUNTS = {
    SETTLE_ACCOUNTS(RELEASE_PAYMENT, CLIENT),
    .provider_token_account = RELEASE_PAYMENT_ACCOUNT_PROVIDER_TOKEN_ACCOUNT,
    .reputation = RELEASE_PAYMENT_ACCOUNT_REPUTATION,
};

static uint64_t release_payment(const GpInput *in, BorshReader *r) {
    uint64_t amount = borsh_read_u64(r);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    Settlement s;
    TRY(load_settlement(in, &RELEASE_ACCOUNTS, SIGNED_BY_CLIENT, &s));
    TRY(require_in_progress(s.order));
    if (amount == 0) return gp_fail(GP_ERR_ZERO_AMOUNT);
    if (amount > work_order_remaining(s.order)) return gp_fail(GP_ERR_RELEASE_EXCEEDS_REMAINDER);
    TRY(bind_settlement(in, &RELEASE_ACCOUNTS, &s));
    return pay_provider(&s, amount);
}
