-- The cheapest on-demand offer per tracked GPU and cloud, with the cheapest spot price beside it.
with ranked as (
    select
        *,
        row_number() over (
            partition by gpu_id, cloud
            order by usd_per_gpu_hour, accelerator_count, instance_type, region, availability_zone
        ) as price_rank
    from {{ ref('int_gpu_offers__mapped') }}
    where usd_per_gpu_hour is not null
),

per_cloud as (
    select
        gpu_id,
        cloud,
        count(*) as offer_count,
        min(spot_usd_per_gpu_hour) as cheapest_spot_usd_per_gpu_hour
    from ranked
    group by gpu_id, cloud
)

select
    ranked.gpu_id,
    ranked.cloud,
    cast(ranked.usd_per_gpu_hour as double) as usd_per_gpu_hour,
    ranked.instance_type,
    cast(ranked.accelerator_count as double) as accelerator_count,
    ranked.region,
    cast(per_cloud.cheapest_spot_usd_per_gpu_hour as double) as cheapest_spot_usd_per_gpu_hour,
    per_cloud.offer_count,
    ranked.fetched_at as observed_at
from ranked
inner join per_cloud using (gpu_id, cloud)
where ranked.price_rank = 1
