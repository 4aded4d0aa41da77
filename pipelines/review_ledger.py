"""The batch and review ledger: every batch, its check outcome, and every reviewer decision.

It is a small SQLite file (`data/review.sqlite`), not the DuckDB warehouse: reviewers decide from
the CLI while a run may be holding the warehouse's single-writer lock, and SQLite serialises short
writes from many processes safely. Nothing is ever deleted: rejected batches and every decision
(who, when, why, which checks failed, which content hash) stay for audit.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipelines.settings import Settings

SCHEMA = (
    """create table if not exists batches (
        batch_id text primary key,
        run_id text not null,
        created_at text not null,
        content_sha256 text not null,
        path text not null,
        row_counts text not null,
        checks_passed integer,
        checks_failed integer,
        checks_errored integer,
        failed_checks text,
        status text not null,
        publication_id text
    )""",
    """create table if not exists decisions (
        decision_id integer primary key autoincrement,
        batch_id text not null references batches(batch_id),
        decision text not null check (decision in ('approve', 'reject')),
        reviewer text not null,
        reason text not null,
        decided_at text not null,
        content_sha256 text not null,
        failed_checks text not null
    )""",
)

# pending: frozen, checks not finished; passed: every check passed; held: needs a reviewer;
# approved / rejected: decided; publishing: claimed by one publisher; published: made current;
# superseded: approved or passed, but a newer batch was published first, so it never will be.
STATUSES = ("pending", "passed", "held", "approved", "rejected", "publishing", "published", "superseded")
PUBLISHABLE_STATUSES = ("passed", "approved")


class LedgerConflict(RuntimeError):
    """The batch was not in the status a transition requires (another process moved it first)."""


@dataclass(frozen=True)
class BatchRecord:
    batch_id: str
    run_id: str
    created_at: str
    content_sha256: str
    path: str
    row_counts: dict[str, int]
    checks_passed: int | None
    checks_failed: int | None
    checks_errored: int | None
    failed_checks: list[dict]
    status: str
    publication_id: str | None
    seq: int = 0  # registration order (SQLite rowid): a larger seq is a newer batch


def ledger_path(settings: Settings) -> Path:
    return settings.data_dir / "review.sqlite"


@contextlib.contextmanager
def open_ledger(settings: Settings) -> Iterator[sqlite3.Connection]:
    path = ledger_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    con.execute("pragma journal_mode=wal")
    try:
        for statement in SCHEMA:
            con.execute(statement)
        yield con
    finally:
        con.close()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def register_batch(settings: Settings, *, batch_id: str, run_id: str, content_sha256: str, path: Path, row_counts: dict[str, int]) -> None:
    with open_ledger(settings) as con:
        con.execute(
            """insert into batches (batch_id, run_id, created_at, content_sha256, path, row_counts, status)
               values (?, ?, ?, ?, ?, ?, 'pending')
               on conflict (batch_id) do update set content_sha256 = excluded.content_sha256,
                   path = excluded.path, row_counts = excluded.row_counts, status = 'pending'""",
            [batch_id, run_id, _now(), content_sha256, str(path), json.dumps(row_counts)],
        )


def record_check_outcome(settings: Settings, *, batch_id: str, passed: int, failed: int, errored: int, failed_checks: list[dict], complete: bool) -> str:
    """Store the batch's check counts; once all suites have run, it is `passed` or `held`."""
    status = "pending" if not complete else ("passed" if failed == 0 and errored == 0 else "held")
    with open_ledger(settings) as con:
        con.execute(
            """update batches set checks_passed = ?, checks_failed = ?, checks_errored = ?, failed_checks = ?, status = ?
               where batch_id = ? and status in ('pending', 'passed', 'held')""",
            [passed, failed, errored, json.dumps(failed_checks), status, batch_id],
        )
    return status


def get_batch(settings: Settings, batch_id: str) -> BatchRecord | None:
    with open_ledger(settings) as con:
        cursor = con.execute("select rowid as seq, * from batches where batch_id = ?", [batch_id])
        columns = [c[0] for c in cursor.description]
        row = cursor.fetchone()
    return _to_record(dict(zip(columns, row))) if row else None


