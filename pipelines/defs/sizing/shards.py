"""Grid rows on their way to the warehouse: one Parquet file per chunk and table.

``sizing.catalogue.size_catalogue`` hands each chunk's rows to a sink; ``ParquetShards`` writes them
to ``<dir>/<table>/part-<n>.parquet`` (each table's directory is emptied first, so it holds exactly
this run's rows; nothing else under ``<dir>`` is touched), and ``load_shards`` swaps a warehouse
table to the rows of a list of such files in one transaction.
DuckDB reads the files itself, so no process holds a whole table in Python memory.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import polars as pl

from pipelines.warehouse import sql_string

#: the tables sizing.catalogue.size_catalogue hands to its sink
GRID_TABLES = ("fit_matrix", "recommendations", "model_gpu_speed")


class ParquetShards:
    """A ``size_catalogue`` sink writing each chunk's rows of ``tables`` under ``directory``."""

    def __init__(self, directory: Path, tables: Iterable[str]):
        self.directory = Path(directory)
        self.tables = tuple(tables)
        self.parts: dict[str, int] = dict.fromkeys(self.tables, 0)
        for table in self.tables:
            shutil.rmtree(self.directory / table, ignore_errors=True)
            (self.directory / table).mkdir(parents=True)

    def __call__(self, table: str, frame: pl.DataFrame) -> None:
        if table not in self.parts:
            raise KeyError(f"no shard directory for table {table!r} (expected one of {', '.join(self.tables)})")
        frame.write_parquet(self.directory / table / f"part-{self.parts[table]:05d}.parquet")
        self.parts[table] += 1

    def files(self, table: str) -> list[Path]:
        return sorted((self.directory / table).glob("part-*.parquet"))


def load_shards(con: duckdb.DuckDBPyConnection, qualified_name: str, files: Sequence[Path]) -> None:
    """Replace ``qualified_name`` with the rows of ``files`` (Parquet, one schema) in one transaction.
    ``size_catalogue`` writes every table at least once, empty with its columns, so a complete set of
    shards always has files; none is a caller's error."""
    if not files:
        raise ValueError(f"no Parquet files to load into {qualified_name}")
    schema = qualified_name.split(".")[0]
    con.execute(f"create schema if not exists {schema}")
    listing = "[" + ", ".join(sql_string(f) for f in files) + "]"
    con.execute("begin")
    try:
        con.execute(f"create or replace table {qualified_name} as select * from read_parquet({listing})")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
