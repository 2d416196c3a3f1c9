/* record_x402_payment(amount, reference)
 * Accounts: agent (writable), reputation (writable), payer_stats (PDA
 * ["payer_stats", agent, payer], writable), payer (signer), rent_payer (signer,
 * writable), payee_token_account, source_token_account, mint,
 * instructions_sysvar, system_program.
 *
 * Counts a payment only if a TransferChecked earlier in the same transaction
 * really moved it: the runtime executed that transfer (or the whole
 * transaction failed), so its accounts and amount are facts. The transfer is
 * the top-level instruction right before this one, or the one before a single
 * Memo (the official x402 "exact" layout). This instruction must itself be
 * top-level: through CPI, a program could record one transfer many times;
 * top-level, one transfer is recorded once, since its transaction lands once.
 * Nothing is created per payment: the transaction and its event (with the
 * reference) are the receipt, and the pair's PayerStats, created by its first
 * payment, counts the calls its payer may rate. The transfer's source and
 * mint are read as accounts too (they are in the transaction already): whose
 * tokens moved, and what the mint is now, not when it was configured. */
#pragma once

#include "../sdk/instructions_sysvar.h"
#include "payer_stats.h"
#include "reputation.h"

/* MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr, the SPL Memo program the x402 client uses. */
static const SolPubkey MEMO_PROGRAM_ID = {{0x05, 0x4a, 0x53, 0x5a, 0x99, 0x29, 0x21, 0x06, 0x4d, 0x24, 0xe8,
                                           0x71, 0x60, 0xda, 0x38, 0x7c, 0x7c, 0x35, 0xb5, 0xdd, 0xbc, 0x92,
                                           0xbb, 0x81, 0xe4, 0x1f, 0xa8, 0x40, 0x41, 0x05, 0x44, 0x8d}};

typedef struct {
    const SolPubkey *token_program;
    const SolPubkey *source;
    const SolPubkey *mint;
    const SolPubkey *destination;
    const SolPubkey *authority;
    uint64_t amount;
} TransferChecked;

/* The executing top-level instruction must be this very one (program and
 * data): under CPI the sysvar still points at the caller's instruction. */
static uint64_t require_top_level(const GpInput *in, const SolAccountInfo *sysvar, uint64_t *current) {
    GpSysvarInstruction ix;
    if (!gp_current_instruction_index(sysvar, current) || !gp_load_sysvar_instruction(sysvar, *current, &ix) ||
        !sol_pubkey_eq(ix.program_id, in->program_id) || ix.data.len != in->data_len)
        return gp_fail(GP_ERR_PAYMENT_NOT_TOP_LEVEL);
    int32_t differs;
    sol_memcmp_(ix.data.ptr, in->data, in->data_len, &differs);
    return differs ? gp_fail(GP_ERR_PAYMENT_NOT_TOP_LEVEL) : 0;
}

/* The TransferChecked right before instruction `current`, or right before a
 * single Memo that precedes it. */
static uint64_t read_preceding_transfer(const SolAccountInfo *sysvar, uint64_t current, TransferChecked *transfer) {
    GpSysvarInstruction ix;
    if (current == 0 || !gp_load_sysvar_instruction(sysvar, current - 1, &ix))
        return gp_fail(GP_ERR_PAYMENT_TRANSFER_MISSING);
    if (sol_pubkey_eq(ix.program_id, &MEMO_PROGRAM_ID) &&
        (current < 2 || !gp_load_sysvar_instruction(sysvar, current - 2, &ix)))
        return gp_fail(GP_ERR_PAYMENT_TRANSFER_MISSING);
    if (!token_is_token_program(ix.program_id) || ix.data.len != TOKEN_TRANSFER_CHECKED_DATA_LEN ||
        ix.data.ptr[0] != TOKEN_IX_TRANSFER_CHECKED || ix.account_count < TRANSFER_CHECKED_MIN_ACCOUNTS)
        return gp_fail(GP_ERR_PAYMENT_TRANSFER_MISSING);
    transfer->token_program = ix.program_id;
    transfer->source = gp_sysvar_instruction_key(&ix, TRANSFER_CHECKED_SOURCE);
    transfer->mint = gp_sysvar_instruction_key(&ix, TRANSFER_CHECKED_MINT);
    transfer->destination = gp_sysvar_instruction_key(&ix, TRANSFER_CHECKED_DESTINATION);
    transfer->authority = gp_sysvar_instruction_key(&ix, TRANSFER_CHECKED_AUTHORITY);
    transfer->amount = gp_load_u64(ix.data.ptr + TOKEN_TRANSFER_CHECKED_AMOUNT_OFFSET);
    return 0;
}

