"""Audited batches: each run's output frozen in its own DuckDB file, with a content hash.

The working warehouse is rewritten by every run, so what reviewers judge and what gets published
must be a frozen copy: `data/batches/<batch_id>.duckdb` holds the audited tables (`AUDITED_SOURCES`), and the
check results and failing rows of that batch. Its `content_sha256` covers the audited rows only, so
an approval can be bound to exactly the content the reviewer saw.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.settings import Settings

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
        con.execute(f"attach '{settings.warehouse_path}' as warehouse (read_only)")
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


def content_hash(con: duckdb.DuckDBPyConnection) -> str:
    """Order-independent hash of the audited rows (DuckDB's hash of each whole row as a struct, summed per table)."""
    digest = hashlib.sha256()
    for table in AUDITED_TABLES:
        count, row_hash = con.execute(
            f"select count(*), coalesce(sum(hash(t)::hugeint), 0)::varchar from {table} t"
        ).fetchone()
        digest.update(f"{table}:{count}:{row_hash};".encode())
    return digest.hexdigest()


def batch_content_hash(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return content_hash(con)
    finally:
        con.close()
