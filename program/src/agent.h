/* The Agent account: layout, argument parsing, validation, serialization.
 *
 * Fixed-size fields come first (discovery filters them with memcmp at the
 * offsets the IDL header gives); the variable tail follows in borsh. The
 * struct below mirrors the fixed part; the static asserts tie it to the IDL. */
#pragma once

#include "../sdk/anchor.h"
#include "../sdk/text.h"
#include "../sdk/token.h"

/* MintEarnings as borsh lays it out; 56 bytes, so every u64 of the table stays 8-aligned. */
typedef struct {
    SolPubkey mint;
    uint64_t x402_payments;
    uint64_t escrow_earnings;
    uint64_t open_work_orders;
} MintEarnings;

_Static_assert(sizeof(MintEarnings) == SOL_PUBKEY_BYTES + 24, "MintEarnings must match its borsh layout");
/* A new agent's empty table has room for every mint it may accept. */
_Static_assert(GP_MAX_ACCEPTED_TOKENS <= GP_MAX_EARNING_MINTS, "the earnings table must hold every accepted mint");

typedef struct {
    uint64_t discriminator;
    SolPubkey owner;
    uint8_t x402_enabled;
    uint8_t is_active;
    uint8_t agent_type;
    uint8_t bump;
    uint32_t reputation_score;
    uint64_t registration;
    SolPubkey x402_payment_address;
    uint64_t total_jobs_completed;
    uint64_t x402_total_calls;
    int64_t last_payment_at;
    int64_t created_at;
    int64_t updated_at;
    MintEarnings earnings[GP_MAX_EARNING_MINTS];
    uint32_t open_work_orders;
} AgentFixed;

_Static_assert(offsetof(AgentFixed, owner) == GP_AGENT_OFFSET_OWNER, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, x402_enabled) == GP_AGENT_OFFSET_X402_ENABLED, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, is_active) == GP_AGENT_OFFSET_IS_ACTIVE, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, agent_type) == GP_AGENT_OFFSET_AGENT_TYPE, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, bump) == GP_AGENT_OFFSET_BUMP, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, reputation_score) == GP_AGENT_OFFSET_REPUTATION_SCORE, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, registration) == GP_AGENT_OFFSET_REGISTRATION, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, x402_payment_address) == GP_AGENT_OFFSET_X402_PAYMENT_ADDRESS, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, total_jobs_completed) == GP_AGENT_OFFSET_TOTAL_JOBS_COMPLETED, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, x402_total_calls) == GP_AGENT_OFFSET_X402_TOTAL_CALLS, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, last_payment_at) == GP_AGENT_OFFSET_LAST_PAYMENT_AT, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, created_at) == GP_AGENT_OFFSET_CREATED_AT, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, updated_at) == GP_AGENT_OFFSET_UPDATED_AT, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, earnings) == GP_AGENT_OFFSET_EARNINGS, "Agent layout drifted from the IDL");
_Static_assert(offsetof(AgentFixed, open_work_orders) == GP_AGENT_OFFSET_OPEN_WORK_ORDERS, "Agent layout drifted from the IDL");

/* The variable tail starts right after the fixed fields. */
#define AGENT_TAIL_OFFSET GP_AGENT_OFFSET_X402_ACCEPTED_TOKENS
#define AGENT_TAIL_CAPACITY (GP_AGENT_SPACE - AGENT_TAIL_OFFSET)

/* TokenPrice as borsh lays it out: a mint and a u64 price, 40 bytes, no padding. */
typedef struct __attribute__((packed)) {
    SolPubkey mint;
    uint64_t price;
} TokenPrice;

#define TOKEN_PRICE_BYTES (SOL_PUBKEY_BYTES + 8u)
_Static_assert(sizeof(TokenPrice) == TOKEN_PRICE_BYTES, "TokenPrice must match its borsh layout");

/* A token price's u64 (borsh data; the VM loads at any alignment). */
static inline uint64_t token_price_of(const TokenPrice *entry) {
    return gp_load_u64((const uint8_t *)entry + SOL_PUBKEY_BYTES);
}

