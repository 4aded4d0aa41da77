-- LiteLLM cost-map entries: USD per token -> USD per million tokens, standard and batch/flex/priority rates.
with entries as (
    {{ latest_raw_records('litellm_prices', 'litellm_prices_json') }}
),

typed as (
    select
        record_key,
        -- A few entries omit litellm_provider; their key prefix (`bedrock/...`) names it, else `unknown`.
        coalesce(
            nullif(record ->> '$.litellm_provider', ''),
            case when contains(record_key, '/') then split_part(record_key, '/', 1) end,
            'unknown'
        ) as provider,
        record,
        fetched_at
    from entries
)

select
    record_key as provider_model_id,
    provider,
    case
        when starts_with(record_key, provider || '/') then substr(record_key, length(provider) + 2)
        else record_key
    end as provider_model_path,
    record ->> '$.mode' as mode,
    -- Keys such as `opencode_go/beam-free` name a free tier of the model.
    case when regexp_matches(lower(record_key), '[-:]free$') then 'free' else 'standard' end as tier,
    {{ usd_per_token_to_per_mtok("record ->> '$.input_cost_per_token'") }} as input_usd_per_mtok,
    {{ usd_per_token_to_per_mtok("record ->> '$.output_cost_per_token'") }} as output_usd_per_mtok,
    {{ usd_per_token_to_per_mtok("record ->> '$.input_cost_per_token_batches'") }} as batch_input_usd_per_mtok,
    {{ usd_per_token_to_per_mtok("record ->> '$.output_cost_per_token_batches'") }} as batch_output_usd_per_mtok,
    {{ usd_per_token_to_per_mtok("record ->> '$.input_cost_per_token_flex'") }} as flex_input_usd_per_mtok,
    {{ usd_per_token_to_per_mtok("record ->> '$.output_cost_per_token_flex'") }} as flex_output_usd_per_mtok,
    {{ usd_per_token_to_per_mtok("record ->> '$.input_cost_per_token_priority'") }} as priority_input_usd_per_mtok,
    {{ usd_per_token_to_per_mtok("record ->> '$.output_cost_per_token_priority'") }} as priority_output_usd_per_mtok,
    try_cast(record ->> '$.max_input_tokens' as bigint) as context_length,
    fetched_at as observed_at
from typed
