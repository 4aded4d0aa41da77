-- Every API price row from the three price sources, with the tracked model (HF repo id) it prices, if any.
with prices as (
    select
        'openrouter_models_json' as source, provider, provider_model_id, hugging_face_id as hf_repo_id_candidate,
        'chat' as mode, input_usd_per_mtok, output_usd_per_mtok, context_length, observed_at
    from {{ ref('stg_openrouter__models') }}
    union all
    select
        'litellm_prices_json', provider, provider_model_id, provider_model_path,
        mode, input_usd_per_mtok, output_usd_per_mtok, context_length, observed_at
    from {{ ref('stg_litellm__prices') }}
    union all
    select
        'genai_prices_json', provider, provider_model_id, provider_model_id,
        'chat', input_usd_per_mtok, output_usd_per_mtok, context_length, observed_at
    from {{ ref('stg_genai_prices__models') }}
),

keyed as (
    select
        *,
        lower(split_part(regexp_extract(provider_model_id, '[^/]+$'), ':', 1)) as name_key
    from prices
),

tracked_models as (
    select model_id, lower(model_id) as model_id_key, lower(split_part(model_id, '/', 2)) as name_key
    from {{ ref('stg_hf__model_configs') }}
    union all
    select renames.model_id, lower(renames.old_model_id), lower(split_part(renames.old_model_id, '/', 2))
    from {{ ref('hf_repo_renames') }} as renames
    inner join {{ ref('stg_hf__model_configs') }} as tracked using (model_id)
),

-- An alias counts only while its model is tracked and landed: a model held back by a failed fetch
-- leaves its prices unmapped (and visible to reviewers) instead of pointing at a missing model.
tracked_aliases as (
    select aliases.source, aliases.provider_model_id, aliases.model_id
    from {{ ref('provider_model_aliases') }} as aliases
    inner join {{ ref('stg_hf__model_configs') }} as tracked using (model_id)
),

unique_names as (
    select name_key, any_value(model_id) as model_id
    from tracked_models
    group by name_key
    having count(*) = 1
)

select
    keyed.source,
    keyed.provider,
    keyed.provider_model_id,
    keyed.mode,
    keyed.input_usd_per_mtok,
    keyed.output_usd_per_mtok,
    keyed.context_length,
    keyed.observed_at,
    keyed.name_key,
    coalesce(aliases.model_id, by_repo_id.model_id, by_name.model_id) as model_id,
    case
        when aliases.model_id is not null then 'alias'
        when by_repo_id.model_id is not null then 'hf_repo_id'
        when by_name.model_id is not null then 'unique_name'
    end as mapping_rule
from keyed
left join tracked_aliases as aliases
    on aliases.source = keyed.source and aliases.provider_model_id = keyed.provider_model_id
left join tracked_models as by_repo_id
    on by_repo_id.model_id_key = lower(keyed.hf_repo_id_candidate)
left join unique_names as by_name
    on by_name.name_key = keyed.name_key
