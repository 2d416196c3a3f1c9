/* Test-only program: relays GhostPay's record_x402_payment through CPI, once
 * per reference in its data, as an attacker would to make one TransferChecked
 * back several receipts. GhostPay must refuse the first CPI (PaymentNotTopLevel).
 *
 * Accounts: ghostpay program, agent, reputation, payer, rent_payer,
 * payee_token_account, source_token_account, mint, instructions_sysvar,
 * system_program, then one receipt per reference. Data: amount (u64 LE),
 * then n 32-byte references. */
#include "../../program/include/ghostpay_idl.h"
#include "../../program/sdk/borsh.h"
#include "../../program/sdk/entrypoint.h"

enum { RELAY_GHOSTPAY, RELAY_AGENT, RELAY_REPUTATION, RELAY_PAYER, RELAY_RENT_PAYER, RELAY_PAYEE,
       RELAY_SOURCE, RELAY_MINT, RELAY_SYSVAR, RELAY_SYSTEM, RELAY_FIRST_RECEIPT };

#define REFERENCE_BYTES 32u
#define RECORD_ACCOUNTS 10u
#define RECORD_DATA_LEN (8u + 8u + REFERENCE_BYTES)
#define RELAY_BAD_INPUT 1u

static uint64_t relay_one(const GpInput *in, uint64_t amount, const uint8_t *reference, uint64_t receipt) {
    const SolAccountInfo *a = in->accounts;
    SolAccountMeta metas[RECORD_ACCOUNTS] = {
        {a[RELAY_AGENT].key, true, false},      {a[RELAY_REPUTATION].key, true, false},
        {a[receipt].key, true, false},          {a[RELAY_PAYER].key, false, true},
        {a[RELAY_RENT_PAYER].key, true, true},  {a[RELAY_PAYEE].key, false, false},
        {a[RELAY_SOURCE].key, false, false},    {a[RELAY_MINT].key, false, false},
        {a[RELAY_SYSVAR].key, false, false},    {a[RELAY_SYSTEM].key, false, false},
    };
    uint8_t data[RECORD_DATA_LEN];
    BorshWriter w = borsh_writer(data, sizeof data);
    borsh_write_u64(&w, GP_IX_RECORD_X402_PAYMENT);
    borsh_write_u64(&w, amount);
    borsh_write_raw(&w, reference, REFERENCE_BYTES);
    SolInstruction ix = {a[RELAY_GHOSTPAY].key, metas, RECORD_ACCOUNTS, data, w.pos};
    return sol_invoke_signed_c(&ix, a, (int)in->account_count, NULL, 0);
}

uint64_t entrypoint(const uint8_t *input) {
    GpInput in;
    gp_deserialize(input, &in);
    BorshReader r = borsh_reader(in.data, in.data_len);
    uint64_t amount = borsh_read_u64(&r);
    uint64_t count = (in.data_len - 8u) / REFERENCE_BYTES;
    if (!r.ok || in.account_count < RELAY_FIRST_RECEIPT + count) return RELAY_BAD_INPUT;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t result = relay_one(&in, amount, borsh_take(&r, REFERENCE_BYTES), RELAY_FIRST_RECEIPT + i);
        if (result) return result;
    }
    return 0;
}