static inline void token_price_store(TokenPrice *entry, uint64_t price) {
    *(uint64_t *)((uint8_t *)entry + SOL_PUBKEY_BYTES) = price;
}

typedef struct {
    const SolPubkey *payment_address;
    uint32_t token_count;
    const TokenPrice *tokens; /* token_count contiguous (mint, price) entries */
    GpSlice service_endpoint;
} X402Config;

/* The variable-size fields, as slices into instruction data or account data. */
typedef struct {
    uint32_t token_count;
    const TokenPrice *tokens;
    GpSlice agent_id;
    GpSlice name;
    GpSlice description;
    GpSlice metadata_uri;
    GpSlice service_endpoint;
    uint32_t capability_count;
    GpSlice capabilities[GP_MAX_CAPABILITIES];
    const uint8_t *end; /* set by read_agent_tail: the byte after the tail in the account */
} AgentTail;

static inline AgentFixed *agent_fixed(const SolAccountInfo *account) { return (AgentFixed *)account->data; }

/* ---- parsing ------------------------------------------------------------------ */

static uint64_t parse_capabilities(BorshReader *r, AgentTail *tail) {
    uint32_t count = borsh_read_u32(r);
    if (r->ok && count > GP_MAX_CAPABILITIES) return gp_fail(GP_ERR_TOO_MANY_CAPABILITIES);
    tail->capability_count = count;
    for (uint32_t i = 0; i < count && r->ok; i++) tail->capabilities[i] = borsh_read_bytes(r);
    return 0;
}

/* A borsh Vec<TokenPrice>: the entries stay in place, read through token_price_of. */
static void read_token_prices(BorshReader *r, uint32_t *count, const TokenPrice **tokens) {
    *count = borsh_read_u32(r);
    *tokens = (const TokenPrice *)borsh_take(r, (uint64_t)*count * TOKEN_PRICE_BYTES);
}

static void parse_x402_config(BorshReader *r, X402Config *config) {
    config->payment_address = borsh_read_pubkey(r);
    read_token_prices(r, &config->token_count, &config->tokens);
    config->service_endpoint = borsh_read_bytes(r);
}

/* ---- validation --------------------------------------------------------------- */

static uint64_t require_text(GpSlice s, uint64_t min_len, uint64_t max_len, uint64_t error) {
    return (s.len < min_len || s.len > max_len || !text_is_utf8(s)) ? gp_fail(error) : 0;
}

static uint64_t validate_profile(const AgentTail *tail) {
    TRY(require_text(tail->name, 1, GP_MAX_NAME_LEN, GP_ERR_NAME_INVALID));
    TRY(require_text(tail->description, 0, GP_MAX_DESCRIPTION_LEN, GP_ERR_DESCRIPTION_TOO_LONG));
    TRY(require_text(tail->metadata_uri, 0, GP_MAX_METADATA_URI_LEN, GP_ERR_METADATA_URI_TOO_LONG));
    for (uint32_t i = 0; i < tail->capability_count; i++)
        TRY(require_text(tail->capabilities[i], 1, GP_MAX_CAPABILITY_LEN, GP_ERR_CAPABILITY_INVALID));
    return 0;
}

static uint64_t validate_price(uint64_t price) {
    return (price < GP_MIN_PRICE_PER_CALL || price > GP_MAX_PRICE_PER_CALL) ? gp_fail(GP_ERR_PRICE_OUT_OF_RANGE) : 0;
}

static uint64_t validate_endpoint(GpSlice endpoint) {
    if (endpoint.len > GP_MAX_ENDPOINT_LEN) return gp_fail(GP_ERR_ENDPOINT_TOO_LONG);
    return text_is_http_url(endpoint) ? 0 : gp_fail(GP_ERR_INVALID_ENDPOINT);
}

/* A mint both x402 receipts and the escrow can account for: no Token-2022
 * extension outside token_extension_is_neutral, each refusal named. Checked
 * when a mint is configured and again when it moves (record_x402_payment,
 * create_work_order): a closed mint can be re-created with other extensions. */
