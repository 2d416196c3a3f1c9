/* Test-only program: relays GhostPay's record_x402_payment through CPI, once
 * per reference in its data, as an attacker would to make one TransferChecked
 * count as several payments. GhostPay must refuse the first CPI
 * (PaymentNotTopLevel).
 *
 * Accounts: ghostpay program, agent, reputation, payer_stats, payer,
 * rent_payer, payee_token_account, source_token_account, mint,
 * instructions_sysvar, system_program (record_x402_payment's, in its order).
 * Data: amount (u64 LE), then n 32-byte references. */
#include "../../program/include/ghostpay_idl.h"
#include "../../program/sdk/borsh.h"
#include "../../program/sdk/entrypoint.h"

enum { RELAY_GHOSTPAY, RELAY_FIRST_RECORD_ACCOUNT };

#define REFERENCE_BYTES 32u
#define RECORD_ACCOUNTS 10u
#define RECORD_DATA_LEN (8u + 8u + REFERENCE_BYTES)
#define RELAY_BAD_INPUT 1u

/* record_x402_payment's accounts: (writable, signer) in its order. */
static const bool RECORD_WRITABLE[RECORD_ACCOUNTS] = {true, true, true, false, true, false, false, false, false, false};
static const bool RECORD_SIGNER[RECORD_ACCOUNTS] = {false, false, false, true, true, false, false, false, false, false};

static uint64_t relay_one(const GpInput *in, uint64_t amount, const uint8_t *reference) {
    SolAccountMeta metas[RECORD_ACCOUNTS];
    for (uint64_t i = 0; i < RECORD_ACCOUNTS; i++)
        metas[i] = (SolAccountMeta){in->accounts[RELAY_FIRST_RECORD_ACCOUNT + i].key, RECORD_WRITABLE[i],
                                    RECORD_SIGNER[i]};
    uint8_t data[RECORD_DATA_LEN];
    BorshWriter w = borsh_writer(data, sizeof data);
    borsh_write_u64(&w, GP_IX_RECORD_X402_PAYMENT);
    borsh_write_u64(&w, amount);
    borsh_write_raw(&w, reference, REFERENCE_BYTES);
    SolInstruction ix = {in->accounts[RELAY_GHOSTPAY].key, metas, RECORD_ACCOUNTS, data, w.pos};
    return sol_invoke_signed_c(&ix, in->accounts, (int)in->account_count, NULL, 0);
}

uint64_t entrypoint(const uint8_t *input) {
    GpInput in;
    gp_deserialize(input, &in);
    BorshReader r = borsh_reader(in.data, in.data_len);
    uint64_t amount = borsh_read_u64(&r);
    uint64_t count = (in.data_len - 8u) / REFERENCE_BYTES;
    if (!r.ok || in.account_count < RELAY_FIRST_RECORD_ACCOUNT + RECORD_ACCOUNTS) return RELAY_BAD_INPUT;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t result = relay_one(&in, amount, borsh_take(&r, REFERENCE_BYTES));
        if (result) return result;
    }
    return 0;
}
