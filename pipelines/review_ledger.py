"""The batch and review ledger: every batch, its check outcome, and every reviewer decision.

It is a small SQLite file (`data/review.sqlite`), not the DuckDB warehouse: reviewers decide from
the CLI while a run may be holding the warehouse's single-writer lock, and SQLite serialises short
writes from many processes safely. Nothing is ever deleted: rejected batches and every decision
(who, when, why, which checks failed, which content hash) stay for audit.

Each decision and rollback row stores the exact bytes its reviewer signed (`signed_message`) and
the SSH signature (`signature`); its other columns repeat the signed fields for reading. The
ledger is not trusted for who decided: anyone who can write the file can add a row, so the gate
verifies the signature of the row it acts on (`pipelines.reviewers.check_recorded`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
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
        failed_checks text not null,
        signed_message text,
        signature text
    )""",
    """create table if not exists rollbacks (
        rollback_id integer primary key autoincrement,
        from_publication_id text not null,
        to_publication_id text not null,
        batch_id text not null,
        content_sha256 text not null,
        reviewer text not null,
        reason text not null,
        decided_at text not null,
        signed_message text not null,
        signature text not null,
        publication_id text
    )""",
)
# Columns added to ledgers created before signed decisions (their old rows stay, unsigned).
MIGRATIONS = {"decisions": (("signed_message", "text"), ("signature", "text"))}

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
        for table, columns in MIGRATIONS.items():
            present = {row[1] for row in con.execute(f"pragma table_info({table})")}
            for column, column_type in columns:
                if column not in present:
                    with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
                        con.execute(f"alter table {table} add column {column} {column_type}")
        yield con
    finally:
        con.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    return _to_record(dict(zip(columns, row, strict=True))) if row else None


def list_batches(settings: Settings, statuses: tuple[str, ...] | None = None) -> list[BatchRecord]:
    with open_ledger(settings) as con:
        cursor = con.execute("select rowid as seq, * from batches order by rowid")
        columns = [c[0] for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    records = [_to_record(row) for row in rows]
    return [r for r in records if statuses is None or r.status in statuses]


def record_decision(
    settings: Settings,
    *,
    fields: dict,
    signed_message: bytes,
    signature: str,
    failed_checks: list[dict],
    from_status: str = "held",
    last_decision_id: int | None = None,
) -> int:
    """Record a reviewer's signed decision; raises LedgerConflict if the batch moved meanwhile.

    `fields` are the signed fields (batch_id, decision, reviewer, reason, decided_at,
    content_sha256), stored beside the signed bytes and the signature. The status change and the
    decision row are one transaction, with the expected status (normally `held`; `approved` or
    `rejected` when the decision on record does not verify) and the latest decision id compared and
    set in it, so two reviewers deciding at once cannot both succeed. Returns the decision id.
    """
    batch_id = fields["batch_id"]
    new_status = {"approve": "approved", "reject": "rejected"}[fields["decision"]]
    with open_ledger(settings) as con:
        con.execute("begin immediate")
        latest = con.execute("select max(decision_id) from decisions where batch_id = ?", [batch_id]).fetchone()[0]
        changed = 0
        if latest == last_decision_id:
            changed = con.execute(
                "update batches set status = ? where batch_id = ? and status = ?", [new_status, batch_id, from_status]
            ).rowcount
        if changed != 1:
            con.execute("rollback")
            raise LedgerConflict(f"batch {batch_id} is no longer {from_status}")
        cursor = con.execute(
            """insert into decisions (batch_id, decision, reviewer, reason, decided_at, content_sha256, failed_checks,
                                      signed_message, signature) values (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [batch_id, fields["decision"], fields["reviewer"], fields["reason"], fields["decided_at"],
             fields["content_sha256"], json.dumps(failed_checks), signed_message.decode(), signature],
        )
        con.execute("commit")
        return cursor.lastrowid


def record_rollback(settings: Settings, *, fields: dict, signed_message: bytes, signature: str) -> int:
    """Store a reviewer's signed rollback decision before it is carried out; returns its id."""
    with open_ledger(settings) as con:
        cursor = con.execute(
            """insert into rollbacks (from_publication_id, to_publication_id, batch_id, content_sha256, reviewer,
                                      reason, decided_at, signed_message, signature) values (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [fields["from_publication_id"], fields["to_publication_id"], fields["batch_id"], fields["content_sha256"],
             fields["reviewer"], fields["reason"], fields["decided_at"], signed_message.decode(), signature],
        )
        return cursor.lastrowid


def get_rollback(settings: Settings, rollback_id: int) -> dict | None:
    with open_ledger(settings) as con:
        cursor = con.execute("select * from rollbacks where rollback_id = ?", [rollback_id])
        columns = [c[0] for c in cursor.description]
        row = cursor.fetchone()
    return dict(zip(columns, row, strict=True)) | {"kind": "rollback", "decision": "rollback"} if row else None


def mark_rollback_done(settings: Settings, rollback_id: int, publication_id: str) -> None:
    with open_ledger(settings) as con:
        con.execute("update rollbacks set publication_id = ? where rollback_id = ?", [publication_id, rollback_id])


def decisions_for(settings: Settings, batch_id: str) -> list[dict]:
    with open_ledger(settings) as con:
        cursor = con.execute("select * from decisions where batch_id = ? order by decision_id", [batch_id])
        columns = [c[0] for c in cursor.description]
        return [
            dict(zip(columns, row, strict=True)) | {"kind": "batch_decision", "failed_checks": json.loads(row[columns.index("failed_checks")])}
            for row in cursor.fetchall()
        ]


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