static uint64_t token_require_plain_mint(const SolAccountInfo *mint) {
    switch (token_mint_extension_support(mint)) {
    case MINT_HAS_TRANSFER_FEE:
        return gp_fail(GP_ERR_MINT_HAS_TRANSFER_FEE);
    case MINT_HAS_TRANSFER_HOOK:
        return gp_fail(GP_ERR_MINT_HAS_TRANSFER_HOOK);
    case MINT_HAS_UNSUPPORTED_EXTENSION:
        return gp_fail(GP_ERR_MINT_EXTENSION_NOT_SUPPORTED);
    default:
        return 0;
    }
}

/* 1-10 distinct mints, each with a price in range, each passed (in order) as
 * `mints[i]`, each an initialized SPL Token or Token-2022 mint whose
 * extensions the x402 receipt can account for (token_require_plain_mint). */
static uint64_t validate_tokens(uint32_t count, const TokenPrice *tokens, const SolAccountInfo *mints,
                                uint64_t mint_count) {
    if (count == 0) return gp_fail(GP_ERR_NO_ACCEPTED_TOKENS);
    if (count > GP_MAX_ACCEPTED_TOKENS) return gp_fail(GP_ERR_TOO_MANY_ACCEPTED_TOKENS);
    if (mint_count != count) return gp_fail(GP_ERR_MINT_ACCOUNT_MISMATCH);
    for (uint32_t i = 0; i < count; i++) {
        const SolPubkey *mint = &tokens[i].mint;
        if (!sol_pubkey_eq(mints[i].key, mint)) return gp_fail(GP_ERR_MINT_ACCOUNT_MISMATCH);
        /* Mint i is mints[i] (checked above), and the runtime passes a key that appears twice in one
         * instruction as a duplicate of the first: same key pointer. Comparing pointers finds every
         * duplicate at a fraction of the cost of comparing keys. */
        for (uint32_t j = 0; j < i; j++)
            if (mints[j].key == mints[i].key) return gp_fail(GP_ERR_DUPLICATE_TOKEN);
        TRY(validate_price(token_price_of(&tokens[i])));
        /* The default key is the System program, never a mint: token_is_mint refuses it. */
        if (!token_is_mint(&mints[i])) return gp_fail(sol_pubkey_is_default(mint) ? GP_ERR_DEFAULT_TOKEN_NOT_ALLOWED : GP_ERR_NOT_A_MINT);
        TRY(token_require_plain_mint(&mints[i]));
    }
    return 0;
}

static uint64_t validate_x402_config(const X402Config *config, const SolAccountInfo *mints, uint64_t mint_count) {
    if (sol_pubkey_is_default(config->payment_address)) return gp_fail(GP_ERR_INVALID_PAYMENT_ADDRESS);
    TRY(validate_tokens(config->token_count, config->tokens, mints, mint_count));
    return validate_endpoint(config->service_endpoint);
}

/* ---- serialization ------------------------------------------------------------ */

/* Writes the tail in IDL field order to `out` (AGENT_TAIL_CAPACITY bytes); it
 * always fits because every field was validated against the limits AGENT_SPACE
 * is computed from. */
static uint64_t write_agent_tail(uint8_t *out, const AgentTail *tail) {
    BorshWriter w = borsh_writer(out, AGENT_TAIL_CAPACITY);
    borsh_write_u32(&w, tail->token_count);
    borsh_write_raw(&w, tail->tokens, (uint64_t)tail->token_count * TOKEN_PRICE_BYTES);
    borsh_write_bytes(&w, tail->agent_id);
    borsh_write_bytes(&w, tail->name);
    borsh_write_bytes(&w, tail->description);
    borsh_write_bytes(&w, tail->metadata_uri);
    borsh_write_bytes(&w, tail->service_endpoint);
    borsh_write_u32(&w, tail->capability_count);
    for (uint32_t i = 0; i < tail->capability_count; i++) borsh_write_bytes(&w, tail->capabilities[i]);
    return w.pos;
}

/* Reads the tail of an existing agent; the program wrote it, but it is still
 * read with bounds checks. */
