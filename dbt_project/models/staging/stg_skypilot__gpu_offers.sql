-- SkyPilot catalog rows with GPUs, from the latest landing of each cloud's file; prices per instance-hour and per GPU-hour.
with rows as (
    {{ latest_raw_records('gpu_rental_prices', 'skypilot_catalog_csv') }}
),

latest_files as (
    select location, max(fetched_at) as fetched_at
    from rows
    group by location
),

offers as (
    select
        lower(regexp_extract(rows.location, '([^/\\]+?)(_[^/\\]*)?\.csv$', 1)) as cloud,
        nullif(record ->> '$.InstanceType', '') as instance_type,
        record ->> '$.AcceleratorName' as accelerator_name,
        {{ number_or_null("record ->> '$.AcceleratorCount'") }} as accelerator_count,
        {{ number_or_null("regexp_extract(record ->> '$.GpuInfo', 'TotalGpuMemoryInMiB'': ([0-9.]+)', 1)") }} as total_gpu_memory_mib,
        {{ number_or_null("regexp_extract(record ->> '$.GpuInfo', 'SizeInMiB'': ([0-9.]+)', 1)") }} as first_gpu_memory_mib,
        record ->> '$.Region' as region,
        nullif(record ->> '$.AvailabilityZone', '') as availability_zone,
        {{ number_or_null("record ->> '$.Price'") }} as price_usd_per_hour,
        {{ number_or_null("record ->> '$.SpotPrice'") }} as spot_price_usd_per_hour,
        rows.record_key,
        rows.location as source_location,
        rows.fetched_at
    from rows
    inner join latest_files using (location, fetched_at)
    where nullif(record ->> '$.AcceleratorName', '') is not null
)

select
    cloud,
    instance_type,
    accelerator_name,
    accelerator_count,
    round(coalesce(total_gpu_memory_mib, first_gpu_memory_mib) / accelerator_count / 1024) as gpu_memory_gib,
    region,
    availability_zone,
    price_usd_per_hour,
    spot_price_usd_per_hour,
    price_usd_per_hour / accelerator_count as usd_per_gpu_hour,
    nullif(spot_price_usd_per_hour, 0) / accelerator_count as spot_usd_per_gpu_hour,
    record_key,
    source_location,
    fetched_at
from offers
where accelerator_count > 0
