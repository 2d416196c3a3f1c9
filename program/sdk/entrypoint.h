/* Deserialization of the runtime's input buffer (aligned ABI, loader v2/v3).
 *
 * Layout: u64 account count; per account either a duplicate marker (u8 index
 * of the earlier account + 7 bytes padding) or u8 0xff, is_signer, is_writable,
 * executable, 4 bytes padding, key, owner, u64 lamports, u64 data_len, data,
 * 10 KiB realloc room, padding to 8, u64 rent_epoch. Then u64 instruction data
 * length, the data, and the program ID. The SolAccountInfo pointers point into
 * this buffer, which is what CPI requires. */
#pragma once

#include "sol.h"

/* More than any instruction takes (3 fixed + 10 mints); extra accounts are skipped. */
#define GP_MAX_ACCOUNTS 24u

#define SOL_ACCOUNT_HEADER_PADDING 4u
#define SOL_DUPLICATE_PADDING 7u

typedef struct {
    SolAccountInfo accounts[GP_MAX_ACCOUNTS];
    uint64_t account_count; /* accounts stored in `accounts` */
    const uint8_t *data;
    uint64_t data_len;
    const SolPubkey *program_id;
} GpInput;

static inline uint64_t align_up_8(uint64_t n) { return (n + 7u) & ~(uint64_t)7u; }

static void gp_deserialize(const uint8_t *input, GpInput *out) {
    uint64_t total = *(const uint64_t *)input;
    input += sizeof(uint64_t);
    out->account_count = total < GP_MAX_ACCOUNTS ? total : GP_MAX_ACCOUNTS;
    for (uint64_t i = 0; i < total; i++) {
        /* Accounts past GP_MAX_ACCOUNTS are parsed only to find the instruction data. */
        SolAccountInfo skipped;
        SolAccountInfo *info = i < GP_MAX_ACCOUNTS ? &out->accounts[i] : &skipped;
        uint8_t dup = *input++;
        if (dup != SOL_NON_DUP_MARKER) {
            input += SOL_DUPLICATE_PADDING;
            /* The runtime only marks an account as a duplicate of an earlier one. */
            if (dup < GP_MAX_ACCOUNTS) *info = out->accounts[dup];
            continue;
        }
        info->is_signer = *input++;
        info->is_writable = *input++;
        info->executable = *input++;
        input += SOL_ACCOUNT_HEADER_PADDING;
        info->key = (SolPubkey *)input;
        input += SOL_PUBKEY_BYTES;
        info->owner = (SolPubkey *)input;
        input += SOL_PUBKEY_BYTES;
        info->lamports = (uint64_t *)input;
        input += sizeof(uint64_t);
        info->data_len = *(const uint64_t *)input;
        input += sizeof(uint64_t);
        info->data = (uint8_t *)input;
        input += info->data_len + SOL_MAX_PERMITTED_DATA_INCREASE;
        input = (const uint8_t *)align_up_8((uint64_t)input);
        info->rent_epoch = *(const uint64_t *)input;
        input += sizeof(uint64_t);
    }
    out->data_len = *(const uint64_t *)input;
    input += sizeof(uint64_t);
    out->data = input;
    input += out->data_len;
    out->program_id = (const SolPubkey *)input;
}

/* The account as the runtime sees it now. A CPI that resized it (System
 * Program create or allocate) updated the length stored right before the data,
 * not the copy in SolAccountInfo; passing the stale length to another CPI would
 * read as this program resizing an account it does not own. */
static inline SolAccountInfo gp_account_info_now(const SolAccountInfo *account) {
    SolAccountInfo current = *account;
    current.data_len = *(const uint64_t *)(account->data - sizeof(uint64_t));
    return current;
}
