-- Published `model_metadata`: one row per published model (marts.models) with what the model page
-- states beside the sizes: vendor, Hub facts (release date, license, gating, tags), capabilities and
-- serving-engine support. Null means no source gives it.
with published as (
    select model_id, architecture, params_vision, max_context from {{ ref('models') }}
),

hub as (
    select model_id, has_model_info, hub_created_at, hub_license, hub_gated, hub_tags, ingested_at
    from {{ ref('stg_hf__model_configs') }}
),

-- OpenRouter's entries mapped to the model (the mapping provider_prices already made: alias, HF repo
-- id, unique name), with the capability lists they carry.
openrouter as (
    select
        prices.model_id,
        bool_or(list_contains(entries.supported_parameters, 'tools')) as tool_use,
        bool_or(list_contains(entries.supported_parameters, 'reasoning')
                or list_contains(entries.supported_parameters, 'include_reasoning')) as reasoning,
        bool_or(list_contains(entries.input_modalities, 'image')) as image_input,
        count(entries.supported_parameters) as entries_with_parameters,
        count(entries.input_modalities) as entries_with_modalities,
        string_agg(distinct entries.provider_model_id, ', ' order by entries.provider_model_id) as entry_ids
    from {{ ref('provider_prices') }} as prices
    inner join {{ ref('stg_openrouter__models') }} as entries using (provider_model_id)
    where prices.source = 'openrouter_models_json'
    group by prices.model_id
),

engines as (
    select
        architecture,
        max(case when engine = 'vllm' then supported end) as vllm,
        max(case when engine = 'sglang' then supported end) as sglang,
        max(case when engine = 'tensorrt_llm' then supported end) as tensorrt_llm
    from {{ ref('engine_support') }}
    group by architecture
),

-- Which list versions were read, whatever the architecture: an architecture absent from a list was
-- checked against that version and is "not listed".
engine_lists as (
    select
        string_agg(label || ' ' || engine_version, ', ' order by position) as engine_versions,
        string_agg(source, '; ' order by position) as engine_source
    from (
        select distinct
            engine, engine_version, source,
            case engine when 'vllm' then 'vLLM' when 'sglang' then 'SGLang' else 'TensorRT-LLM' end as label,
            case engine when 'vllm' then 1 when 'sglang' then 2 else 3 end as position
        from {{ ref('engine_support') }}
    )
)

select
    published.model_id,
    coalesce(vendors.vendor, split_part(published.model_id, '/', 1)) as vendor,
    split_part(published.model_id, '/', 1) as hub_org,
    cast(hub.hub_created_at as date) as release_date,
    hub.hub_license as license,
    hub.hub_gated as gated,
    hub.hub_tags as hub_tags,
    case
        when hub.has_model_info then 'hub model info ' || strftime(hub.ingested_at, '%Y-%m-%dT%H:%M:%SZ')
        else 'none: the bundled snapshot carries no Hub model info'
    end as metadata_source,
    -- Vision: the config has a vision tower, or OpenRouter takes image input; false only when the
    -- config says no tower and no OpenRouter entry says image.
    case
        when published.params_vision > 0 or openrouter.image_input then true
        when published.params_vision is not null then false
    end as is_vision,
    case when openrouter.entries_with_parameters > 0 then openrouter.tool_use end as tool_use,
    case when openrouter.entries_with_parameters > 0 then openrouter.reasoning end as reasoning,
    published.max_context,
    concat_ws('; ',
        case
            when published.params_vision > 0 then 'is_vision: config (vision tower, params_vision = ' || published.params_vision || ')'
            when openrouter.image_input then 'is_vision: OpenRouter input_modalities has image (' || openrouter.entry_ids || ')'
            when published.params_vision is not null then 'is_vision: config (no vision tower, params_vision = 0)'
        end,
        case
            when openrouter.entries_with_parameters > 0 then 'tool_use, reasoning: OpenRouter supported_parameters (' || openrouter.entry_ids || ')'
            when openrouter.model_id is not null then 'tool_use, reasoning: unknown (OpenRouter lists ' || openrouter.entry_ids || ' without supported_parameters)'
            else 'tool_use, reasoning: unknown (no OpenRouter entry for the model)'
        end,
        'max_context: config'
    ) as capability_sources,
    case engines.vllm when 'yes' then 'supported' when 'no' then 'not supported' end as vllm,
    case engines.sglang when 'yes' then 'supported' when 'no' then 'not supported' end as sglang,
    case engines.tensorrt_llm when 'yes' then 'supported' when 'no' then 'not supported' end as tensorrt_llm,
    engine_lists.engine_versions,
    engine_lists.engine_source
from published
inner join hub using (model_id)
left join {{ ref('model_vendors') }} as vendors on vendors.hub_org = split_part(published.model_id, '/', 1)
left join openrouter using (model_id)
left join engines on engines.architecture = published.architecture
cross join engine_lists
