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
# approved / rejected: decided; published: made current.
STATUSES = ("pending", "passed", "held", "approved", "rejected", "published")


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
        row = con.execute("select * from batches where batch_id = ?", [batch_id]).fetchone()
        columns = [c[0] for c in con.execute("select * from batches limit 0").description]
    return _to_record(dict(zip(columns, row))) if row else None


def list_batches(settings: Settings, statuses: tuple[str, ...] | None = None) -> list[BatchRecord]:
    with open_ledger(settings) as con:
        cursor = con.execute("select * from batches order by created_at, batch_id")
        columns = [c[0] for c in cursor.description]
        rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
    records = [_to_record(row) for row in rows]
    return [r for r in records if statuses is None or r.status in statuses]


def record_decision(settings: Settings, *, batch_id: str, decision: str, reviewer: str, reason: str, content_sha256: str, failed_checks: list[dict]) -> None:
    new_status = {"approve": "approved", "reject": "rejected"}[decision]
    with open_ledger(settings) as con:
        con.execute("begin immediate")
        con.execute(
            "insert into decisions (batch_id, decision, reviewer, reason, decided_at, content_sha256, failed_checks) values (?, ?, ?, ?, ?, ?, ?)",
            [batch_id, decision, reviewer, reason, _now(), content_sha256, json.dumps(failed_checks)],
        )
        con.execute("update batches set status = ? where batch_id = ?", [new_status, batch_id])
        con.execute("commit")


def decisions_for(settings: Settings, batch_id: str) -> list[dict]:
    with open_ledger(settings) as con:
        cursor = con.execute("select * from decisions where batch_id = ? order by decision_id", [batch_id])
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row)) | {"failed_checks": json.loads(row[columns.index("failed_checks")])} for row in cursor.fetchall()]


def mark_published(settings: Settings, *, batch_id: str, publication_id: str) -> None:
    with open_ledger(settings) as con:
        con.execute("update batches set status = 'published', publication_id = ? where batch_id = ?", [publication_id, batch_id])


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
    )
