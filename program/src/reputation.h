/* ReputationMetrics: layout, the 7-day payment window and the score.
 *
 * The score is specified in the IDL (ReputationMetrics docs) and README, and
 * mirrored line for line by ghostpay/reputation.py; tests/vectors/reputation.json
 * drives both. Integer math only, every intermediate below 2^64. */
#pragma once

#include "agent.h"

#define REPUTATION_HISTORY_DAYS 7u

typedef struct {
    uint64_t discriminator;
    SolPubkey agent;
    uint64_t successful_payments;
    uint64_t failed_payments;
    uint64_t total_response_time_ms;
    uint64_t response_time_count;
    uint64_t total_rating;
    uint64_t rating_count;
    uint32_t total_disputes;
    uint32_t disputes_resolved;
    uint64_t payment_history_7d[REPUTATION_HISTORY_DAYS];
    int64_t history_day;
    int64_t created_at;
    int64_t updated_at;
    uint64_t registration;
    uint8_t bump;
} ReputationMetrics;

_Static_assert(offsetof(ReputationMetrics, agent) == GP_REPUTATION_METRICS_OFFSET_AGENT, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, successful_payments) == GP_REPUTATION_METRICS_OFFSET_SUCCESSFUL_PAYMENTS, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, failed_payments) == GP_REPUTATION_METRICS_OFFSET_FAILED_PAYMENTS, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, total_response_time_ms) == GP_REPUTATION_METRICS_OFFSET_TOTAL_RESPONSE_TIME_MS, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, response_time_count) == GP_REPUTATION_METRICS_OFFSET_RESPONSE_TIME_COUNT, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, total_rating) == GP_REPUTATION_METRICS_OFFSET_TOTAL_RATING, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, rating_count) == GP_REPUTATION_METRICS_OFFSET_RATING_COUNT, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, total_disputes) == GP_REPUTATION_METRICS_OFFSET_TOTAL_DISPUTES, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, disputes_resolved) == GP_REPUTATION_METRICS_OFFSET_DISPUTES_RESOLVED, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, payment_history_7d) == GP_REPUTATION_METRICS_OFFSET_PAYMENT_HISTORY_7D, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, history_day) == GP_REPUTATION_METRICS_OFFSET_HISTORY_DAY, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, created_at) == GP_REPUTATION_METRICS_OFFSET_CREATED_AT, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, updated_at) == GP_REPUTATION_METRICS_OFFSET_UPDATED_AT, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, registration) == GP_REPUTATION_METRICS_OFFSET_REGISTRATION, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, bump) == GP_REPUTATION_METRICS_OFFSET_BUMP, "ReputationMetrics drifted from the IDL");
_Static_assert(offsetof(ReputationMetrics, bump) + 1 == GP_REPUTATION_METRICS_SPACE, "ReputationMetrics drifted from the IDL");

static inline ReputationMetrics *reputation_metrics(const SolAccountInfo *account) {
    return (ReputationMetrics *)account->data;
}

/* The agent's metrics: this program's account, with the discriminator, bound
 * to `agent` by its stored key (sound without re-deriving the PDA: only this
 * program writes that discriminator, and only into ["reputation", agent]). */
static uint64_t load_reputation(const GpInput *in, const SolAccountInfo *agent, const SolAccountInfo *reputation) {
    TRY(gp_require_writable(reputation, "reputation"));
    TRY(gp_require_program_account(reputation, in->program_id, GP_ACCOUNT_REPUTATION_METRICS,
                                   GP_REPUTATION_METRICS_SPACE, "reputation"));
    if (!sol_pubkey_eq(&reputation_metrics(reputation)->agent, agent->key))
        return gp_fail_account(GP_ERR_CONSTRAINT_SEEDS, "reputation");
    return 0;
}

/* ---- the 7-day window ----------------------------------------------------------- */

/* Day number of a timestamp; times before 1970 count as day 0 (SBPF has no signed division). */
static inline int64_t day_of(int64_t unix_timestamp) {
    return unix_timestamp < 0 ? 0 : (int64_t)((uint64_t)unix_timestamp / (uint64_t)GP_SECONDS_PER_DAY);
}

