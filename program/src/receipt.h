/* X402Receipt (legacy): one recorded payment, PDA ["receipt", agent, reference],
 * as the program made them before PayerStats. Still rated and closed; never created. */
#pragma once

#include "payer_stats.h"

typedef struct {
    uint64_t discriminator;
    SolPubkey agent;
    SolPubkey payer;
    SolPubkey rent_payer;
    SolPubkey mint;
    uint8_t reference[PAYMENT_REFERENCE_BYTES];
    uint64_t amount;
    int64_t paid_at;
    uint64_t registration;
    uint8_t feedback_submitted;
    uint8_t bump;
} X402Receipt;

_Static_assert(offsetof(X402Receipt, agent) == GP_X402_RECEIPT_OFFSET_AGENT, "X402Receipt drifted from the IDL");
_Static_assert(offsetof(X402Receipt, payer) == GP_X402_RECEIPT_OFFSET_PAYER, "X402Receipt drifted from the IDL");
_Static_assert(offsetof(X402Receipt, rent_payer) == GP_X402_RECEIPT_OFFSET_RENT_PAYER, "X402Receipt drifted from the IDL");
_Static_assert(offsetof(X402Receipt, mint) == GP_X402_RECEIPT_OFFSET_MINT, "X402Receipt drifted from the IDL");
_Static_assert(offsetof(X402Receipt, reference) == GP_X402_RECEIPT_OFFSET_REFERENCE, "X402Receipt drifted from the IDL");
_Static_assert(offsetof(X402Receipt, amount) == GP_X402_RECEIPT_OFFSET_AMOUNT, "X402Receipt drifted from the IDL");
_Static_assert(offsetof(X402Receipt, paid_at) == GP_X402_RECEIPT_OFFSET_PAID_AT, "X402Receipt drifted from the IDL");
_Static_assert(offsetof(X402Receipt, registration) == GP_X402_RECEIPT_OFFSET_REGISTRATION, "X402Receipt drifted from the IDL");
_Static_assert(offsetof(X402Receipt, feedback_submitted) == GP_X402_RECEIPT_OFFSET_FEEDBACK_SUBMITTED, "X402Receipt drifted from the IDL");
_Static_assert(offsetof(X402Receipt, bump) == GP_X402_RECEIPT_OFFSET_BUMP, "X402Receipt drifted from the IDL");
_Static_assert(offsetof(X402Receipt, bump) + 1 == GP_X402_RECEIPT_SPACE, "X402Receipt drifted from the IDL");

static inline X402Receipt *x402_receipt(const SolAccountInfo *account) { return (X402Receipt *)account->data; }

/* A writable receipt of this program (checked by owner and discriminator:
 * only this program writes that discriminator, into ["receipt", agent, reference]). */
static uint64_t load_receipt(const GpInput *in, const SolAccountInfo *receipt) {
    TRY(gp_require_writable(receipt, "receipt"));
    return gp_require_program_account(receipt, in->program_id, GP_ACCOUNT_X402_RECEIPT, GP_X402_RECEIPT_SPACE, "receipt");
}
