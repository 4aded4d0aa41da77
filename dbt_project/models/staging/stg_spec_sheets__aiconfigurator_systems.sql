-- aiconfigurator system specs: bytes, bytes/s and FLOP/s (dense tensor-core) -> GB, GB/s, TFLOPS.
with systems as (
    {{ latest_raw_records('gpu_spec_sheets', 'aiconfigurator_system_yaml') }}
)

select
    record_key as source_key,
    {{ number_or_null("record ->> '$.gpu.mem_capacity'") }} / 1e9 as memory_gb,
    {{ number_or_null("record ->> '$.gpu.mem_capacity'") }} / 1073741824 as memory_gib,
    {{ number_or_null("record ->> '$.gpu.mem_bw'") }} / 1e9 as memory_bandwidth_gbps,
    coalesce(
        {{ number_or_null("record ->> '$.gpu.bfloat16_tc_flops'") }},
        {{ number_or_null("record ->> '$.gpu.float16_tc_flops'") }}
    ) / 1e12 as bf16_tflops,
    {{ number_or_null("record ->> '$.gpu.fp8_tc_flops'") }} / 1e12 as fp8_tflops,
    {{ number_or_null("record ->> '$.gpu.int8_tc_flops'") }} / 1e12 as int8_tops,
    {{ number_or_null("record ->> '$.gpu.fp4_tc_flops'") }} / 1e12 as fp4_tflops,
    {{ number_or_null("record ->> '$.gpu.power'") }} as tdp_w,
    {{ number_or_null("record ->> '$.node.intra_node_bw'") }} / 1e9 as interconnect_gbps,
    cast({{ number_or_null("record ->> '$.node.num_gpus_per_node'") }} as integer) as gpus_per_node,
    location as source_location,
    fetched_at
from systems
