/* create_work_order(order_id, amount, deadline, review_period_seconds, arbiter,
 *                   title, description, requirements)
 * Accounts: work_order (PDA ["work_order", client, order_id], writable), vault
 * (a new keypair, signer, writable), client (signer, writable),
 * client_token_account (writable), agent (writable), mint, token_program,
 * system_program.
 *
 * Creates the work order and its vault, then moves the amount in with a
 * TransferChecked signed by the client. */
#pragma once

#include "work_order.h"

typedef struct {
    const uint8_t *order_id; /* the u64 LE as it sits in the instruction data: the PDA seed */
    uint64_t amount;
    int64_t deadline;
    uint32_t review_period_seconds;
    const SolPubkey *arbiter;
    GpSlice title;
    GpSlice description;
    BorshSpan text; /* title, description and requirements: copied verbatim into the account */
} CreateWorkOrderArgs;

static uint64_t parse_create_work_order(BorshReader *r, CreateWorkOrderArgs *args) {
    args->order_id = borsh_take(r, ORDER_ID_BYTES);
    args->amount = borsh_read_u64(r);
    args->deadline = borsh_read_i64(r);
    args->review_period_seconds = borsh_read_u32(r);
    args->arbiter = borsh_read_pubkey(r);
    uint64_t text_start = r->pos;
    args->title = borsh_read_bytes(r);
    args->description = borsh_read_bytes(r);
    uint32_t count = borsh_read_u32(r);
    if (r->ok && count > GP_MAX_REQUIREMENTS) return gp_fail(GP_ERR_TOO_MANY_REQUIREMENTS);
    for (uint32_t i = 0; i < count && r->ok; i++)
        TRY(require_text(borsh_read_bytes(r), 1, GP_MAX_REQUIREMENT_LEN, GP_ERR_REQUIREMENT_INVALID));
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    args->text = (BorshSpan){r->data + text_start, r->pos - text_start};
    return 0;
}

static uint64_t validate_create_work_order(const CreateWorkOrderArgs *args, int64_t now) {
    if (args->amount < GP_MIN_WORK_ORDER_AMOUNT || args->amount > GP_MAX_WORK_ORDER_AMOUNT)
        return gp_fail(GP_ERR_WORK_ORDER_AMOUNT_OUT_OF_RANGE);
    if (args->deadline <= now) return gp_fail(GP_ERR_DEADLINE_IN_PAST);
    if (args->deadline - now > GP_MAX_DEADLINE_SECONDS) return gp_fail(GP_ERR_DEADLINE_TOO_FAR);
    if (args->review_period_seconds < GP_MIN_REVIEW_PERIOD_SECONDS ||
        args->review_period_seconds > GP_MAX_REVIEW_PERIOD_SECONDS)
        return gp_fail(GP_ERR_REVIEW_PERIOD_OUT_OF_RANGE);
    TRY(require_text(args->title, 1, GP_MAX_TITLE_LEN, GP_ERR_TITLE_INVALID));
    return require_text(args->description, 0, GP_MAX_WORK_ORDER_DESCRIPTION_LEN, GP_ERR_WORK_ORDER_DESCRIPTION_TOO_LONG);
}

/* The mint: the token program's, accepted by the agent, and with no Token-2022
 * extension that would make the vault's balance differ from the books. */
static uint64_t validate_escrow_mint(const SolAccountInfo *mint, const SolAccountInfo *token_program,
                                     const uint8_t *agent_data) {
    if (!token_is_token_program(token_program->key) || !sol_pubkey_eq(mint->owner, token_program->key))
        return gp_fail_account(GP_ERR_TOKEN_PROGRAM_MISMATCH, "token_program");
    if (!token_is_mint(mint)) return gp_fail_account(GP_ERR_NOT_A_MINT, "mint");
    if (!agent_token_price(agent_data, mint->key)) return gp_fail(GP_ERR_PAYMENT_MINT_NOT_ACCEPTED);
    return token_require_plain_mint(mint);
}

/* The vault: the new account the client made a keypair for becomes a token
 * account whose authority is the work order. */
static uint64_t create_vault(const GpInput *in) {
    const SolAccountInfo *vault = &in->accounts[CREATE_WORK_ORDER_ACCOUNT_VAULT];
    const SolAccountInfo *token_program = &in->accounts[CREATE_WORK_ORDER_ACCOUNT_TOKEN_PROGRAM];
    TRY(gp_require_signer(vault, "vault"));
    TRY(gp_require_writable(vault, "vault"));
    if (!sol_pubkey_eq(vault->owner, &SYSTEM_PROGRAM_ID)) return gp_fail_account(GP_ERR_ACCOUNT_NOT_SYSTEM_OWNED, "vault");
    TRY(gp_create_pda_account(&in->accounts[CREATE_WORK_ORDER_ACCOUNT_CLIENT], vault, TOKEN_ACCOUNT_LEN, token_program->key,
                              NULL));
    return token_initialize_account3(token_program, vault, &in->accounts[CREATE_WORK_ORDER_ACCOUNT_MINT],
                                     in->accounts[CREATE_WORK_ORDER_ACCOUNT_WORK_ORDER].key);
}

