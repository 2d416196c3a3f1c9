/* What the work-order steps that move tokens out of the vault share: release_payment, claim_payment,
 * resolve_dispute, cancel_work_order, decline_work_order, claim_refund and settle_by_default. Each
 * checks its signer first, then the status and time, then binds every other account to the work order
 * (bind_settlement) before any token moves. */
#pragma once

#include "work_order.h"

#define NO_ACCOUNT 0xffu

/* Where each account sits in one instruction's account list (NO_ACCOUNT when absent). */
typedef struct {
    uint8_t work_order, vault, signer, client, client_token_account, provider_token_account, agent, reputation, mint,
        token_program, count;
} SettleAccounts;

/* The accounts every settling instruction IX takes, at its generated IX_ACCOUNT_* indexes; SIGNER names the
 * one that signs. provider_token_account and reputation follow per instruction. */
#define SETTLE_ACCOUNTS(IX, SIGNER)                                                                             \
    .work_order = IX##_ACCOUNT_WORK_ORDER, .vault = IX##_ACCOUNT_VAULT, .signer = IX##_ACCOUNT_##SIGNER,        \
    .client = IX##_ACCOUNT_CLIENT, .client_token_account = IX##_ACCOUNT_CLIENT_TOKEN_ACCOUNT,                   \
    .agent = IX##_ACCOUNT_AGENT, .mint = IX##_ACCOUNT_MINT, .token_program = IX##_ACCOUNT_TOKEN_PROGRAM,        \
    .count = IX##_ACCOUNT_COUNT

typedef enum { SIGNED_BY_CLIENT, SIGNED_BY_PROVIDER, SIGNED_BY_ARBITER, SIGNED_BY_PARTY } SettleSigner;

typedef struct {
    Vault vault;
    WorkOrder *order;
    const SolAccountInfo *client;
    const SolAccountInfo *client_token_account;
    const SolAccountInfo *provider_token_account;
    const SolAccountInfo *agent;
    ReputationMetrics *metrics;
    int64_t now;
} Settlement;

/* Loads the work order and checks that `signer` signed. */
static uint64_t load_settlement(const GpInput *in, const SettleAccounts *at, SettleSigner signer, Settlement *s) {
    if (in->account_count < at->count) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    TRY(load_work_order(in, &in->accounts[at->work_order], &s->order));
    const SolAccountInfo *signing = &in->accounts[at->signer];
    s->now = gp_unix_timestamp();
    switch (signer) {
    case SIGNED_BY_CLIENT:
        return require_party(signing, &s->order->client, "client", GP_ERR_NOT_WORK_ORDER_CLIENT);
    case SIGNED_BY_PROVIDER:
        return require_party(signing, &s->order->provider_owner, "provider", GP_ERR_NOT_WORK_ORDER_PROVIDER);
    case SIGNED_BY_PARTY:
        TRY(gp_require_signer(signing, "party"));
        return sol_pubkey_eq(signing->key, &s->order->client) || sol_pubkey_eq(signing->key, &s->order->provider_owner)
                   ? 0
                   : gp_fail_account(GP_ERR_NOT_WORK_ORDER_PARTY, "party");
    default:
        return require_party(signing, &s->order->arbiter, "arbiter", GP_ERR_NOT_WORK_ORDER_ARBITER);
    }
}

/* Binds the vault, mint, token program, client, payees, agent and metrics to the work order. */
static uint64_t bind_settlement(const GpInput *in, const SettleAccounts *at, Settlement *s) {
    const SolAccountInfo *work_order = &in->accounts[at->work_order];
    WorkOrder *order = s->order;
    TRY(open_vault(&s->vault, work_order, order, &in->accounts[at->vault], &in->accounts[at->mint],
                   &in->accounts[at->token_program]));
    s->client = &in->accounts[at->client];
    TRY(gp_require_writable(s->client, "client"));
    if (!sol_pubkey_eq(s->client->key, &order->client)) return gp_fail_account(GP_ERR_CONSTRAINT_ADDRESS, "client");
    s->client_token_account = &in->accounts[at->client_token_account];
    TRY(require_payee(&s->vault, s->client_token_account, &order->client, "client_token_account"));
    s->provider_token_account = NULL;
    if (at->provider_token_account != NO_ACCOUNT) {
        s->provider_token_account = &in->accounts[at->provider_token_account];
        TRY(require_payee(&s->vault, s->provider_token_account, &order->provider_owner, "provider_token_account"));
    }
    s->agent = &in->accounts[at->agent];
    TRY(load_order_agent(in, order, s->agent));
    s->metrics = NULL;
    if (at->reputation != NO_ACCOUNT) {
        const SolAccountInfo *reputation = &in->accounts[at->reputation];
        TRY(load_reputation(in, s->agent, reputation));
        s->metrics = reputation_metrics(reputation);
    }
    return 0;
}