static uint64_t read_agent_tail(const uint8_t *account_data, AgentTail *tail) {
    BorshReader r = borsh_reader(account_data + AGENT_TAIL_OFFSET, AGENT_TAIL_CAPACITY);
    read_token_prices(&r, &tail->token_count, &tail->tokens);
    tail->agent_id = borsh_read_bytes(&r);
    tail->name = borsh_read_bytes(&r);
    tail->description = borsh_read_bytes(&r);
    tail->metadata_uri = borsh_read_bytes(&r);
    tail->service_endpoint = borsh_read_bytes(&r);
    tail->capability_count = borsh_read_u32(&r);
    if (tail->capability_count > GP_MAX_CAPABILITIES) r.ok = false;
    for (uint32_t i = 0; i < tail->capability_count && r.ok; i++) tail->capabilities[i] = borsh_read_bytes(&r);
    tail->end = account_data + AGENT_TAIL_OFFSET + r.pos;
    return r.ok ? 0 : gp_fail_account(GP_ERR_ACCOUNT_DID_NOT_DESERIALIZE, "agent");
}

/* A borsh-serialized field inside instruction or account data: from its
 * length prefix to its last byte. Instruction arguments are serialized exactly
 * as the account stores them, so a changed field is copied over verbatim. */
typedef struct {
    const uint8_t *start;
    uint64_t len;
} BorshSpan;

static inline BorshSpan span_of_bytes(GpSlice s) {
    return (BorshSpan){s.ptr - BORSH_LEN_PREFIX, BORSH_LEN_PREFIX + s.len};
}

static inline BorshSpan span_of_prices(const TokenPrice *tokens, uint32_t count) {
    return (BorshSpan){(const uint8_t *)tokens - BORSH_LEN_PREFIX,
                       BORSH_LEN_PREFIX + (uint64_t)count * TOKEN_PRICE_BYTES};
}

/* The capabilities vector of a tail read from an account: the last field, up to tail->end. */
static inline BorshSpan agent_capabilities_span(const AgentTail *tail) {
    const uint8_t *start = tail->service_endpoint.ptr + tail->service_endpoint.len;
    return (BorshSpan){start, (uint64_t)(tail->end - start)};
}

/* Replaces the field at `old` (a span of the account's tail) with
 * `replacement`, moving the rest of the tail and zeroing what a shorter tail
 * frees: a few memmove syscalls instead of re-serializing the whole tail.
 * Splice fields last-first, so spans of earlier fields stay valid. The result
 * fits: every field is within the limits AGENT_SPACE is computed from. */
static void splice_agent_tail(AgentTail *tail, BorshSpan old, BorshSpan replacement) {
    /* Spans of a tail read from the writable account data. */
    uint8_t *at = (uint8_t *)old.start;
    uint8_t *old_field_end = at + old.len;
    uint8_t *old_tail_end = (uint8_t *)tail->end;
    if (replacement.len != old.len) sol_memmove_(at + replacement.len, old_field_end, (uint64_t)(old_tail_end - old_field_end));
    sol_memcpy_(at, replacement.start, replacement.len);
    uint8_t *new_tail_end = old_tail_end - old.len + replacement.len;
    if (new_tail_end < old_tail_end) sol_memset_(new_tail_end, 0, (uint64_t)(old_tail_end - new_tail_end));
    tail->end = new_tail_end;
}

/* The agent's entry for `mint` among its accepted tokens (the tail's first
 * field, so only that vector is read), or NULL. */
static const TokenPrice *agent_token_price(const uint8_t *account_data, const SolPubkey *mint) {
    BorshReader r = borsh_reader(account_data + AGENT_TAIL_OFFSET, AGENT_TAIL_CAPACITY);
    uint32_t count;
    const TokenPrice *tokens;
    read_token_prices(&r, &count, &tokens);
    for (uint32_t i = 0; r.ok && i < count; i++)
        if (sol_pubkey_eq(&tokens[i].mint, mint)) return &tokens[i];
    return NULL;
}

/* ---- earnings per mint ---------------------------------------------------------- */

