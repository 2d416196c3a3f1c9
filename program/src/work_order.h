/* WorkOrder: layout, loading and the checks and moves every escrow
 * instruction shares.
 *
 * The vault is a token account whose authority is the work-order PDA; tokens
 * leave it only through vault_pay, to a token account owned by the client or
 * by the provider agent's owner. */
#pragma once

#include "reputation.h"

#define WORK_ORDER_HASH_BYTES 32u
#define ORDER_ID_BYTES 8u

typedef struct {
    uint64_t discriminator;
    SolPubkey client;
    SolPubkey agent;
    SolPubkey provider_owner;
    SolPubkey arbiter;
    SolPubkey mint;
    SolPubkey vault;
    uint64_t order_id;
    uint64_t amount;
    uint64_t released;
    int64_t deadline;
    int64_t review_period_seconds;
    int64_t created_at;
    int64_t accepted_at;
    int64_t delivered_at;
    int64_t rejected_at;
    int64_t disputed_at;
    int64_t updated_at;
    uint8_t content_hash[WORK_ORDER_HASH_BYTES];
    uint8_t status;
    uint8_t bump;
} WorkOrder;

_Static_assert(offsetof(WorkOrder, client) == GP_WORK_ORDER_OFFSET_CLIENT, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, agent) == GP_WORK_ORDER_OFFSET_AGENT, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, provider_owner) == GP_WORK_ORDER_OFFSET_PROVIDER_OWNER, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, arbiter) == GP_WORK_ORDER_OFFSET_ARBITER, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, mint) == GP_WORK_ORDER_OFFSET_MINT, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, vault) == GP_WORK_ORDER_OFFSET_VAULT, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, order_id) == GP_WORK_ORDER_OFFSET_ORDER_ID, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, amount) == GP_WORK_ORDER_OFFSET_AMOUNT, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, released) == GP_WORK_ORDER_OFFSET_RELEASED, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, deadline) == GP_WORK_ORDER_OFFSET_DEADLINE, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, review_period_seconds) == GP_WORK_ORDER_OFFSET_REVIEW_PERIOD_SECONDS, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, created_at) == GP_WORK_ORDER_OFFSET_CREATED_AT, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, accepted_at) == GP_WORK_ORDER_OFFSET_ACCEPTED_AT, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, delivered_at) == GP_WORK_ORDER_OFFSET_DELIVERED_AT, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, rejected_at) == GP_WORK_ORDER_OFFSET_REJECTED_AT, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, disputed_at) == GP_WORK_ORDER_OFFSET_DISPUTED_AT, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, updated_at) == GP_WORK_ORDER_OFFSET_UPDATED_AT, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, content_hash) == GP_WORK_ORDER_OFFSET_CONTENT_HASH, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, status) == GP_WORK_ORDER_OFFSET_STATUS, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, bump) == GP_WORK_ORDER_OFFSET_BUMP, "WorkOrder drifted from the IDL");
_Static_assert(offsetof(WorkOrder, bump) + 1 == GP_WORK_ORDER_OFFSET_TITLE, "WorkOrder drifted from the IDL");

static inline WorkOrder *work_order_of(const SolAccountInfo *account) { return (WorkOrder *)account->data; }

static inline uint64_t work_order_remaining(const WorkOrder *order) { return order->amount - order->released; }

/* A writable work order of this program (owner, size, discriminator: only this
 * program writes that discriminator, and only into ["work_order", client, id]). */
static uint64_t load_work_order(const GpInput *in, const SolAccountInfo *account, WorkOrder **out) {
    TRY(gp_require_writable(account, "work_order"));
    TRY(gp_require_program_account(account, in->program_id, GP_ACCOUNT_WORK_ORDER, GP_WORK_ORDER_SPACE, "work_order"));
    *out = work_order_of(account);
    return 0;
}

