"""Published tables derived from the sizing results for readers: workload costs and what changed."""

import dagster as dg
import duckdb

from pipelines.batches import AUDITED_SOURCES
from pipelines.changes import PublishedTables, fits_from_fit_matrix
from pipelines.changes import model_changes as build_model_changes
from pipelines.defs.sizing.assets import SIZING_GROUP
from pipelines.resources import FitAtlasResource, WarehouseResource
from pipelines.settings import Settings
from pipelines.versions import sizing_code_version, table_version
from pipelines.warehouse import WAREHOUSE_POOL, read_table, replace_table
from sizing.workloads import workload_costs as build_workload_costs

# Both read this run's side as the batch will publish it (pipelines.batches.AUDITED_SOURCES); the
# changes follow pipelines.changes.
READER_TABLES_CODE_VERSION = sizing_code_version(__file__, "pipelines/batches.py", "pipelines/changes.py")


def _as_frozen(table: str) -> str:
    """The warehouse query `freeze_batch` publishes `table` from (AUDITED_SOURCES), run in the warehouse."""
    return AUDITED_SOURCES[table].replace("warehouse.", "")


# This run's side of each input, exactly as the batch will publish it.
_CURRENT = {
    "models": f"select model_id from ({_as_frozen('models')})",
    "provider_prices": _as_frozen("provider_prices"),
    "fits": f"select model_id, gpu_id, precision, gpu_count from ({_as_frozen('model_gpu_speed')})",
    "recommendations": _as_frozen("recommendations"),
}


@dg.asset(
    deps=[dg.AssetKey("recommendations"), dg.AssetKey("provider_prices")],
    code_version=READER_TABLES_CODE_VERSION,
    group_name=SIZING_GROUP,
    kinds={"python", "polars", "duckdb"},
    pool=WAREHOUSE_POOL,
    description="Cost per 1,000 requests and per month (at a stated volume) of short / medium / long "
    "requests, cheapest API vs the rank-1 self-hosted configuration (sizing.workloads).",
)
def workload_costs(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        recommendations = read_table(con, "select * from sizing.recommendations")
        prices = read_table(con, _CURRENT["provider_prices"])
        costs = build_workload_costs(recommendations, prices)
        replace_table(con, "sizing.workload_costs", costs)
        data_version = table_version(con, "sizing.workload_costs")
    return dg.MaterializeResult(
        data_version=data_version,
        metadata={
            "rows": costs.height,
            "models": costs["model_id"].n_unique(),
            "rows_per_option": dg.MetadataValue.json(dict(costs.group_by("option").len().iter_rows())),
        }
    )


def previous_publication(settings: Settings) -> tuple[PublishedTables | None, str | None]:
    """The current publication's tables (read-only), or (None, None) before the first publication.
    A publication without ``model_gpu_speed`` (published before it existed) gives its fits from
    ``fit_matrix``."""
    path = settings.published_path
    if not path.exists():
        return None, None
    # one read-only connection: the tables and the id are of the same publication even if a
    # publisher swaps the file meanwhile
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}
        last = con.execute(
            "select publication_id from publications order by published_at desc, publication_id desc limit 1"
        ).fetchone() if "publications" in tables else None
        if last is None:
            return None, None
        if "model_gpu_speed" in tables:
            fits = read_table(con, "select model_id, gpu_id, precision, gpu_count from model_gpu_speed")
        else:
            fits = fits_from_fit_matrix(read_table(con, "select * from fit_matrix"))
        previous = PublishedTables(
            models=read_table(con, "select model_id from models"),
            provider_prices=read_table(con, "select * from provider_prices"),
            fits=fits,
            recommendations=read_table(con, "select * from recommendations"),
        )
    finally:
        con.close()
    return previous, last[0]


@dg.asset(
    deps=[
        dg.AssetKey("models"),
        dg.AssetKey("provider_prices"),
        dg.AssetKey("recommendations"),
        dg.AssetKey("model_gpu_speed"),
    ],
    code_version=READER_TABLES_CODE_VERSION,
    group_name=SIZING_GROUP,
    kinds={"python", "polars", "duckdb"},
    pool=WAREHOUSE_POOL,
    description="What changed per model since the current publication: new/removed models, canonical "
    "prices, GPUs x precision newly (no longer) fitting, rank-1 estimates moved > 1 % (pipelines.changes). "
    "Left out of the batch content hash: it is derived from the content and the previous publication.",
)
def model_changes(warehouse: WarehouseResource, fitatlas: FitAtlasResource) -> dg.MaterializeResult:
    previous, previous_id = previous_publication(fitatlas.settings)
    with warehouse.get_connection() as con:
        current = PublishedTables(**{name: read_table(con, query) for name, query in _CURRENT.items()})
        changes = build_model_changes(current, previous, previous_id)
        replace_table(con, "sizing.model_changes", changes)
        data_version = table_version(con, "sizing.model_changes")
    return dg.MaterializeResult(
        data_version=data_version,
        metadata={
            "rows": changes.height,
            "previous_publication_id": previous_id or "none (first publication)",
            "changes_per_kind": dg.MetadataValue.json(dict(changes.group_by("change_kind").len().sort("change_kind").iter_rows())),
        }
    )
