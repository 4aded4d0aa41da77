-- One row per tracked GPU: each spec from the highest-priority source that has it, plus the cheapest rental.
with prioritised as (
    select values.*, priority.priority
    from {{ ref('int_gpu_spec_values') }} as values
    inner join {{ ref('gpu_spec_source_priority') }} as priority using (metric, source)
),

chosen as (
    select
        gpu_id,
        metric,
        arg_min(value, priority) as value,
        arg_min(source, priority) as source
    from prioritised
    group by gpu_id, metric
),

specs as (
    select
        gpu_id,
        max(value) filter (where metric = 'memory_gib') as memory_gib,
        max(value) filter (where metric = 'memory_bandwidth_gbps') as memory_bandwidth_gbps,
        max(value) filter (where metric = 'bf16_tflops') as bf16_tflops,
        max(value) filter (where metric = 'fp8_tflops') as fp8_tflops,
        max(value) filter (where metric = 'int8_tops') as int8_tops,
        max(value) filter (where metric = 'fp4_tflops') as fp4_tflops,
        max(value) filter (where metric = 'interconnect_gbps') as interconnect_gbps,
        max(value) filter (where metric = 'tdp_w') as tdp_w,
        string_agg(distinct source, ', ' order by source) as spec_sources
    from chosen
    group by gpu_id
),

cheapest_rental as (
    select
        gpu_id,
        usd_per_gpu_hour,
        cloud || ':' || coalesce(instance_type, accelerator_count || 'x ' || gpu_id) || ' (' || region || ')' as hourly_usd_source
    from {{ ref('gpu_rental_prices') }}
    qualify row_number() over (partition by gpu_id order by usd_per_gpu_hour, cloud) = 1
)

select
    catalog.gpu_id,
    catalog.vendor,
    catalog.name,
    catalog.segment,
    cast(round({{ gib_to_gb('specs.memory_gib') }}, 3) as double) as memory_gb,
    cast(round(specs.memory_gib, 3) as double) as memory_gib,
    cast(specs.memory_bandwidth_gbps as double) as memory_bandwidth_gbps,
    cast(specs.bf16_tflops as double) as bf16_tflops,
    cast(specs.fp8_tflops as double) as fp8_tflops,
    cast(specs.int8_tops as double) as int8_tops,
    cast(specs.fp4_tflops as double) as fp4_tflops,
    cast(specs.interconnect_gbps as double) as interconnect_gbps,
    cast(specs.tdp_w as double) as tdp_w,
    topology.form_factor,
    topology.scale_up_fabric,
    cast(topology.scale_up_domain_gpus as integer) as scale_up_domain_gpus,
    cast(topology.scale_up_gbps as double) as scale_up_gbps,
    cast(topology.fast_link_group_gpus as integer) as fast_link_group_gpus,
    cast(topology.pcie_gbps as double) as pcie_gbps,
    topology.scale_out_fabric,
    cast(topology.scale_out_gbps as double) as scale_out_gbps,
    topology.source_document as topology_source,
    cast(cheapest_rental.usd_per_gpu_hour as double) as hourly_usd,
    cheapest_rental.hourly_usd_source,
    specs.spec_sources
from {{ ref('gpu_catalog') }} as catalog
left join specs using (gpu_id)
left join {{ ref('gpu_topology') }} as topology using (gpu_id)
left join cheapest_rental using (gpu_id)