/* Slots are taken at the first empty one and reused in place, never emptied: occupied slots form a prefix.
 * The owner's configuration keeps at least as many empty slots as accepted mints without a slot
 * (reserve_earnings_slots), and only payments and work orders in accepted mints take empty slots, so
 * nobody else's transactions can leave an accepted mint without room. */

/* The agent's earnings slot for `mint` (never the default key), or NULL; the search stops at the first
 * empty slot. */
static MintEarnings *agent_earnings_slot(AgentFixed *fixed, const SolPubkey *mint) {
    for (uint32_t i = 0; i < GP_MAX_EARNING_MINTS; i++) {
        MintEarnings *slot = &fixed->earnings[i];
        if (sol_pubkey_eq(&slot->mint, mint)) return slot;
        if (sol_pubkey_is_default(&slot->mint)) return NULL;
    }
    return NULL;
}

/* The slot of `mint`: its own, else the first empty one, which it takes (an empty slot's counters are
 * zero: it was never used); NULL when neither exists. */
static MintEarnings *claim_earnings_slot(AgentFixed *fixed, const SolPubkey *mint) {
    for (uint32_t i = 0; i < GP_MAX_EARNING_MINTS; i++) {
        MintEarnings *slot = &fixed->earnings[i];
        if (sol_pubkey_eq(&slot->mint, mint)) return slot;
        if (sol_pubkey_is_default(&slot->mint)) {
            slot->mint = *mint;
            return slot;
        }
    }
    return NULL;
}

/* The slot payments in the accepted `mint` count in, taken on the first x402 payment and when a work
 * order is created (so every release of the order finds it). The configuration kept room for every
 * accepted mint, so EarningsTableFull here would mean a table the program did not keep. */
static uint64_t take_earnings_slot(AgentFixed *fixed, const SolPubkey *mint, MintEarnings **slot) {
    *slot = claim_earnings_slot(fixed, mint);
    return *slot ? 0 : gp_fail(GP_ERR_EARNINGS_TABLE_FULL);
}

/* The slot of a work order's mint: taken when the order was created and kept while it is open. */
static uint64_t escrow_earnings_slot(AgentFixed *fixed, const SolPubkey *mint, MintEarnings **slot) {
    *slot = agent_earnings_slot(fixed, mint);
    return *slot ? 0 : gp_fail(GP_ERR_EARNINGS_TABLE_FULL);
}

static bool tokens_include(const TokenPrice *tokens, uint32_t count, const SolPubkey *mint) {
    for (uint32_t i = 0; i < count; i++)
        if (sol_pubkey_eq(&tokens[i].mint, mint)) return true;
    return false;
}

/* A slot nothing needs any more: its mint is not among the `tokens` about to be accepted and no work
 * order in it is open. One that earned nothing first (nothing is lost), else the first in the table. */
static MintEarnings *retirable_earnings_slot(AgentFixed *fixed, const TokenPrice *tokens, uint32_t count) {
    MintEarnings *first = NULL;
    for (uint32_t i = 0; i < GP_MAX_EARNING_MINTS; i++) {
        MintEarnings *slot = &fixed->earnings[i];
        if (slot->open_work_orders || tokens_include(tokens, count, &slot->mint)) continue;
        if (!slot->x402_payments && !slot->escrow_earnings) return slot;
        if (!first) first = slot;
    }
    return first;
}

/* Kept out of line: the event buffer stays off the configuration's stack frame. */
__attribute__((noinline)) static void emit_mint_earnings_retired(const SolAccountInfo *agent, const MintEarnings *slot) {
    GpEvent event;
    gp_event_begin(&event, GP_EVENT_MINT_EARNINGS_RETIRED);
    borsh_write_pubkey(&event.w, agent->key);
    borsh_write_pubkey(&event.w, &slot->mint);
    borsh_write_u64(&event.w, slot->x402_payments);
    borsh_write_u64(&event.w, slot->escrow_earnings);
    borsh_write_i64(&event.w, gp_unix_timestamp());
    gp_event_emit(&event);
}

