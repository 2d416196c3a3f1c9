/* SPL Token and Token-2022: program IDs, account layouts, mint extension
 * checks and the CPIs the escrow makes. */
#pragma once

#include "borsh.h"
#include "entrypoint.h"
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

/* A multisig is 355 bytes in both token programs; Token-2022 never gives a
 * mint or token account with extensions that length, so that it cannot be
 * confused with one (a multisig's signer keys could put a 1 at offset 165). */
#define TOKEN_MULTISIG_LEN 355u

/* An initialized mint of SPL Token or Token-2022 (with or without extensions),
 * told apart by the token program's own rules: 82 bytes, or for Token-2022
 * more than a token account's 165 with the Mint account-type byte and not a
 * multisig's length. A token account (165 bytes, or type byte 2) never passes. */
static inline __attribute__((always_inline)) bool token_is_mint(const SolAccountInfo *account) {
    if (!token_is_token_program(account->owner)) return false;
    bool base_mint = account->data_len == TOKEN_MINT_LEN;
    bool extended_mint = sol_pubkey_eq(account->owner, &TOKEN_2022_PROGRAM_ID) &&
                         account->data_len > TOKEN_2022_ACCOUNT_TYPE_OFFSET && account->data_len != TOKEN_MULTISIG_LEN &&
                         account->data[TOKEN_2022_ACCOUNT_TYPE_OFFSET] == TOKEN_2022_ACCOUNT_TYPE_MINT;
    return (base_mint || extended_mint) && account->data[TOKEN_MINT_IS_INITIALIZED_OFFSET] == 1;
}

/* ---- token accounts ----------------------------------------------------------- */

#define TOKEN_ACCOUNT_LEN 165u
#define TOKEN_ACCOUNT_MINT_OFFSET 0u
#define TOKEN_ACCOUNT_OWNER_OFFSET 32u
#define TOKEN_ACCOUNT_AMOUNT_OFFSET 64u
#define TOKEN_MINT_DECIMALS_OFFSET 44u

/* An account of `token_program` long enough to be a token account. A mint or
 * a multisig of that program passes too: ask it only of an account whose key
 * the token program itself used as a token account (a transfer's source or
 * destination), or will. */
static inline bool token_is_account_of(const SolAccountInfo *account, const SolPubkey *token_program) {
    return sol_pubkey_eq(account->owner, token_program) && account->data_len >= TOKEN_ACCOUNT_LEN;
}

/* The wallet that owns a token account (token_is_account_of): it, or a delegate it approved, may spend it. */
static inline const SolPubkey *token_account_owner(const SolAccountInfo *account) {
    return (const SolPubkey *)(account->data + TOKEN_ACCOUNT_OWNER_OFFSET);
}

/* A token account of `token_program` whose owner (the wallet that may spend it) is `owner`. */
static bool token_account_owned_by(const SolAccountInfo *account, const SolPubkey *token_program, const SolPubkey *owner) {
    return token_is_account_of(account, token_program) && sol_pubkey_eq(token_account_owner(account), owner);
}

static inline uint64_t token_account_amount(const SolAccountInfo *account) {
    return *(const uint64_t *)(account->data + TOKEN_ACCOUNT_AMOUNT_OFFSET);
}

static inline uint8_t token_mint_decimals(const SolAccountInfo *mint) { return mint->data[TOKEN_MINT_DECIMALS_OFFSET]; }

/* ---- Token-2022 mint extensions ------------------------------------------------- */

/* TLV entries follow the account-type byte: u16 type, u16 length, value. */
#define TOKEN_2022_TLV_OFFSET (TOKEN_2022_ACCOUNT_TYPE_OFFSET + 1u)
#define TOKEN_2022_TLV_HEADER_LEN 4u

