/* record_x402_payment(amount, reference)
 * Accounts: agent (writable), reputation (writable), receipt (PDA ["receipt",
 * agent, reference], writable), payer (signer, writable), instructions_sysvar,
 * system_program.
 *
 * Counts a payment only if the top-level instruction right before this one is
 * a TransferChecked that really moved it: the runtime executed that transfer
 * (or the whole transaction failed), so its accounts and amount are facts.
 * The receipt PDA makes each reference count once. */
#pragma once

#include "../sdk/instructions_sysvar.h"
#include "receipt.h"
#include "reputation.h"

enum {
    RECORD_AGENT,
    RECORD_REPUTATION,
    RECORD_RECEIPT,
    RECORD_PAYER,
    RECORD_INSTRUCTIONS_SYSVAR,
    RECORD_SYSTEM_PROGRAM,
    RECORD_ACCOUNT_COUNT
};

typedef struct {
    const SolPubkey *token_program;
    const SolPubkey *mint;
    const SolPubkey *destination;
    const SolPubkey *authority;
    uint64_t amount;
} TransferChecked;

/* The TransferChecked right before the executing instruction. */
static uint64_t read_preceding_transfer(const SolAccountInfo *sysvar, TransferChecked *transfer) {
    uint64_t current;
    GpSysvarInstruction ix;
    if (!gp_current_instruction_index(sysvar, &current) || current == 0 ||
        !gp_load_sysvar_instruction(sysvar, current - 1, &ix))
        return gp_fail(GP_ERR_PAYMENT_TRANSFER_MISSING);
    if (!token_is_token_program(ix.program_id) || ix.data.len != TOKEN_TRANSFER_CHECKED_DATA_LEN ||
        ix.data.ptr[0] != TOKEN_IX_TRANSFER_CHECKED || ix.account_count < TRANSFER_CHECKED_MIN_ACCOUNTS)
        return gp_fail(GP_ERR_PAYMENT_TRANSFER_MISSING);
    transfer->token_program = ix.program_id;
    transfer->mint = gp_sysvar_instruction_key(&ix, TRANSFER_CHECKED_MINT);
    transfer->destination = gp_sysvar_instruction_key(&ix, TRANSFER_CHECKED_DESTINATION);
    transfer->authority = gp_sysvar_instruction_key(&ix, TRANSFER_CHECKED_AUTHORITY);
    transfer->amount = gp_load_u64(ix.data.ptr + TOKEN_TRANSFER_CHECKED_AMOUNT_OFFSET);
    return 0;
}

/* The transfer pays this agent: signed by the payer, in an accepted mint, at
 * least the price, the amount claimed, into the payment address's ATA. The
 * ATA derivation (the costliest check) runs last. */
static uint64_t verify_payment(const AgentFixed *fixed, const uint8_t *agent_data, const TransferChecked *transfer,
                               const SolPubkey *payer, uint64_t amount) {
    if (!sol_pubkey_eq(transfer->authority, payer)) return gp_fail(GP_ERR_PAYMENT_AUTHORITY_MISMATCH);
    if (!agent_accepts_mint(agent_data, transfer->mint)) return gp_fail(GP_ERR_PAYMENT_MINT_NOT_ACCEPTED);
    if (transfer->amount < fixed->x402_price_per_call) return gp_fail(GP_ERR_PAYMENT_BELOW_PRICE);
    if (transfer->amount != amount) return gp_fail(GP_ERR_PAYMENT_AMOUNT_MISMATCH);
    if (!token_is_associated_account(transfer->destination, &fixed->x402_payment_address, transfer->token_program,
                                     transfer->mint))
        return gp_fail(GP_ERR_PAYMENT_WRONG_DESTINATION);
    return 0;
}