/* The wallet whose tokens moved (the source account's owner, whoever signed:
 * the owner or a delegate) is not the agent's owner or payment address. This
 * also refuses a transfer from the destination to itself. */
static uint64_t verify_source(const GpInput *in, const TransferChecked *transfer, const AgentFixed *fixed) {
    const SolAccountInfo *source = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_SOURCE_TOKEN_ACCOUNT];
    if (!sol_pubkey_eq(source->key, transfer->source) || !token_is_account_of(source, transfer->token_program))
        return gp_fail_account(GP_ERR_SOURCE_TOKEN_ACCOUNT_MISMATCH, "source_token_account");
    const SolPubkey *holder = token_account_owner(source);
    if (sol_pubkey_eq(holder, &fixed->owner) || sol_pubkey_eq(holder, &fixed->x402_payment_address))
        return gp_fail(GP_ERR_SELF_PAYMENT);
    return 0;
}

/* The mint as it is now: a Token-2022 mint with a close authority can be
 * closed at supply 0 and re-created at the same address with a permanent
 * delegate or a transfer fee, so the configuration's check is repeated. The
 * token program has just run the transfer with this mint, so its layout is a
 * mint's; only its owner and extensions are left to check. */
static uint64_t verify_mint(const GpInput *in, const TransferChecked *transfer) {
    const SolAccountInfo *mint = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_MINT];
    if (!sol_pubkey_eq(mint->key, transfer->mint) || !sol_pubkey_eq(mint->owner, transfer->token_program))
        return gp_fail_account(GP_ERR_PAYMENT_MINT_ACCOUNT_MISMATCH, "mint");
    return token_require_plain_mint(mint);
}

/* The transfer pays this agent: signed by the payer, from the tokens of a
 * wallet that is not the agent's owner or payment address (paying yourself
 * proves nothing), in an accepted mint whose extensions are still neutral, at
 * least that mint's price, the amount claimed, into a token account of that
 * mint owned by the payment address. The token program already checked the
 * destination against the mint when it ran the transfer; reading the stored
 * owner and mint here costs less than deriving an ATA. */
static uint64_t verify_payment(const GpInput *in, const TransferChecked *transfer, uint64_t amount) {
    const uint8_t *agent_data = in->accounts[RECORD_X402_PAYMENT_ACCOUNT_AGENT].data;
    const AgentFixed *fixed = (const AgentFixed *)agent_data;
    const SolPubkey *payer = in->accounts[RECORD_X402_PAYMENT_ACCOUNT_PAYER].key;
    const SolAccountInfo *payee_token_account = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_PAYEE_TOKEN_ACCOUNT];
    if (!sol_pubkey_eq(transfer->authority, payer)) return gp_fail(GP_ERR_PAYMENT_AUTHORITY_MISMATCH);
    if (sol_pubkey_eq(payer, &fixed->owner) || sol_pubkey_eq(payer, &fixed->x402_payment_address))
        return gp_fail(GP_ERR_SELF_PAYMENT);
    TRY(verify_source(in, transfer, fixed));
    const TokenPrice *price = agent_token_price(agent_data, transfer->mint);
    if (!price) return gp_fail(GP_ERR_PAYMENT_MINT_NOT_ACCEPTED);
    TRY(verify_mint(in, transfer));
    if (transfer->amount < token_price_of(price)) return gp_fail(GP_ERR_PAYMENT_BELOW_PRICE);
    if (transfer->amount != amount) return gp_fail(GP_ERR_PAYMENT_AMOUNT_MISMATCH);
    if (!sol_pubkey_eq(payee_token_account->key, transfer->destination) ||
        !token_account_owned_by(payee_token_account, transfer->token_program, &fixed->x402_payment_address) ||
        !sol_pubkey_eq((const SolPubkey *)(payee_token_account->data + TOKEN_ACCOUNT_MINT_OFFSET), transfer->mint))
        return gp_fail_account(GP_ERR_PAYEE_TOKEN_ACCOUNT_MISMATCH, "payee_token_account");
    return 0;
}

