/* decline_work_order()
 * Accounts: work_order (writable), vault (writable), provider (signer), client (writable), client_token_account
 * (writable), agent (writable), mint, token_program. */
#pragma once

#include "settlement.h"

static const SettleAccounts DECLINE_ACCOUNTS = {
    SETTLE_ACCOUNTS(DECLINE_WORK_ORDER, PROVIDER),
    .provider_token_account = NO_ACCOUNT,
    .reputation = NO_ACCOUNT,
};

static uint64_t decline_work_order(const GpInput *in, BorshReader *r) {
    return refund_created(in, r, &DECLINE_ACCOUNTS, SIGNED_BY_PROVIDER, GP_EVENT_WORK_ORDER_DECLINED);
}