/* Creates the receipt PDA ["receipt", agent, reference], paid by the payer. */
static uint64_t create_receipt(const GpInput *in, const uint8_t *reference, uint8_t *bump) {
    const SolAccountInfo *agent = &in->accounts[RECORD_AGENT];
    const SolAccountInfo *receipt = &in->accounts[RECORD_RECEIPT];
    TRY(gp_require_writable(receipt, "receipt"));
    if (sol_pubkey_eq(receipt->owner, in->program_id)) return gp_fail(GP_ERR_PAYMENT_ALREADY_RECORDED);
    GpPda pda = {.seeds = {{(const uint8_t *)GP_RECEIPT_SEED, GP_RECEIPT_SEED_LEN},
                           {agent->key->x, SOL_PUBKEY_BYTES},
                           {reference, RECEIPT_REFERENCE_BYTES}},
                 .seed_count = 3};
    TRY(gp_find_pda(&pda, in->program_id, receipt->key, "receipt"));
    if (!sol_pubkey_eq(receipt->owner, &SYSTEM_PROGRAM_ID)) return gp_fail_account(GP_ERR_ACCOUNT_NOT_SYSTEM_OWNED, "receipt");
    *bump = pda.bump;
    SolSignerSeeds signer = gp_pda_signer(&pda);
    return gp_create_pda_account(&in->accounts[RECORD_PAYER], receipt, GP_X402_RECEIPT_SPACE, in->program_id, &signer);
}

static uint64_t record_x402_payment(const GpInput *in, BorshReader *r) {
    uint64_t amount = borsh_read_u64(r);
    const uint8_t *reference = borsh_take(r, RECEIPT_REFERENCE_BYTES);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);

    if (in->account_count < RECORD_ACCOUNT_COUNT) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    const SolAccountInfo *agent = &in->accounts[RECORD_AGENT];
    const SolAccountInfo *reputation = &in->accounts[RECORD_REPUTATION];
    const SolAccountInfo *receipt = &in->accounts[RECORD_RECEIPT];
    const SolAccountInfo *payer = &in->accounts[RECORD_PAYER];
    const SolAccountInfo *sysvar = &in->accounts[RECORD_INSTRUCTIONS_SYSVAR];
    TRY(gp_require_signer(payer, "payer"));
    TRY(gp_require_writable(payer, "payer"));
    TRY(gp_require_writable(agent, "agent"));
    TRY(gp_require_program_account(agent, in->program_id, GP_ACCOUNT_AGENT, GP_AGENT_SPACE, "agent"));
    TRY(load_reputation(in, agent, reputation));
    if (!sol_pubkey_eq(sysvar->key, &INSTRUCTIONS_SYSVAR_ID))
        return gp_fail_account(GP_ERR_CONSTRAINT_ADDRESS, "instructions_sysvar");
    TRY(gp_require_program(&in->accounts[RECORD_SYSTEM_PROGRAM], &SYSTEM_PROGRAM_ID, "system_program"));

    AgentFixed *fixed = agent_fixed(agent);
    if (!fixed->x402_enabled) return gp_fail(GP_ERR_X402_NOT_ENABLED);
    if (!fixed->is_active) return gp_fail(GP_ERR_AGENT_INACTIVE);
    TransferChecked transfer;
    TRY(read_preceding_transfer(sysvar, &transfer));
    TRY(verify_payment(fixed, agent->data, &transfer, payer->key, amount));
    uint8_t bump;
    TRY(create_receipt(in, reference, &bump));

    int64_t now = gp_unix_timestamp();
    X402Receipt *paid = x402_receipt(receipt);
    paid->discriminator = GP_ACCOUNT_X402_RECEIPT;
    paid->agent = *agent->key;
    paid->payer = *payer->key;
    paid->mint = *transfer.mint;
    sol_memcpy_(paid->reference, reference, RECEIPT_REFERENCE_BYTES);
    paid->amount = amount;
    paid->paid_at = now;
    paid->bump = bump;

    /* Totals saturate: a huge payment in some accepted mint must not block later ones. */
    fixed->x402_total_calls = saturating_add(fixed->x402_total_calls, 1);
    fixed->x402_total_payments = saturating_add(fixed->x402_total_payments, amount);
    fixed->total_earnings = saturating_add(fixed->total_earnings, amount);
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
    borsh_write_pubkey(&event.w, transfer.mint);
    borsh_write_u64(&event.w, amount);
    borsh_write_raw(&event.w, reference, RECEIPT_REFERENCE_BYTES);
    borsh_write_u64(&event.w, fixed->x402_total_calls);
    borsh_write_i64(&event.w, now);
    gp_event_emit(&event);
    update_reputation_score(agent, metrics, now);
    return 0;
}
