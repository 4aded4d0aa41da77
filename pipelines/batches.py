"""Audited batches: each run's output frozen in its own DuckDB file, with a content hash.

The working warehouse is rewritten by every run, so what reviewers judge and what gets published
must be a frozen copy: `data/batches/<batch_id>.duckdb` holds the audited tables (`AUDITED_SOURCES`), and the
check results and failing rows of that batch. Its `content_sha256` covers the audited rows only, so
an approval can be bound to exactly the content the reviewer saw.

The content hash (`content_hash`, format `CONTENT_HASH_FORMAT`) is SHA-256 over a canonical text
form of the rows, so it is the same for the same content whichever run, process or DuckDB version
computed it (DuckDB's own `hash()` promises none of that):

- every value is written in a fixed, typed form: integers in decimal; floats with
  `FLOAT_SIGNIFICANT_DIGITS` significant digits (`%.12g`: last-bit noise of a parallel float sum
  never changes the hash, any difference a reader could see does; nan, inf, -0 spelled one way);
  decimals exactly; text and JSON length-prefixed (no separator can be forged by a value);
  booleans, dates and timestamps (microseconds, UTC for time zones) in ISO form; null as `N`,
  distinct from every value. A column of another type is refused, never hashed loosely.
- each row is SHA-256'd, and a table's rows are hashed in the order of their row digests: a total
  order that needs no key declaration and does not depend on how a run happened to write them.
- each table contributes its name, its content columns with their type class, and its row count.
- columns that say when *this run* landed something are not content (`RUN_COLUMNS`): an unchanged
  rerun then has the same hash, and the gate publishes nothing new. `models.ingested_at` and
  `unsupported_models.ingested_at` (the time a run fetched the config) are excluded;
  `provider_prices.observed_at` is the time the source was observed, which a stale source keeps,
  so it is content (as is `excluded_evidence`, which quotes it). No audited table carries a batch
  or run id.
- tables derived from the content *and the previous publication* are not content
  (`HASH_EXCLUDED_TABLES`: `model_changes`). They are frozen, audited and published like the others,
  but hashing them would make every unchanged run differ from its predecessor: the first publication's
  `model_changes` lists every model as new, the unchanged rerun's lists nothing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.settings import Settings
from pipelines.warehouse import sql_string

# Audited table -> the warehouse query it is frozen from. Published prices are those of published
# models, so BI's joins are complete; prices of tracked models the sizing engine cannot account
# for yet stay in the warehouse (marts.provider_prices) beside marts.unsupported_models.
AUDITED_SOURCES: dict[str, str] = {
    "models": "select * from warehouse.marts.models",
    "gpus": "select * from warehouse.marts.gpus",
    "provider_prices": "select * from warehouse.marts.provider_prices "
    "where model_id in (select model_id from warehouse.marts.models)",
    "fit_matrix": "select * from warehouse.sizing.fit_matrix",
    "recommendations": "select * from warehouse.sizing.recommendations",
    "calibration": "select * from warehouse.sizing.calibration",
    "model_gpu_speed": "select * from warehouse.sizing.model_gpu_speed",
    "workload_costs": "select * from warehouse.sizing.workload_costs",
    "model_changes": "select * from warehouse.sizing.model_changes",
    "model_metadata": "select * from warehouse.marts.model_metadata",
    "similar_models": "select * from warehouse.marts.similar_models",
    "unsupported_models": "select * from warehouse.marts.unsupported_models",
    # Which source is stale since when. Per-run attempt times stay in the warehouse, so a run that
    # changed nothing publishes nothing.
    "source_freshness": "select * exclude (last_success_at, last_attempt_at, failed_attempts) "
    "from warehouse.marts.source_freshness",
}
AUDITED_TABLES: tuple[str, ...] = tuple(AUDITED_SOURCES)


@dataclass(frozen=True)
class Batch:
    batch_id: str
    path: Path
    content_sha256: str
    row_counts: dict[str, int]


def batches_dir(settings: Settings) -> Path:
    return settings.data_dir / "batches"


def batch_path(settings: Settings, batch_id: str) -> Path:
    return batches_dir(settings) / f"{batch_id}.duckdb"


def freeze_batch(settings: Settings, batch_id: str) -> Batch:
    """Copy the audited tables out of the warehouse into a new batch file (built aside, then renamed)."""
    target = batch_path(settings, batch_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(f".{target.name}.building")
    building.unlink(missing_ok=True)
    con = duckdb.connect(str(building))
    try:
        con.execute(f"attach {sql_string(settings.warehouse_path)} as warehouse (read_only)")
        row_counts = {}
        for table, query in AUDITED_SOURCES.items():
            con.execute(f"create table {table} as {query}")
            row_counts[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
        con.execute("detach warehouse")
        digest = content_hash(con)
        con.execute("checkpoint")
    finally:
        con.close()
    os.replace(building, target)
    return Batch(batch_id, target, digest, row_counts)


CONTENT_HASH_FORMAT = "fitatlas-content-sha256-v1"
FLOAT_SIGNIFICANT_DIGITS = 12
# Per audited table, the columns that describe the run that landed a row rather than its content.
RUN_COLUMNS: dict[str, frozenset[str]] = {
    "models": frozenset({"ingested_at"}),
    "unsupported_models": frozenset({"ingested_at"}),
}
# Audited tables left out of the content hash whole: derived from the content and the previous
# publication (the diff between them), so including one would make every unchanged run differ from its
# predecessor and publish again.
HASH_EXCLUDED_TABLES: frozenset[str] = frozenset({"model_changes"})
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
_TIMESTAMP_TYPES = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATETIME"}


class UnhashableColumn(TypeError):
    """An audited column whose type has no canonical form yet (add one to `_canonical_value`)."""


def _canonical_value(column: str, data_type: str) -> tuple[str, str]:
    """(type class, SQL expression) giving one column's canonical text; null becomes 'N'."""
    col = '"' + column.replace('"', '""') + '"'
    upper = data_type.upper()
    if upper in _INTEGER_TYPES:
        kind, text = "int", f"'i' || {col}::varchar"
    elif upper in ("FLOAT", "DOUBLE", "REAL"):
        kind = "float"
        text = (
            f"case when isnan({col}) then 'fnan' when {col} = 0 then 'f0' "
            f"else 'f' || printf('%.{FLOAT_SIGNIFICANT_DIGITS}g', {col}::double) end"
        )
    elif upper.startswith("DECIMAL"):
        kind, text = upper.lower(), f"'d' || {col}::varchar"
    elif upper in ("VARCHAR", "JSON") or upper.startswith("VARCHAR("):
        kind, text = "text", f"'s' || strlen({col}::varchar)::varchar || ':' || {col}::varchar"
    elif upper == "BOOLEAN":
        kind, text = "bool", f"case when {col} then 'b1' when not {col} then 'b0' end"
    elif upper == "DATE":
        kind, text = "date", f"'D' || strftime({col}, '%Y-%m-%d')"
    elif upper in _TIMESTAMP_TYPES:
        kind, text = "timestamp", f"'T' || strftime({col}::timestamp, '%Y-%m-%dT%H:%M:%S.%f')"
    elif upper == "TIMESTAMP WITH TIME ZONE":
        kind, text = "timestamptz", f"'Z' || strftime(timezone('UTC', {col}), '%Y-%m-%dT%H:%M:%S.%f')"
    elif upper == "VARCHAR[]":
        # a list of strings is ordered content; its JSON text is one canonical spelling
        kind, text = "text_list", f"'l' || to_json({col})::varchar"
    elif upper == "BLOB":
        kind, text = "blob", f"'x' || hex({col})"
    else:
        raise UnhashableColumn(f"column {column!r} has type {data_type}, which has no canonical form for the content hash")
    return kind, f"coalesce({text}, 'N')"


