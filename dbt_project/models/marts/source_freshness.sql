-- One row per raw source: how old the data it feeds downstream is, whether its latest attempt
-- failed (stale: its last landed data is carried forward) and since when, and why.
{%- set sources = [
    ('hf_model_configs', 'models'),
    ('gpu_spec_sheets', 'gpu_specs'),
    ('openrouter_models', 'prices'),
    ('litellm_prices', 'prices'),
    ('genai_prices', 'prices'),
    ('gpu_rental_prices', 'rentals'),
] %}
with catalogue as (
    {%- for name, kind in sources %}
    select '{{ name }}' as source, '{{ kind }}' as kind
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
),

landed as (
    {%- for name, kind in sources %}
    select '{{ name }}' as source, count(*) as landed_records, max(fetched_at) as last_landed_at
    from {{ source('raw', name) }}
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
),

attempts as (
    select raw_table as source, batch_id, attempted_at, finished_at, outcome, error
    from {{ source('raw', 'source_attempts') }}
    where outcome <> 'nothing_to_check'
),

last_answered as (
    select source, max(attempted_at) as last_answered_at
    from attempts
    where outcome = 'answered'
    group by source
),

per_source as (
    select
        a.source,
        max(a.attempted_at) as last_attempt_at,
        arg_max(a.outcome, (a.attempted_at, a.finished_at)) as last_outcome,
        arg_max(a.batch_id, (a.attempted_at, a.finished_at)) as last_batch_id,
        arg_max(a.error, (a.attempted_at, a.finished_at)) as last_attempt_error,
        -- the failing streak: failed attempts after the last answered one
        min(a.attempted_at) filter (
            where a.outcome = 'failed' and (l.last_answered_at is null or a.attempted_at > l.last_answered_at)
        ) as streak_started_at,
        count(*) filter (
            where a.outcome = 'failed' and (l.last_answered_at is null or a.attempted_at > l.last_answered_at)
        ) as streak_attempts,
        any_value(l.last_answered_at) as last_answered_at
    from attempts as a
    left join last_answered as l using (source)
    group by a.source
),

run_failures as (
    select
        batch_id,
        raw_table as source,
        string_agg(
            distinct coalesce(record_key, location) || ': ' || reason, '; '
            order by coalesce(record_key, location) || ': ' || reason
        ) as failures
    from {{ source('raw', 'ingest_failures') }}
    group by batch_id, raw_table
)

select
    c.source,
    c.kind,
    coalesce(l.landed_records, 0) > 0 as has_landed,
    coalesce(l.landed_records, 0) as landed_records,
    l.last_landed_at,
    -- a warehouse older than the attempt log: its newest landing is the last known success
    coalesce(p.last_answered_at, l.last_landed_at) as last_success_at,
    p.last_attempt_at,
    coalesce(p.last_outcome = 'failed', false) as stale,
    case when p.last_outcome = 'failed' then p.streak_started_at end as stale_since,
    case when p.last_outcome = 'failed' then p.streak_attempts else 0 end as failed_attempts,
    case when p.last_outcome = 'failed' then coalesce(f.failures, p.last_attempt_error) end as last_error
from catalogue as c
left join landed as l using (source)
left join per_source as p using (source)
left join run_failures as f on f.source = c.source and f.batch_id = p.last_batch_id
order by c.kind, c.source
