"""Atomic publication of the audited tables to the files BI reads.

BI never opens the working warehouse. Each publication is built whole in a new DuckDB file in the
archive (`data/publications/<publication_id>.duckdb`), then copied beside the published file and
swapped in with `os.replace`, so a reader sees the previous publication or the new one, never a
mix, even if the process dies midway. The Parquet export is written to its own versioned directory
and made current by swapping a symlink, which is atomic too; a reader of several Parquet files
resolves `current` once (realpath) to read one version.

The DuckDB file is the commit point: a publisher killed after the Parquet swap but before the
DuckDB swap leaves `current` pointing ahead, and the next publisher points it back at the version
`published.duckdb` records. Publishers (and rollbacks) take an exclusive flock on
`<data_dir>/.fitatlas-publish.lock`, which the kernel releases when the holder dies, and claim the
batch in the review ledger with a compare-and-set, so one batch is published at most once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from pipelines.batches import AUDITED_TABLES, content_hash
from pipelines.review_ledger import (
    LedgerConflict,
    claim_for_publication,
    get_batch,
    list_batches,
    mark_published,
    release_claim,
)
from pipelines.settings import Settings

if TYPE_CHECKING:
    from pipelines.site import SiteReport
from pipelines.warehouse import sql_string

PUBLISHED_TABLES: tuple[str, ...] = (*AUDITED_TABLES, "publications")
SITE_DIR = "site"  # beside the Parquet files of each publication version
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
    site: SiteReport | None = None  # None when the version directory (and its site) existed already


class PublicationRefused(RuntimeError):
    """This batch may not be published now (already published or claimed, superseded, changed)."""


def archive_dir(settings: Settings) -> Path:
    return settings.data_dir / "publications"


def publish_lock_path(settings: Settings) -> Path:
    return settings.data_dir / ".fitatlas-publish.lock"


@contextlib.contextmanager
def exclusive_lock(path: Path, *, wait: bool = True, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an flock on `path` for the block; the kernel releases it if the process dies.

    With wait=False a held lock raises BlockingIOError at once; otherwise `on_wait` is called
    once before blocking, so the caller can say what it is waiting for.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise
            if on_wait:
                on_wait()
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def current_batch_id(settings: Settings) -> str | None:
    """The batch BI sees now: the last publications row's (a rollback row names the restored batch)."""
    history = read_publications(settings.published_path)
    return history[-1]["batch_id"] if history else None


def newer_published_batch(settings: Settings, batch_seq: int) -> str | None:
    """The current publication's batch id when it was registered after the given batch, else None."""
    current = current_batch_id(settings)
    record = get_batch(settings, current) if current else None
    return current if record is not None and record.seq > batch_seq else None


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
    on_step: Callable[[str], None] | None = None,
) -> Publication:
    """Copy a frozen batch's audited tables into a new publication and make it current.

    Under the publish lock: no newer batch may be current, the batch is claimed in the ledger
    (passed/approved -> publishing), and the tables copied must hash to `content_sha256` (what
    was audited and approved). Raises PublicationRefused otherwise, before anything BI reads is
    touched.

    `on_step`, when given, is called with each step's name as the step completes ("claimed",
    "copied <table>", "built", "archived", "exported <table>", "site", "parquet version",
    "parquet current", "staged", "swapped"), so a crash test can kill the publisher at every step instead
    of at a guessed moment.
    """
    step = on_step or _no_step
    with exclusive_lock(publish_lock_path(settings)):
        recover_interrupted_publication(settings)
        record = get_batch(settings, batch_id)
        newer = newer_published_batch(settings, record.seq) if record else None
        if newer:
            raise PublicationRefused(f"batch {batch_id} is older than the published batch {newer}")
        try:
            claim_for_publication(settings, batch_id)
        except LedgerConflict as error:
            raise PublicationRefused(str(error)) from error
        step("claimed")
        try:
            published = _build_and_swap(
                settings,
                batch_file=batch_file,
                batch_id=batch_id,
                content_sha256=content_sha256,
                approved_by=approved_by,
                approval_kind=approval_kind,
                checks_passed=checks_passed,
                checks_failed=checks_failed,
                step=step,
            )
        except BaseException:
            release_claim(settings, batch_id)
            raise
        mark_published(settings, batch_id=batch_id, publication_id=published.publication_id)
        return published


