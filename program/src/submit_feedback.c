/* submit_feedback(reference, success, response_time_ms, rating)
 * Accounts: agent (writable), reputation (writable), payer_stats (writable), payer (signer).
 * Rates one paid call: through the pair's PayerStats, or a legacy receipt. */
#pragma once

#include "receipt.h"
#include "reputation.h"

/* Folds one rating into the metrics. A failed call moves its payment from the
 * successful to the failed count; rating 0 and response time 0 mean "not given". */
static void apply_feedback(ReputationMetrics *m, bool success, uint32_t response_time_ms, uint8_t rating) {
    if (!success) {
        if (m->successful_payments) m->successful_payments--;
        m->failed_payments = saturating_add(m->failed_payments, 1);
    }
    if (rating) {
        m->total_rating = saturating_add(m->total_rating, rating);
        m->rating_count = saturating_add(m->rating_count, 1);
    }
    if (response_time_ms) {
        m->total_response_time_ms = saturating_add(m->total_response_time_ms, response_time_ms);
        m->response_time_count = saturating_add(m->response_time_count, 1);
    }
}

/* A legacy receipt: rated once by its payer, within its window, for the
 * registration it paid. */
static uint64_t claim_receipt_rating(const GpInput *in, const SolAccountInfo *receipt, const uint8_t *reference,
                                     int64_t now) {
    const SolAccountInfo *agent = &in->accounts[SUBMIT_FEEDBACK_ACCOUNT_AGENT];
    TRY(load_receipt(in, receipt));
    X402Receipt *paid = x402_receipt(receipt);
    if (!sol_pubkey_eq(&paid->payer, in->accounts[SUBMIT_FEEDBACK_ACCOUNT_PAYER].key))
        return gp_fail(GP_ERR_NOT_RECEIPT_PAYER);
    if (!sol_pubkey_eq(&paid->agent, agent->key)) return gp_fail(GP_ERR_RECEIPT_AGENT_MISMATCH);
    /* A payment to the agent before it was closed and registered again rates nothing now. */
    if (paid->registration != agent_fixed(agent)->registration) return gp_fail(GP_ERR_RECEIPT_FROM_EARLIER_REGISTRATION);
    if (paid->feedback_submitted) return gp_fail(GP_ERR_FEEDBACK_ALREADY_SUBMITTED);
    if (now >= paid->paid_at + GP_FEEDBACK_WINDOW_SECONDS) return gp_fail(GP_ERR_FEEDBACK_WINDOW_CLOSED);
    int32_t differs;
    sol_memcmp_(paid->reference, reference, PAYMENT_REFERENCE_BYTES, &differs);
    if (differs) return gp_fail(GP_ERR_RECEIPT_REFERENCE_MISMATCH);
    paid->feedback_submitted = 1;
    return 0;
}

/* One of the calls the payer paid this agent and has not rated: the pair's
 * counters bound the ratings; the reference only names the call. A legacy
 * receipt in the account's place is rated by its own rules. */
static uint64_t claim_rating(const GpInput *in, const uint8_t *reference, int64_t now) {
    const SolAccountInfo *account = &in->accounts[SUBMIT_FEEDBACK_ACCOUNT_PAYER_STATS];
    TRY(gp_require_writable(account, "payer_stats"));
    if (sol_pubkey_eq(account->owner, in->program_id) && account->data_len >= GP_DISCRIMINATOR_BYTES &&
        gp_load_u64(account->data) == GP_ACCOUNT_X402_RECEIPT)
        return claim_receipt_rating(in, account, reference, now);
    TRY(load_payer_stats(in, account));
    PayerStats *stats = payer_stats(account);
    TRY(require_pair(stats, in->accounts[SUBMIT_FEEDBACK_ACCOUNT_AGENT].key,
                     in->accounts[SUBMIT_FEEDBACK_ACCOUNT_PAYER].key));
    if (!open_calls(stats)) return gp_fail(GP_ERR_NOTHING_TO_RATE);
    if (!feedback_window_open(stats, now)) return gp_fail(GP_ERR_FEEDBACK_WINDOW_CLOSED);
    stats->rated_calls++;
    return 0;
}

static uint64_t submit_feedback(const GpInput *in, BorshReader *r) {
    const uint8_t *reference = borsh_take(r, PAYMENT_REFERENCE_BYTES);
    bool success = borsh_read_bool(r);
    uint32_t response_time_ms = borsh_read_u32(r);
    uint8_t rating = borsh_read_u8(r);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    if (rating > GP_MAX_RATING) return gp_fail(GP_ERR_RATING_OUT_OF_RANGE);
    if (response_time_ms > GP_MAX_RESPONSE_TIME_MS) return gp_fail(GP_ERR_RESPONSE_TIME_OUT_OF_RANGE);

    if (in->account_count < SUBMIT_FEEDBACK_ACCOUNT_COUNT) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    const SolAccountInfo *agent = &in->accounts[SUBMIT_FEEDBACK_ACCOUNT_AGENT];
    const SolAccountInfo *reputation = &in->accounts[SUBMIT_FEEDBACK_ACCOUNT_REPUTATION];
    const SolAccountInfo *payer = &in->accounts[SUBMIT_FEEDBACK_ACCOUNT_PAYER];
    TRY(gp_require_signer(payer, "payer"));
    TRY(gp_require_writable(agent, "agent"));
    TRY(gp_require_program_account(agent, in->program_id, GP_ACCOUNT_AGENT, GP_AGENT_SPACE, "agent"));
    TRY(load_reputation(in, agent, reputation));
    int64_t now = gp_unix_timestamp();
    TRY(claim_rating(in, reference, now));

    ReputationMetrics *metrics = reputation_metrics(reputation);
    apply_feedback(metrics, success, response_time_ms, rating);
    roll_payment_history(metrics, day_of(now));
    metrics->updated_at = now;

    GpEvent event;
    gp_event_begin(&event, GP_EVENT_FEEDBACK_SUBMITTED);
    borsh_write_pubkey(&event.w, agent->key);
    borsh_write_pubkey(&event.w, payer->key);
    borsh_write_raw(&event.w, reference, PAYMENT_REFERENCE_BYTES);
    borsh_write_bool(&event.w, success);
    borsh_write_u32(&event.w, response_time_ms);
    borsh_write_u8(&event.w, rating);
    borsh_write_i64(&event.w, now);
    gp_event_emit(&event);
    update_reputation_score(agent, metrics, now);
    return 0;
}
