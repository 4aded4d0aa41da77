-- Configs FitAtlas cannot account for exactly, with the reason: shown to reviewers, never guessed.
select
    spec.model_id,
    spec.model_type,
    spec.architecture,
    spec.reason,
    config.source_revision,
    config.ingested_at
from {{ source('sizing', 'model_specs') }} as spec
inner join {{ ref('stg_hf__model_configs') }} as config using (model_id)
where not spec.supported
