-- Each rental offer matched to the tracked GPU it rents, by the most specific rule of reference.gpu_rental_keys.
with candidates as (
    select
        offers.*,
        keys.gpu_id,
        row_number() over (
            partition by offers.record_key, offers.source_location
            order by (keys.gpu_memory_gib is not null) desc, length(keys.instance_type_pattern) desc
        ) as specificity_rank
    from {{ ref('stg_skypilot__gpu_offers') }} as offers
    inner join {{ ref('gpu_rental_keys') }} as keys
        on keys.cloud = offers.cloud
        and keys.accelerator_name = offers.accelerator_name
        and coalesce(offers.instance_type, '') like keys.instance_type_pattern
        and (keys.gpu_memory_gib is null or keys.gpu_memory_gib = offers.gpu_memory_gib)
)

select * exclude (specificity_rank)
from candidates
where specificity_rank = 1
