/* Anchor conventions in C: error logs, events, account checks, PDA account
 * creation through the System Program, rent and clock.
 *
 * Handlers return 0 or an error code; the gp_fail* functions log the error the
 * way Anchor does (so Anchor clients translate it) and return the code. */
#pragma once

#include "../include/ghostpay_idl.h"
#include "borsh.h"
#include "entrypoint.h"

#define GP_LOG_CAPACITY 320u
#define GP_EVENT_CAPACITY 1024u
#define GP_DISCRIMINATOR_BYTES 8u
#define GP_ACCOUNT_STORAGE_OVERHEAD 128u /* bytes the runtime adds to an account for rent */

static const SolPubkey SYSTEM_PROGRAM_ID = {{0}};

typedef struct {
    char text[GP_LOG_CAPACITY];
    uint64_t len;
} LogLine;

static void log_append(LogLine *line, const char *s) {
    while (*s && line->len < GP_LOG_CAPACITY) line->text[line->len++] = *s++;
}

static void log_append_u64(LogLine *line, uint64_t value) {
    char digits[20];
    uint64_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n && line->len < GP_LOG_CAPACITY) line->text[line->len++] = digits[--n];
}

static const struct gp_error_info *gp_error_info(uint64_t code) {
    for (uint64_t i = 0; i < GP_ERROR_COUNT; i++)
        if (GP_ERRORS[i].code == code) return &GP_ERRORS[i];
    return NULL;
}

/* Logs "AnchorError [caused by account: <a>. | occurred. ]Error Code: <Name>.
 * Error Number: <n>. Error Message: <msg>." and returns the code. */
static uint64_t gp_fail_account(uint64_t code, const char *account_name) {
    const struct gp_error_info *info = gp_error_info(code);
    LogLine line = {.len = 0};
    if (account_name) {
        log_append(&line, "AnchorError caused by account: ");
        log_append(&line, account_name);
        log_append(&line, ". Error Code: ");
    } else {
        log_append(&line, "AnchorError occurred. Error Code: ");
    }
    log_append(&line, info ? info->name : "Unknown");
    log_append(&line, ". Error Number: ");
    log_append_u64(&line, code);
    log_append(&line, ". Error Message: ");
    log_append(&line, info ? info->message : "Unknown error");
    log_append(&line, ".");
    sol_log_(line.text, line.len);
    return code;
}

static inline uint64_t gp_fail(uint64_t code) { return gp_fail_account(code, NULL); }

#define TRY(expr)                        \
    do {                                 \
        uint64_t try_err_ = (expr);      \
        if (try_err_) return try_err_;   \
    } while (0)

/* ---- events ---------------------------------------------------------------- */

/* An event under construction: discriminator then borsh fields, logged as ONE
 * sol_log_data field, which is what Anchor's event parsers expect. */
typedef struct {
    uint8_t buffer[GP_EVENT_CAPACITY];
    BorshWriter w;
} GpEvent;

static void gp_event_begin(GpEvent *event, uint64_t discriminator) {
    event->w = borsh_writer(event->buffer, GP_EVENT_CAPACITY);
    borsh_write_u64(&event->w, discriminator);
}

static void gp_event_emit(GpEvent *event) {
    SolBytes field = {.addr = event->buffer, .len = event->w.pos};
    sol_log_data(&field, 1);
}

/* ---- account checks --------------------------------------------------------- */

static uint64_t gp_require_signer(const SolAccountInfo *a, const char *name) {
    return a->is_signer ? 0 : gp_fail_account(GP_ERR_ACCOUNT_NOT_SIGNER, name);
}

static uint64_t gp_require_writable(const SolAccountInfo *a, const char *name) {
    return a->is_writable ? 0 : gp_fail_account(GP_ERR_CONSTRAINT_MUT, name);
}

static uint64_t gp_require_program(const SolAccountInfo *a, const SolPubkey *program_id, const char *name) {
    return sol_pubkey_eq(a->key, program_id) ? 0 : gp_fail_account(GP_ERR_INVALID_PROGRAM_ID, name);
}

/* SBPF loads need no alignment; a plain load is one instruction. */
static inline uint64_t gp_load_u64(const uint8_t *p) { return *(const uint64_t *)p; }

/* An account of this program holding `discriminator`: owner first (so foreign
 * look-alikes fail as such), then size, then discriminator. */
