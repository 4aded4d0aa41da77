-- Model line and size of every published model, for the price plausibility rules of provider_prices.
-- Sizes come from sizing.model_specs through the `models` mart, so the rules judge exactly the
-- models whose prices are published (and the blocking suite re-derives them on the same rows).
select
    model_id,
    {{ model_line('model_id') }} as model_line,
    params_total,
    params_active
from {{ ref('models') }}
where params_total > 0 and params_active > 0
