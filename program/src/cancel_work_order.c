/* cancel_work_order()
 * Accounts: work_order (writable), vault (writable), client (writable, signer), client_token_account (writable),
 * agent (writable), mint, token_program. */
#pragma once

#include "settlement.h"

static const SettleAccounts CANCEL_ACCOUNTS = {
    SETTLE_ACCOUNTS(CANCEL_WORK_ORDER, CLIENT),
    .provider_token_account = NO_ACCOUNT,
    .reputation = NO_ACCOUNT,
};

static uint64_t cancel_work_order(const GpInput *in, BorshReader *r) {
    return refund_created(in, r, &CANCEL_ACCOUNTS, SIGNED_BY_CLIENT, GP_EVENT_WORK_ORDER_CANCELLED);
}