/* Creates the pair's PayerStats at ["payer_stats", agent, payer], its rent from
 * the rent payer: the first payment of the pair. */
static uint64_t create_payer_stats(const GpInput *in, int64_t now, PayerStats **out) {
    const SolAccountInfo *agent = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_AGENT];
    const SolAccountInfo *payer = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_PAYER];
    const SolAccountInfo *rent_payer = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_RENT_PAYER];
    const SolAccountInfo *account = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_PAYER_STATS];
    GpPda pda = {.seeds = {{(const uint8_t *)GP_PAYER_STATS_SEED, GP_PAYER_STATS_SEED_LEN},
                           {agent->key->x, SOL_PUBKEY_BYTES},
                           {payer->key->x, SOL_PUBKEY_BYTES}},
                 .seed_count = 3};
    TRY(gp_find_pda(&pda, in->program_id, account->key, "payer_stats"));
    if (!sol_pubkey_eq(account->owner, &SYSTEM_PROGRAM_ID))
        return gp_fail_account(GP_ERR_ACCOUNT_NOT_SYSTEM_OWNED, "payer_stats");
    SolSignerSeeds signer = gp_pda_signer(&pda);
    TRY(gp_create_pda_account(rent_payer, account, GP_PAYER_STATS_SPACE, in->program_id, &signer));
    PayerStats *stats = payer_stats(account);
    stats->discriminator = GP_ACCOUNT_PAYER_STATS;
    stats->agent = *agent->key;
    stats->payer = *payer->key;
    stats->rent_payer = *rent_payer->key;
    stats->bump = pda.bump;

    GpEvent event;
    gp_event_begin(&event, GP_EVENT_PAYER_STATS_OPENED);
    borsh_write_pubkey(&event.w, agent->key);
    borsh_write_pubkey(&event.w, payer->key);
    borsh_write_pubkey(&event.w, rent_payer->key);
    borsh_write_u64(&event.w, *account->lamports);
    borsh_write_i64(&event.w, now);
    gp_event_emit(&event);
    *out = stats;
    return 0;
}

/* The pair's PayerStats: an account of this program is checked by its stored
 * agent and payer (the hot path: no PDA derivation, no creation); any other
 * must be the PDA to create. */
static uint64_t pair_stats(const GpInput *in, int64_t now, PayerStats **out) {
    const SolAccountInfo *account = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_PAYER_STATS];
    TRY(gp_require_writable(account, "payer_stats"));
    if (!sol_pubkey_eq(account->owner, in->program_id)) return create_payer_stats(in, now, out);
    TRY(load_payer_stats(in, account));
    TRY(require_pair(payer_stats(account), in->accounts[RECORD_X402_PAYMENT_ACCOUNT_AGENT].key,
                     in->accounts[RECORD_X402_PAYMENT_ACCOUNT_PAYER].key));
    *out = payer_stats(account);
    return 0;
}

/* One more paid call the payer may rate. Calls left unrated after the window of
 * the pair's newest payment expire now, so a late payment does not reopen them
 * (nor, after close_agent and a new registration, those of an earlier one). */
