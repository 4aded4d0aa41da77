"""The publication gate: may this batch reach BI, and on whose authority?

A batch publishes when every blocking check passed (approval `auto`), or when a listed reviewer
approved it with a signature by the SSH key the reviewers file lists for them, for this batch id
and content hash, and its content is still exactly what they approved (approval `reviewer`). The
signature is verified here, each time, from the ledger row: a row written by hand, altered after
signing, copied from another batch, unsigned, or signed by a key not listed for that name does
not count, and the refusal says which. Rejected
batches, batches already published (or being published), batches older than the one BI sees now
(superseded), and batches whose content changed after freezing or approval never do.
`publishing.publish_batch` re-checks claim, order and content under its lock, so a decision that
goes stale between `decide` and publication still cannot publish.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from pipelines.batches import batch_content_hash, batch_path
from pipelines.publishing import (
    Publication,
    PublicationRefused,
    newer_published_batch,
    publish_batch,
    read_publications,
    recover_if_abandoned,
)
from pipelines.review_ledger import BatchRecord, decisions_for, get_batch
from pipelines.reviewers import ReviewError, check_recorded, load_reviewers
from pipelines.settings import Settings

AUTO_APPROVER = "fitatlas:auto"


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reason: str
    approval_kind: str | None = None
    approved_by: str | None = None
    batch: BatchRecord | None = None


def decide(settings: Settings, batch_id: str) -> GateDecision:
    batch = get_batch(settings, batch_id)
    if batch is None:
        return GateDecision(False, f"batch {batch_id} is not in the ledger")
    if batch.status == "publishing" and recover_if_abandoned(settings):
        batch = get_batch(settings, batch_id)
    if batch.status == "published":
        return GateDecision(False, f"batch {batch_id} is already published ({batch.publication_id})", batch=batch)
    if batch.status == "publishing":
        return GateDecision(False, f"batch {batch_id} is being published by another process", batch=batch)
    if batch.status == "rejected":
        return GateDecision(False, f"batch {batch_id} was rejected", batch=batch)
    if batch.status == "superseded":
        return GateDecision(False, f"batch {batch_id} is superseded: a newer batch was published", batch=batch)
    if batch.status in ("pending", "held"):
        return GateDecision(False, f"batch {batch_id} is {batch.status}: it needs every check to pass or a reviewer's approval", batch=batch)
    newer = newer_published_batch(settings, batch.seq)
    if newer:
        return GateDecision(False, f"batch {batch_id} is older than the published batch {newer}: publishing it would replace newer data", batch=batch)
    path = batch_path(settings, batch_id)
    if not path.exists():
        return GateDecision(False, f"batch {batch_id}'s file {path} is missing", batch=batch)
    current_hash = batch_content_hash(path)
    if current_hash != batch.content_sha256:
        return GateDecision(False, f"batch {batch_id} changed after it was frozen (content hash differs)", batch=batch)
    if batch.status == "passed":
        contradiction = _failed_checks_in_batch_file(path)
        if contradiction:
            return GateDecision(False, f"batch {batch_id} is marked passed in the ledger, but its file records {contradiction}", batch=batch)
        return GateDecision(True, "every blocking check passed", "auto", AUTO_APPROVER, batch)
    decisions = decisions_for(settings, batch_id)
    if not decisions or decisions[-1]["decision"] != "approve":
        return GateDecision(False, f"batch {batch_id} has no approval", batch=batch)
    approval = decisions[-1]
    try:
        reviewers = load_reviewers(settings.reviewers_path)
        problem = check_recorded(approval, {"batch_id": batch_id, "content_sha256": batch.content_sha256}, reviewers)
    except ReviewError as error:  # the reviewers file is missing or malformed: nobody's signature counts
        problem = str(error)
    if problem:
        return GateDecision(False, f"batch {batch_id}'s approval by {approval['reviewer']} does not verify: {problem}", batch=batch)
    if approval["content_sha256"] != current_hash:
        return GateDecision(False, f"batch {batch_id} changed after {approval['reviewer']} approved it; approval void", batch=batch)
    return GateDecision(True, f"approved by {approval['reviewer']} (signature verified): {approval['reason']}", "reviewer", approval["reviewer"], batch)


def _failed_checks_in_batch_file(path) -> str | None:
    """'N failed or errored checks' when the batch file's own check results contradict `passed`."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}
        if "check_results" not in tables:
            return None
        count = con.execute("select count(*) from check_results where status <> 'passed'").fetchone()[0]
    finally:
        con.close()
    return f"{count} failed or errored checks" if count else None


@dataclass(frozen=True)
class PublishOutcome:
    decision: GateDecision
    publication: Publication | None
    unchanged_since: str | None = None  # the current publication, when the batch adds nothing to it


def publish_if_allowed(settings: Settings, batch_id: str) -> PublishOutcome:
    """Publish a batch the gate lets through, recording the gate's approver; PublicationRefused if
    not. A batch whose content is exactly the current publication's is not published again."""
    decision = decide(settings, batch_id)
    if not decision.allowed:
        raise PublicationRefused(decision.reason)
    batch = decision.batch
    history = read_publications(settings.published_path)
    if history and history[-1]["content_sha256"] == batch.content_sha256:
        return PublishOutcome(decision, None, history[-1]["publication_id"])
    published = publish_batch(
        settings,
        batch_file=batch_path(settings, batch_id),
        batch_id=batch_id,
        content_sha256=batch.content_sha256,
        approved_by=decision.approved_by,
        approval_kind=decision.approval_kind,
        checks_passed=batch.checks_passed or 0,
        checks_failed=(batch.checks_failed or 0) + (batch.checks_errored or 0),
    )
    return PublishOutcome(decision, published)