/* spl_token_2022::extension::ExtensionType values. */
enum {
    TOKEN_EXT_UNINITIALIZED = 0,
    TOKEN_EXT_TRANSFER_FEE_CONFIG = 1,
    TOKEN_EXT_MINT_CLOSE_AUTHORITY = 3,
    TOKEN_EXT_DEFAULT_ACCOUNT_STATE = 6,
    TOKEN_EXT_INTEREST_BEARING_CONFIG = 10,
    TOKEN_EXT_TRANSFER_HOOK = 14,
    TOKEN_EXT_METADATA_POINTER = 18,
    TOKEN_EXT_TOKEN_METADATA = 19,
    TOKEN_EXT_GROUP_POINTER = 20,
    TOKEN_EXT_TOKEN_GROUP = 21,
    TOKEN_EXT_GROUP_MEMBER_POINTER = 22,
    TOKEN_EXT_TOKEN_GROUP_MEMBER = 23,
    TOKEN_EXT_SCALED_UI_AMOUNT = 25,
};

typedef enum {
    MINT_EXTENSIONS_SUPPORTED,
    MINT_HAS_TRANSFER_FEE,
    MINT_HAS_TRANSFER_HOOK,
    MINT_HAS_UNSUPPORTED_EXTENSION,
} MintExtensionSupport;

/* DefaultAccountState's value: the state new token accounts start in. */
#define TOKEN_ACCOUNT_STATE_INITIALIZED 1u

/* Extensions that change neither who can move a token account's balance nor
 * how much arrives, and need no extension on the token accounts themselves
 * (so a 165-byte account holds the mint). Anything else, known or future, is
 * refused: a permanent delegate could drain a vault or take back a payment,
 * a transfer fee would make the received amount differ from the sent one, a
 * non-transferable or default-frozen mint cannot reach a new payee account.
 * A close authority is neutral because callers check the mint again whenever
 * tokens move: a mint closed at supply 0 can come back with any extensions. */
static bool token_extension_is_neutral(uint16_t type, const uint8_t *value, uint16_t len) {
    switch (type) {
    case TOKEN_EXT_DEFAULT_ACCOUNT_STATE:
        return len == 1 && value[0] == TOKEN_ACCOUNT_STATE_INITIALIZED;
    case TOKEN_EXT_MINT_CLOSE_AUTHORITY:
    case TOKEN_EXT_INTEREST_BEARING_CONFIG:
    case TOKEN_EXT_METADATA_POINTER:
    case TOKEN_EXT_TOKEN_METADATA:
    case TOKEN_EXT_GROUP_POINTER:
    case TOKEN_EXT_TOKEN_GROUP:
    case TOKEN_EXT_GROUP_MEMBER_POINTER:
    case TOKEN_EXT_TOKEN_GROUP_MEMBER:
    case TOKEN_EXT_SCALED_UI_AMOUNT:
        return true;
    default:
        return false;
    }
}

/* Classifies an initialized mint (token_is_mint) by its Token-2022 extensions. */
static MintExtensionSupport token_mint_extension_support(const SolAccountInfo *mint) {
    uint64_t at = TOKEN_2022_TLV_OFFSET;
    while (mint->data_len > TOKEN_MINT_LEN && at + TOKEN_2022_TLV_HEADER_LEN <= mint->data_len) {
        uint16_t type = *(const uint16_t *)(mint->data + at);
        uint16_t len = *(const uint16_t *)(mint->data + at + 2);
        if (type == TOKEN_EXT_UNINITIALIZED) break; /* the rest is unused space */
        if (type == TOKEN_EXT_TRANSFER_FEE_CONFIG) return MINT_HAS_TRANSFER_FEE;
        if (type == TOKEN_EXT_TRANSFER_HOOK) return MINT_HAS_TRANSFER_HOOK;
        if (at + TOKEN_2022_TLV_HEADER_LEN + len > mint->data_len) return MINT_HAS_UNSUPPORTED_EXTENSION;
        if (!token_extension_is_neutral(type, mint->data + at + TOKEN_2022_TLV_HEADER_LEN, len))
            return MINT_HAS_UNSUPPORTED_EXTENSION;
        at += TOKEN_2022_TLV_HEADER_LEN + len;
    }
    return MINT_EXTENSIONS_SUPPORTED;
}

