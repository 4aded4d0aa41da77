-- ml-engineering memory table: datasheet GB (read as GiB) and TB/s -> GB/s.
with rows as (
    {{ latest_raw_records('gpu_spec_sheets', 'ml_engineering_memory_csv') }}
)

select
    record_key as source_key,
    {{ number_or_null("record ->> '$.\"Memory (GB)\"'") }} as memory_gib,
    {{ number_or_null("record ->> '$.\"Peak Bandwidth (TBps)\"'") }} * 1000 as memory_bandwidth_gbps,
    record ->> '$.Type' as memory_type,
    location as source_location,
    fetched_at
from rows
