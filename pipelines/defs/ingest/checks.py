"""Warning checks that put ingest problems in front of reviewers (never blocking publication).

- `raw/<table>` `no_ingest_failures`: this run's fetch and parse failures for that raw table, from
  `raw.ingest_failures` (batch_id = the run id): location, record key and reason of each. A failed
  item is held back, the rest of the batch lands and may publish, so this is a WARN, not a gate.
- `unmapped_provider_prices` `provider_prices_all_mapped`: API price entries that map to no tracked
  model, with the tracked model each looks like a variant of (`suggested_model_id`), so a reviewer
  can add an alias (seed `provider_model_aliases`) or track the model. Entries with a suggestion
  come first in the metadata.

Both read the warehouse, so they run in the warehouse pool like the assets that write it.
"""

import dagster as dg
import duckdb

from pipelines.defs.ingest.assets import RAW_SOURCES, raw_asset_key
from pipelines.resources import WarehouseResource
from pipelines.warehouse import WAREHOUSE_POOL

SHOWN = 50
UNMAPPED_KEY = dg.AssetKey("unmapped_provider_prices")


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select 1 from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
        ).fetchone()
    )


def run_failures(con: duckdb.DuckDBPyConnection, raw_table: str, batch_id: str) -> list[dict[str, str | None]]:
    """This run's failures for `raw.<raw_table>`, in the order they were recorded."""
    if not _table_exists(con, "raw", "ingest_failures"):
        return []
    rows = con.execute(
        "select location, record_key, reason from raw.ingest_failures "
        "where batch_id = ? and raw_table = ? order by recorded_at, location, record_key",
        [batch_id, raw_table],
    ).fetchall()
    return [{"location": location, "record_key": key, "reason": reason} for location, key, reason in rows]


def build_failure_check(raw_table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_asset_key(raw_table),
        name="no_ingest_failures",
        blocking=False,
        pool=WAREHOUSE_POOL,
        description=f"No fetch or parse failures for raw.{raw_table} in this run (WARN: failed items are held "
        "back, the rest lands; the failures are listed in the metadata and in raw.ingest_failures).",
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as con:
            failures = run_failures(con, raw_table, context.run.run_id)
        items = sorted({f["record_key"] or f["location"] for f in failures})
        return dg.AssetCheckResult(
            passed=not failures,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                None
                if not failures
                else f"{len(failures)} fetch/parse failure(s) in this run, held back: {', '.join(items[:10])}"
                + (f" and {len(items) - 10} more" if len(items) > 10 else "")
            ),
            metadata={
                "batch_id": dg.MetadataValue.text(context.run.run_id),
                "failure_count": dg.MetadataValue.int(len(failures)),
                "failures": dg.MetadataValue.json(failures[:SHOWN]),
                "all_failures": dg.MetadataValue.text(
                    f"select * from raw.ingest_failures where batch_id = '{context.run.run_id}' and raw_table = '{raw_table}'"
                ),
            },
        )

    return _check


def unmapped_prices(con: duckdb.DuckDBPyConnection) -> list[dict[str, str | None]]:
    """Distinct unmapped (source, provider, provider_model_id), those with a suggestion first."""
    if not _table_exists(con, "marts", "unmapped_provider_prices"):
        return []
    rows = con.execute(
        """select source, provider, provider_model_id, suggested
           from (
               select source, provider, provider_model_id, any_value(suggested_model_id) as suggested
               from marts.unmapped_provider_prices
               group by source, provider, provider_model_id
           )
           order by suggested is null, suggested, source, provider_model_id"""
    ).fetchall()
    return [
        {"source": source, "provider": provider, "provider_model_id": model, "suggested_model_id": suggested}
        for source, provider, model, suggested in rows
    ]


@dg.asset_check(
    asset=UNMAPPED_KEY,
    name="provider_prices_all_mapped",
    blocking=False,
    pool=WAREHOUSE_POOL,
    description="Every API price entry maps to a tracked model (WARN: unmapped entries are listed for review, "
    "with the tracked model each looks like a variant of; add an alias or track the model).",
)
def unmapped_provider_prices_check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        entries = unmapped_prices(con)
    suggested = [e for e in entries if e["suggested_model_id"]]
    return dg.AssetCheckResult(
        passed=not entries,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if not entries
        else f"{len(entries)} provider model id(s) map to no tracked model ({len(suggested)} with a suggested model)",
        metadata={
            "unmapped_count": dg.MetadataValue.int(len(entries)),
            "with_suggestion": dg.MetadataValue.int(len(suggested)),
            "unmapped": dg.MetadataValue.json(entries[:SHOWN]),
            "all_unmapped": dg.MetadataValue.text("select * from marts.unmapped_provider_prices"),
        },
    )


ingest_checks = [*(build_failure_check(table) for table in RAW_SOURCES), unmapped_provider_prices_check]