/* Moves the window's newest day to `today`, zeroing the days that passed. A
 * clock that moved back leaves the window as it is. */
static void roll_payment_history(ReputationMetrics *m, int64_t today) {
    if (today <= m->history_day) return;
    if (today - m->history_day >= (int64_t)REPUTATION_HISTORY_DAYS) {
        sol_memset_(m->payment_history_7d, 0, sizeof m->payment_history_7d);
    } else {
        for (int64_t day = m->history_day + 1; day <= today; day++)
            m->payment_history_7d[(uint64_t)day % REPUTATION_HISTORY_DAYS] = 0;
    }
    m->history_day = today;
}

static inline uint64_t *newest_history_bucket(ReputationMetrics *m) {
    return &m->payment_history_7d[(uint64_t)m->history_day % REPUTATION_HISTORY_DAYS];
}

/* ---- the score ------------------------------------------------------------------ */

#define BPS 10000u
#define SCORE_WEIGHT_PAYMENT_SUCCESS 40u
#define SCORE_WEIGHT_SERVICE_QUALITY 30u
#define SCORE_WEIGHT_RESPONSE_TIME 20u
#define SCORE_WEIGHT_VOLUME_CONSISTENCY 10u
#define SCORE_WEIGHT_TOTAL 100u
/* Counters are capped here first, which keeps every product below 2^64. */
#define SCORE_COUNTER_CAP ((1ULL << 40) - 1)
#define BPS_PER_STAR (BPS / GP_MAX_RATING)
#define NEUTRAL_RATING_BPS (3u * BPS_PER_STAR)
#define NEUTRAL_RESPONSE_TIME_BPS 5000u
#define FAST_RESPONSE_MS 1000u
#define SLOW_RESPONSE_MS 10000u
/* Daily counts are halved together until the largest fits 16 bits (the
 * coefficient of variation does not change with scale). */
#define HISTORY_COUNT_CAP 0xffffu

typedef struct {
    uint32_t payment_success;
    uint32_t service_quality;
    uint32_t response_time;
    uint32_t volume_consistency;
    uint32_t score;
} ReputationScore;

static inline uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t saturating_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }
static inline uint64_t cap_counter(uint64_t v) { return min_u64(v, SCORE_COUNTER_CAP); }

/* floor(sqrt(n)) by Newton's method from a power of two at or above the root
 * (found by halving the bit length), so a 30-bit argument takes about five
 * divisions instead of a loop over every bit pair. */
static uint64_t isqrt_u64(uint64_t n) {
    if (n < 2) return n;
    uint32_t bits = 0;
    for (uint32_t step = 32; step; step >>= 1)
        if (n >> (bits + step)) bits += step;
    uint64_t root = 1ULL << ((bits >> 1) + 1); /* n < 2^(bits + 1), so sqrt(n) < root */
    for (;;) {
        uint64_t next = (root + n / root) >> 1;
        if (next >= root) return root;
        root = next;
    }
}

static uint32_t service_quality_bps(const ReputationMetrics *m, uint64_t payments) {
    uint64_t ratings = cap_counter(m->rating_count);
    uint64_t rating = ratings ? min_u64(cap_counter(m->total_rating) * BPS_PER_STAR / ratings, BPS) : NEUTRAL_RATING_BPS;
    uint64_t dispute_rate = min_u64((uint64_t)m->total_disputes * BPS / payments, BPS);
    uint64_t resolution = m->total_disputes ? min_u64((uint64_t)m->disputes_resolved * BPS / m->total_disputes, BPS) : 0;
    int64_t quality = (int64_t)rating - (int64_t)(dispute_rate / 2) + (int64_t)(resolution / 10);
    return quality < 0 ? 0 : quality > (int64_t)BPS ? BPS : (uint32_t)quality;
}

