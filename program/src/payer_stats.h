/* PayerStats: one payer's paid calls to one agent, PDA ["payer_stats", agent,
 * payer]. Nothing is stored per payment: the transaction and its event are the
 * receipt; this account only holds the payer's right to rate the calls it paid. */
#pragma once

#include "agent.h"

#define PAYMENT_REFERENCE_BYTES 32u /* a payment reference: in the record's data and its event */

typedef struct {
    uint64_t discriminator;
    SolPubkey agent;
    SolPubkey payer;
    SolPubkey rent_payer;
    uint64_t paid_calls;
    uint64_t rated_calls;
    uint64_t expired_calls;
    int64_t last_paid_at;
    uint8_t bump;
} PayerStats;

_Static_assert(offsetof(PayerStats, agent) == GP_PAYER_STATS_OFFSET_AGENT, "PayerStats drifted from the IDL");
_Static_assert(offsetof(PayerStats, payer) == GP_PAYER_STATS_OFFSET_PAYER, "PayerStats drifted from the IDL");
_Static_assert(offsetof(PayerStats, rent_payer) == GP_PAYER_STATS_OFFSET_RENT_PAYER, "PayerStats drifted from the IDL");
_Static_assert(offsetof(PayerStats, paid_calls) == GP_PAYER_STATS_OFFSET_PAID_CALLS, "PayerStats drifted from the IDL");
_Static_assert(offsetof(PayerStats, rated_calls) == GP_PAYER_STATS_OFFSET_RATED_CALLS, "PayerStats drifted from the IDL");
_Static_assert(offsetof(PayerStats, expired_calls) == GP_PAYER_STATS_OFFSET_EXPIRED_CALLS,
               "PayerStats drifted from the IDL");
_Static_assert(offsetof(PayerStats, last_paid_at) == GP_PAYER_STATS_OFFSET_LAST_PAID_AT,
               "PayerStats drifted from the IDL");
_Static_assert(offsetof(PayerStats, bump) == GP_PAYER_STATS_OFFSET_BUMP, "PayerStats drifted from the IDL");
_Static_assert(offsetof(PayerStats, bump) + 1 == GP_PAYER_STATS_SPACE, "PayerStats drifted from the IDL");

static inline PayerStats *payer_stats(const SolAccountInfo *account) { return (PayerStats *)account->data; }

/* Paid calls neither rated nor expired (rated and expired only ever grow up to paid). */
static inline uint64_t open_calls(const PayerStats *stats) {
    return stats->paid_calls - stats->rated_calls - stats->expired_calls;
}

/* Open calls may be rated while the pair's newest payment is within the feedback window. */
static inline bool feedback_window_open(const PayerStats *stats, int64_t now) {
    return now < stats->last_paid_at + GP_FEEDBACK_WINDOW_SECONDS;
}

/* A writable PayerStats of this program. Owner, size and discriminator are
 * enough to trust its stored agent and payer: only this program writes that
 * discriminator, on creation, at ["payer_stats", agent, payer] of the agent
 * and payer it stores. */
static uint64_t load_payer_stats(const GpInput *in, const SolAccountInfo *account) {
    TRY(gp_require_writable(account, "payer_stats"));
    return gp_require_program_account(account, in->program_id, GP_ACCOUNT_PAYER_STATS, GP_PAYER_STATS_SPACE,
                                      "payer_stats");
}

/* The loaded PayerStats is this agent's and this payer's. */
static uint64_t require_pair(const PayerStats *stats, const SolPubkey *agent, const SolPubkey *payer) {
    if (!sol_pubkey_eq(&stats->agent, agent) || !sol_pubkey_eq(&stats->payer, payer))
        return gp_fail_account(GP_ERR_PAYER_STATS_MISMATCH, "payer_stats");
    return 0;
}
