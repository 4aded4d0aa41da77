-- llm-analysis GPU configs: already GB, GB/s and dense TFLOPS; only FP16 is given.
with configs as (
    {{ latest_raw_records('gpu_spec_sheets', 'llm_analysis_gpu_json') }}
)

select
    record_key as source_key,
    {{ number_or_null("record ->> '$.mem_per_GPU_in_GB'") }} as memory_gib,
    {{ number_or_null("record ->> '$.hbm_bandwidth_in_GB_per_sec'") }} as memory_bandwidth_gbps,
    {{ number_or_null("record ->> '$.peak_fp16_TFLOPS'") }} as fp16_tflops,
    {{ number_or_null("record ->> '$.peak_i8_TFLOPS'") }} as int8_tops,
    {{ number_or_null("record ->> '$.intra_node_bandwidth_in_GB_per_sec'") }} as interconnect_gbps,
    location as source_location,
    fetched_at
from configs