static uint64_t gp_require_program_account(const SolAccountInfo *a, const SolPubkey *program_id,
                                           uint64_t discriminator, uint64_t size, const char *name) {
    if (!sol_pubkey_eq(a->owner, program_id)) return gp_fail_account(GP_ERR_ACCOUNT_OWNED_BY_WRONG_PROGRAM, name);
    if (a->data_len < size) return gp_fail_account(GP_ERR_ACCOUNT_DID_NOT_DESERIALIZE, name);
    if (gp_load_u64(a->data) != discriminator) return gp_fail_account(GP_ERR_ACCOUNT_DISCRIMINATOR_MISMATCH, name);
    return 0;
}

/* Closes a program-owned account the way Anchor does: every lamport to
 * `destination`, data wiped and shrunk to 0 bytes (so the address can be
 * created again, and a revived account cannot pass a discriminator check),
 * owner back to the System Program. The runtime reads the new length from the
 * serialized input, right before the data. */
static void gp_close_account(const SolAccountInfo *account, const SolAccountInfo *destination) {
    *destination->lamports += *account->lamports;
    *account->lamports = 0;
    sol_memset_(account->data, 0, account->data_len);
    *(uint64_t *)(account->data - sizeof(uint64_t)) = 0;
    *account->owner = SYSTEM_PROGRAM_ID;
}

/* ---- sysvars ---------------------------------------------------------------- */

static int64_t gp_unix_timestamp(void) {
    SolClock clock;
    sol_get_clock_sysvar(&clock);
    return clock.unix_timestamp;
}

/* Rent-exempt minimum: (128 + space) * lamports_per_byte_year * threshold. The
 * threshold is an f64 (2.0 on every cluster); decode it with integer math, as
 * mantissa * 2^exponent, since SBPFv0 has no floating point. */
static uint64_t gp_minimum_balance(uint64_t space) {
    SolRent rent;
    sol_get_rent_sysvar(&rent);
    uint64_t bits = rent.exemption_threshold_f64_bits;
    uint64_t mantissa = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
    int64_t exponent = (int64_t)((bits >> 52) & 0x7ff) - 1075;
    /* Drop the mantissa's trailing zeros (52 of them for 2.0) so the product cannot overflow. */
    uint64_t zeros = (uint64_t)__builtin_ctzll(mantissa);
    mantissa >>= zeros;
    exponent += (int64_t)zeros;
    uint64_t base = (GP_ACCOUNT_STORAGE_OVERHEAD + space) * rent.lamports_per_byte_year * mantissa;
    return exponent >= 0 ? base << exponent : base >> (uint64_t)(-exponent);
}

/* ---- PDA accounts through the System Program -------------------------------- */

#define SYSTEM_IX_CREATE_ACCOUNT 0u
#define SYSTEM_IX_ASSIGN 1u
#define SYSTEM_IX_TRANSFER 2u
#define SYSTEM_IX_ALLOCATE 8u

static uint64_t gp_system_invoke(uint8_t *data, uint64_t data_len, SolAccountMeta *metas, uint64_t meta_count,
                                 const SolAccountInfo *infos, int info_count, const SolSignerSeeds *signer) {
    SolInstruction ix = {
        .program_id = (SolPubkey *)&SYSTEM_PROGRAM_ID,
        .accounts = metas,
        .account_len = meta_count,
        .data = data,
        .data_len = data_len,
    };
    return sol_invoke_signed_c(&ix, infos, info_count, signer, signer ? 1 : 0);
}

/* Creates `account` (a PDA of this program, signed by `seeds`, or a keypair
 * that signed the transaction, with NULL seeds) with `space` bytes,
 * rent-exempt, paid by `payer`. A PDA someone pre-funded with lamports
 * cannot be created with CreateAccount, so it is topped up, allocated and
 * assigned instead, as Anchor's `init` does. */
