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
    -- Hub model info for the model page (live mode only; the bundled snapshot has none). Typed here,
    -- untrusted: a value of the wrong JSON type becomes null, never a guess.
    (record -> '$.model_info') is not null as has_model_info,
    try_cast(regexp_replace(record ->> '$.model_info.createdAt', 'Z$', '') as timestamp) as hub_created_at,
    case when json_type(record -> '$.model_info.license') = 'VARCHAR' then record ->> '$.model_info.license' end as hub_license,
    -- `gated` is false, or the gating mode ("auto", "manual"); true is accepted as gated too.
    case json_type(record -> '$.model_info.gated')
        when 'BOOLEAN' then (record ->> '$.model_info.gated') = 'true'
        when 'VARCHAR' then true
    end as hub_gated,
    case when json_type(record -> '$.model_info.tags') = 'ARRAY' then
        list_filter(from_json(record -> '$.model_info.tags', '["VARCHAR"]'), tag -> tag is not null and tag <> '')
    end as hub_tags,
    location as source_location,
    fetched_at as ingested_at
from ranked
where recency = 1
