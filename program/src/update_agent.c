/* update_agent(agent_type, name, description, metadata_uri, capabilities: all Option)
 * Accounts: agent (writable), owner (signer). */
#pragma once

#include "agent.h"

static uint64_t update_agent(const GpInput *in, BorshReader *r) {
    AgentTail changes = {0};
    bool has_type = borsh_read_option(r);
    uint8_t agent_type = has_type ? borsh_read_u8(r) : 0;
    bool has_name = borsh_read_option(r);
    if (has_name) changes.name = borsh_read_bytes(r);
    bool has_description = borsh_read_option(r);
    if (has_description) changes.description = borsh_read_bytes(r);
    bool has_uri = borsh_read_option(r);
    if (has_uri) changes.metadata_uri = borsh_read_bytes(r);
    bool has_capabilities = borsh_read_option(r);
    BorshSpan new_capabilities = {r->data + r->pos, 0};
    if (has_capabilities) TRY(parse_capabilities(r, &changes));
    new_capabilities.len = (uint64_t)(r->data + r->pos - new_capabilities.start);
    if (!borsh_reader_done(r)) return gp_fail(GP_ERR_INSTRUCTION_DID_NOT_DESERIALIZE);

    const SolAccountInfo *agent;
    TRY(load_owned_agent(in, &agent));

    /* Only the changed fields need validating: stored ones were validated when written. */
    if (has_name) TRY(require_text(changes.name, 1, GP_MAX_NAME_LEN, GP_ERR_NAME_INVALID));
    if (has_description) TRY(require_text(changes.description, 0, GP_MAX_DESCRIPTION_LEN, GP_ERR_DESCRIPTION_TOO_LONG));
    if (has_uri) TRY(require_text(changes.metadata_uri, 0, GP_MAX_METADATA_URI_LEN, GP_ERR_METADATA_URI_TOO_LONG));
    for (uint32_t i = 0; has_capabilities && i < changes.capability_count; i++)
        TRY(require_text(changes.capabilities[i], 1, GP_MAX_CAPABILITY_LEN, GP_ERR_CAPABILITY_INVALID));

    /* Splice last field first: earlier fields keep their place. */
    AgentTail tail;
    TRY(read_agent_tail(agent->data, &tail));
    GpSlice stored_name = tail.name;
    if (has_capabilities) splice_agent_tail(&tail, agent_capabilities_span(&tail), new_capabilities);
    if (has_uri) splice_agent_tail(&tail, span_of_bytes(tail.metadata_uri), span_of_bytes(changes.metadata_uri));
    if (has_description) splice_agent_tail(&tail, span_of_bytes(tail.description), span_of_bytes(changes.description));
    if (has_name) splice_agent_tail(&tail, span_of_bytes(tail.name), span_of_bytes(changes.name));

    AgentFixed *fixed = agent_fixed(agent);
    if (has_type) fixed->agent_type = agent_type;
    fixed->updated_at = gp_unix_timestamp();

    GpEvent event;
    gp_event_begin(&event, GP_EVENT_AGENT_UPDATED);
    borsh_write_pubkey(&event.w, agent->key);
    borsh_write_pubkey(&event.w, &fixed->owner);
    borsh_write_u8(&event.w, fixed->agent_type);
    /* name follows only fields update_agent never changes, so stored_name is still in place. */
    borsh_write_bytes(&event.w, has_name ? changes.name : stored_name);
    borsh_write_i64(&event.w, fixed->updated_at);
    gp_event_emit(&event);
    return 0;
}