static inline void settle_metrics_touched(Settlement *s) {
    s->metrics->updated_at = s->now;
    update_reputation_score(s->agent, s->metrics, s->now);
}

/* A completed job: one more for the agent, a successful payment in its metrics. */
static void count_completed_job(Settlement *s) {
    AgentFixed *fixed = agent_fixed(s->agent);
    fixed->total_jobs_completed = saturating_add(fixed->total_jobs_completed, 1);
    count_successful_payment(s->metrics, s->now);
}

/* `amount` of the order's mint released to the provider, in its earnings. */
static uint64_t count_escrow_earnings(Settlement *s, uint64_t amount) {
    if (amount == 0) return 0;
    MintEarnings *earned;
    TRY(escrow_earnings_slot(agent_fixed(s->agent), &s->order->mint, &earned));
    earned->escrow_earnings = saturating_add(earned->escrow_earnings, amount);
    return 0;
}

/* Pays `amount` of the remainder to the provider; the payment that empties
 * the escrow completes the order (a job done, a successful payment) and closes it. */
static uint64_t pay_provider(Settlement *s, uint64_t amount) {
    WorkOrder *order = s->order;
    TRY(vault_pay(&s->vault, s->provider_token_account, amount));
    order->released += amount;
    order->updated_at = s->now;
    TRY(count_escrow_earnings(s, amount));
    bool completed = order->released == order->amount;

    GpEvent event;
    work_order_event_begin(&event, GP_EVENT_PAYMENT_RELEASED, s->vault.work_order, order);
    borsh_write_pubkey(&event.w, &order->mint);
    borsh_write_u64(&event.w, amount);
    borsh_write_u64(&event.w, order->released);
    borsh_write_u64(&event.w, work_order_remaining(order));
    borsh_write_bool(&event.w, completed);
    borsh_write_i64(&event.w, s->now);
    gp_event_emit(&event);
    if (!completed) return 0;

    count_completed_job(s);
    settle_metrics_touched(s);
    return close_vault(&s->vault, s->client, s->client_token_account, s->agent);
}

/* Refunds the whole remainder to the client and closes the order. */
static uint64_t refund_client(Settlement *s, uint64_t event_discriminator) {
    uint64_t remaining = work_order_remaining(s->order);
    TRY(vault_pay(&s->vault, s->client_token_account, remaining));
    emit_settled(event_discriminator, s->vault.work_order, s->order, remaining, s->now);
    return close_vault(&s->vault, s->client, s->client_token_account, s->agent);
}

/* Refunds a Created order in full: cancelled by the client, or declined by the
 * provider (so no client can keep it, and close_agent, waiting until the deadline). */
static uint64_t refund_created(const GpInput *in, BorshReader *r, const SettleAccounts *at, SettleSigner signer,
                               uint64_t event_discriminator) {
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    Settlement s;
    TRY(load_settlement(in, at, signer, &s));
    TRY(require_status(s.order, GP_WORK_ORDER_STATUS_CREATED));
    TRY(bind_settlement(in, at, &s));
    return refund_client(&s, event_discriminator);
}

/* After the deadline with no delivery standing: never delivered, or a
 * rejected delivery the provider let the grace period pass on. */
static uint64_t require_refund_due(const WorkOrder *order, int64_t now) {
    uint8_t status = order->status;
    if (status != GP_WORK_ORDER_STATUS_CREATED && status != GP_WORK_ORDER_STATUS_ACCEPTED &&
        status != GP_WORK_ORDER_STATUS_REJECTED)
        return gp_fail(GP_ERR_INVALID_WORK_ORDER_STATUS);
    if (now <= order->deadline) return gp_fail(GP_ERR_DEADLINE_NOT_REACHED);
    if (status == GP_WORK_ORDER_STATUS_REJECTED && rejection_grace_active(order, now))
        return gp_fail(GP_ERR_GRACE_PERIOD_ACTIVE);
    return 0;
}

/* The due refund, bound and paid: a provider that accepted and did not deliver has a failed payment. */
static uint64_t pay_due_refund(const GpInput *in, const SettleAccounts *at, Settlement *s) {
    TRY(require_refund_due(s->order, s->now));
    TRY(bind_settlement(in, at, s));
    if (s->order->status != GP_WORK_ORDER_STATUS_CREATED) {
        count_failed_payment(s->metrics, s->now);
        settle_metrics_touched(s);
    }
    return refund_client(s, GP_EVENT_WORK_ORDER_REFUNDED);
}
