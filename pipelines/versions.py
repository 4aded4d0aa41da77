"""Code versions and content-based data versions: what lets a re-run skip what has not changed.

Dagster decides whether an asset is stale from two things it records on every materialization: the
asset's `code_version` and the data version of each upstream asset at that time (its provenance).
`fitatlas run` (`pipelines.rerun`) materializes only assets whose code version or upstream data
versions moved since their last materialization, and everything downstream of them. Both halves are
defined here:

- **Code versions** (`code_version`) are SHA-256 digests of the files an asset's output depends on,
  besides its upstream assets: its own module, the library it calls (the whole `sizing` package:
  every estimate constant in `sizing.constants` feeds every number), and reference data read from
  disk (the calibration measurements, the expectation suites). Editing any of them gives the asset a
  new code version, so it and everything downstream re-run; nothing to bump by hand.
- **Data versions** are digests of what an asset wrote, never of when it wrote it: an unchanged
  source re-landed, or a table rebuilt to the same rows, keeps its version, and the assets below
  it stay fresh. `table_version` digests a warehouse relation's rows with DuckDB's `hash()` (order
  independent: the sum of the row hashes, with the row count and the column names and types) —
  about 0.1 s for the 560,000-row fit matrix, where the canonical SHA-256 of the batch content hash
  (`pipelines.batches`) takes 2.5 s. DuckDB's `hash()` is not promised stable across DuckDB
  releases, so the DuckDB version is part of every digest: an upgrade re-runs everything once.
- **The warehouse's identity** (`warehouse_id`) is a random id stored in the warehouse on first use
  and part of every raw data version: a deleted or replaced warehouse re-lands the same content
  under a new id, so nothing downstream is taken for fresh while its tables are gone.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

import sizing
from pipelines.settings import REPO_ROOT

SIZING_PACKAGE = Path(sizing.__file__).resolve().parent
PIPELINES_PACKAGE = Path(__file__).resolve().parent
_SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}


def _files(path: Path) -> Iterable[Path]:
    if path.is_file():
        yield path
        return
    for child in sorted(path.rglob("*")):
        relative = child.relative_to(path).parts
        if child.is_file() and not any(p in _SKIPPED_PARTS or p.startswith(".") for p in relative) and child.suffix != ".pyc":
            yield child


def _label(path: Path) -> str:
    """A path as the digest names it: relative to the repository (or package), so the same files in
    another checkout give the same code version."""
    for root in (REPO_ROOT, SIZING_PACKAGE.parent, PIPELINES_PACKAGE.parent):
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            continue
    return path.name


@functools.cache
def path_digest(path: Path) -> str:
    """SHA-256 over the relative name and bytes of a file, or of every file under a directory."""
    digest = hashlib.sha256()
    resolved = path.resolve()
    if not resolved.exists():
        digest.update(f"missing {_label(resolved)}\n".encode())
    for file in _files(resolved):
        content = file.read_bytes()
        digest.update(f"{_label(file)}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def code_version(*paths: Path | str, salt: str = "") -> str:
    """The code version of an asset whose output depends on `paths` (files or directories, relative
    to the repository root when not absolute): 16 hex digits of SHA-256 over their contents."""
    digest = hashlib.sha256(salt.encode())
    for path in paths:
        resolved = Path(path) if Path(path).is_absolute() else REPO_ROOT / path
        digest.update(f"{_label(resolved.resolve())}={path_digest(resolved)}\n".encode())
    return digest.hexdigest()[:16]


def sizing_code_version(*paths: Path | str) -> str:
    """Code version of an asset computed with the `sizing` library: its own files and the package."""
    return code_version(SIZING_PACKAGE, *paths)


# --- data versions ------------------------------------------------------------------------------

WAREHOUSE_ID_DDL = "create table if not exists meta.warehouse (warehouse_id varchar not null, created_at timestamp not null)"


def warehouse_id(con: duckdb.DuckDBPyConnection) -> str:
    """This warehouse file's identity, created on first use (module docstring)."""
    con.execute("create schema if not exists meta")
    con.execute(WAREHOUSE_ID_DDL)
    row = con.execute("select warehouse_id from meta.warehouse order by created_at limit 1").fetchone()
    if row:
        return row[0]
    new_id = uuid.uuid4().hex
    con.execute("insert into meta.warehouse values (?, ?)", [new_id, datetime.now(UTC).replace(tzinfo=None)])
    return new_id


def _quoted(relation: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in relation.split("."))


def relation_digest(con: duckdb.DuckDBPyConnection, relation: str, excluded: Iterable[str] = ()) -> str:
    """Content digest of a table or view `schema.name` (module docstring): its columns with their
    types, its row count and the sum of its rows' hashes; `excluded` columns are left out."""
    schema, name = relation.split(".")
    excluded = set(excluded)
    columns = [
        (column, data_type)
        for column, data_type in con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, name],
        ).fetchall()
        if column not in excluded
    ]
    if not columns:
        raise LookupError(f"{relation} is missing or has no columns: no data version")
    listed = ", ".join('"' + column.replace('"', '""') + '"' for column, _ in columns)
    count, total = con.execute(
        f"select count(*), coalesce(sum(hash(t)::hugeint), 0) from (select {listed} from {_quoted(relation)}) t"
    ).fetchone()
    header = ",".join(f"{column}:{data_type}" for column, data_type in columns)
    text = f"duckdb {duckdb.__version__}\n{relation}\n{header}\n{count}\n{total}"
    return hashlib.sha256(text.encode()).hexdigest()


def table_version(con: duckdb.DuckDBPyConnection, *relations: str, excluded: Iterable[str] = ()) -> dg.DataVersion:
    """The data version of an asset that wrote `relations`: their content digests combined."""
    parts = [relation_digest(con, relation, excluded) for relation in relations]
    return dg.DataVersion(hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24])


def text_version(*parts: object) -> dg.DataVersion:
    """A data version from values already known to describe the content (e.g. a content hash)."""
    return dg.DataVersion(hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:24])
