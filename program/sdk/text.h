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

static bool text_has_prefix(GpSlice s, const char *prefix, uint64_t prefix_len) {
    if (s.len < prefix_len) return false;
    for (uint64_t i = 0; i < prefix_len; i++)
        if (s.ptr[i] != (uint8_t)prefix[i]) return false;
    return true;
}

#define HTTPS_SCHEME "https://"
#define HTTP_SCHEME "http://"

/* An http(s) URL with a non-empty remainder and no spaces or control characters. */
static bool text_is_http_url(GpSlice s) {
    uint64_t scheme = text_has_prefix(s, HTTPS_SCHEME, sizeof HTTPS_SCHEME - 1)  ? sizeof HTTPS_SCHEME - 1
                      : text_has_prefix(s, HTTP_SCHEME, sizeof HTTP_SCHEME - 1) ? sizeof HTTP_SCHEME - 1
                                                                                 : 0;
    if (scheme == 0 || s.len == scheme) return false;
    for (uint64_t i = scheme; i < s.len; i++)
        if (s.ptr[i] <= 0x20 || s.ptr[i] == 0x7f) return false;
    return true;
}
