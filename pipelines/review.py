"""The reviewer's side of the quality gate: the review queue, one batch's evidence, and decisions.

The CLI and the approval sensor both go through here, so the rules are enforced in one place:
only reviewers listed in the reviewers file (`reviewers.yaml`, or `FITATLAS_REVIEWERS`) may
decide, a decision needs a non-empty reason, only a held batch can be decided, and an approval is
bound to the content hash recomputed from the batch file at the moment of the decision.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import yaml

from pipelines.batches import batch_content_hash, batch_path
from pipelines.gate import decide
from pipelines.review_ledger import STATUSES, BatchRecord, LedgerConflict, decisions_for, get_batch, list_batches, record_decision
from pipelines.settings import REPO_ROOT, Settings

SAMPLE_ROWS_PER_EXPECTATION = 5
DECIDABLE_STATUS = "held"


class ReviewError(Exception):
    """A reviewer-facing refusal (unknown batch, unauthorised reviewer, wrong status, ...)."""


def reviewers_path() -> Path:
    return Path(os.environ.get("FITATLAS_REVIEWERS", REPO_ROOT / "reviewers.yaml"))


def load_reviewers(path: Path | None = None) -> dict[str, dict]:
    """{name: entry} from the reviewers file (`reviewers: [{name: ..., email: ...}, ...]`)."""
    path = path or reviewers_path()
    if not path.exists():
        raise ReviewError(f"reviewers file {path} not found (set FITATLAS_REVIEWERS or create reviewers.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("reviewers") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("name") for e in entries):
        raise ReviewError(f"reviewers file {path}: expected `reviewers:` as a list of entries with a `name`")
    return {str(entry["name"]): entry for entry in entries}


def authorised_reviewer(name: str | None) -> str:
    """The reviewer's name if the reviewers file lists it; ReviewError otherwise."""
    if not name or not name.strip():
        raise ReviewError("no reviewer given: pass --reviewer NAME or set FITATLAS_REVIEWER")
    name = name.strip()
    reviewers = load_reviewers()
    if name not in reviewers:
        raise ReviewError(f"{name!r} is not a reviewer in {reviewers_path()}; reviewers: {', '.join(sorted(reviewers))}")
    return name


def require_batch(settings: Settings, batch_id: str) -> BatchRecord:
    batch = get_batch(settings, batch_id)
    if batch is None:
        known = [b.batch_id for b in list_batches(settings)][-5:]
        hint = f"; latest batches: {', '.join(known)}" if known else "; the ledger has no batches yet"
        raise ReviewError(f"unknown batch id {batch_id!r}{hint}")
    return batch


def list_items(settings: Settings, statuses: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """One summary per batch, oldest first (held batches are the review queue)."""
    unknown = [s for s in statuses or () if s not in STATUSES]
    if unknown:
        raise ReviewError(f"unknown status {', '.join(unknown)}; statuses: {', '.join(STATUSES)}")
    return [
        {
            "batch_id": b.batch_id,
            "status": b.status,
            "created_at": b.created_at,
            "checks_passed": b.checks_passed,
            "checks_failed": b.checks_failed,
            "checks_errored": b.checks_errored,
            "failed_expectations": len(b.failed_checks),
            "publication_id": b.publication_id,
        }
        for b in list_batches(settings, statuses)
    ]


def failing_rows_sql(table: str, expectation: str) -> str:
    """The SQL, run on the batch file, that returns every failing row of one expectation."""
    escaped = expectation.replace("'", "''")
    return f"select row_data from failing_rows where table_name = '{table}' and expectation = '{escaped}'"


def _check_evidence(path: Path) -> list[dict[str, Any]]:
    """Every failed or errored expectation in the batch file, with why, count and a row sample."""
    if not path.exists():
        return []
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}
        if "check_results" not in tables:
            return []
        results = con.execute(
            """select table_name, expectation, status, unexpected_count, why, error from check_results
               where status <> 'passed' order by table_name, expectation"""
        ).fetchall()
        evidence = []
        for table, expectation, status, unexpected_count, why, error in results:
            sample = con.execute(
                "select row_data from failing_rows where table_name = ? and expectation = ? limit ?",
                [table, expectation, SAMPLE_ROWS_PER_EXPECTATION],
            ).fetchall() if "failing_rows" in tables else []
            evidence.append(
                {
                    "table": table,
                    "expectation": expectation,
                    "status": status,
                    "unexpected_count": unexpected_count,
                    "why": why,
                    "error": error,
                    "sample_rows": [json.loads(row[0]) for row in sample],
                    "all_rows_sql": failing_rows_sql(table, expectation),
                    "all_rows_query": f"duckdb -readonly {path} \"{failing_rows_sql(table, expectation)}\"",
                }
            )
        return evidence
    finally:
        con.close()


