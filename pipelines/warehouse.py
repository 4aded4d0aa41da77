"""The working warehouse: one DuckDB file shared by the ingest, dbt and sizing assets.

DuckDB allows a single writing process per file, and nobody else may open it meanwhile, so every
asset that writes here runs in the `warehouse` pool (limit 1) and connections are short-lived.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl

WAREHOUSE_POOL = "warehouse"

RAW_TABLE_DDL = """
create table if not exists raw.{table} (
    batch_id varchar not null,
    source varchar not null,
    location varchar not null,
    fetched_at timestamp not null,
    content_sha256 varchar not null,
    content_bytes bigint not null,
    record_key varchar not null,
    record json not null
)
"""


@contextlib.contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def ensure_raw_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    con.execute("create schema if not exists raw")
    con.execute(RAW_TABLE_DDL.format(table=table))


def replace_table(con: duckdb.DuckDBPyConnection, qualified_name: str, frame: pl.DataFrame) -> None:
    """Swap a whole derived table in one transaction: readers see the old rows or the new ones."""
    schema = qualified_name.split(".")[0]
    con.execute(f"create schema if not exists {schema}")
    con.register("_frame", frame.to_arrow())
    try:
        con.execute("begin")
        con.execute(f"create or replace table {qualified_name} as select * from _frame")
        con.execute("commit")
    finally:
        con.unregister("_frame")


def read_table(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame:
    return con.sql(query).pl()
