"""The reviewer's side of the quality gate: the review queue, one batch's evidence, and decisions.

The CLI and the approval sensor both go through here, so the rules are enforced in one place:
only reviewers listed in the reviewers file (`reviewers.yaml`, or `FITATLAS_REVIEWERS`) may
decide, and they prove it by signing the decision with the SSH key listed for them
(`pipelines.reviewers`); a decision needs a non-empty reason, only a held batch can be decided
(or one whose decision on record does not verify), and an approval is bound to the batch id and
the content hash recomputed from the batch file at the moment of the decision. The signature is
verified before the decision is recorded, and the gate verifies it again before publishing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from pipelines.batches import batch_content_hash, batch_path
from pipelines.gate import decide
from pipelines.review_ledger import (
    STATUSES,
    BatchRecord,
    LedgerConflict,
    decisions_for,
    get_batch,
    get_rollback,
    list_batches,
    mark_rollback_done,
    record_decision,
    record_rollback,
)
from pipelines.reviewers import (  # noqa: F401  (re-exported: the CLI and tests import them from here)
    ReviewError,
    Reviewers,
    authorised_reviewer,
    canonical_message,
    check_recorded,
    load_reviewers,
    sign,
    signing_key,
)
from pipelines.settings import Settings

SAMPLE_ROWS_PER_EXPECTATION = 5
DECIDABLE_STATUS = "held"


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


def _verified_decisions(settings: Settings, batch: BatchRecord) -> list[dict[str, Any]]:
    """The batch's decisions, each with `signature_valid` and, when not, `signature_problem`."""
    try:
        reviewers = load_reviewers(settings.reviewers_path)
    except ReviewError as error:
        return [d | {"signature_valid": False, "signature_problem": str(error)} for d in decisions_for(settings, batch.batch_id)]
    decisions = []
    for decision in decisions_for(settings, batch.batch_id):
        problem = decision_problem(settings, batch, decision, reviewers)
        decisions.append(decision | {"signature_valid": problem is None, "signature_problem": problem})
    return decisions


def show(settings: Settings, batch_id: str) -> dict[str, Any]:
    """Everything a reviewer needs to decide one batch."""
    batch = require_batch(settings, batch_id)
    path = batch_path(settings, batch_id)
    current_hash = batch_content_hash(path) if path.exists() else None
    gate = decide(settings, batch_id)
    decisions = _verified_decisions(settings, batch)
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
        "decisions": decisions,
        "publication_id": batch.publication_id,
        "publishable": gate.allowed,
        "publishable_reason": gate.reason,
        "decidable": batch.status == DECIDABLE_STATUS
        or (batch.status in ("approved", "rejected") and bool(decisions) and not decisions[-1]["signature_valid"]),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sign_and_verify(fields: dict[str, Any], key: str | Path | None, reviewers) -> tuple[bytes, str]:
    """Sign the decision with the reviewer's key and check it against the key listed for them."""
    key_path = signing_key(key)
    message = canonical_message(fields)
    signature = sign(message, key_path)
    row = {**fields, "signed_message": message.decode(), "signature": signature}
    problem = check_recorded(row, {}, reviewers)
    if problem:
        raise ReviewError(f"{fields['decision']} by {fields['reviewer']} refused, not recorded: {problem} (signed with {key_path})")
    return message, signature


def decision_problem(settings: Settings, batch: BatchRecord, decision: dict[str, Any], reviewers: Reviewers) -> str | None:
    """Why a recorded batch decision does not count (unsigned, altered, copied, wrong key), or None."""
    return check_recorded(decision, {"batch_id": batch.batch_id}, reviewers)


