/* settle_by_default()
 * Accounts: work_order (writable), vault (writable), party (signer), client (writable), client_token_account
 * (writable), agent (writable), reputation (writable), mint, token_program. */
#pragma once

#include "settlement.h"

static const SettleAccounts DEFAULT_ACCOUNTS = {
    SETTLE_ACCOUNTS(SETTLE_BY_DEFAULT, PARTY),
    .provider_token_account = NO_ACCOUNT,
    .reputation = SETTLE_BY_DEFAULT_ACCOUNT_REPUTATION,
};

/* The default of a dispute the arbiter left unruled past its ruling period: everything to the client,
 * counted exactly as that ruling (client_share_bps = MAX_SHARE_BPS) would be. */
static uint64_t settle_dispute_by_default(const GpInput *in, Settlement *s) {
    if (ruling_period_active(s->order, s->now)) return gp_fail(GP_ERR_RULING_PERIOD_ACTIVE);
    TRY(bind_settlement(in, &DEFAULT_ACCOUNTS, s));
    s->metrics->disputes_resolved = saturating_inc_u32(s->metrics->disputes_resolved);
    count_failed_payment(s->metrics, s->now);
    settle_metrics_touched(s);
    return refund_client(s, GP_EVENT_DISPUTE_SETTLED_BY_DEFAULT);
}

/* Either party ends an order the other side (or the arbiter) leaves hanging: an unruled dispute past
 * its ruling period, or a refund the client could claim (so no client keeps a provider, and its
 * close_agent, waiting). */
static uint64_t settle_by_default(const GpInput *in, BorshReader *r) {
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    Settlement s;
    TRY(load_settlement(in, &DEFAULT_ACCOUNTS, SIGNED_BY_PARTY, &s));
    if (s.order->status == GP_WORK_ORDER_STATUS_DISPUTED) return settle_dispute_by_default(in, &s);
    return pay_due_refund(in, &DEFAULT_ACCOUNTS, &s);
}