static void emit_work_order_created(const SolAccountInfo *work_order, const WorkOrder *order) {
    GpEvent event;
    work_order_event_begin(&event, GP_EVENT_WORK_ORDER_CREATED, work_order, order);
    borsh_write_pubkey(&event.w, &order->client);
    borsh_write_pubkey(&event.w, &order->arbiter);
    borsh_write_pubkey(&event.w, &order->mint);
    borsh_write_u64(&event.w, order->order_id);
    borsh_write_u64(&event.w, order->amount);
    borsh_write_i64(&event.w, order->deadline);
    borsh_write_i64(&event.w, order->review_period_seconds);
    borsh_write_i64(&event.w, order->created_at);
    gp_event_emit(&event);
}

static uint64_t create_work_order(const GpInput *in, BorshReader *r) {
    CreateWorkOrderArgs args;
    TRY(parse_create_work_order(r, &args));
    int64_t now = gp_unix_timestamp();
    TRY(validate_create_work_order(&args, now));

    if (in->account_count < CREATE_WORK_ORDER_ACCOUNT_COUNT) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    const SolAccountInfo *work_order = &in->accounts[CREATE_WORK_ORDER_ACCOUNT_WORK_ORDER];
    const SolAccountInfo *client = &in->accounts[CREATE_WORK_ORDER_ACCOUNT_CLIENT];
    const SolAccountInfo *agent = &in->accounts[CREATE_WORK_ORDER_ACCOUNT_AGENT];
    const SolAccountInfo *mint = &in->accounts[CREATE_WORK_ORDER_ACCOUNT_MINT];
    const SolAccountInfo *token_program = &in->accounts[CREATE_WORK_ORDER_ACCOUNT_TOKEN_PROGRAM];
    TRY(gp_require_signer(client, "client"));
    TRY(gp_require_writable(client, "client"));
    TRY(gp_require_writable(work_order, "work_order"));
    TRY(gp_require_writable(agent, "agent"));
    TRY(gp_require_program_account(agent, in->program_id, GP_ACCOUNT_AGENT, GP_AGENT_SPACE, "agent"));
    TRY(gp_require_program(&in->accounts[CREATE_WORK_ORDER_ACCOUNT_SYSTEM_PROGRAM], &SYSTEM_PROGRAM_ID,
                           "system_program"));
    AgentFixed *fixed = agent_fixed(agent);
    if (!fixed->is_active) return gp_fail(GP_ERR_AGENT_INACTIVE);
    if (sol_pubkey_eq(client->key, &fixed->owner)) return gp_fail(GP_ERR_CANNOT_HIRE_OWN_AGENT);
    /* The arbiter is a third party: not the client, nor the provider's owner or the wallet it is paid at. */
    if (sol_pubkey_eq(args.arbiter, client->key) || sol_pubkey_eq(args.arbiter, &fixed->owner) ||
        sol_pubkey_eq(args.arbiter, &fixed->x402_payment_address) || sol_pubkey_is_default(args.arbiter))
        return gp_fail(GP_ERR_INVALID_ARBITER);
    TRY(validate_escrow_mint(mint, token_program, agent->data));
    MintEarnings *earnings; /* taken now and held while the order is open, so every release finds it */
    TRY(take_earnings_slot(fixed, mint->key, &earnings));

    GpPda pda = {.seeds = {{(const uint8_t *)GP_WORK_ORDER_SEED, GP_WORK_ORDER_SEED_LEN},
                           {client->key->x, SOL_PUBKEY_BYTES},
                           {args.order_id, ORDER_ID_BYTES}},
                 .seed_count = 3};
    TRY(gp_find_pda(&pda, in->program_id, work_order->key, "work_order"));
    if (!sol_pubkey_eq(work_order->owner, &SYSTEM_PROGRAM_ID))
        return gp_fail_account(GP_ERR_ACCOUNT_NOT_SYSTEM_OWNED, "work_order");
    SolSignerSeeds signer = gp_pda_signer(&pda);
    TRY(gp_create_pda_account(client, work_order, GP_WORK_ORDER_SPACE, in->program_id, &signer));
    TRY(create_vault(in));
    TokenAuthority by_client = {token_program, mint, token_mint_decimals(mint), client, NULL};
    TRY(token_transfer_checked(&by_client, &in->accounts[CREATE_WORK_ORDER_ACCOUNT_CLIENT_TOKEN_ACCOUNT],
                               &in->accounts[CREATE_WORK_ORDER_ACCOUNT_VAULT], args.amount));

    WorkOrder *order = work_order_of(work_order);
    order->discriminator = GP_ACCOUNT_WORK_ORDER;
    order->client = *client->key;
    order->agent = *agent->key;
    order->provider_owner = fixed->owner;
    order->arbiter = *args.arbiter;
    order->mint = *mint->key;
    order->vault = *in->accounts[CREATE_WORK_ORDER_ACCOUNT_VAULT].key;
    sol_memcpy_(&order->order_id, args.order_id, ORDER_ID_BYTES);
    order->amount = args.amount;
    order->deadline = args.deadline;
    order->review_period_seconds = args.review_period_seconds;
    order->created_at = now;
    order->updated_at = now;
    order->status = GP_WORK_ORDER_STATUS_CREATED;
    order->bump = pda.bump;
    /* Title, description and requirements, then an empty deliverable URI (the account is zeroed). */
    sol_memcpy_(work_order->data + GP_WORK_ORDER_OFFSET_TITLE, args.text.start, args.text.len);
    fixed->open_work_orders = saturating_inc_u32(fixed->open_work_orders);
    earnings->open_work_orders++;
    emit_work_order_created(work_order, order);
    return 0;
}
