/* claim_refund()
 * Accounts: work_order (writable), vault (writable), client (writable, signer), client_token_account (writable),
 * agent (writable), reputation (writable), mint, token_program. */
#pragma once

#include "settlement.h"

static const SettleAccounts REFUND_ACCOUNTS = {
    SETTLE_ACCOUNTS(CLAIM_REFUND, CLIENT),
    .provider_token_account = NO_ACCOUNT,
    .reputation = CLAIM_REFUND_ACCOUNT_REPUTATION,
};

static uint64_t claim_refund(const GpInput *in, BorshReader *r) {
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    Settlement s;
    TRY(load_settlement(in, &REFUND_ACCOUNTS, SIGNED_BY_CLIENT, &s));
    return pay_due_refund(in, &REFUND_ACCOUNTS, &s);
}