def list_batches(settings: Settings, statuses: tuple[str, ...] | None = None) -> list[BatchRecord]:
    with open_ledger(settings) as con:
        cursor = con.execute("select rowid as seq, * from batches order by rowid")
        columns = [c[0] for c in cursor.description]
        rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
    records = [_to_record(row) for row in rows]
    return [r for r in records if statuses is None or r.status in statuses]


def record_decision(settings: Settings, *, batch_id: str, decision: str, reviewer: str, reason: str, content_sha256: str, failed_checks: list[dict]) -> None:
    """Record a reviewer's decision on a held batch; raises LedgerConflict if it is no longer held.

    The status change and the decision row are one transaction, with the `held` status compared
    and set in it, so two reviewers deciding at once cannot both succeed.
    """
    new_status = {"approve": "approved", "reject": "rejected"}[decision]
    with open_ledger(settings) as con:
        con.execute("begin immediate")
        changed = con.execute(
            "update batches set status = ? where batch_id = ? and status = 'held'", [new_status, batch_id]
        ).rowcount
        if changed != 1:
            con.execute("rollback")
            raise LedgerConflict(f"batch {batch_id} is no longer held")
        con.execute(
            "insert into decisions (batch_id, decision, reviewer, reason, decided_at, content_sha256, failed_checks) values (?, ?, ?, ?, ?, ?, ?)",
            [batch_id, decision, reviewer, reason, _now(), content_sha256, json.dumps(failed_checks)],
        )
        con.execute("commit")


def decisions_for(settings: Settings, batch_id: str) -> list[dict]:
    with open_ledger(settings) as con:
        cursor = con.execute("select * from decisions where batch_id = ? order by decision_id", [batch_id])
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row)) | {"failed_checks": json.loads(row[columns.index("failed_checks")])} for row in cursor.fetchall()]


def claim_for_publication(settings: Settings, batch_id: str) -> None:
    """Compare-and-set passed/approved -> publishing: of several publishers of one batch, one wins.

    Raises LedgerConflict for the others (and for a batch that is not publishable at all).
    """
    with open_ledger(settings) as con:
        changed = con.execute(
            "update batches set status = 'publishing' where batch_id = ? and status in ('passed', 'approved')", [batch_id]
        ).rowcount
    if changed != 1:
        batch = get_batch(settings, batch_id)
        raise LedgerConflict(f"batch {batch_id} is {batch.status if batch else 'not in the ledger'}, not passed or approved")


def release_claim(settings: Settings, batch_id: str) -> None:
    """Undo a publication claim whose publication did not happen (its publisher failed or died)."""
    with open_ledger(settings) as con:
        con.execute(
            """update batches set status = case when exists (
                   select 1 from decisions d where d.batch_id = batches.batch_id and d.decision = 'approve')
               then 'approved' else 'passed' end
               where batch_id = ? and status = 'publishing'""",
            [batch_id],
        )


def mark_published(settings: Settings, *, batch_id: str, publication_id: str) -> None:
    with open_ledger(settings) as con:
        con.execute(
            "update batches set status = 'published', publication_id = ? where batch_id = ? and status in ('publishing', 'passed', 'approved', 'published')",
            [publication_id, batch_id],
        )


def mark_superseded(settings: Settings, batch_id: str) -> bool:
    """passed/approved -> superseded: a newer batch is published, this one must never be."""
    with open_ledger(settings) as con:
        return con.execute(
            "update batches set status = 'superseded' where batch_id = ? and status in ('passed', 'approved')", [batch_id]
        ).rowcount == 1


def _to_record(row: dict) -> BatchRecord:
    return BatchRecord(
        batch_id=row["batch_id"],
        run_id=row["run_id"],
        created_at=row["created_at"],
        content_sha256=row["content_sha256"],
        path=row["path"],
        row_counts=json.loads(row["row_counts"]),
        checks_passed=row["checks_passed"],
        checks_failed=row["checks_failed"],
        checks_errored=row["checks_errored"],
        failed_checks=json.loads(row["failed_checks"]) if row["failed_checks"] else [],
        status=row["status"],
        publication_id=row["publication_id"],
        seq=row.get("seq", 0),
    )
