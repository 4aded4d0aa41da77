"""Thin Dagster assets over the pure `sizing` library: describe models, build the grid, rank."""


from collections import Counter

import dagster as dg
import polars as pl

from pipelines.defs.sizing.sharding import ShardManifest, ShardStore, shard_of, worker_identity
from pipelines.defs.sizing.shards import GRID_TABLES, load_shards
from pipelines.resources import FitAtlasResource, WarehouseResource
from pipelines.versions import code_version, sizing_code_version, table_version, text_version
from pipelines.warehouse import WAREHOUSE_POOL, read_table, replace_table
from sizing.catalogue import size_catalogue
from sizing.constants import SIZING_BUDGET
from sizing.isolation import SizingInput, describe_isolated
from sizing.model_spec import specs_to_frames

SIZING_GROUP = "size"
# Code versions (pipelines.versions): this module and the whole sizing library, whose constants feed
# every estimate; the grid's steps also the shard files' code.
MODEL_SPECS_CODE_VERSION = sizing_code_version(__file__)
GRID_CODE_VERSION = sizing_code_version(
    __file__, "pipelines/defs/sizing/shards.py", "pipelines/defs/sizing/sharding.py"
)
INPUTS_CODE_VERSION = code_version(__file__, "pipelines/defs/sizing/sharding.py")
INPUTS_KEY = dg.AssetKey("sizing_inputs")
SHARD_KEY = dg.AssetKey("sizing_shard")
GRID_KEYS = tuple(dg.AssetKey(table) for table in GRID_TABLES)


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


GRID_INPUTS = [dg.AssetKey("models"), dg.AssetKey("gpus"), dg.AssetKey("model_specs"), dg.AssetKey("provider_prices")]
# what the shards size: the supported specs of published models, their KV groups, the GPUs, the prices
GRID_INPUT_QUERIES = {
    "models": "select * from sizing.model_specs where supported and model_id in (select model_id from marts.models) order by model_id",
    "kv_groups": "select * from sizing.model_kv_groups",
    "gpus": "select * from marts.gpus",
    "prices": "select * from marts.provider_prices",
}
GRID_INPUT_TABLES = ("sizing.model_specs", "sizing.model_kv_groups", "marts.models", "marts.gpus", "marts.provider_prices")


