"""The working warehouse: one DuckDB file shared by the ingest, dbt and sizing assets.

DuckDB allows a single writing process per file, and nobody else may open it meanwhile. Two layers
keep it to one writer, whoever starts the run:

- every asset that writes here runs in the Dagster pool `warehouse` (limit 1, granularity `run`), so
  the daemon's run queue never starts two warehouse runs of the instance at once;
- every run that touches the pool holds `warehouse_lock` (an flock on
  `<data_dir>/.fitatlas-warehouse.lock`) for its whole duration: `fitatlas run` takes it around its
  in-process run, and runs the daemon launches take it in their run worker (the code location's
  executor, `pipelines.defs.executor`). A run that finds it held waits and says for whom. The
  kernel drops the lock when its holder dies, so a crashed run never wedges the next one.

Paths reach SQL as string literals quoted by `sql_string` (DuckDB cannot bind a parameter in
ATTACH or COPY ... TO).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
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


def sql_string(value: object) -> str:
    """`value` (a path, usually) as a SQL string literal: quotes doubled, so any name is safe."""
    text = str(value)
    if "\x00" in text:
        raise ValueError(f"a NUL byte cannot reach SQL: {text!r}")
    return "'" + text.replace("'", "''") + "'"


def warehouse_lock_path(data_dir: Path) -> Path:
    return data_dir / ".fitatlas-warehouse.lock"


def lock_holder(path: Path) -> str:
    """Who holds (or last held) the warehouse lock, as its holder wrote it; '' if unknown."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return ""
    return f"{info.get('holder', '?')} (pid {info.get('pid', '?')}, since {info.get('since', '?')})" if info else ""


@contextlib.contextmanager
def warehouse_lock(
    data_dir: Path,
    *,
    holder: str,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    poll_s: float = 0.2,
) -> Iterator[None]:
    """Be the one writer of `data_dir`'s warehouse for the block (module docstring).

    Waits (polling, so a run being cancelled is not stuck in the kernel) unless wait=False, which
    raises BlockingIOError at once; `on_wait(current holder)` is called once before waiting.
    """
    path = warehouse_lock_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        announced = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise
                if not announced and on_wait:
                    on_wait(lock_holder(path))
                announced = True
                time.sleep(poll_s)
        try:
            handle.seek(0)
            handle.truncate()
            since = datetime.now(UTC).isoformat(timespec="seconds")
            handle.write(json.dumps({"holder": holder, "pid": os.getpid(), "since": since}))
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


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
