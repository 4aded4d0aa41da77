-- The latest landed config.json (plus quantization config and safetensors metadata) per model.
with ranked as (
    select
        record_key as model_id,
        record,
        location,
        content_sha256,
        fetched_at,
        row_number() over (partition by record_key order by fetched_at desc, batch_id desc) as recency
    from {{ source('raw', 'hf_model_configs') }}
)

select
    model_id,
    record -> '$.config' as config,
    record -> '$.quant_config' as quant_config,
    record -> '$.safetensors_metadata' as safetensors_metadata,
    -- Hub model info (live mode only): stored elements per safetensors dtype, e.g. {"BF16": n, "F8_E4M3": m}.
    record -> '$.model_info.safetensors_parameters' as model_info_safetensors_parameters,
    coalesce(record ->> '$.model_info.sha', 'sha256:' || content_sha256) as source_revision,
    location as source_location,
    fetched_at as ingested_at
from ranked
where recency = 1