def recover_interrupted_publication(settings: Settings) -> None:
    """Clean up after a publisher that died (we hold the lock, so no publisher is alive).

    A batch left `publishing` is published if `published.duckdb` names it (it died after the
    swap), else released; Parquet `current` is realigned with `published.duckdb`; half-built
    files are removed.
    """
    current = current_batch_id(settings)
    history = read_publications(settings.published_path)
    for record in list_batches(settings, ("publishing",)):
        if record.batch_id == current:
            mark_published(settings, batch_id=record.batch_id, publication_id=history[-1]["publication_id"])
        else:
            release_claim(settings, record.batch_id)
    if history:
        _point_parquet_current(settings, history[-1]["publication_id"])
    archive = archive_dir(settings)
    if archive.is_dir():
        for leftover in archive.glob(".*.building*"):
            leftover.unlink(missing_ok=True)
    settings.published_path.with_name(f".{settings.published_path.name}.staged").unlink(missing_ok=True)


def recover_if_abandoned(settings: Settings) -> bool:
    """Run the crash recovery if no publisher holds the lock now; False if one does (it is alive)."""
    try:
        with exclusive_lock(publish_lock_path(settings), wait=False):
            recover_interrupted_publication(settings)
            return True
    except BlockingIOError:
        return False


def _build_and_swap(
    settings: Settings,
    *,
    batch_file: Path,
    batch_id: str,
    content_sha256: str,
    approved_by: str,
    approval_kind: str,
    checks_passed: int,
    checks_failed: int,
    step: Callable[[str], None],
) -> Publication:
    now = datetime.now(UTC)
    publication_id = f"{now:%Y%m%dT%H%M%S%fZ}-{batch_id[:8]}"
    archive = archive_dir(settings)
    archive.mkdir(parents=True, exist_ok=True)
    building = archive / f".{publication_id}.duckdb.building"
    building.unlink(missing_ok=True)
    history = read_publications(settings.published_path)
    con = duckdb.connect(str(building))
    try:
        con.execute(f"attach {sql_string(batch_file)} as batch (read_only)")
        row_counts: dict[str, int] = {}
        for table in AUDITED_TABLES:
            con.execute(f"create table {table} as select * from batch.{table}")
            row_counts[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
            step(f"copied {table}")
        con.execute("detach batch")
        if content_hash(con) != content_sha256:
            raise PublicationRefused(f"batch {batch_id} changed: its tables no longer hash to {content_sha256}")
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
    step("built")
    final = archive / f"{publication_id}.duckdb"
    os.replace(building, final)
    step("archived")
    site = make_current(settings, final, step)
    _prune_archive(archive)
    return Publication(publication_id, batch_id, final, row_counts, content_sha256, site)


def make_current(
    settings: Settings, publication_file: Path, step: Callable[[str], None] | None = None
) -> SiteReport | None:
    """Swap a whole publication in: Parquet first (versioned dir + symlink), then the DuckDB file.
    Returns the report of the site built for it (None when its version directory existed)."""
    step = step or _no_step
    site = _export_parquet(settings, publication_file, step)
    step("parquet current")
    staged = settings.published_path.with_name(f".{settings.published_path.name}.staged")
    shutil.copyfile(publication_file, staged)
    with open(staged, "rb") as handle:
        os.fsync(handle.fileno())
    step("staged")
    os.replace(staged, settings.published_path)
    _fsync_dir(settings.published_path.parent)
    step("swapped")
    return site


def rollback(
    settings: Settings,
    *,
    requested_by: str,
    expected_from: str | None = None,
    expected_to: str | None = None,
) -> str:
    """Make the publication before the current one current again, recording who asked.

    Publications form a stack: each publication pushes, each rollback pops. So a second rollback
    goes one step further back rather than re-applying what the first one undid. Returns the
    restored publication's id. ``expected_from`` / ``expected_to`` (the publications a signed
    rollback decision names) are checked under the publish lock, so a publication landing between
    the decision and the restore makes the rollback refuse instead of restoring something unsigned.
    """
    with exclusive_lock(publish_lock_path(settings)):
        recover_interrupted_publication(settings)
        history = read_publications(settings.published_path)
        stack = effective_stack(history)
        if len(stack) < 2:
            raise PublicationRefused("nothing to roll back to: no earlier publication is in effect before the current one")
        current, target = stack[-1], stack[-2]
        for what, expected, actual in (("from", expected_from, current), ("to", expected_to, target)):
            if expected is not None and actual["publication_id"] != expected:
                raise PublicationRefused(
                    f"rollback refused: the signed decision rolls back {what} {expected}, but the publications "
                    f"changed since and it would now roll back {what} {actual['publication_id']}; sign a new decision"
                )
        target_file = archive_dir(settings) / f"{target['publication_id']}.duckdb"
        if not target_file.exists():
            raise PublicationRefused(f"publication {target['publication_id']} is no longer in the archive ({target_file})")
        now = datetime.now(UTC)
        rollback_id = f"{now:%Y%m%dT%H%M%S%fZ}-rollback"
        building = archive_dir(settings) / f".{rollback_id}.duckdb.building"
        shutil.copyfile(target_file, building)
        con = duckdb.connect(str(building))
        try:
            con.execute("delete from publications")
            _restore_history(con, history)
            con.execute(
                "insert into publications values (?, ?, ?, ?, 'rollback', ?, ?, ?, ?, ?)",
                [
                    rollback_id,
                    target["batch_id"],
                    now.replace(tzinfo=None),
                    requested_by,
                    target["checks_passed"],
                    target["checks_failed"],
                    target["content_sha256"],
                    json.dumps(target["row_counts"]),
                    history[-1]["publication_id"],
                ],
            )
            con.execute("checkpoint")
        finally:
            con.close()
        final = archive_dir(settings) / f"{rollback_id}.duckdb"
        os.replace(building, final)
        make_current(settings, final)
        return target["publication_id"]


def effective_stack(history: list[dict]) -> list[dict]:
    """The publications in effect, oldest first: a publication pushes, a rollback pops."""
    stack: list[dict] = []
    for row in history:
        if row["approval_kind"] == "rollback":
            stack.pop()
        else:
            stack.append(row)
    return stack


def read_publications(published_path: Path) -> list[dict]:
    if not published_path.exists():
        return []
    con = duckdb.connect(str(published_path), read_only=True)
    try:
        rows = con.execute("select * from publications order by published_at, publication_id").fetchall()
        columns = [c[0] for c in con.description]
    finally:
        con.close()
    history = [dict(zip(columns, row, strict=True)) for row in rows]
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


def _export_parquet(settings: Settings, publication_file: Path, step: Callable[[str], None]) -> SiteReport | None:
    root = settings.published_parquet_dir
    root.mkdir(parents=True, exist_ok=True)
    version_dir = root / publication_file.stem
    site = None
    if not version_dir.exists():
        building = root / f".{publication_file.stem}.building"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        con = duckdb.connect(str(publication_file), read_only=True)
        try:
            for table in PUBLISHED_TABLES:
                con.execute(f"copy {table} to {sql_string(building / (table + '.parquet'))} (format parquet)")
                step(f"exported {table}")
        finally:
            con.close()
        # The model pages are part of the publication: built from its tables alone, into the version
        # directory, so `current` switches tables and pages together and a rollback restores both.
        from pipelines.site import build_site

        site = build_site(publication_file, building / SITE_DIR, chart_cache=settings.chart_cache_dir)
        step("site")
        os.replace(building, version_dir)
        step("parquet version")
    _point_parquet_current(settings, version_dir.name)
    return site


def site_index(settings: Settings) -> Path:
    """The current publication's site entry page (what `fitatlas run` prints)."""
    return settings.published_parquet_dir / "current" / SITE_DIR / "index.html"


def _point_parquet_current(settings: Settings, version: str) -> None:
    """Swap the `current` symlink to `version` (when that version directory exists)."""
    root = settings.published_parquet_dir
    link = root / "current"
    if not (root / version).is_dir() or (link.is_symlink() and os.readlink(link) == version):
        return
    staged_link = root / ".current.staged"
    staged_link.unlink(missing_ok=True)
    staged_link.symlink_to(version)
    os.replace(staged_link, link)
    _fsync_dir(root)
    for leftover in root.glob(".*.building"):
        shutil.rmtree(leftover, ignore_errors=True)


def _no_step(name: str) -> None:
    pass


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune_archive(archive: Path) -> None:
    publications = sorted(p for p in archive.glob("*.duckdb") if not p.name.startswith("."))
    for old in publications[:-ARCHIVE_KEEP]:
        old.unlink(missing_ok=True)
