//! Diesel table definitions, kept by hand in step with `migrations/`.
//! (The schema test in tests/it checks every column here against the
//! migrated database, so the two cannot drift apart unnoticed.)

diesel::table! {
    tenants (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        prefix -> Text,
        key_hash -> Bytea,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        state -> Text,
        system_prompt -> Text,
        greeting -> Text,
        voicemail_message -> Nullable<Text>,
        voicemail_action -> Text,
        voice -> Text,
        language -> Text,
        llm_model -> Text,
        caller_id -> Text,
        window_start -> Time,
        window_end -> Time,
        window_days -> Int2,
        max_concurrent_calls -> Int4,
        max_attempts -> Int4,
        retry_backoff_secs -> Int4,
        max_call_duration_secs -> Int4,
        recording_enabled -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        telephony -> Text,
        analysis -> Nullable<Jsonb>,
        recording_retention_days -> Nullable<Int4>,
        transfer_number -> Nullable<Text>,
        transfer_announce -> Nullable<Text>,
        ring_timeout_secs -> Int4,
        reprompt_after_secs -> Int4,
    }
}

diesel::table! {
    contacts (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        campaign_id -> Uuid,
        phone -> Text,
        name -> Nullable<Text>,
        timezone -> Nullable<Text>,
        metadata -> Jsonb,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Nullable<Timestamptz>,
        last_outcome -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    dnc_numbers (tenant_id, phone) {
        tenant_id -> Uuid,
        phone -> Text,
        reason -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    calls (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        campaign_id -> Uuid,
        contact_id -> Uuid,
        attempt -> Int4,
        phone -> Text,
        provider -> Text,
        provider_call_id -> Nullable<Text>,
        status -> Text,
        outcome -> Nullable<Text>,
        hangup_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        dialed_at -> Nullable<Timestamptz>,
        answered_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
        duration_secs -> Nullable<Int4>,
        media_token_hash -> Nullable<Bytea>,
        media_token_used_at -> Nullable<Timestamptz>,
        callback_at -> Nullable<Timestamptz>,
        do_not_call -> Bool,
        recording_status -> Nullable<Text>,
        recording_bytes -> Nullable<Int8>,
        recording_duration_ms -> Nullable<Int4>,
        node_id -> Nullable<Text>,
        recording_store -> Nullable<Text>,
        recording_key -> Nullable<Text>,
        recording_ready_at -> Nullable<Timestamptz>,
        transfer_requested_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    call_events (id) {
        id -> Int8,
        tenant_id -> Nullable<Uuid>,
        call_id -> Nullable<Uuid>,
        provider -> Text,
        provider_call_id -> Text,
        status -> Text,
        provider_timestamp -> Timestamptz,
        payload -> Jsonb,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    call_turns (id) {
        id -> Int8,
        tenant_id -> Uuid,
        call_id -> Uuid,
        seq -> Int4,
        speaker -> Text,
        text -> Text,
        heard_text -> Nullable<Text>,
        interrupted -> Bool,
        started_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
        stt_ms -> Nullable<Int4>,
        llm_first_token_ms -> Nullable<Int4>,
        tts_first_audio_ms -> Nullable<Int4>,
        first_frame_ms -> Nullable<Int4>,
        voice_to_voice_ms -> Nullable<Int4>,
    }
}

diesel::table! {
    call_analyses (tenant_id, call_id) {
        tenant_id -> Uuid,
        call_id -> Uuid,
        campaign_id -> Uuid,
        state -> Text,
        claims -> Int4,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamptz>,
        summary -> Nullable<Text>,
        structured_data -> Nullable<Jsonb>,
        success -> Nullable<Jsonb>,
        error -> Nullable<Text>,
        provider -> Nullable<Text>,
        requested_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        url -> Text,
        events -> Jsonb,
        secret -> Text,
        created_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        event_type -> Text,
        data -> Jsonb,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        endpoint_id -> Uuid,
        event_id -> Uuid,
        state -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        locked_until -> Nullable<Timestamptz>,
        retry_from -> Timestamptz,
        last_status -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Int8,
        tenant_id -> Uuid,
        delivery_id -> Uuid,
        attempt -> Int4,
        started_at -> Timestamptz,
        duration_ms -> Int4,
        status_code -> Nullable<Int4>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    recording_deletions (id) {
        id -> Int8,
        tenant_id -> Uuid,
        call_id -> Uuid,
        store -> Nullable<Text>,
        key -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::joinable!(campaigns -> tenants (tenant_id));
diesel::joinable!(contacts -> campaigns (campaign_id));
diesel::joinable!(calls -> campaigns (campaign_id));
diesel::joinable!(calls -> contacts (contact_id));
diesel::joinable!(call_turns -> calls (call_id));
diesel::joinable!(call_analyses -> calls (call_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_deliveries -> webhook_events (event_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    api_keys,
    campaigns,
    contacts,
    dnc_numbers,
    calls,
    call_events,
    call_turns,
    call_analyses,
    webhook_endpoints,
    webhook_events,
    webhook_deliveries,
    webhook_attempts,
    recording_deletions,
);
