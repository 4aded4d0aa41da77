-- ml-engineering TFLOPS comparison table: dense TFLOPS per dtype; 'X', '?', 'V' become null.
with rows as (
    {{ latest_raw_records('gpu_spec_sheets', 'ml_engineering_peak_tflops_csv') }}
)

select
    record_key as source_key,
    {{ number_or_null("record ->> '$.bf16'") }} as bf16_tflops,
    {{ number_or_null("record ->> '$.fp8'") }} as fp8_tflops,
    {{ number_or_null("record ->> '$.int8'") }} as int8_tops,
    {{ number_or_null("record ->> '$.fp4'") }} as fp4_tflops,
    record ->> '$.availability' as availability,
    location as source_location,
    fetched_at
from rows