static inline uint64_t require_status(const WorkOrder *order, uint8_t status) {
    return order->status == status ? 0 : gp_fail(GP_ERR_INVALID_WORK_ORDER_STATUS);
}

/* Accepted, Submitted or Rejected: work under way, the states a release acts on. */
static inline uint64_t require_in_progress(const WorkOrder *order) {
    bool in_progress = order->status == GP_WORK_ORDER_STATUS_ACCEPTED || order->status == GP_WORK_ORDER_STATUS_SUBMITTED ||
                       order->status == GP_WORK_ORDER_STATUS_REJECTED;
    return in_progress ? 0 : gp_fail(GP_ERR_INVALID_WORK_ORDER_STATUS);
}

/* After a rejection the provider has the review period again to deliver anew
 * or dispute; until it ends the client cannot take the escrow back. */
static inline bool rejection_grace_active(const WorkOrder *order, int64_t now) {
    return now < order->rejected_at + order->review_period_seconds;
}

/* A rejected order is the provider's to answer (deliver again or dispute) until the deadline or the
 * grace period ends, whichever is later; after both the client's refund is due. */
static inline bool rejection_answerable(const WorkOrder *order, int64_t now) {
    return now <= order->deadline || rejection_grace_active(order, now);
}

/* The arbiter's ruling is due within DISPUTE_RULING_SECONDS of the dispute; after that either party may
 * settle by default. */
static inline bool ruling_period_active(const WorkOrder *order, int64_t now) {
    return now < order->disputed_at + GP_DISPUTE_RULING_SECONDS;
}

static uint64_t require_party(const SolAccountInfo *signer, const SolPubkey *expected, const char *name, uint64_t error) {
    TRY(gp_require_signer(signer, name));
    return sol_pubkey_eq(signer->key, expected) ? 0 : gp_fail_account(error, name);
}

/* The work order's provider agent, writable (its counters move). */
static uint64_t load_order_agent(const GpInput *in, const WorkOrder *order, const SolAccountInfo *agent) {
    TRY(gp_require_writable(agent, "agent"));
    if (!sol_pubkey_eq(agent->key, &order->agent)) return gp_fail_account(GP_ERR_WORK_ORDER_AGENT_MISMATCH, "agent");
    return gp_require_program_account(agent, in->program_id, GP_ACCOUNT_AGENT, GP_AGENT_SPACE, "agent");
}

/* ---- the vault -------------------------------------------------------------------- */

/* Everything that moves tokens out of one work order's vault. */
typedef struct {
    const SolAccountInfo *work_order;
    WorkOrder *order;
    const SolAccountInfo *vault;
    TokenAuthority authority; /* the work-order PDA, signing with its seeds */
    SolSignerSeed seeds[4];
    SolSignerSeeds signer;
} Vault;

/* Binds the vault, mint and token program to the work order and prepares the
 * PDA signature ["work_order", client, order_id, bump]. */
static uint64_t open_vault(Vault *v, const SolAccountInfo *work_order, WorkOrder *order, const SolAccountInfo *vault,
                           const SolAccountInfo *mint, const SolAccountInfo *token_program) {
    TRY(gp_require_writable(vault, "vault"));
    if (!sol_pubkey_eq(vault->key, &order->vault)) return gp_fail_account(GP_ERR_VAULT_MISMATCH, "vault");
    if (!sol_pubkey_eq(mint->key, &order->mint)) return gp_fail_account(GP_ERR_WORK_ORDER_MINT_MISMATCH, "mint");
    if (!sol_pubkey_eq(token_program->key, mint->owner) || !token_is_token_program(token_program->key))
        return gp_fail_account(GP_ERR_TOKEN_PROGRAM_MISMATCH, "token_program");
    v->work_order = work_order;
    v->order = order;
    v->vault = vault;
    v->seeds[0] = (SolSignerSeed){(const uint8_t *)GP_WORK_ORDER_SEED, GP_WORK_ORDER_SEED_LEN};
    v->seeds[1] = (SolSignerSeed){order->client.x, SOL_PUBKEY_BYTES};
    v->seeds[2] = (SolSignerSeed){(const uint8_t *)&order->order_id, ORDER_ID_BYTES}; /* stored as its LE seed bytes */
    v->seeds[3] = (SolSignerSeed){&order->bump, 1};
    v->signer = (SolSignerSeeds){v->seeds, 4};
    v->authority = (TokenAuthority){
        .token_program = token_program,
        .mint = mint,
        .decimals = token_mint_decimals(mint),
        .authority = work_order,
        .signer = &v->signer,
    };
    return 0;
}