def table_content_digest(con: duckdb.DuckDBPyConnection, table: str, excluded: frozenset[str] = frozenset()) -> str:
    """One table's part of the content hash: name, content columns with type class, row count, rows."""
    columns = con.execute(
        "select column_name, data_type from duckdb_columns() "
        "where database_name = current_database() and schema_name = current_schema() and table_name = ? "
        "order by column_index",
        [table],
    ).fetchall()
    if not columns:
        raise LookupError(f"table {table} is missing: cannot hash the batch content")
    content = [(name, *_canonical_value(name, data_type)) for name, data_type in columns if name not in excluded]
    header = ",".join(f"{name}:{kind}" for name, kind, _ in content)
    row_text = "concat_ws(chr(9), " + ", ".join(expr for _, _, expr in content) + ")" if content else "''"
    count, rows_digest = con.execute(
        f"select count(*), sha256(coalesce(string_agg(d, chr(10) order by d), '')) "
        f'from (select sha256({row_text}) as d from "{table}")'
    ).fetchone()
    return f"{table}\t{header}\t{count}\t{rows_digest}"


def content_hash(con: duckdb.DuckDBPyConnection) -> str:
    """SHA-256 of the audited tables' canonical content (module docstring): stable across runs,
    processes and DuckDB versions; changes with any published value except the run's own times and
    the tables derived from the previous publication (`HASH_EXCLUDED_TABLES`)."""
    digest = hashlib.sha256(f"{CONTENT_HASH_FORMAT}\n".encode())
    for table in AUDITED_TABLES:
        if table in HASH_EXCLUDED_TABLES:
            continue
        digest.update((table_content_digest(con, table, RUN_COLUMNS.get(table, frozenset())) + "\n").encode())
    return digest.hexdigest()


def batch_content_hash(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return content_hash(con)
    finally:
        con.close()
