-- Published API prices: one row per (tracked model, provider as the source names it, price source,
-- tier), with the canonical provider, the reason a price is not used for comparisons (null = used),
-- its evidence, and the one canonical price per model x canonical provider.
with candidates as (
    select
        *,
        row_number() over (
            partition by model_id, provider_raw, source, tier
            order by
                (input_usd_per_mtok is null or output_usd_per_mtok is null),
                case mapping_rule when 'alias' then 1 when 'hf_repo_id' then 2 else 3 end,
                length(provider_model_id),
                provider_model_id
        ) as preference
    from {{ ref('int_provider_prices__mapped') }}
    where model_id is not null
        and coalesce(mode, 'chat') in ('chat', 'completion', 'responses')
        and (input_usd_per_mtok is not null or output_usd_per_mtok is not null)
),

priced as (
    select
        candidates.model_id,
        candidates.provider,
        candidates.provider_raw,
        candidates.source,
        candidates.tier,
        candidates.provider_model_id,
        cast(candidates.input_usd_per_mtok as double) as input_usd_per_mtok,
        cast(candidates.output_usd_per_mtok as double) as output_usd_per_mtok,
        cast(candidates.context_length as bigint) as context_length,
        candidates.mapping_rule,
        lines.model_line,
        lines.params_total,
        lines.params_active,
        candidates.source_note,
        candidates.observed_at,
        -- genai-prices marks prices it copied from another catalogue ("Imported from OpenRouter
        -- pricing; verify against ... when native pricing is published"): not the provider's quote.
        coalesce(regexp_matches(candidates.source_note, '^\s*imported from', 'i'), false) as is_unverified
    from candidates
    left join {{ ref('int_model_lines') }} as lines using (model_id)
    where candidates.preference = 1
),

-- Rows the size rules judge: standard-tier, complete, non-zero, verified prices of sized models.
sized as (
    select *
    from priced
    where tier = 'standard'
        and input_usd_per_mtok > 0 and output_usd_per_mtok > 0
        and not is_unverified
        and model_line is not null
),

-- Suspected placeholder: one canonical provider quoting the same (input, output) price for three
-- or more distinct sizes (total parameters) of one model line, from any source.
same_price_groups as (
    select
        provider, model_line, input_usd_per_mtok, output_usd_per_mtok,
        count(distinct params_total) as sizes
    from sized
    group by all
    having count(distinct params_total) >= 3
),

-- A bigger model priced at or below a smaller sibling of its line on both input and output,
-- strictly below on one, by the same provider in the same source (one price list). Bigger = at
-- least 1.5x the total parameters (one size step: 8B -> 14B -> 32B; a 32B dense model and a
-- 30B-A3B MoE are one size class) and at least as many active parameters, so a MoE with fewer
-- active parameters than a dense sibling is never "bigger" and may be cheaper.
below_sibling as (
    select
        bigger.model_id, bigger.provider_raw, bigger.source, bigger.tier,
        arg_min(
            format('{} at ${}/${} per 1M in/out is priced below its smaller sibling {} at ${}/${} ({}, {})',
                bigger.model_id, bigger.input_usd_per_mtok, bigger.output_usd_per_mtok,
                smaller.model_id, smaller.input_usd_per_mtok, smaller.output_usd_per_mtok,
                smaller.provider_raw, smaller.source),
            smaller.params_active
        ) as detail
    from sized as bigger
    inner join sized as smaller
        on smaller.provider = bigger.provider
        and smaller.model_line = bigger.model_line
        and smaller.source = bigger.source
        and bigger.params_total >= 1.5 * smaller.params_total
        and bigger.params_active >= smaller.params_active
        and bigger.input_usd_per_mtok <= smaller.input_usd_per_mtok
        and bigger.output_usd_per_mtok <= smaller.output_usd_per_mtok
        and (bigger.input_usd_per_mtok < smaller.input_usd_per_mtok or bigger.output_usd_per_mtok < smaller.output_usd_per_mtok)
    group by all
),

judged as (
    select
        priced.*,
        same_price_groups.sizes as same_price_sizes,
        below_sibling.detail as below_sibling_detail,
        case
            when priced.tier <> 'standard' then 'non_standard_tier'
            when priced.input_usd_per_mtok is null or priced.output_usd_per_mtok is null then 'missing_price'
            when priced.input_usd_per_mtok <= 0 or priced.output_usd_per_mtok <= 0 then 'zero_price'
            when priced.is_unverified then 'unverified_price'
            when same_price_groups.sizes is not null then 'same_price_across_sizes'
            when below_sibling.detail is not null then 'priced_below_smaller_sibling'
        end as excluded_reason
    from priced
    left join same_price_groups
        on same_price_groups.provider = priced.provider
        and same_price_groups.model_line = priced.model_line
        and same_price_groups.input_usd_per_mtok = priced.input_usd_per_mtok
        and same_price_groups.output_usd_per_mtok = priced.output_usd_per_mtok
        and priced.tier = 'standard'
        and not priced.is_unverified
    left join below_sibling using (model_id, provider_raw, source, tier)
),

-- Evidence rows: every source's rows (all tiers) for the provider and model line, by size; for
-- rules about one row, every row of the same model and provider.
evidence_row as (
    select
        *,
        {
            'model_id': model_id, 'params_total': params_total, 'params_active': params_active,
            'source': source, 'provider_raw': provider_raw, 'provider_model_id': provider_model_id,
            'tier': tier, 'input_usd_per_mtok': input_usd_per_mtok, 'output_usd_per_mtok': output_usd_per_mtok,
            'excluded_reason': excluded_reason, 'observed_at': observed_at
        } as row_struct
    from judged
),

line_evidence as (
    select provider, model_line, list(row_struct order by params_total, params_active, model_id, source, provider_raw, tier) as rows
    from evidence_row
    where model_line is not null
    group by all
),

model_evidence as (
    select provider, model_id, list(row_struct order by source, provider_raw, tier) as rows
    from evidence_row
    group by all
),

evidenced as (
    select
        judged.*,
        case when judged.excluded_reason is not null then cast(to_json({
            'rule': judged.excluded_reason,
            'detail': case judged.excluded_reason
                when 'non_standard_tier' then format('{} tier of {} in {}: not the standard rate', judged.tier, judged.provider_raw, judged.source)
                when 'missing_price' then 'the source gives only one of the input and output prices'
                when 'zero_price' then format('standard tier quoted at ${}/${} per 1M in/out', judged.input_usd_per_mtok, judged.output_usd_per_mtok)
                when 'unverified_price' then format('the source says: {}', judged.source_note)
                when 'same_price_across_sizes' then format('{} quotes ${}/${} per 1M in/out for {} sizes of {}',
                    judged.provider, judged.input_usd_per_mtok, judged.output_usd_per_mtok, judged.same_price_sizes, judged.model_line)
                when 'priced_below_smaller_sibling' then judged.below_sibling_detail
            end,
            'rows': case
                when judged.excluded_reason in ('same_price_across_sizes', 'priced_below_smaller_sibling') then line_evidence.rows
                else model_evidence.rows
            end
        }) as varchar) end as excluded_evidence
    from judged
    left join line_evidence using (provider, model_line)
    left join model_evidence using (provider, model_id)
)

select
    model_id,
    provider,
    provider_raw,
    source,
    tier,
    provider_model_id,
    input_usd_per_mtok,
    output_usd_per_mtok,
    context_length,
    mapping_rule,
    model_line,
    params_total,
    params_active,
    source_note,
    excluded_reason,
    excluded_evidence,
    -- The price shown for the model at this provider: a comparable row first, then the standard
    -- tier, then the provider's own catalogue (OpenRouter for openrouter), genai-prices (dated,
    -- per-provider prices with their pricing page) before LiteLLM's cost map, then the provider's
    -- own listing before a Hugging Face route to it, then the newest observation, then the most
    -- explicit mapping; ties broken by name so the choice is stable.
    row_number() over (
        partition by model_id, provider
        order by
            excluded_reason is not null,
            tier <> 'standard',
            case
                when source = 'openrouter_models_json' and provider = 'openrouter' then 0
                when source = 'genai_prices_json' then 1
                when source = 'litellm_prices_json' then 2
                else 3
            end,
            starts_with(lower(provider_raw), 'huggingface_'),
            observed_at desc,
            case mapping_rule when 'alias' then 1 when 'hf_repo_id' then 2 else 3 end,
            provider_raw, source, tier, provider_model_id
    ) = 1 as is_canonical,
    observed_at
from evidenced
