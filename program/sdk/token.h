/* SPL Token and Token-2022: program IDs and the mint layout checks. */
#pragma once

#include "sol.h"

/* TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA */
static const SolPubkey SPL_TOKEN_PROGRAM_ID = {{0x06, 0xdd, 0xf6, 0xe1, 0xd7, 0x65, 0xa1, 0x93, 0xd9, 0xcb, 0xe1,
                                                0x46, 0xce, 0xeb, 0x79, 0xac, 0x1c, 0xb4, 0x85, 0xed, 0x5f, 0x5b,
                                                0x37, 0x91, 0x3a, 0x8c, 0xf5, 0x85, 0x7e, 0xff, 0x00, 0xa9}};
/* TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb */
static const SolPubkey TOKEN_2022_PROGRAM_ID = {{0x06, 0xdd, 0xf6, 0xe1, 0xee, 0x75, 0x8f, 0xde, 0x18, 0x42, 0x5d,
                                                 0xbc, 0xe4, 0x6c, 0xcd, 0xda, 0xb6, 0x1a, 0xfc, 0x4d, 0x83, 0xb9,
                                                 0x0d, 0x27, 0xfe, 0xbd, 0xf9, 0x28, 0xd8, 0xa1, 0x8b, 0xfc}};

#define TOKEN_MINT_LEN 82u
#define TOKEN_MINT_IS_INITIALIZED_OFFSET 45u
/* Token-2022 accounts with extensions carry an account-type byte after the
 * 165-byte base of a token account: 1 = Mint, 2 = Account. */
#define TOKEN_2022_ACCOUNT_TYPE_OFFSET 165u
#define TOKEN_2022_ACCOUNT_TYPE_MINT 1u

static inline bool token_is_token_program(const SolPubkey *program) {
    return sol_pubkey_eq(program, &SPL_TOKEN_PROGRAM_ID) || sol_pubkey_eq(program, &TOKEN_2022_PROGRAM_ID);
}

/* An initialized mint of SPL Token or Token-2022 (with or without extensions). */
static bool token_is_mint(const SolAccountInfo *account) {
    if (!token_is_token_program(account->owner)) return false;
    bool base_mint = account->data_len == TOKEN_MINT_LEN;
    bool extended_mint = sol_pubkey_eq(account->owner, &TOKEN_2022_PROGRAM_ID) &&
                         account->data_len > TOKEN_2022_ACCOUNT_TYPE_OFFSET &&
                         account->data[TOKEN_2022_ACCOUNT_TYPE_OFFSET] == TOKEN_2022_ACCOUNT_TYPE_MINT;
    return (base_mint || extended_mint) && account->data[TOKEN_MINT_IS_INITIALIZED_OFFSET] == 1;
}