static uint64_t gp_create_pda_account(const SolAccountInfo *payer, const SolAccountInfo *account, uint64_t space,
                                      const SolPubkey *owner, const SolSignerSeeds *seeds) {
    uint64_t rent = gp_minimum_balance(space);
    SolAccountInfo both[2] = {*payer, *account};
    SolAccountMeta payer_and_account[2] = {{payer->key, true, true}, {account->key, true, true}};
    uint64_t current = *account->lamports;
    if (current == 0) {
        uint8_t data[4 + 8 + 8 + 32];
        BorshWriter w = borsh_writer(data, sizeof data);
        borsh_write_u32(&w, SYSTEM_IX_CREATE_ACCOUNT);
        borsh_write_u64(&w, rent);
        borsh_write_u64(&w, space);
        borsh_write_pubkey(&w, owner);
        return gp_system_invoke(data, w.pos, payer_and_account, 2, both, 2, seeds);
    }
    if (current < rent) {
        uint8_t data[4 + 8];
        BorshWriter w = borsh_writer(data, sizeof data);
        borsh_write_u32(&w, SYSTEM_IX_TRANSFER);
        borsh_write_u64(&w, rent - current);
        SolAccountMeta transfer_metas[2] = {{payer->key, true, true}, {account->key, true, false}};
        TRY(gp_system_invoke(data, w.pos, transfer_metas, 2, both, 2, NULL));
    }
    SolAccountMeta account_only[1] = {{account->key, true, true}};
    uint8_t allocate[4 + 8];
    BorshWriter wa = borsh_writer(allocate, sizeof allocate);
    borsh_write_u32(&wa, SYSTEM_IX_ALLOCATE);
    borsh_write_u64(&wa, space);
    TRY(gp_system_invoke(allocate, wa.pos, account_only, 1, account, 1, seeds));
    uint8_t assign[4 + 32];
    BorshWriter wb = borsh_writer(assign, sizeof assign);
    borsh_write_u32(&wb, SYSTEM_IX_ASSIGN);
    borsh_write_pubkey(&wb, owner);
    return gp_system_invoke(assign, wb.pos, account_only, 1, account, 1, seeds);
}

#define GP_MAX_PDA_SEEDS 4u

/* A PDA's seeds; gp_find_pda appends the canonical bump, after which they
 * sign CPIs as the PDA. */
typedef struct {
    SolSignerSeed seeds[GP_MAX_PDA_SEEDS];
    uint64_t seed_count;
    uint8_t bump;
} GpPda;

#define SOL_CURVE25519_EDWARDS 0u
#define SOL_MAX_SEED_LEN 32u
static const char PDA_MARKER[] = "ProgramDerivedAddress";

/* Finds the canonical bump and checks that `expected` is that address.
 *
 * The runtime's rule, done by hand: the address for bump b is
 * sha256(seeds || b || program_id || "ProgramDerivedAddress"), valid when it
 * is not an ed25519 point; the canonical bump is the highest valid b from 255
 * down. A try costs one sol_sha256 and one sol_curve_validate_point (about
 * 350 CU) instead of the 1,500 of sol_try_find_program_address. */
static uint64_t gp_find_pda(GpPda *pda, const SolPubkey *program_id, const SolPubkey *expected, const char *name) {
    SolBytes parts[GP_MAX_PDA_SEEDS + 3];
    uint64_t n = pda->seed_count;
    for (uint64_t i = 0; i < n; i++) {
        if (pda->seeds[i].len > SOL_MAX_SEED_LEN) return gp_fail_account(GP_ERR_CONSTRAINT_SEEDS, name);
        parts[i] = (SolBytes){pda->seeds[i].addr, pda->seeds[i].len};
    }
    parts[n] = (SolBytes){&pda->bump, 1};
    parts[n + 1] = (SolBytes){program_id->x, SOL_PUBKEY_BYTES};
    parts[n + 2] = (SolBytes){(const uint8_t *)PDA_MARKER, sizeof PDA_MARKER - 1};
    SolPubkey address;
    uint8_t unused;
    pda->bump = 255;
    for (;;) {
        sol_sha256(parts, n + 3, address.x);
        if (sol_curve_validate_point(SOL_CURVE25519_EDWARDS, address.x, &unused) != 0) break; /* off the curve */
        if (pda->bump == 0) return gp_fail_account(GP_ERR_CONSTRAINT_SEEDS, name);
        pda->bump--;
    }
    if (!sol_pubkey_eq(&address, expected)) return gp_fail_account(GP_ERR_CONSTRAINT_SEEDS, name);
    pda->seeds[pda->seed_count++] = (SolSignerSeed){.addr = &pda->bump, .len = 1};
    return 0;
}

static inline SolSignerSeeds gp_pda_signer(const GpPda *pda) { return (SolSignerSeeds){pda->seeds, pda->seed_count}; }
