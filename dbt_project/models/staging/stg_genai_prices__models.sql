-- genai-prices (provider, model) entries at their current price, already USD per million tokens,
-- one row per price tier the entry expresses (standard, off_peak, promo, free).
with entries as (
    {{ latest_raw_records('genai_prices', 'genai_prices_json') }}
),

price_versions as (
    -- `prices` is one object, or a list of {constraint?, prices}: dated versions in chronological
    -- order (constraint.start_date) and/or daily time windows (constraint.start_time/end_time).
    select
        entries.record_key,
        cast(entries.fetched_at as date) as fetched_on,
        case when json_type(entries.record -> '$.model.prices') = 'ARRAY' then version.value -> '$.prices' else entries.record -> '$.model.prices' end as prices,
        case when json_type(entries.record -> '$.model.prices') = 'ARRAY' then try_cast(version.value ->> '$.constraint.start_date' as date) end as starts_on,
        coalesce(
            json_type(entries.record -> '$.model.prices') = 'ARRAY'
            and ((version.value ->> '$.constraint.start_time') is not null or (version.value ->> '$.constraint.end_time') is not null),
            false
        ) as is_time_window,
        case when json_type(entries.record -> '$.model.prices') = 'ARRAY' then version.key::integer else 0 end as version_number
    from entries
    left join lateral (
        select * from json_each(
            case when json_type(entries.record -> '$.model.prices') = 'ARRAY' then entries.record -> '$.model.prices' else '[]'::json end
        )
    ) as version on true
),

priced_versions as (
    select
        *,
        cast(coalesce(
            try_cast(prices ->> '$.input_mtok' as decimal(18, 9)),
            try_cast(prices ->> '$.input_mtok.base' as decimal(18, 9))
        ) as double) as input_usd_per_mtok,
        cast(coalesce(
            try_cast(prices ->> '$.output_mtok' as decimal(18, 9)),
            try_cast(prices ->> '$.output_mtok.base' as decimal(18, 9))
        ) as double) as output_usd_per_mtok
    from price_versions
),

-- The dated version in force on the fetch date (latest start_date already reached; an undated
-- version ranks below dated ones, later listed first).
base_version as (
    select *
    from priced_versions
    where not is_time_window and (starts_on is null or starts_on <= fetched_on)
    qualify row_number() over (partition by record_key order by starts_on desc nulls last, version_number desc) = 1
),

-- Today's alternatives: the base version and every daily time window in force. The dearest is the
-- standard rate; a cheaper one is an off-peak discount (DeepSeek: 50 % off 16:30-00:30 UTC).
alternatives as (
    select * from base_version
    union all
    select * from priced_versions
    where is_time_window and (starts_on is null or starts_on <= fetched_on)
),

ranked as (
    select
        *,
        row_number() over (
            partition by record_key
            order by output_usd_per_mtok desc nulls last, input_usd_per_mtok desc nulls last, version_number desc
        ) as dearness
    from alternatives
),

-- A dated version scheduled after the fetch date at a higher price makes today's price a temporary
-- (promotional) one: AWS's Claude Sonnet 5 launch price until 2026-08-31.
scheduled_rises as (
    select distinct later.record_key
    from priced_versions as later
    inner join base_version as today using (record_key)
    where later.starts_on > later.fetched_on
        and (later.output_usd_per_mtok > today.output_usd_per_mtok or later.input_usd_per_mtok > today.input_usd_per_mtok)
),

tiered as (
    select
        ranked.*,
        case
            when ends_with(lower(entries.record ->> '$.model.id'), ':free') then 'free'
            when ranked.dearness > 1 then 'off_peak'
            when scheduled_rises.record_key is not null then 'promo'
            else 'standard'
        end as tier
    from ranked
    inner join entries using (record_key)
    left join scheduled_rises using (record_key)
)

select
    entries.record_key as genai_prices_key,
    coalesce(tiered.tier, 'standard') as tier,
    entries.record ->> '$.provider.id' as provider,
    entries.record ->> '$.model.id' as provider_model_id,
    entries.record ->> '$.model.name' as model_name,
    tiered.input_usd_per_mtok,
    tiered.output_usd_per_mtok,
    try_cast(entries.record ->> '$.model.context_window' as bigint) as context_length,
    nullif(trim(entries.record ->> '$.model.price_comments'), '') as price_comments,
    entries.fetched_at as observed_at
from entries
left join tiered using (record_key)
-- One row per tier: the cheapest off-peak window when an entry has several.
qualify row_number() over (
    partition by entries.record_key, tiered.tier
    order by tiered.output_usd_per_mtok nulls last, tiered.input_usd_per_mtok nulls last
) = 1
