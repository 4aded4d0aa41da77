-- OpenRouter catalogue entries: USD-per-token strings -> USD per million tokens, with the price tier.
with models as (
    {{ latest_raw_records('openrouter_models', 'openrouter_models_json') }}
),

typed as (
    select
        record_key as provider_model_id,
        nullif(lower(split_part(record_key, ':', 2)), '') as variant,
        nullif(record ->> '$.hugging_face_id', '') as hugging_face_id,
        record ->> '$.name' as model_name,
        try_cast(record ->> '$.context_length' as bigint) as context_length,
        -- Capabilities OpenRouter states per model (null when the entry does not carry the list).
        case when json_type(record -> '$.supported_parameters') = 'ARRAY' then
            list_filter(from_json(record -> '$.supported_parameters', '["VARCHAR"]'), p -> p is not null)
        end as supported_parameters,
        case when json_type(record -> '$.architecture.input_modalities') = 'ARRAY' then
            list_filter(from_json(record -> '$.architecture.input_modalities', '["VARCHAR"]'), m -> m is not null)
        end as input_modalities,
        {{ usd_per_token_to_per_mtok("record ->> '$.pricing.prompt'") }} as input_usd_per_mtok,
        {{ usd_per_token_to_per_mtok("record ->> '$.pricing.completion'") }} as output_usd_per_mtok,
        fetched_at as observed_at
    from models
)

select
    provider_model_id,
    'openrouter' as provider,
    variant,
    -- `:free` and `:batch` ids are OpenRouter's free and batch tiers; any other variant (`:thinking`,
    -- `:extended`, ...) prices a feature of the model, not the model, and is kept as its own tier.
    coalesce(variant, 'standard') as tier,
    hugging_face_id,
    model_name,
    context_length,
    supported_parameters,
    input_modalities,
    case when input_usd_per_mtok >= 0 then input_usd_per_mtok end as input_usd_per_mtok,
    case when output_usd_per_mtok >= 0 then output_usd_per_mtok end as output_usd_per_mtok,
    observed_at
from typed
