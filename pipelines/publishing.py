"""Atomic publication of the audited tables to the files BI reads.

BI never opens the working warehouse. Each publication is built whole in a new DuckDB file in the
archive (`data/publications/<publication_id>.duckdb`), then copied beside the published file and
swapped in with `os.replace`, so a reader sees the previous publication or the new one, never a
mix, even if the process dies midway. The Parquet export is written to its own versioned directory
and made current by swapping a symlink, which is atomic too.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from pipelines.batches import AUDITED_TABLES
from pipelines.settings import Settings

PUBLISHED_TABLES: tuple[str, ...] = (*AUDITED_TABLES, "publications")
PUBLICATIONS_DDL = """
create table if not exists publications (
    publication_id varchar not null,
    batch_id varchar not null,
    published_at timestamp not null,
    approved_by varchar not null,
    approval_kind varchar not null,
    checks_passed integer not null,
    checks_failed integer not null,
    content_sha256 varchar not null,
    row_counts json not null,
    rolled_back_from varchar
)
"""
ARCHIVE_KEEP = 20


@dataclass(frozen=True)
class Publication:
    publication_id: str
    batch_id: str
    path: Path
    row_counts: dict[str, int]
    content_sha256: str


def archive_dir(settings: Settings) -> Path:
    return settings.data_dir / "publications"


def publish_batch(
    settings: Settings,
    *,
    batch_file: Path,
    batch_id: str,
    content_sha256: str,
    approved_by: str,
    approval_kind: str,
    checks_passed: int,
    checks_failed: int,
) -> Publication:
    """Copy a frozen batch's audited tables into a new publication and make it current."""
    now = datetime.now(timezone.utc)
    publication_id = f"{now:%Y%m%dT%H%M%S%fZ}-{batch_id[:8]}"
    archive = archive_dir(settings)
    archive.mkdir(parents=True, exist_ok=True)
    building = archive / f".{publication_id}.duckdb.building"
    building.unlink(missing_ok=True)
    history = read_publications(settings.published_path)
    con = duckdb.connect(str(building))
    try:
        con.execute(f"attach '{batch_file}' as batch (read_only)")
        row_counts: dict[str, int] = {}
        for table in AUDITED_TABLES:
            con.execute(f"create table {table} as select * from batch.{table}")
            row_counts[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
        con.execute("detach batch")
        con.execute(PUBLICATIONS_DDL)
        _restore_history(con, history)
        con.execute(
            "insert into publications values (?, ?, ?, ?, ?, ?, ?, ?, ?, null)",
            [
                publication_id,
                batch_id,
                now.replace(tzinfo=None),
                approved_by,
                approval_kind,
                checks_passed,
                checks_failed,
                content_sha256,
                json.dumps(row_counts),
            ],
        )
        con.execute("checkpoint")
    finally:
        con.close()
    final = archive / f"{publication_id}.duckdb"
    os.replace(building, final)
    make_current(settings, final)
    _prune_archive(archive)
    return Publication(publication_id, batch_id, final, row_counts, content_sha256)


def make_current(settings: Settings, publication_file: Path) -> None:
    """Swap a whole publication in: Parquet first (versioned dir + symlink), then the DuckDB file."""
    _export_parquet(settings, publication_file)
    staged = settings.published_path.with_name(f".{settings.published_path.name}.staged")
    shutil.copyfile(publication_file, staged)
    with open(staged, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(staged, settings.published_path)


def rollback(settings: Settings, *, requested_by: str) -> str:
    """Make the publication before the current one current again, recording who asked."""
    history = read_publications(settings.published_path)
    if len(history) < 2:
        raise RuntimeError("nothing to roll back to: fewer than two publications recorded")
    current_id = history[-1]["publication_id"]
    target = history[-2]
    target_file = archive_dir(settings) / f"{target['publication_id']}.duckdb"
    if not target_file.exists():
        raise RuntimeError(f"publication {target['publication_id']} is no longer in the archive ({target_file})")
    now = datetime.now(timezone.utc)
    rolled = archive_dir(settings) / f".rollback-{now:%Y%m%dT%H%M%S%fZ}.duckdb.building"
    shutil.copyfile(target_file, rolled)
    con = duckdb.connect(str(rolled))
    try:
        con.execute("delete from publications")
        _restore_history(con, history)
        con.execute(
            "insert into publications values (?, ?, ?, ?, 'rollback', 0, 0, ?, ?, ?)",
            [
                f"{now:%Y%m%dT%H%M%S%fZ}-rollback",
                target["batch_id"],
                now.replace(tzinfo=None),
                requested_by,
                target["content_sha256"],
                json.dumps(target["row_counts"]),
                current_id,
            ],
        )
        con.execute("checkpoint")
    finally:
        con.close()
    final = archive_dir(settings) / f"{now:%Y%m%dT%H%M%S%fZ}-rollback.duckdb"
    os.replace(rolled, final)
    make_current(settings, final)
    return target["publication_id"]


def read_publications(published_path: Path) -> list[dict]:
    if not published_path.exists():
        return []
    con = duckdb.connect(str(published_path), read_only=True)
    try:
        rows = con.execute("select * from publications order by published_at").fetchall()
        columns = [c[0] for c in con.description]
    finally:
        con.close()
    history = [dict(zip(columns, row)) for row in rows]
    for row in history:
        if isinstance(row.get("row_counts"), str):
            row["row_counts"] = json.loads(row["row_counts"])
    return history


def _restore_history(con: duckdb.DuckDBPyConnection, history: list[dict]) -> None:
    for row in history:
        con.execute(
            "insert into publications values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                row["publication_id"],
                row["batch_id"],
                row["published_at"],
                row["approved_by"],
                row["approval_kind"],
                row["checks_passed"],
                row["checks_failed"],
                row["content_sha256"],
                json.dumps(row["row_counts"]),
                row.get("rolled_back_from"),
            ],
        )


def _export_parquet(settings: Settings, publication_file: Path) -> None:
    root = settings.published_parquet_dir
    root.mkdir(parents=True, exist_ok=True)
    version_dir = root / publication_file.stem
    if not version_dir.exists():
        building = root / f".{publication_file.stem}.building"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        con = duckdb.connect(str(publication_file), read_only=True)
        try:
            for table in PUBLISHED_TABLES:
                con.execute(f"copy {table} to '{building / (table + '.parquet')}' (format parquet)")
        finally:
            con.close()
        os.replace(building, version_dir)
    link = root / "current"
    staged_link = root / ".current.staged"
    staged_link.unlink(missing_ok=True)
    staged_link.symlink_to(version_dir.name)
    os.replace(staged_link, link)


def _prune_archive(archive: Path) -> None:
    publications = sorted(p for p in archive.glob("*.duckdb") if not p.name.startswith("."))
    for old in publications[:-ARCHIVE_KEEP]:
        old.unlink(missing_ok=True)
