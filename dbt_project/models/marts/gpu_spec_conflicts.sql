-- Tracked GPU metrics on which sources disagree by more than 5 %: the values beside the one `gpus` published.
with spread as (
    select
        gpu_id,
        metric,
        min(value) as lowest,
        max(value) as highest
    from {{ ref('int_gpu_spec_values') }}
    group by gpu_id, metric
    having max(value) > min(value) * 1.05
)

select
    values.gpu_id,
    values.metric,
    values.source,
    cast(values.value as double) as value,
    cast(spread.highest / nullif(spread.lowest, 0) as double) as max_over_min
from {{ ref('int_gpu_spec_values') }} as values
inner join spread using (gpu_id, metric)
