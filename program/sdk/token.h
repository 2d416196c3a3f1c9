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

/* ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL */
static const SolPubkey ASSOCIATED_TOKEN_PROGRAM_ID = {{0x8c, 0x97, 0x25, 0x8f, 0x4e, 0x24, 0x89, 0xf1, 0xbb, 0x3d, 0x10,
                                                       0x29, 0x14, 0x8e, 0x0d, 0x83, 0x0b, 0x5a, 0x13, 0x99, 0xda, 0xff,
                                                       0x10, 0x84, 0x04, 0x8e, 0x7b, 0xd8, 0xdb, 0xe9, 0xf8, 0x59}};

/* TransferChecked: tag, u64 amount, u8 decimals; accounts source, mint,
 * destination, authority, then multisig signers. Same in both token programs. */
#define TOKEN_IX_TRANSFER_CHECKED 12u
#define TOKEN_TRANSFER_CHECKED_DATA_LEN 10u
#define TOKEN_TRANSFER_CHECKED_AMOUNT_OFFSET 1u
enum {
    TRANSFER_CHECKED_SOURCE,
    TRANSFER_CHECKED_MINT,
    TRANSFER_CHECKED_DESTINATION,
    TRANSFER_CHECKED_AUTHORITY,
    TRANSFER_CHECKED_MIN_ACCOUNTS
};

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

/* True when `account` is the associated token account of `wallet` for `mint`
 * under `token_program` (the ATA program's canonical PDA). */
static bool token_is_associated_account(const SolPubkey *account, const SolPubkey *wallet,
                                        const SolPubkey *token_program, const SolPubkey *mint) {
    SolSignerSeed seeds[3] = {{wallet->x, SOL_PUBKEY_BYTES}, {token_program->x, SOL_PUBKEY_BYTES}, {mint->x, SOL_PUBKEY_BYTES}};
    SolPubkey address;
    uint8_t bump;
    if (sol_try_find_program_address(seeds, 3, &ASSOCIATED_TOKEN_PROGRAM_ID, &address, &bump) != 0) return false;
    return sol_pubkey_eq(&address, account);
}
