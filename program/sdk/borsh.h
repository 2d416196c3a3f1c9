/* Bounds-checked borsh readers and writers.
 *
 * Errors are sticky: a read past the end (or a write past capacity) clears
 * `ok`, returns zeros and never touches memory outside the buffer, so a handler
 * reads all its arguments and checks `ok` once at the end. */
#pragma once

#include "sol.h"

/* Strings, byte vectors and Vec<T> are a u32 length, then the items. */
#define BORSH_LEN_PREFIX 4u

typedef struct {
    const uint8_t *ptr;
    uint64_t len;
} GpSlice;

typedef struct {
    const uint8_t *data;
    uint64_t len;
    uint64_t pos;
    bool ok;
} BorshReader;

typedef struct {
    uint8_t *data;
    uint64_t capacity;
    uint64_t pos;
    bool ok;
} BorshWriter;

static inline BorshReader borsh_reader(const uint8_t *data, uint64_t len) {
    return (BorshReader){.data = data, .len = len, .pos = 0, .ok = true};
}

/* Returns a pointer to `n` readable bytes, or NULL (and ok = false) when fewer remain. */
static inline const uint8_t *borsh_take(BorshReader *r, uint64_t n) {
    if (!r->ok || n > r->len - r->pos) {
        r->ok = false;
        return NULL;
    }
    const uint8_t *p = r->data + r->pos;
    r->pos += n;
    return p;
}

/* Moves to absolute position `pos`; past the end clears `ok`. */
static inline void borsh_seek(BorshReader *r, uint64_t pos) {
    if (pos > r->len) r->ok = false;
    else r->pos = pos;
}

/* SBPF loads and stores need no alignment, so integers are read and written
 * with one plain load or store instead of byte loops. */
static inline uint8_t borsh_read_u8(BorshReader *r) {
    const uint8_t *p = borsh_take(r, 1);
    return p ? *p : 0;
}
static inline uint16_t borsh_read_u16(BorshReader *r) {
    const uint8_t *p = borsh_take(r, 2);
    return p ? *(const uint16_t *)p : 0;
}
static inline uint32_t borsh_read_u32(BorshReader *r) {
    const uint8_t *p = borsh_take(r, 4);
    return p ? *(const uint32_t *)p : 0;
}
static inline uint64_t borsh_read_u64(BorshReader *r) {
    const uint8_t *p = borsh_take(r, 8);
    return p ? *(const uint64_t *)p : 0;
}
static inline int64_t borsh_read_i64(BorshReader *r) { return (int64_t)borsh_read_u64(r); }

/* Borsh bools are exactly 0 or 1; anything else is malformed. */
static bool borsh_read_bool(BorshReader *r) {
    uint8_t b = borsh_read_u8(r);
    if (b > 1) r->ok = false;
    return b == 1;
}

/* Option tag: 0 = None, 1 = Some. */
static inline bool borsh_read_option(BorshReader *r) { return borsh_read_bool(r); }

static const SolPubkey *borsh_read_pubkey(BorshReader *r) {
    return (const SolPubkey *)borsh_take(r, SOL_PUBKEY_BYTES);
}

/* A string or byte vector: u32 length then the bytes. The length is checked
 * against the remaining input only; callers validate it against their limits so
 * that an over-long value gets its own named error. */
static GpSlice borsh_read_bytes(BorshReader *r) {
    uint32_t len = borsh_read_u32(r);
    const uint8_t *p = borsh_take(r, len);
    return p ? (GpSlice){.ptr = p, .len = len} : (GpSlice){.ptr = NULL, .len = 0};
}

/* True when every byte was consumed without overrun: trailing bytes are an error too. */
static inline bool borsh_reader_done(const BorshReader *r) { return r->ok && r->pos == r->len; }

static inline BorshWriter borsh_writer(uint8_t *data, uint64_t capacity) {
    return (BorshWriter){.data = data, .capacity = capacity, .pos = 0, .ok = true};
}

/* Returns where `n` bytes may be written, or NULL (and ok = false) past capacity. */
static inline uint8_t *borsh_reserve(BorshWriter *w, uint64_t n) {
    if (!w->ok || n > w->capacity - w->pos) {
        w->ok = false;
        return NULL;
    }
    uint8_t *p = w->data + w->pos;
    w->pos += n;
    return p;
}

static inline void borsh_write_u8(BorshWriter *w, uint8_t v) {
    uint8_t *p = borsh_reserve(w, 1);
    if (p) *p = v;
}
static inline void borsh_write_bool(BorshWriter *w, bool v) { borsh_write_u8(w, v ? 1 : 0); }
static inline void borsh_write_u16(BorshWriter *w, uint16_t v) {
    uint8_t *p = borsh_reserve(w, 2);
    if (p) *(uint16_t *)p = v;
}
static inline void borsh_write_u32(BorshWriter *w, uint32_t v) {
    uint8_t *p = borsh_reserve(w, 4);
    if (p) *(uint32_t *)p = v;
}
static inline void borsh_write_u64(BorshWriter *w, uint64_t v) {
    uint8_t *p = borsh_reserve(w, 8);
    if (p) *(uint64_t *)p = v;
}
static inline void borsh_write_i64(BorshWriter *w, int64_t v) { borsh_write_u64(w, (uint64_t)v); }
static void borsh_write_raw(BorshWriter *w, const void *src, uint64_t n) {
    uint8_t *p = borsh_reserve(w, n);
    if (p && n) sol_memcpy_(p, src, n);
}

/* Four 8-byte stores: cheaper than a memcpy syscall for 32 bytes. */
static inline void borsh_write_pubkey(BorshWriter *w, const SolPubkey *k) {
    uint64_t *p = (uint64_t *)borsh_reserve(w, SOL_PUBKEY_BYTES);
    if (!p) return;
    const uint64_t *words = (const uint64_t *)k->x;
    p[0] = words[0];
    p[1] = words[1];
    p[2] = words[2];
    p[3] = words[3];
}

static void borsh_write_bytes(BorshWriter *w, GpSlice s) {
    borsh_write_u32(w, (uint32_t)s.len);
    borsh_write_raw(w, s.ptr, s.len);
}
