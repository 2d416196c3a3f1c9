/* Checks on user-supplied text: borsh strings must be UTF-8 so that every
 * client can decode the accounts that hold them. */
#pragma once

#include "borsh.h"

#define ASCII_HIGH_BITS 0x8080808080808080ULL

static uint64_t utf8_sequence_len(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xc2 && lead <= 0xdf) return 2;
    if (lead >= 0xe0 && lead <= 0xef) return 3;
    if (lead >= 0xf0 && lead <= 0xf4) return 4;
    return 0;
}

/* UTF-8 validation with an ASCII fast path of 8 bytes per step. Rejects
 * overlong forms, surrogates and code points above U+10FFFF. */
static bool text_is_utf8(GpSlice s) {
    uint64_t i = 0;
    while (i < s.len) {
        if (s.len - i >= 8) {
            /* SBPF loads need no alignment; the cast keeps clang from splitting it into byte loads. */
            uint64_t word = *(const uint64_t *)(s.ptr + i);
            if ((word & ASCII_HIGH_BITS) == 0) {
                i += 8;
                continue;
            }
        }
        uint8_t lead = s.ptr[i];
        if (lead < 0x80) {
            i++;
            continue;
        }
        uint64_t n = utf8_sequence_len(lead);
        if (n == 0 || n > s.len - i) return false;
        for (uint64_t k = 1; k < n; k++)
            if ((s.ptr[i + k] & 0xc0) != 0x80) return false;
        uint8_t second = n > 1 ? s.ptr[i + 1] : 0;
        if ((lead == 0xe0 && second < 0xa0) || (lead == 0xed && second > 0x9f) ||
            (lead == 0xf0 && second < 0x90) || (lead == 0xf4 && second > 0x8f))
            return false;
        i += n;
    }
    return true;
}

/* The schemes as little-endian words: "https://" is exactly 8 bytes and
 * "http://" is 7, so each is checked with one load and compare. */
#define HTTPS_SCHEME_WORD 0x2f2f3a7370747468ULL /* "https://" */
#define HTTP_SCHEME_WORD 0x002f2f3a70747468ULL  /* "http://" */
#define HTTP_SCHEME_MASK 0x00ffffffffffffffULL
#define HTTPS_SCHEME_LEN 8u
#define HTTP_SCHEME_LEN 7u

/* The length of the http(s) scheme `s` starts with, followed by at least one
 * more byte (so the 8-byte load stays inside `s`); 0 if there is none. */
static uint64_t http_scheme_len(GpSlice s) {
    if (s.len <= HTTP_SCHEME_LEN) return 0;
    uint64_t head = *(const uint64_t *)s.ptr;
    if (head == HTTPS_SCHEME_WORD) return s.len > HTTPS_SCHEME_LEN ? HTTPS_SCHEME_LEN : 0;
    return (head & HTTP_SCHEME_MASK) == HTTP_SCHEME_WORD ? HTTP_SCHEME_LEN : 0;
}

#define BYTES_0X01 0x0101010101010101ULL
#define BYTES_0X21 0x2121212121212121ULL

/* True when every byte of `word` is printable ASCII (0x21..0x7e). Bytes of
 * 0x80 and up, bytes below 0x21 (x - 0x21 borrows into the high bit, exact
 * once high bytes are excluded) and 0x7f (x + 1 carries into it) all set a
 * high bit. */
static inline bool word_is_printable_ascii(uint64_t word) {
    uint64_t below_0x21 = (word - BYTES_0X21) & ~word;
    uint64_t is_0x7f = word + BYTES_0X01;
    return ((word | below_0x21 | is_0x7f) & ASCII_HIGH_BITS) == 0;
}

static inline bool byte_is_printable_ascii(uint8_t b) { return b > 0x20 && b < 0x7f; }

/* Every byte of s[from..] printable ASCII, checked 8 bytes per step. Inlined:
 * the URL check is on every owner update's hot path. */
static inline __attribute__((always_inline)) bool text_is_printable_ascii_from(GpSlice s, uint64_t from) {
    uint64_t i = from;
    for (; s.len - i >= 8; i += 8)
        if (!word_is_printable_ascii(*(const uint64_t *)(s.ptr + i))) return false;
    for (; i < s.len; i++)
        if (!byte_is_printable_ascii(s.ptr[i])) return false;
    return true;
}

/* An http(s) URL with a non-empty remainder, all printable ASCII (RFC 3986:
 * no spaces or control characters; other characters are percent-encoded). */
static bool text_is_http_url(GpSlice s) {
    uint64_t scheme = http_scheme_len(s);
    return scheme != 0 && text_is_printable_ascii_from(s, scheme);
}
