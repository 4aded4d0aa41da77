-- genai-prices (provider, model) entries at their current price, already USD per million tokens.
with entries as (
    {{ latest_raw_records('genai_prices', 'genai_prices_json') }}
),

price_versions as (
    -- `prices` is one object, or a list of {constraint?, prices} in chronological order.
    select
        entries.record_key,
        entries.fetched_at,
        case when json_type(entries.record -> '$.model.prices') = 'ARRAY' then version.value -> '$.prices' else entries.record -> '$.model.prices' end as prices,
        case when json_type(entries.record -> '$.model.prices') = 'ARRAY' then try_cast(version.value ->> '$.constraint.start_date' as date) end as starts_on,
        case when json_type(entries.record -> '$.model.prices') = 'ARRAY' then version.key::integer else 0 end as version_number
    from entries
    left join lateral (
        select * from json_each(
            case when json_type(entries.record -> '$.model.prices') = 'ARRAY' then entries.record -> '$.model.prices' else '[]'::json end
        )
    ) as version on true
),

current_prices as (
    select record_key, prices
    from price_versions
    where starts_on is null or starts_on <= cast(fetched_at as date)
    qualify row_number() over (partition by record_key order by starts_on desc nulls last, version_number desc) = 1
)

select
    entries.record_key as genai_prices_key,
    entries.record ->> '$.provider.id' as provider,
    entries.record ->> '$.model.id' as provider_model_id,
    entries.record ->> '$.model.name' as model_name,
    cast(coalesce(
        try_cast(current_prices.prices ->> '$.input_mtok' as decimal(18, 9)),
        try_cast(current_prices.prices ->> '$.input_mtok.base' as decimal(18, 9))
    ) as double) as input_usd_per_mtok,
    cast(coalesce(
        try_cast(current_prices.prices ->> '$.output_mtok' as decimal(18, 9)),
        try_cast(current_prices.prices ->> '$.output_mtok.base' as decimal(18, 9))
    ) as double) as output_usd_per_mtok,
    try_cast(entries.record ->> '$.model.context_window' as bigint) as context_length,
    entries.fetched_at as observed_at
from entries
left join current_prices using (record_key)
