{#- Seed rows whose target slug is not canonical itself: a target the generic rule would rename, or
    that the seed maps elsewhere (a chain), or a raw name listed twice. Every canonical slug must be
    a fixed point of the provider rule, so the same company never ends up under two names. -#}
with slugs as (
    select lower(trim(raw_provider)) as raw_key, provider from {{ ref('provider_slugs') }}
)

select slugs.raw_key, slugs.provider, 'target is renamed by the generic rule' as problem
from slugs
where {{ provider_slug_generic('slugs.provider') }} <> slugs.provider
union all
select slugs.raw_key, slugs.provider, 'target is itself mapped to ' || chained.provider
from slugs
inner join slugs as chained on chained.raw_key = slugs.provider and chained.provider <> slugs.provider
union all
select raw_key, any_value(provider), 'raw name listed ' || count(*) || ' times'
from slugs
group by raw_key
having count(*) > 1
