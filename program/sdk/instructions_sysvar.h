/* Reading the transaction's top-level instructions from the Instructions sysvar.
 *
 * Layout (Agave's construct_instructions_data): u16 instruction count; a u16
 * offset per instruction; at each offset a u16 account count, per account a
 * flags byte (bit 0 signer, bit 1 writable) and the 32-byte key, then the
 * 32-byte program id, a u16 data length and the data. The last two bytes of
 * the account are the u16 index of the executing instruction. */
#pragma once

#include "borsh.h"

/* Sysvar1nstructions1111111111111111111111111 */
static const SolPubkey INSTRUCTIONS_SYSVAR_ID = {{0x06, 0xa7, 0xd5, 0x17, 0x18, 0x7b, 0xd1, 0x66, 0x35, 0xda, 0xd4,
                                                  0x04, 0x55, 0xfd, 0xc2, 0xc0, 0xc1, 0x24, 0xc6, 0x8f, 0x21, 0x56,
                                                  0x75, 0xa5, 0xdb, 0xba, 0xcb, 0x5f, 0x08, 0x00, 0x00, 0x00}};

#define SYSVAR_INSTRUCTION_COUNT_BYTES 2u
#define SYSVAR_INSTRUCTION_OFFSET_BYTES 2u
#define SYSVAR_ACCOUNT_META_BYTES (1u + SOL_PUBKEY_BYTES)
#define SYSVAR_CURRENT_INDEX_BYTES 2u

typedef struct {
    uint16_t account_count;
    const uint8_t *account_metas; /* account_count entries of SYSVAR_ACCOUNT_META_BYTES */
    const SolPubkey *program_id;
    GpSlice data;
} GpSysvarInstruction;

static inline const SolPubkey *gp_sysvar_instruction_key(const GpSysvarInstruction *ix, uint64_t account) {
    return (const SolPubkey *)(ix->account_metas + account * SYSVAR_ACCOUNT_META_BYTES + 1);
}

/* The index of the executing top-level instruction. */
static bool gp_current_instruction_index(const SolAccountInfo *sysvar, uint64_t *index) {
    if (sysvar->data_len < SYSVAR_INSTRUCTION_COUNT_BYTES + SYSVAR_CURRENT_INDEX_BYTES) return false;
    *index = *(const uint16_t *)(sysvar->data + sysvar->data_len - SYSVAR_CURRENT_INDEX_BYTES);
    return true;
}

/* Top-level instruction `index`, bounds-checked against the account data. */
static bool gp_load_sysvar_instruction(const SolAccountInfo *sysvar, uint64_t index, GpSysvarInstruction *out) {
    BorshReader r = borsh_reader(sysvar->data, sysvar->data_len);
    uint16_t count = borsh_read_u16(&r);
    if (!r.ok || index >= count) return false;
    borsh_seek(&r, SYSVAR_INSTRUCTION_COUNT_BYTES + index * SYSVAR_INSTRUCTION_OFFSET_BYTES);
    borsh_seek(&r, borsh_read_u16(&r));
    out->account_count = borsh_read_u16(&r);
    out->account_metas = borsh_take(&r, (uint64_t)out->account_count * SYSVAR_ACCOUNT_META_BYTES);
    out->program_id = borsh_read_pubkey(&r);
    uint16_t data_len = borsh_read_u16(&r);
    out->data = (GpSlice){.ptr = borsh_take(&r, data_len), .len = data_len};
    return r.ok;
}