static uint32_t response_time_bps(const ReputationMetrics *m) {
    uint64_t count = cap_counter(m->response_time_count);
    if (count == 0) return NEUTRAL_RESPONSE_TIME_BPS;
    uint64_t average_ms = cap_counter(m->total_response_time_ms) / count;
    if (average_ms <= FAST_RESPONSE_MS) return BPS;
    if (average_ms >= SLOW_RESPONSE_MS) return 0;
    return (uint32_t)((SLOW_RESPONSE_MS - average_ms) * BPS / (SLOW_RESPONSE_MS - FAST_RESPONSE_MS));
}

/* 10000 minus the coefficient of variation of the daily counts, in bps. */
static uint32_t volume_consistency_bps(const ReputationMetrics *m) {
    uint64_t counts[REPUTATION_HISTORY_DAYS];
    uint64_t largest = 0;
    for (uint32_t d = 0; d < REPUTATION_HISTORY_DAYS; d++) {
        counts[d] = cap_counter(m->payment_history_7d[d]);
        if (counts[d] > largest) largest = counts[d];
    }
    uint32_t shift = 0;
    while ((largest >> shift) > HISTORY_COUNT_CAP) shift++;
    uint64_t sum = 0;
    for (uint32_t d = 0; d < REPUTATION_HISTORY_DAYS; d++) sum += counts[d] >>= shift;
    if (sum == 0) return 0;
    /* With mean = sum / 7: cv^2 = sum((7 * count - sum)^2) / (7 * sum^2). */
    uint64_t squares = 0;
    for (uint32_t d = 0; d < REPUTATION_HISTORY_DAYS; d++) {
        uint64_t scaled = REPUTATION_HISTORY_DAYS * counts[d];
        uint64_t deviation = scaled > sum ? scaled - sum : sum - scaled;
        squares += deviation * deviation;
    }
    uint64_t cv = isqrt_u64(squares * BPS / sum * BPS / (REPUTATION_HISTORY_DAYS * sum));
    return cv >= BPS ? 0 : (uint32_t)(BPS - cv);
}

/* The four components and the weighted score; all 0 with no payments. */
static void reputation_score(const ReputationMetrics *m, ReputationScore *out) {
    uint64_t payments = cap_counter(m->successful_payments) + cap_counter(m->failed_payments);
    if (payments == 0) {
        *out = (ReputationScore){0};
        return;
    }
    out->payment_success = (uint32_t)(cap_counter(m->successful_payments) * BPS / payments);
    out->service_quality = service_quality_bps(m, payments);
    out->response_time = response_time_bps(m);
    out->volume_consistency = volume_consistency_bps(m);
    out->score = (SCORE_WEIGHT_PAYMENT_SUCCESS * out->payment_success +
                  SCORE_WEIGHT_SERVICE_QUALITY * out->service_quality +
                  SCORE_WEIGHT_RESPONSE_TIME * out->response_time +
                  SCORE_WEIGHT_VOLUME_CONSISTENCY * out->volume_consistency) /
                 SCORE_WEIGHT_TOTAL;
}

/* Recomputes the agent's score from its metrics and logs ReputationUpdated. */
static void update_reputation_score(const SolAccountInfo *agent, const ReputationMetrics *m, int64_t now) {
    ReputationScore score;
    reputation_score(m, &score);
    AgentFixed *fixed = agent_fixed(agent);
    uint32_t old_score = fixed->reputation_score;
    fixed->reputation_score = score.score;
    GpEvent event;
    gp_event_begin(&event, GP_EVENT_REPUTATION_UPDATED);
    borsh_write_pubkey(&event.w, agent->key);
    borsh_write_u32(&event.w, old_score);
    borsh_write_u32(&event.w, score.score);
    borsh_write_u32(&event.w, score.payment_success);
    borsh_write_u32(&event.w, score.service_quality);
    borsh_write_u32(&event.w, score.response_time);
    borsh_write_u32(&event.w, score.volume_consistency);
    borsh_write_i64(&event.w, now);
    gp_event_emit(&event);
}
