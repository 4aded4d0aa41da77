-- Every API price row from the three price sources, one per (entry, tier), with the canonical
-- provider slug and the tracked model (HF repo id) it prices, if any.
with litellm as (
    select * from {{ ref('stg_litellm__prices') }}
),

prices as (
    select
        'openrouter_models_json' as source, provider as provider_raw, provider_model_id, hugging_face_id as hf_repo_id_candidate,
        'chat' as mode, tier, input_usd_per_mtok, output_usd_per_mtok, context_length, cast(null as varchar) as source_note, observed_at
    from {{ ref('stg_openrouter__models') }}
    union all
    -- LiteLLM: the entry's own rate, then one row per extra rate it lists (`*_cost_per_token_batches`,
    -- `_flex`, `_priority`), each a tier of the same entry.
    select
        'litellm_prices_json', provider, provider_model_id, provider_model_path,
        mode, tier, input_usd_per_mtok, output_usd_per_mtok, context_length, null, observed_at
    from litellm
    union all
    select
        'litellm_prices_json', provider, provider_model_id, provider_model_path,
        mode, 'batch', batch_input_usd_per_mtok, batch_output_usd_per_mtok, context_length, null, observed_at
    from litellm
    where batch_input_usd_per_mtok is not null or batch_output_usd_per_mtok is not null
    union all
    select
        'litellm_prices_json', provider, provider_model_id, provider_model_path,
        mode, 'flex', flex_input_usd_per_mtok, flex_output_usd_per_mtok, context_length, null, observed_at
    from litellm
    where flex_input_usd_per_mtok is not null or flex_output_usd_per_mtok is not null
    union all
    select
        'litellm_prices_json', provider, provider_model_id, provider_model_path,
        mode, 'priority', priority_input_usd_per_mtok, priority_output_usd_per_mtok, context_length, null, observed_at
    from litellm
    where priority_input_usd_per_mtok is not null or priority_output_usd_per_mtok is not null
    union all
    select
        'genai_prices_json', provider, provider_model_id, provider_model_id,
        'chat', tier, input_usd_per_mtok, output_usd_per_mtok, context_length, price_comments, observed_at
    from {{ ref('stg_genai_prices__models') }}
),

slugs as (
    select lower(trim(raw_provider)) as raw_key, provider from {{ ref('provider_slugs') }}
),

keyed as (
    select
        prices.*,
        -- Canonical provider: the seed's slug for the raw name, else the seed's slug for the name
        -- without routing decorations, else that name by the generic rule (macros/prices.sql).
        coalesce(by_raw.provider, by_base.provider, {{ provider_slug_generic('prices.provider_raw') }}) as provider,
        lower(split_part(regexp_extract(provider_model_id, '[^/]+$'), ':', 1)) as name_key
    from prices
    left join slugs as by_raw on by_raw.raw_key = lower(trim(prices.provider_raw))
    left join slugs as by_base on by_base.raw_key = {{ provider_slug_base('prices.provider_raw') }}
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
    keyed.provider_raw,
    keyed.provider_model_id,
    keyed.mode,
    keyed.tier,
    keyed.input_usd_per_mtok,
    keyed.output_usd_per_mtok,
    keyed.context_length,
    keyed.source_note,
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
