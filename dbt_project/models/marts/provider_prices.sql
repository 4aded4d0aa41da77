-- Published API prices: one row per (tracked model, provider, price source).
with candidates as (
    select
        *,
        row_number() over (
            partition by model_id, provider, source
            order by
                (input_usd_per_mtok is null or output_usd_per_mtok is null),
                case mapping_rule when 'alias' then 1 when 'hf_repo_id' then 2 else 3 end,
                length(provider_model_id),
                provider_model_id
        ) as preference
    from {{ ref('int_provider_prices__mapped') }}
    where model_id is not null
        and coalesce(mode, 'chat') in ('chat', 'completion', 'responses')
        and (input_usd_per_mtok is not null or output_usd_per_mtok is not null)
)

select
    model_id,
    provider,
    source,
    provider_model_id,
    cast(input_usd_per_mtok as double) as input_usd_per_mtok,
    cast(output_usd_per_mtok as double) as output_usd_per_mtok,
    cast(context_length as bigint) as context_length,
    mapping_rule,
    observed_at
from candidates
where preference = 1
