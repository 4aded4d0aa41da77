-- LiteLLM cost-map entries: USD per token -> USD per million tokens.
with entries as (
    {{ latest_raw_records('litellm_prices', 'litellm_prices_json') }}
)

select
    record_key as provider_model_id,
    record ->> '$.litellm_provider' as provider,
    case
        when starts_with(record_key, (record ->> '$.litellm_provider') || '/')
            then substr(record_key, length(record ->> '$.litellm_provider') + 2)
        else record_key
    end as provider_model_path,
    record ->> '$.mode' as mode,
    {{ usd_per_token_to_per_mtok("record ->> '$.input_cost_per_token'") }} as input_usd_per_mtok,
    {{ usd_per_token_to_per_mtok("record ->> '$.output_cost_per_token'") }} as output_usd_per_mtok,
    try_cast(record ->> '$.max_input_tokens' as bigint) as context_length,
    fetched_at as observed_at
from entries
