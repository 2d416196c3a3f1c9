/* claim_payment()
 * Accounts: work_order (writable), vault (writable), provider (signer), client (writable), client_token_account
 * (writable), provider_token_account (writable), agent (writable), reputation (writable), mint, token_program. */
#pragma once

#include "settlement.h"

static const SettleAccounts CLAIM_PAYMENT_ACCOUNTS = {
    SETTLE_ACCOUNTS(CLAIM_PAYMENT, PROVIDER),
    .provider_token_account = CLAIM_PAYMENT_ACCOUNT_PROVIDER_TOKEN_ACCOUNT,
    .reputation = CLAIM_PAYMENT_ACCOUNT_REPUTATION,
};

/* The provider takes the rest once the client let the review period pass. */
static uint64_t claim_payment(const GpInput *in, BorshReader *r) {
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    Settlement s;
    TRY(load_settlement(in, &CLAIM_PAYMENT_ACCOUNTS, SIGNED_BY_PROVIDER, &s));
    TRY(require_status(s.order, GP_WORK_ORDER_STATUS_SUBMITTED));
    if (s.now < s.order->delivered_at + s.order->review_period_seconds) return gp_fail(GP_ERR_REVIEW_PERIOD_ACTIVE);
    TRY(bind_settlement(in, &CLAIM_PAYMENT_ACCOUNTS, &s));
    return pay_provider(&s, work_order_remaining(s.order));
}
