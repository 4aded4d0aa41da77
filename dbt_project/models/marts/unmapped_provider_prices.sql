-- API price rows that map to no tracked model, with the tracked model they look like a variant of.
with unmapped as (
    -- One row per source entry: its standard rate (LiteLLM lists batch/flex/priority rates of the
    -- same entry as further tiers).
    select *
    from {{ ref('int_provider_prices__mapped') }}
    where model_id is null
    qualify row_number() over (partition by source, provider_raw, provider_model_id order by tier <> 'standard', tier) = 1
),

tracked_names as (
    select model_id, lower(split_part(model_id, '/', 2)) as name_key
    from {{ ref('stg_hf__model_configs') }}
),

suggestions as (
    select
        unmapped.source,
        unmapped.provider_model_id,
        arg_max(tracked_names.model_id, length(tracked_names.name_key)) as suggested_model_id
    from unmapped
    inner join tracked_names
        on starts_with(unmapped.name_key, tracked_names.name_key || '-')
    group by unmapped.source, unmapped.provider_model_id
)

select
    unmapped.source,
    unmapped.provider_raw as provider,
    unmapped.provider_model_id,
    unmapped.mode,
    cast(unmapped.input_usd_per_mtok as double) as input_usd_per_mtok,
    cast(unmapped.output_usd_per_mtok as double) as output_usd_per_mtok,
    cast(unmapped.context_length as bigint) as context_length,
    suggestions.suggested_model_id,
    unmapped.observed_at
from unmapped
left join suggestions using (source, provider_model_id)
