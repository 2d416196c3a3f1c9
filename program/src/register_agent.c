/* register_agent(agent_id, agent_type, name, description, metadata_uri,
 *                capabilities, x402: Option<X402Config>)
 * Accounts: agent (PDA ["agent", owner, agent_id], writable), reputation (PDA
 * ["reputation", agent], writable: created on the first registration, reused
 * after close_agent), owner (signer, writable), system_program, then one mint
 * per accepted token. */
#pragma once

#include "reputation.h"

typedef struct {
    AgentTail tail;
    uint8_t agent_type;
    bool has_x402;
    X402Config x402;
} RegisterAgentArgs;

static uint64_t parse_register_agent(BorshReader *r, RegisterAgentArgs *args) {
    AgentTail *tail = &args->tail;
    tail->agent_id = borsh_read_bytes(r);
    args->agent_type = borsh_read_u8(r);
    tail->name = borsh_read_bytes(r);
    tail->description = borsh_read_bytes(r);
    tail->metadata_uri = borsh_read_bytes(r);
    TRY(parse_capabilities(r, tail));
    args->has_x402 = borsh_read_option(r);
    if (args->has_x402) parse_x402_config(r, &args->x402);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);
    if (args->has_x402) {
        tail->token_count = args->x402.token_count;
        tail->tokens = args->x402.tokens;
        tail->service_endpoint = args->x402.service_endpoint;
    }
    return 0;
}

static void emit_agent_registered(const SolAccountInfo *agent, const AgentFixed *fixed, const AgentTail *tail) {
    GpEvent event;
    gp_event_begin(&event, GP_EVENT_AGENT_REGISTERED);
    borsh_write_pubkey(&event.w, agent->key);
    borsh_write_pubkey(&event.w, &fixed->owner);
    borsh_write_bytes(&event.w, tail->agent_id);
    borsh_write_bytes(&event.w, tail->name);
    borsh_write_u8(&event.w, fixed->agent_type);
    borsh_write_bool(&event.w, fixed->x402_enabled);
    borsh_write_u64(&event.w, fixed->registration);
    borsh_write_i64(&event.w, fixed->created_at);
    gp_event_emit(&event);
}

/* The agent's ReputationMetrics: created with its first registration, so
 * every agent has one, and kept by close_agent, so a later registration of
 * the same address continues it (closing cannot wipe a bad reputation). The
 * metrics count this registration; the agent's score is recomputed from them. */
static uint64_t open_reputation(const GpInput *in, int64_t now, bool *reused) {
    const SolAccountInfo *agent = &in->accounts[REGISTER_AGENT_ACCOUNT_AGENT];
    const SolAccountInfo *reputation = &in->accounts[REGISTER_AGENT_ACCOUNT_REPUTATION];
    *reused = sol_pubkey_eq(reputation->owner, in->program_id);
    if (*reused) {
        TRY(load_reputation(in, agent, reputation));
        ReputationMetrics *metrics = reputation_metrics(reputation);
        metrics->registration = saturating_add(metrics->registration, 1);
        roll_payment_history(metrics, day_of(now));
        metrics->updated_at = now;
        agent_fixed(agent)->registration = metrics->registration;
        return 0;
    }
    GpPda pda = {.seeds = {{(const uint8_t *)GP_REPUTATION_SEED, GP_REPUTATION_SEED_LEN},
                           {agent->key->x, SOL_PUBKEY_BYTES}},
                 .seed_count = 2};
    TRY(gp_find_pda(&pda, in->program_id, reputation->key, "reputation"));
    if (!sol_pubkey_eq(reputation->owner, &SYSTEM_PROGRAM_ID))
        return gp_fail_account(GP_ERR_ACCOUNT_NOT_SYSTEM_OWNED, "reputation");
    SolSignerSeeds signer = gp_pda_signer(&pda);
    TRY(gp_create_pda_account(&in->accounts[REGISTER_AGENT_ACCOUNT_OWNER], reputation, GP_REPUTATION_METRICS_SPACE,
                              in->program_id, &signer));
    ReputationMetrics *metrics = reputation_metrics(reputation);
    metrics->discriminator = GP_ACCOUNT_REPUTATION_METRICS;
    metrics->agent = *agent->key;
    metrics->history_day = day_of(now);
    metrics->created_at = now;
    metrics->updated_at = now;
    metrics->registration = 1;
    metrics->bump = pda.bump;
    agent_fixed(agent)->registration = 1;
    return 0;
}

