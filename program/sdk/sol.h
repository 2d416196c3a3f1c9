/* Solana runtime ABI for SBPFv0 programs built with stock clang: types,
 * syscall declarations, and the mem* functions the compiler may call. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SOL_PUBKEY_BYTES 32u
#define SOL_MAX_PERMITTED_DATA_INCREASE 10240u
#define SOL_NON_DUP_MARKER 0xffu

typedef struct {
    uint8_t x[SOL_PUBKEY_BYTES];
} SolPubkey;

/* Legacy C SDK CPI layouts: the runtime reads these exact structs. */
typedef struct {
    SolPubkey *key;
    uint64_t *lamports;
    uint64_t data_len;
    uint8_t *data;
    SolPubkey *owner;
    uint64_t rent_epoch;
    bool is_signer;
    bool is_writable;
    bool executable;
} SolAccountInfo;

typedef struct {
    SolPubkey *pubkey;
    bool is_writable; /* writable before signer, unlike solders' AccountMeta */
    bool is_signer;
} SolAccountMeta;

typedef struct {
    SolPubkey *program_id;
    SolAccountMeta *accounts;
    uint64_t account_len;
    uint8_t *data;
    uint64_t data_len;
} SolInstruction;

typedef struct {
    const uint8_t *addr;
    uint64_t len;
} SolSignerSeed;

typedef struct {
    const SolSignerSeed *addr;
    uint64_t len;
} SolSignerSeeds;

typedef struct {
    const uint8_t *addr;
    uint64_t len;
} SolBytes;

typedef struct {
    uint64_t slot;
    int64_t epoch_start_timestamp;
    uint64_t epoch;
    uint64_t leader_schedule_epoch;
    int64_t unix_timestamp;
} SolClock;

typedef struct {
    uint64_t lamports_per_byte_year;
    uint64_t exemption_threshold_f64_bits; /* an f64; read as bits, no FPU here */
    uint8_t burn_percent;
} SolRent;

void sol_log_(const char *message, uint64_t len);
void sol_log_64_(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e);
void sol_log_data(const SolBytes *fields, uint64_t count);
void sol_log_compute_units_(void);
void sol_memcpy_(void *dst, const void *src, uint64_t n);
void sol_memmove_(void *dst, const void *src, uint64_t n);
void sol_memset_(void *dst, uint8_t value, uint64_t n);
void sol_memcmp_(const void *a, const void *b, uint64_t n, int32_t *result);
uint64_t sol_try_find_program_address(const SolSignerSeed *seeds, uint64_t seed_count,
                                      const SolPubkey *program_id, SolPubkey *address, uint8_t *bump);
uint64_t sol_create_program_address(const SolSignerSeed *seeds, uint64_t seed_count,
                                    const SolPubkey *program_id, SolPubkey *address);
uint64_t sol_invoke_signed_c(const SolInstruction *instruction, const SolAccountInfo *account_infos,
                             int account_infos_len, const SolSignerSeeds *signers_seeds, int signers_seeds_len);
uint64_t sol_sha256(const SolBytes *slices, uint64_t count, uint8_t *hash);
/* Returns 0 when `point` is a valid point of the curve (curve_id 0: ed25519 in Edwards form). */
uint64_t sol_curve_validate_point(uint64_t curve_id, const uint8_t *point, uint8_t *unused);
uint64_t sol_get_clock_sysvar(SolClock *clock);
uint64_t sol_get_rent_sysvar(SolRent *rent);

/* clang may lower struct copies and zeroing to these calls even when freestanding. */
void *memcpy(void *dst, const void *src, size_t n) {
    sol_memcpy_(dst, src, n);
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    sol_memmove_(dst, src, n);
    return dst;
}

void *memset(void *dst, int value, size_t n) {
    sol_memset_(dst, (uint8_t)value, n);
    return dst;
}

static inline bool sol_pubkey_eq(const SolPubkey *a, const SolPubkey *b) {
    const uint64_t *x = (const uint64_t *)a->x;
    const uint64_t *y = (const uint64_t *)b->x;
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

static inline bool sol_pubkey_is_default(const SolPubkey *key) {
    const uint64_t *x = (const uint64_t *)key->x;
    return (x[0] | x[1] | x[2] | x[3]) == 0;
}
