"""The publication gate: may this batch reach BI, and on whose authority?

A batch publishes when every blocking check passed (approval `auto`), or when a named reviewer
approved it and its content is still exactly what they approved (approval `reviewer`). Rejected
batches, batches already published, and batches whose content changed after approval never do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.batches import batch_content_hash
from pipelines.review_ledger import BatchRecord, decisions_for, get_batch
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
    if batch.status == "published":
        return GateDecision(False, f"batch {batch_id} is already published ({batch.publication_id})", batch=batch)
    if batch.status == "rejected":
        return GateDecision(False, f"batch {batch_id} was rejected", batch=batch)
    if batch.status in ("pending", "held"):
        return GateDecision(False, f"batch {batch_id} is {batch.status}: it needs every check to pass or a reviewer's approval", batch=batch)
    current_hash = batch_content_hash(Path(batch.path))
    if current_hash != batch.content_sha256:
        return GateDecision(False, f"batch {batch_id} changed after it was frozen (content hash differs)", batch=batch)
    if batch.status == "passed":
        return GateDecision(True, "every blocking check passed", "auto", AUTO_APPROVER, batch)
    approvals = [d for d in decisions_for(settings, batch_id) if d["decision"] == "approve"]
    if not approvals:
        return GateDecision(False, f"batch {batch_id} has no approval", batch=batch)
    approval = approvals[-1]
    if approval["content_sha256"] != current_hash:
        return GateDecision(False, f"batch {batch_id} changed after {approval['reviewer']} approved it; approval void", batch=batch)
    return GateDecision(True, f"approved by {approval['reviewer']}: {approval['reason']}", "reviewer", approval["reviewer"], batch)