def show(settings: Settings, batch_id: str) -> dict[str, Any]:
    """Everything a reviewer needs to decide one batch."""
    batch = require_batch(settings, batch_id)
    path = batch_path(settings, batch_id)
    current_hash = batch_content_hash(path) if path.exists() else None
    gate = decide(settings, batch_id)
    return {
        "batch_id": batch.batch_id,
        "status": batch.status,
        "created_at": batch.created_at,
        "run_id": batch.run_id,
        "batch_file": str(path),
        "content_sha256": batch.content_sha256,
        "content_unchanged": current_hash == batch.content_sha256,
        "row_counts": batch.row_counts,
        "checks": {"passed": batch.checks_passed, "failed": batch.checks_failed, "errored": batch.checks_errored},
        "failed_expectations": _check_evidence(path),
        "decisions": decisions_for(settings, batch_id),
        "publication_id": batch.publication_id,
        "publishable": gate.allowed,
        "publishable_reason": gate.reason,
        "decidable": batch.status == DECIDABLE_STATUS,
    }


def _decide(settings: Settings, batch_id: str, decision: str, reviewer: str | None, reason: str | None) -> dict[str, Any]:
    name = authorised_reviewer(reviewer)
    if not reason or not reason.strip():
        raise ReviewError(f"a reason is required to {decision} a batch (--reason TEXT)")
    batch = require_batch(settings, batch_id)
    if batch.status != DECIDABLE_STATUS:
        raise ReviewError(f"batch {batch_id} is {batch.status}, not held: only held batches can be approved or rejected")
    path = batch_path(settings, batch_id)
    if not path.exists():
        raise ReviewError(f"batch {batch_id}'s file {path} is missing")
    content_sha256 = batch_content_hash(path)
    if decision == "approve" and content_sha256 != batch.content_sha256:
        raise ReviewError(
            f"batch {batch_id}'s file changed since it was frozen and audited (content hash "
            f"{content_sha256[:12]} != {batch.content_sha256[:12]}): it cannot be approved"
        )
    try:
        record_decision(
            settings,
            batch_id=batch_id,
            decision=decision,
            reviewer=name,
            reason=reason.strip(),
            content_sha256=content_sha256,
            failed_checks=batch.failed_checks,
        )
    except LedgerConflict as error:
        raise ReviewError(f"{error}: someone decided it first") from error
    return decisions_for(settings, batch_id)[-1]


def approve(settings: Settings, batch_id: str, *, reviewer: str | None, reason: str | None) -> dict[str, Any]:
    return _decide(settings, batch_id, "approve", reviewer, reason)


def reject(settings: Settings, batch_id: str, *, reviewer: str | None, reason: str | None) -> dict[str, Any]:
    return _decide(settings, batch_id, "reject", reviewer, reason)


def held_summary(settings: Settings) -> str | None:
    """"N batches await review: id (k failed), ..." or None when the queue is empty."""
    held = list_batches(settings, (DECIDABLE_STATUS,))
    if not held:
        return None
    items = ", ".join(f"{b.batch_id} ({(b.checks_failed or 0) + (b.checks_errored or 0)} failed)" for b in held)
    return f"{len(held)} batch{'es' if len(held) != 1 else ''} await{'s' if len(held) == 1 else ''} review: {items}"