static void count_paid_call(PayerStats *stats, int64_t now) {
    if (open_calls(stats) && !feedback_window_open(stats, now))
        stats->expired_calls = stats->paid_calls - stats->rated_calls;
    stats->paid_calls = saturating_add(stats->paid_calls, 1);
    stats->last_paid_at = now;
}

static uint64_t record_x402_payment(const GpInput *in, BorshReader *r) {
    uint64_t amount = borsh_read_u64(r);
    const uint8_t *reference = borsh_take(r, PAYMENT_REFERENCE_BYTES);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);

    if (in->account_count < RECORD_X402_PAYMENT_ACCOUNT_COUNT) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    const SolAccountInfo *agent = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_AGENT];
    const SolAccountInfo *reputation = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_REPUTATION];
    const SolAccountInfo *payer = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_PAYER];
    const SolAccountInfo *rent_payer = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_RENT_PAYER];
    const SolAccountInfo *sysvar = &in->accounts[RECORD_X402_PAYMENT_ACCOUNT_INSTRUCTIONS_SYSVAR];
    TRY(gp_require_signer(payer, "payer"));
    TRY(gp_require_signer(rent_payer, "rent_payer"));
    TRY(gp_require_writable(rent_payer, "rent_payer"));
    TRY(gp_require_writable(agent, "agent"));
    TRY(gp_require_program_account(agent, in->program_id, GP_ACCOUNT_AGENT, GP_AGENT_SPACE, "agent"));
    TRY(load_reputation(in, agent, reputation));
    if (!sol_pubkey_eq(sysvar->key, &INSTRUCTIONS_SYSVAR_ID))
        return gp_fail_account(GP_ERR_CONSTRAINT_ADDRESS, "instructions_sysvar");
    TRY(gp_require_program(&in->accounts[RECORD_X402_PAYMENT_ACCOUNT_SYSTEM_PROGRAM], &SYSTEM_PROGRAM_ID,
                           "system_program"));

    AgentFixed *fixed = agent_fixed(agent);
    if (!fixed->x402_enabled) return gp_fail(GP_ERR_X402_NOT_ENABLED);
    if (!fixed->is_active) return gp_fail(GP_ERR_AGENT_INACTIVE);
    uint64_t current;
    TRY(require_top_level(in, sysvar, &current));
    TransferChecked transfer;
    TRY(read_preceding_transfer(sysvar, current, &transfer));
    TRY(verify_payment(in, &transfer, amount));
    MintEarnings *earned;
    TRY(take_earnings_slot(fixed, transfer.mint, &earned));
    int64_t now = gp_unix_timestamp();
    PayerStats *stats;
    TRY(pair_stats(in, now, &stats));
    count_paid_call(stats, now);

    /* Totals saturate: a huge payment in some accepted mint must not block later ones. */
    fixed->x402_total_calls = saturating_add(fixed->x402_total_calls, 1);
    earned->x402_payments = saturating_add(earned->x402_payments, amount);
    fixed->last_payment_at = now;

    ReputationMetrics *metrics = reputation_metrics(reputation);
    roll_payment_history(metrics, day_of(now));
    uint64_t *today = newest_history_bucket(metrics);
    *today = saturating_add(*today, 1);
    metrics->successful_payments = saturating_add(metrics->successful_payments, 1);
    metrics->updated_at = now;

    GpEvent event;
    gp_event_begin(&event, GP_EVENT_X402_PAYMENT_RECORDED);
    borsh_write_pubkey(&event.w, agent->key);
    borsh_write_pubkey(&event.w, payer->key);
    borsh_write_pubkey(&event.w, rent_payer->key);
    borsh_write_pubkey(&event.w, transfer.mint);
    borsh_write_u64(&event.w, amount);
    borsh_write_raw(&event.w, reference, PAYMENT_REFERENCE_BYTES);
    borsh_write_u64(&event.w, fixed->x402_total_calls);
    borsh_write_i64(&event.w, now);
    gp_event_emit(&event);
    update_reputation_score(agent, metrics, now);
    return 0;
}
