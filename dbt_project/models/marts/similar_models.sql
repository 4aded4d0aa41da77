-- Published `similar_models`: for each published model, the 5 other published models most like it,
-- by the rule stated in `rule` (same text on every row).
{% set rule -%}
Candidates: the other published models. Ordered by: same family first; then same architecture (model_type) with params_total within 0.5x-2x of the model's; then more shared Hub tags (0 when tags are unknown); then closer size (smaller |ln(size_ratio)|); then model_id. The first 5 are kept.
{%- endset %}

with published as (
    select model_id, family, model_type, params_total from {{ ref('models') }}
),

tags as (
    select model_id, hub_tags from {{ ref('stg_hf__model_configs') }}
),

-- The cheapest comparable (standard tier, not excluded, canonical) output price of each model.
cheapest as (
    select model_id, min(output_usd_per_mtok) as cheapest_output_usd_per_mtok
    from {{ ref('provider_prices') }}
    where excluded_reason is null and is_canonical and output_usd_per_mtok > 0
    group by model_id
),

pairs as (
    select
        model.model_id,
        other.model_id as similar_model_id,
        coalesce(model.family = other.family, false) as same_family,
        coalesce(model.model_type = other.model_type, false) as same_architecture,
        coalesce(model.model_type = other.model_type, false)
            and other.params_total between 0.5 * model.params_total and 2 * model.params_total as same_architecture_in_size_band,
        other.params_total::double / model.params_total as size_ratio,
        coalesce(len(list_intersect(list_distinct(model_tags.hub_tags), list_distinct(other_tags.hub_tags))), 0)::integer as shared_tags
    from published as model
    inner join published as other on other.model_id <> model.model_id
    left join tags as model_tags on model_tags.model_id = model.model_id
    left join tags as other_tags on other_tags.model_id = other.model_id
    where model.params_total > 0 and other.params_total > 0
),

ranked as (
    select
        *,
        row_number() over (
            partition by model_id
            order by same_family desc, same_architecture_in_size_band desc, shared_tags desc, abs(ln(size_ratio)) asc, similar_model_id asc
        ) as rank
    from pairs
)

select
    ranked.model_id,
    ranked.similar_model_id,
    ranked.rank::integer as rank,
    ranked.same_family,
    ranked.same_architecture,
    ranked.size_ratio,
    ranked.shared_tags,
    cheapest.cheapest_output_usd_per_mtok,
    '{{ rule | replace("'", "''") }}' as rule
from ranked
left join cheapest on cheapest.model_id = ranked.similar_model_id
where ranked.rank <= 5