def _decide(settings: Settings, batch_id: str, decision: str, reviewer: str | None, reason: str | None, key: str | Path | None) -> dict[str, Any]:
    reviewers = load_reviewers(settings.reviewers_path)
    name = authorised_reviewer(reviewer, reviewers).name
    if not reason or not reason.strip():
        raise ReviewError(f"a reason is required to {decision} a batch (--reason TEXT)")
    batch = require_batch(settings, batch_id)
    history = decisions_for(settings, batch_id)
    last = history[-1] if history else None
    void = batch.status in ("approved", "rejected") and last is not None and decision_problem(settings, batch, last, reviewers)
    if batch.status != DECIDABLE_STATUS and not void:
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
    fields = {
        "kind": "batch_decision",
        "batch_id": batch_id,
        "content_sha256": content_sha256,
        "decision": decision,
        "reason": reason.strip(),
        "decided_at": _now(),
        "reviewer": name,
    }
    message, signature = _sign_and_verify(fields, key, reviewers)
    try:
        record_decision(
            settings,
            fields=fields,
            signed_message=message,
            signature=signature,
            failed_checks=batch.failed_checks,
            from_status=batch.status,
            last_decision_id=last["decision_id"] if last else None,
        )
    except LedgerConflict as error:
        raise ReviewError(f"{error}: someone decided it first") from error
    return decisions_for(settings, batch_id)[-1]


def approve(settings: Settings, batch_id: str, *, reviewer: str | None, reason: str | None, key: str | Path | None = None) -> dict[str, Any]:
    """Approve a held batch, signed with `key` (default FITATLAS_REVIEW_KEY)."""
    return _decide(settings, batch_id, "approve", reviewer, reason, key)


def reject(settings: Settings, batch_id: str, *, reviewer: str | None, reason: str | None, key: str | Path | None = None) -> dict[str, Any]:
    """Reject a held batch, signed with `key` (default FITATLAS_REVIEW_KEY)."""
    return _decide(settings, batch_id, "reject", reviewer, reason, key)


def rollback(settings: Settings, *, reviewer: str | None, reason: str | None, key: str | Path | None = None) -> dict[str, Any]:
    """Restore the publication before the current one, on a reviewer's signed rollback decision.

    The decision names the publication being undone and the one restored (with its batch id and
    content hash); it is verified when recorded and again, from the ledger, just before the
    rollback, which must still be from and to those publications.
    """
    from pipelines.publishing import PublicationRefused, effective_stack, read_publications
    from pipelines.publishing import rollback as restore_previous

    reviewers = load_reviewers(settings.reviewers_path)
    name = authorised_reviewer(reviewer, reviewers).name
    if not reason or not reason.strip():
        raise ReviewError("a reason is required to roll back a publication (--reason TEXT)")
    stack = effective_stack(read_publications(settings.published_path))
    if len(stack) < 2:
        raise PublicationRefused("nothing to roll back to: no earlier publication is in effect before the current one")
    current, target = stack[-1], stack[-2]
    fields = {
        "kind": "rollback",
        "batch_id": target["batch_id"],
        "content_sha256": target["content_sha256"],
        "decision": "rollback",
        "reason": reason.strip(),
        "decided_at": _now(),
        "reviewer": name,
        "from_publication_id": current["publication_id"],
        "to_publication_id": target["publication_id"],
    }
    message, signature = _sign_and_verify(fields, key, reviewers)
    rollback_id = record_rollback(settings, fields=fields, signed_message=message, signature=signature)

    recorded = get_rollback(settings, rollback_id)
    stack = effective_stack(read_publications(settings.published_path))
    expected = {
        "from_publication_id": stack[-1]["publication_id"] if stack else None,
        "to_publication_id": stack[-2]["publication_id"] if len(stack) > 1 else None,
    }
    problem = check_recorded(recorded, expected, reviewers)
    if problem:
        raise PublicationRefused(f"rollback refused: {problem}")
    restored = restore_previous(
        settings,
        requested_by=name,
        expected_from=recorded["from_publication_id"],
        expected_to=recorded["to_publication_id"],
    )
    history = read_publications(settings.published_path)
    mark_rollback_done(settings, rollback_id, history[-1]["publication_id"])
    return {**recorded, "restored_publication_id": restored, "publication_id": history[-1]["publication_id"]}


def held_summary(settings: Settings) -> str | None:
    """"N batches await review: id (k failed), ..." or None when the queue is empty."""
    held = list_batches(settings, (DECIDABLE_STATUS,))
    if not held:
        return None
    items = ", ".join(f"{b.batch_id} ({(b.checks_failed or 0) + (b.checks_errored or 0)} failed)" for b in held)
    return f"{len(held)} batch{'es' if len(held) != 1 else ''} await{'s' if len(held) == 1 else ''} review: {items}"
