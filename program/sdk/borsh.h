/* Bounds-checked borsh readers and writers.
 *
 * Errors are sticky: a read past the end (or a write past capacity) clears
 * `ok`, returns zeros and never touches memory outside the buffer, so a handler
 * reads all its arguments and checks `ok` once at the end. */
#pragma once

#include "sol.h"

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
static const uint8_t *borsh_take(BorshReader *r, uint64_t n) {
    if (!r->ok || n > r->len - r->pos) {
        r->ok = false;
        return NULL;
    }
    const uint8_t *p = r->data + r->pos;
    r->pos += n;
    return p;
}

static uint64_t borsh_read_le(BorshReader *r, uint64_t width) {
    const uint8_t *p = borsh_take(r, width);
    uint64_t value = 0;
    if (p)
        for (uint64_t i = 0; i < width; i++) value |= (uint64_t)p[i] << (8 * i);
    return value;
}

static inline uint8_t borsh_read_u8(BorshReader *r) { return (uint8_t)borsh_read_le(r, 1); }
static inline uint16_t borsh_read_u16(BorshReader *r) { return (uint16_t)borsh_read_le(r, 2); }
static inline uint32_t borsh_read_u32(BorshReader *r) { return (uint32_t)borsh_read_le(r, 4); }
static inline uint64_t borsh_read_u64(BorshReader *r) { return borsh_read_le(r, 8); }
static inline int64_t borsh_read_i64(BorshReader *r) { return (int64_t)borsh_read_le(r, 8); }

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

static void borsh_write_raw(BorshWriter *w, const void *src, uint64_t n) {
    if (!w->ok || n > w->capacity - w->pos) {
        w->ok = false;
        return;
    }
    if (n) sol_memcpy_(w->data + w->pos, src, n);
    w->pos += n;
}

/* Integers are stored byte by byte: cheaper than a memcpy syscall for 1-8 bytes. */
static void borsh_write_le(BorshWriter *w, uint64_t value, uint64_t width) {
    if (!w->ok || width > w->capacity - w->pos) {
        w->ok = false;
        return;
    }
    for (uint64_t i = 0; i < width; i++) w->data[w->pos + i] = (uint8_t)(value >> (8 * i));
    w->pos += width;
}

static inline void borsh_write_u8(BorshWriter *w, uint8_t v) { borsh_write_le(w, v, 1); }
static inline void borsh_write_bool(BorshWriter *w, bool v) { borsh_write_le(w, v ? 1 : 0, 1); }
static inline void borsh_write_u32(BorshWriter *w, uint32_t v) { borsh_write_le(w, v, 4); }
static inline void borsh_write_u64(BorshWriter *w, uint64_t v) { borsh_write_le(w, v, 8); }
static inline void borsh_write_i64(BorshWriter *w, int64_t v) { borsh_write_le(w, (uint64_t)v, 8); }
static inline void borsh_write_pubkey(BorshWriter *w, const SolPubkey *k) { borsh_write_raw(w, k->x, SOL_PUBKEY_BYTES); }

static void borsh_write_bytes(BorshWriter *w, GpSlice s) {
    borsh_write_u32(w, (uint32_t)s.len);
    borsh_write_raw(w, s.ptr, s.len);
}