@dg.asset(
    key=INPUTS_KEY,
    deps=GRID_INPUTS,
    code_version=INPUTS_CODE_VERSION,
    group_name=SIZING_GROUP,
    kinds={"python", "duckdb", "parquet"},
    pool=WAREHOUSE_POOL,
    description="What every sizing shard sizes, exported from the warehouse to Parquet under "
    "data/sizing/inputs/ (the supported specs of published models, their KV groups, the GPUs, the API "
    "prices), so that shards never open the warehouse and can run on other machines "
    "(pipelines.defs.sizing.sharding).",
)
def sizing_inputs(fitatlas: FitAtlasResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        frames = {name: read_table(con, query) for name, query in GRID_INPUT_QUERIES.items()}
        version = table_version(con, *GRID_INPUT_TABLES)
    directory = ShardStore(fitatlas.settings.sizing_shards_dir).write_inputs(version.value, frames)
    return dg.MaterializeResult(
        data_version=version,
        metadata={
            "path": dg.MetadataValue.path(str(directory)),
            **{f"{name}_rows": frame.height for name, frame in frames.items()},
        },
    )


def _size_shard(store: ShardStore, key: str, inputs_version: str, frames: dict[str, pl.DataFrame]) -> ShardManifest:
    sized = size_catalogue(
        frames["models"], frames["kv_groups"], frames["gpus"], frames["prices"],
        sink=store.open_shard(key), shard=shard_of(key),
    )
    host, pid = worker_identity()
    manifest = ShardManifest(
        key=key, inputs_version=inputs_version, models=sized.models, signatures=sized.signatures,
        chunks=sized.chunks,
        rows={"fit_matrix": sized.fit_rows, "recommendations": sized.recommendation_rows,
              "model_gpu_speed": sized.speed_rows},
        seconds_fit=round(sized.seconds_fit, 3), seconds_recommend=round(sized.seconds_recommend, 3),
        host=host, pid=pid,
    )
    store.write_manifest(manifest)
    return manifest


def _shard_summary(manifest: ShardManifest) -> dict[str, object]:
    return {"models": manifest.models, "signatures": manifest.signatures, "rows": manifest.rows,
            "seconds": round(manifest.seconds_fit + manifest.seconds_recommend, 2),
            "worker": f"{manifest.host}:{manifest.pid}"}


def sizing_shard_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """`sizing_shard`, one Dagster partition per shard of `partitions` (pipelines.defs.sizing.sharding)."""

    @dg.asset(
        key=SHARD_KEY,
        deps=[INPUTS_KEY],
        # no backfill policy: a backfill runs each shard in a run of its own (Dagster's default), so
        # a cluster runs them side by side; the full pipeline's runs take every shard in one step
        partitions_def=partitions,
        code_version=GRID_CODE_VERSION,
        group_name=SIZING_GROUP,
        kinds={"python", "polars", "parquet"},
        description="The fit matrix, recommendations and speed table of one shard of the sizing "
        "signatures (sizing.catalogue.size_catalogue with shard=(i, n)), written to Parquet under "
        "data/sizing/shards/<shard>/. Reads only the exported inputs and writes only its own files, so "
        "shards run in parallel on Dask workers (FITATLAS_EXECUTOR=dask); a run over a range of shards "
        "sizes them one after another.",
    )
    def sizing_shard(context: dg.AssetExecutionContext, fitatlas: FitAtlasResource) -> dg.MaterializeResult:
        store = ShardStore(fitatlas.settings.sizing_shards_dir)
        inputs_version, frames = store.read_inputs()
        manifests = [_size_shard(store, key, inputs_version, frames) for key in context.partition_keys]
        for manifest in manifests:
            context.log.info(f"shard {manifest.key}: {_shard_summary(manifest)}")
        return dg.MaterializeResult(
            # the shard's rows are a function of the inputs and the code (its code version)
            data_version=text_version("sizing inputs", inputs_version),
            metadata={
                "inputs_version": inputs_version,
                "models": sum(m.models for m in manifests),
                "sizing_signatures": sum(m.signatures for m in manifests),
                "shards": dg.MetadataValue.json({m.key: _shard_summary(m) for m in manifests}),
            },
        )

    return sizing_shard


GRID_DESCRIPTIONS = {
    "fit_matrix": "Model x GPU x precision x GPU count x context x KV dtype: memory breakdown per GPU, headroom, "
    "fit class and concurrency (sizing.grid.fit_matrix).",
    "recommendations": "Ranked serving configurations per model with throughput, latency, TTFT and cost, compared "
    "with the cheapest API price (sizing.grid.recommendations).",
    "model_gpu_speed": "Per model x GPU x precision that fits: the fewest-GPU valid configuration with its max and "
    "SLO-bound decode tok/s, ITL, TTFT and cost (sizing.grid.rank_and_speeds, from the same evaluation as "
    "recommendations).",
}


def sizing_grid_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """`sizing_grid`: the three grid tables loaded from every shard of `partitions`."""
    keys = list(partitions.get_partition_keys())
    shard_dep = dg.AssetDep(SHARD_KEY, partition_mapping=dg.AllPartitionMapping())

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(table, deps=[shard_dep], code_version=GRID_CODE_VERSION,
                         description=GRID_DESCRIPTIONS[table], kinds={"python", "polars", "duckdb"})
            for table in GRID_TABLES
        ],
        name="sizing_grid",
        group_name=SIZING_GROUP,
        pool=WAREHOUSE_POOL,
    )
    def sizing_grid(context: dg.AssetExecutionContext, fitatlas: FitAtlasResource, warehouse: WarehouseResource):
        """The grid tables from every shard's Parquet files, once all of them were sized from the
        current inputs: each sizing signature once (fine-tunes and re-uploads share one), so no
        process ever held more than one chunk of rows."""
        store = ShardStore(fitatlas.settings.sizing_shards_dir)
        inputs_version, manifests = store.verify(keys)
        pruned = store.prune(keys)
        if pruned:
            context.log.info(f"removed the files of {len(pruned)} shard(s) of another shard count: {', '.join(pruned)}")
        with warehouse.get_connection() as con:
            for table in GRID_TABLES:
                load_shards(con, f"sizing.{table}", store.files(keys, table))
            fitting = con.execute("select count(*) filter (where fits), count(distinct gpu_id) from sizing.fit_matrix").fetchone()
            no_speed = con.execute("select count(*) filter (where decode_tok_s is null) from sizing.model_gpu_speed").fetchone()[0]
            versions = {table: table_version(con, f"sizing.{table}") for table in GRID_TABLES}
        common = {
            "models": sum(m.models for m in manifests),
            "sizing_signatures": sum(m.signatures for m in manifests),
            "chunks": sum(m.chunks for m in manifests),
            "shards": len(manifests),
            "workers": len({(m.host, m.pid) for m in manifests}),
            "inputs_version": inputs_version,
        }

        def rows(table: str) -> int:
            return sum(m.rows[table] for m in manifests)

        yield dg.MaterializeResult(
            asset_key="fit_matrix",
            data_version=versions["fit_matrix"],
            metadata={**common, "rows": rows("fit_matrix"), "fitting_rows": fitting[0], "gpus": fitting[1],
                      "shard_seconds": round(sum(m.seconds_fit for m in manifests), 2)},
        )
        yield dg.MaterializeResult(
            asset_key="recommendations",
            data_version=versions["recommendations"],
            metadata={**common, "rows": rows("recommendations"),
                      "shard_seconds": round(sum(m.seconds_recommend for m in manifests), 2)},
        )
        yield dg.MaterializeResult(
            asset_key="model_gpu_speed",
            data_version=versions["model_gpu_speed"],
            metadata={**common, "rows": rows("model_gpu_speed"), "rows_without_speed": no_speed},
        )

    return sizing_grid
