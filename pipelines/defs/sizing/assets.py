"""Thin Dagster assets over the pure `sizing` library: describe models, build the grid, rank."""


from collections import Counter

import dagster as dg
import polars as pl

from pipelines.defs.sizing.shards import GRID_TABLES, ParquetShards, load_shards
from pipelines.resources import FitAtlasResource, WarehouseResource
from pipelines.versions import sizing_code_version, table_version
from pipelines.warehouse import WAREHOUSE_POOL, read_table, replace_table
from sizing.catalogue import size_catalogue
from sizing.constants import SIZING_BUDGET
from sizing.isolation import SizingInput, describe_isolated
from sizing.model_spec import specs_to_frames

SIZING_GROUP = "size"
# Code versions (pipelines.versions): this module and the whole sizing library, whose constants feed
# every estimate; the grid also its shard loader.
MODEL_SPECS_CODE_VERSION = sizing_code_version(__file__)
GRID_CODE_VERSION = sizing_code_version(__file__, "pipelines/defs/sizing/shards.py")


@dg.asset(
    deps=[dg.AssetKey(["staging", "stg_hf__model_configs"])],
    code_version=MODEL_SPECS_CODE_VERSION,
    group_name=SIZING_GROUP,
    kinds={"python", "polars", "duckdb"},
    pool=WAREHOUSE_POOL,
    description="Architecture accounting of every landed config (sizing.architecture.describe, each "
    "config validated against plausible bounds and sized in a worker process under a time and memory "
    "budget, sizing.isolation): "
    "parameters, KV-cache layout, weights per precision, the checkpoint precision with its evidence "
    "(quantization config, hf_quant_config.json, the Hub's safetensors dtype counts, repo name, config "
    "dtype) and any contradiction between them; unsupported configs keep their reason.",
)
def model_specs(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        configs = con.execute(
            "select model_id, config::varchar, quant_config::varchar, model_info_safetensors_parameters::varchar "
            "from staging.stg_hf__model_configs order by model_id"
        ).fetchall()
    # Configs are untrusted: each is validated and sized in a worker process under a per-model time
    # and memory budget (sizing.isolation), so one bad config is one unsupported model with its
    # reason, never a failed run. The warehouse connection is not held meanwhile.
    specs, isolation = describe_isolated([SizingInput(*row) for row in configs], SIZING_BUDGET)
    for model_id in isolation.timed_out + isolation.crashed:
        context.log.error(f"{model_id}: sizing stopped outside its budget; the model is unsupported")
    with warehouse.get_connection() as con:
        models, kv_groups = specs_to_frames(specs)
        replace_table(con, "sizing.model_specs", models)
        replace_table(con, "sizing.model_kv_groups", kv_groups)
        data_version = table_version(con, "sizing.model_specs", "sizing.model_kv_groups")
    unsupported = {spec.model_id: spec.reason for spec in specs if not spec.supported}
    for model_id, reason in unsupported.items():
        context.log.warning(f"{model_id}: unsupported, because {reason}")
    conflicts = {spec.model_id: spec.checkpoint_precision_conflict for spec in specs if spec.checkpoint_precision_conflict}
    for model_id, conflict in conflicts.items():
        context.log.warning(f"{model_id}: checkpoint precision contradicts the repo's files: {conflict}")
    sources = Counter(str(spec.checkpoint_precision_source) for spec in specs if spec.supported)
    return dg.MaterializeResult(
        data_version=data_version,
        metadata={
            "models": len(specs),
            "supported": len(specs) - len(unsupported),
            "unsupported": dg.MetadataValue.json(unsupported),
            "checkpoint_precision_sources": dg.MetadataValue.json(dict(sorted(sources.items()))),
            "checkpoint_precision_conflicts": dg.MetadataValue.json(conflicts),
            "sizing_isolation": dg.MetadataValue.json(
                {**isolation.as_metadata(), "timeout_s_per_model": SIZING_BUDGET.timeout_s,
                 "memory_mb_per_worker": SIZING_BUDGET.memory_mb}
            ),
        }
    )


def _grid_inputs(con) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    models = read_table(con, "select * from sizing.model_specs where supported and model_id in (select model_id from marts.models)")
    kv_groups = read_table(con, "select * from sizing.model_kv_groups")
    gpus = read_table(con, "select * from marts.gpus")
    return models, kv_groups, gpus


GRID_INPUTS = [dg.AssetKey("models"), dg.AssetKey("gpus"), dg.AssetKey("model_specs"), dg.AssetKey("provider_prices")]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "fit_matrix",
            deps=GRID_INPUTS,
            code_version=GRID_CODE_VERSION,
            description="Model x GPU x precision x GPU count x context x KV dtype: memory breakdown per GPU, "
            "headroom, fit class and concurrency (sizing.grid.fit_matrix).",
            kinds={"python", "polars", "duckdb"},
        ),
        dg.AssetSpec(
            "recommendations",
            deps=GRID_INPUTS,
            code_version=GRID_CODE_VERSION,
            description="Ranked serving configurations per model with throughput, latency, TTFT and cost, "
            "compared with the cheapest API price (sizing.grid.recommendations).",
            kinds={"python", "polars", "duckdb"},
        ),
        dg.AssetSpec(
            "model_gpu_speed",
            deps=GRID_INPUTS,
            code_version=GRID_CODE_VERSION,
            description="Per model x GPU x precision that fits: the fewest-GPU valid configuration with its "
            "max and SLO-bound decode tok/s, ITL, TTFT and cost (sizing.grid.rank_and_speeds, from the "
            "same evaluation as recommendations).",
            kinds={"python", "polars", "duckdb"},
        ),
    ],
    group_name=SIZING_GROUP,
    pool=WAREHOUSE_POOL,
)
def sizing_grid(fitatlas: FitAtlasResource, warehouse: WarehouseResource):
    """The three grid tables from one pass of ``sizing.catalogue.size_catalogue``: each sizing
    signature once (fine-tunes and re-uploads share one), in chunks whose rows go to Parquet files
    under ``data/sizing/<table>/`` and from there into the warehouse, so memory is one chunk's."""
    with warehouse.get_connection() as con:
        models, kv_groups, gpus = _grid_inputs(con)
        prices = read_table(con, "select * from marts.provider_prices")
    # sized without a connection held: the grid is the long part and needs no warehouse
    shards = ParquetShards(fitatlas.settings.sizing_shards_dir, GRID_TABLES)
    sized = size_catalogue(models, kv_groups, gpus, prices, sink=shards)
    with warehouse.get_connection() as con:
        for table in GRID_TABLES:
            load_shards(con, f"sizing.{table}", shards, table)
        fitting = con.execute("select count(*) filter (where fits), count(distinct gpu_id) from sizing.fit_matrix").fetchone()
        no_speed = con.execute("select count(*) filter (where decode_tok_s is null) from sizing.model_gpu_speed").fetchone()[0]
        versions = {table: table_version(con, f"sizing.{table}") for table in GRID_TABLES}
    common = {"models": sized.models, "sizing_signatures": sized.signatures, "chunks": sized.chunks}
    yield dg.MaterializeResult(
        asset_key="fit_matrix",
        data_version=versions["fit_matrix"],
        metadata={**common, "rows": sized.fit_rows, "fitting_rows": fitting[0], "gpus": fitting[1],
                  "seconds": round(sized.seconds_fit, 2)},
    )
    yield dg.MaterializeResult(
        asset_key="recommendations",
        data_version=versions["recommendations"],
        metadata={**common, "rows": sized.recommendation_rows, "seconds": round(sized.seconds_recommend, 2)},
    )
    yield dg.MaterializeResult(
        asset_key="model_gpu_speed",
        data_version=versions["model_gpu_speed"],
        metadata={**common, "rows": sized.speed_rows, "rows_without_speed": no_speed},
    )