static uint64_t register_agent(const GpInput *in, BorshReader *r) {
    RegisterAgentArgs args = {0};
    TRY(parse_register_agent(r, &args));

    if (in->account_count < REGISTER_AGENT_ACCOUNT_COUNT) return gp_fail(GP_ERR_ACCOUNT_NOT_ENOUGH_KEYS);
    const SolAccountInfo *agent = &in->accounts[REGISTER_AGENT_ACCOUNT_AGENT];
    const SolAccountInfo *reputation = &in->accounts[REGISTER_AGENT_ACCOUNT_REPUTATION];
    const SolAccountInfo *owner = &in->accounts[REGISTER_AGENT_ACCOUNT_OWNER];
    TRY(gp_require_signer(owner, "owner"));
    TRY(gp_require_writable(owner, "owner"));
    TRY(gp_require_writable(agent, "agent"));
    TRY(gp_require_writable(reputation, "reputation"));
    TRY(gp_require_program(&in->accounts[REGISTER_AGENT_ACCOUNT_SYSTEM_PROGRAM], &SYSTEM_PROGRAM_ID, "system_program"));

    AgentTail *tail = &args.tail;
    TRY(require_text(tail->agent_id, 1, GP_MAX_AGENT_ID_LEN, GP_ERR_AGENT_ID_INVALID));
    TRY(validate_profile(tail));
    if (args.has_x402)
        TRY(validate_x402_config(&args.x402, &in->accounts[REGISTER_AGENT_ACCOUNT_COUNT],
                                 in->account_count - REGISTER_AGENT_ACCOUNT_COUNT));

    GpPda pda = {.seeds = {{(const uint8_t *)GP_AGENT_SEED, GP_AGENT_SEED_LEN},
                           {owner->key->x, SOL_PUBKEY_BYTES},
                           {tail->agent_id.ptr, tail->agent_id.len}},
                 .seed_count = 3};
    TRY(gp_find_pda(&pda, in->program_id, agent->key, "agent"));
    if (sol_pubkey_eq(agent->owner, in->program_id)) return gp_fail(GP_ERR_AGENT_ALREADY_REGISTERED);
    if (!sol_pubkey_eq(agent->owner, &SYSTEM_PROGRAM_ID)) return gp_fail_account(GP_ERR_ACCOUNT_NOT_SYSTEM_OWNED, "agent");
    SolSignerSeeds signer = gp_pda_signer(&pda);
    TRY(gp_create_pda_account(owner, agent, GP_AGENT_SPACE, in->program_id, &signer));

    int64_t now = gp_unix_timestamp();
    AgentFixed *fixed = agent_fixed(agent);
    fixed->discriminator = GP_ACCOUNT_AGENT;
    fixed->owner = *owner->key;
    fixed->is_active = 1;
    fixed->agent_type = args.agent_type;
    fixed->bump = pda.bump;
    fixed->created_at = now;
    fixed->updated_at = now;
    if (args.has_x402) {
        fixed->x402_enabled = 1;
        fixed->x402_payment_address = *args.x402.payment_address;
    }
    write_agent_tail(agent->data + AGENT_TAIL_OFFSET, tail);
    bool reused;
    TRY(open_reputation(in, now, &reused));
    emit_agent_registered(agent, fixed, tail);
    if (reused) update_reputation_score(agent, reputation_metrics(reputation), now);
    return 0;
}
