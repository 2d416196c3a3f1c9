/* refresh_reputation()
 * Accounts: agent (writable), reputation (writable). */
#pragma once

#include "reputation.h"

static uint64_t refresh_reputation(const GpInput *in, BorshReader *r) {
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    if (in->account_count < REFRESH_REPUTATION_ACCOUNT_COUNT) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    const SolAccountInfo *agent = &in->accounts[REFRESH_REPUTATION_ACCOUNT_AGENT];
    const SolAccountInfo *reputation = &in->accounts[REFRESH_REPUTATION_ACCOUNT_REPUTATION];
    TRY(gp_require_writable(agent, "agent"));
    TRY(gp_require_program_account(agent, in->program_id, GP_ACCOUNT_AGENT, GP_AGENT_SPACE, "agent"));
    TRY(load_reputation(in, agent, reputation));
    int64_t now = gp_unix_timestamp();
    ReputationMetrics *metrics = reputation_metrics(reputation);
    roll_payment_history(metrics, day_of(now));
    metrics->updated_at = now;
    update_reputation_score(agent, metrics, now);
    return 0;
}