/* Gives each of the `tokens` about to be accepted a slot: its own, an empty one, or one
 * retirable_earnings_slot finds (its final totals go out in MintEarningsRetired). EarningsTableFull when the
 * accepted mints and the mints with open work orders need more than the table holds: settle or decline
 * those orders first. Kept out of line: configurations rarely need it. */
__attribute__((noinline)) static uint64_t claim_earnings_slots(const SolAccountInfo *agent, const TokenPrice *tokens,
                                                               uint32_t count) {
    AgentFixed *fixed = agent_fixed(agent);
    for (uint32_t i = 0; i < count; i++) {
        if (claim_earnings_slot(fixed, &tokens[i].mint)) continue;
        MintEarnings *slot = retirable_earnings_slot(fixed, tokens, count);
        if (!slot) return gp_fail(GP_ERR_EARNINGS_TABLE_FULL);
        emit_mint_earnings_retired(agent, slot);
        slot->mint = tokens[i].mint;
        slot->x402_payments = 0;
        slot->escrow_earnings = 0;
    }
    return 0;
}

/* Keeps room for the `count` (1 to MAX_ACCEPTED_TOKENS, validated) mints about to be accepted. While at
 * least `count` slots are empty (occupied slots form a prefix: slot MAX - count is empty) every one of
 * them has room and nothing is written; otherwise each gets its slot now (claim_earnings_slots). */
static inline uint64_t reserve_earnings_slots(const SolAccountInfo *agent, const TokenPrice *tokens, uint32_t count) {
    if (sol_pubkey_is_default(&agent_fixed(agent)->earnings[GP_MAX_EARNING_MINTS - count].mint)) return 0;
    return claim_earnings_slots(agent, tokens, count);
}

/* Accounts of every owner-only instruction: agent (writable), owner (signer), then the mints of those that
 * set tokens. The IDL gives them all the same list (checked below). */
enum {
    OWNED_AGENT_AGENT = UPDATE_AGENT_ACCOUNT_AGENT,
    OWNED_AGENT_OWNER = UPDATE_AGENT_ACCOUNT_OWNER,
    OWNED_AGENT_MINTS = UPDATE_AGENT_ACCOUNT_COUNT
};
#define OWNED_AGENT_ACCOUNTS(IX)                                                                                \
    _Static_assert(IX##_ACCOUNT_AGENT == OWNED_AGENT_AGENT && IX##_ACCOUNT_OWNER == OWNED_AGENT_OWNER &&       \
                       IX##_ACCOUNT_COUNT == OWNED_AGENT_MINTS,                                                 \
                   #IX " takes the owner-only accounts")
OWNED_AGENT_ACCOUNTS(CONFIGURE_X402);
OWNED_AGENT_ACCOUNTS(SET_X402_PRICE);
OWNED_AGENT_ACCOUNTS(SET_X402_TOKENS);
OWNED_AGENT_ACCOUNTS(SET_X402_ENDPOINT);
OWNED_AGENT_ACCOUNTS(DISABLE_X402);
OWNED_AGENT_ACCOUNTS(SET_AGENT_ACTIVE);
OWNED_AGENT_ACCOUNTS(CLOSE_AGENT);

/* The agent, checked by owner program, size and discriminator (no PDA
 * re-derivation: only this program can write that discriminator into an
 * account it owns), signed for by its owner. */
static uint64_t load_owned_agent(const GpInput *in, const SolAccountInfo **agent_out) {
    if (in->account_count < OWNED_AGENT_MINTS) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    const SolAccountInfo *agent = &in->accounts[OWNED_AGENT_AGENT];
    const SolAccountInfo *owner = &in->accounts[OWNED_AGENT_OWNER];
    TRY(gp_require_signer(owner, "owner"));
    TRY(gp_require_writable(agent, "agent"));
    TRY(gp_require_program_account(agent, in->program_id, GP_ACCOUNT_AGENT, GP_AGENT_SPACE, "agent"));
    if (!sol_pubkey_eq(&agent_fixed(agent)->owner, owner->key)) return gp_fail_account(GP_ERR_UNAUTHORIZED, "owner");
    *agent_out = agent;
    return 0;
}