/* A writable token account owned by `owner`, the only kind the vault pays. */
static uint64_t require_payee(const Vault *v, const SolAccountInfo *token_account, const SolPubkey *owner, const char *name) {
    TRY(gp_require_writable(token_account, name));
    return token_account_owned_by(token_account, v->authority.token_program->key, owner)
               ? 0
               : gp_fail_account(GP_ERR_TOKEN_ACCOUNT_OWNER_MISMATCH, name);
}

static uint64_t vault_pay(const Vault *v, const SolAccountInfo *destination, uint64_t amount) {
    return amount ? token_transfer_checked(&v->authority, v->vault, destination, amount) : 0;
}

/* Ends the work order: tokens anyone sent to the vault beyond the agreed
 * remainder go back to the client's token account, then the vault and the work
 * order close with their rent to the client, and the agent has one open work
 * order fewer, in total and in the order's mint (whose earnings slot it no
 * longer holds). Call after paying out the remainder. */
static uint64_t close_vault(const Vault *v, const SolAccountInfo *client, const SolAccountInfo *client_token_account,
                            const SolAccountInfo *agent) {
    TRY(vault_pay(v, client_token_account, token_account_amount(v->vault)));
    TRY(token_close_account(&v->authority, v->vault, client));
    AgentFixed *fixed = agent_fixed(agent);
    MintEarnings *earnings;
    TRY(escrow_earnings_slot(fixed, &v->order->mint, &earnings));
    if (earnings->open_work_orders) earnings->open_work_orders--;
    if (fixed->open_work_orders) fixed->open_work_orders--;
    gp_close_account(v->work_order, client);
    return 0;
}

/* ---- reputation ------------------------------------------------------------------- */

/* A completed order (or a resolution that paid the provider) counts as a
 * successful payment on the day it settles. */
static void count_successful_payment(ReputationMetrics *m, int64_t now) {
    roll_payment_history(m, day_of(now));
    uint64_t *today = newest_history_bucket(m);
    *today = saturating_add(*today, 1);
    m->successful_payments = saturating_add(m->successful_payments, 1);
}

static void count_failed_payment(ReputationMetrics *m, int64_t now) {
    roll_payment_history(m, day_of(now));
    m->failed_payments = saturating_add(m->failed_payments, 1);
}

static inline uint32_t saturating_inc_u32(uint32_t v) { return v == UINT32_MAX ? v : v + 1; }

/* ---- events ----------------------------------------------------------------------- */

static void work_order_event_begin(GpEvent *event, uint64_t discriminator, const SolAccountInfo *work_order,
                                   const WorkOrder *order) {
    gp_event_begin(event, discriminator);
    borsh_write_pubkey(&event->w, work_order->key);
    borsh_write_pubkey(&event->w, &order->agent);
}

/* The events that carry only an amount and the time: cancellation and refund. */
static void emit_settled(uint64_t discriminator, const SolAccountInfo *work_order, const WorkOrder *order,
                         uint64_t refunded, int64_t now) {
    GpEvent event;
    work_order_event_begin(&event, discriminator, work_order, order);
    borsh_write_u64(&event.w, refunded);
    borsh_write_i64(&event.w, now);
    gp_event_emit(&event);
}