/* ---- CPIs ----------------------------------------------------------------------- */

#define TOKEN_IX_CLOSE_ACCOUNT 9u
#define TOKEN_IX_INITIALIZE_ACCOUNT3 18u

static uint64_t token_invoke(const SolAccountInfo *token_program, uint8_t *data, uint64_t data_len, SolAccountMeta *metas,
                             const SolAccountInfo *infos, int count, const SolSignerSeeds *signer) {
    SolInstruction ix = {
        .program_id = token_program->key,
        .accounts = metas,
        .account_len = (uint64_t)count,
        .data = data,
        .data_len = data_len,
    };
    return sol_invoke_signed_c(&ix, infos, count, signer, signer ? 1 : 0);
}

/* InitializeAccount3: `account` (allocated, owned by the token program) holds `mint` for `owner`. */
static uint64_t token_initialize_account3(const SolAccountInfo *token_program, const SolAccountInfo *account,
                                          const SolAccountInfo *mint, const SolPubkey *owner) {
    uint8_t data[1 + SOL_PUBKEY_BYTES];
    BorshWriter w = borsh_writer(data, sizeof data);
    borsh_write_u8(&w, TOKEN_IX_INITIALIZE_ACCOUNT3);
    borsh_write_pubkey(&w, owner);
    SolAccountMeta metas[2] = {{account->key, true, false}, {mint->key, false, false}};
    SolAccountInfo infos[2] = {gp_account_info_now(account), *mint};
    return token_invoke(token_program, data, w.pos, metas, infos, 2, NULL);
}

typedef struct {
    const SolAccountInfo *token_program;
    const SolAccountInfo *mint;
    uint8_t decimals;
    const SolAccountInfo *authority;
    const SolSignerSeeds *signer; /* the authority's PDA seeds, or NULL when it signed the transaction */
} TokenAuthority;

/* TransferChecked of `amount` from `source` to `destination`. */
static uint64_t token_transfer_checked(const TokenAuthority *auth, const SolAccountInfo *source,
                                       const SolAccountInfo *destination, uint64_t amount) {
    uint8_t data[TOKEN_TRANSFER_CHECKED_DATA_LEN];
    BorshWriter w = borsh_writer(data, sizeof data);
    borsh_write_u8(&w, TOKEN_IX_TRANSFER_CHECKED);
    borsh_write_u64(&w, amount);
    borsh_write_u8(&w, auth->decimals);
    SolAccountMeta metas[TRANSFER_CHECKED_MIN_ACCOUNTS] = {
        [TRANSFER_CHECKED_SOURCE] = {source->key, true, false},
        [TRANSFER_CHECKED_MINT] = {auth->mint->key, false, false},
        [TRANSFER_CHECKED_DESTINATION] = {destination->key, true, false},
        [TRANSFER_CHECKED_AUTHORITY] = {auth->authority->key, false, true},
    };
    SolAccountInfo infos[TRANSFER_CHECKED_MIN_ACCOUNTS] = {gp_account_info_now(source), *auth->mint,
                                                          gp_account_info_now(destination), *auth->authority};
    return token_invoke(auth->token_program, data, w.pos, metas, infos, TRANSFER_CHECKED_MIN_ACCOUNTS, auth->signer);
}

/* CloseAccount: the (empty) `account`'s lamports go to `destination`. */
static uint64_t token_close_account(const TokenAuthority *auth, const SolAccountInfo *account,
                                    const SolAccountInfo *destination) {
    uint8_t data[1] = {TOKEN_IX_CLOSE_ACCOUNT};
    SolAccountMeta metas[3] = {{account->key, true, false}, {destination->key, true, false}, {auth->authority->key, false, true}};
    SolAccountInfo infos[3] = {*account, *destination, *auth->authority};
    return token_invoke(auth->token_program, data, sizeof data, metas, infos, 3, auth->signer);
}
