"""The approval sensor: publishes what the gate lets through, and surfaces the review queue.

Each tick reads the review ledger. The newest batch that is `approved`, or `passed` but not
published (its run had no publication step, e.g. declarative automation), and that is newer than
the batch BI sees now gets one `publish_batch` run (unless its content is exactly what BI sees). The run key is `publish:{batch_id}:{sha256}`,
so Dagster never launches it twice for the same content. Approved or passed batches older than the
current publication become `superseded`: publishing them would replace newer data. Held batches
are the review items; the tick's skip reason and log name them. Rejected batches are never
touched. The gate (`pipelines.gate.decide`) is asked before requesting a run, so an approval
whose batch changed afterwards yields no run, and the publication asset asks it again. The gate
verifies the approval's SSH signature against the reviewers file each time: an approval that does
not verify (written into the ledger by hand, altered, copied from another batch, or signed by a key
not listed for that reviewer) yields no run, and the tick's skip reason and log say why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from pipelines.defs.publish.assets import BATCH_TAG, PUBLICATION_KEY, SITE_KEY
from pipelines.defs.quality.checks import audited_key
from pipelines.gate import decide
from pipelines.publishing import read_publications
from pipelines.resources import FitAtlasResource
from pipelines.review import ReviewError, decision_problem, held_summary, load_reviewers
from pipelines.review_ledger import (
    PUBLISHABLE_STATUSES,
    BatchRecord,
    decisions_for,
    get_batch,
    list_batches,
    mark_superseded,
)
from pipelines.settings import Settings

publish_batch_job = dg.define_asset_job(
    "publish_batch",
    selection=dg.AssetSelection.assets(PUBLICATION_KEY, SITE_KEY),
    description=f"Publish one batch named by the `{BATCH_TAG}` tag, if the gate allows it (requested by approval_sensor).",
)


@dataclass
class PublicationPlan:
    to_publish: BatchRecord | None = None
    superseded: list[BatchRecord] = field(default_factory=list)
    same_as_current: list[BatchRecord] = field(default_factory=list)
    not_publishable: list[tuple[BatchRecord, str]] = field(default_factory=list)
    left_to_newer: list[BatchRecord] = field(default_factory=list)


def publication_run_key(batch: BatchRecord) -> str:
    return f"publish:{batch.batch_id}:{batch.content_sha256}"


def plan_publications(settings: Settings, run_in_progress: Callable[[str], bool]) -> PublicationPlan:
    """Decide, from the ledger and the current publication, what one tick should do."""
    plan = PublicationPlan()
    history = read_publications(settings.published_path)
    current_record = get_batch(settings, history[-1]["batch_id"]) if history else None
    current_seq = current_record.seq if current_record else 0
    current_sha256 = history[-1]["content_sha256"] if history else None
    eligible: list[BatchRecord] = []
    for batch in list_batches(settings, PUBLISHABLE_STATUSES):
        if batch.seq < current_seq:
            plan.superseded.append(batch)
            continue
        if batch.content_sha256 == current_sha256:
            plan.same_as_current.append(batch)  # publishing it would change nothing BI sees
            continue
        if batch.status == "passed" and run_in_progress(batch.run_id):
            continue  # its own run is still going and publishes it itself
        gate = decide(settings, batch.batch_id)
        if gate.allowed:
            eligible.append(batch)
        else:
            plan.not_publishable.append((batch, gate.reason))
    if eligible:
        plan.to_publish = eligible[-1]
        plan.left_to_newer = eligible[:-1]
    return plan


def review_state_events(settings: Settings, seen: dict[str, str]) -> tuple[list[dg.AssetObservation], dict[str, str]]:
    """Observations that put each batch's review state on the assets in the UI, once per change:
    on `publication`, and on every audited table whose checks did not pass."""
    events: list[dg.AssetObservation] = []
    states = {}
    for batch in list_batches(settings):
        states[batch.batch_id] = batch.status
        if seen.get(batch.batch_id) == batch.status or batch.status == "pending":
            continue
        decision = (decisions_for(settings, batch.batch_id) or [None])[-1]
        problem = None
        if decision is not None:
            try:
                problem = decision_problem(settings, batch, decision, load_reviewers(settings.reviewers_path))
            except ReviewError as error:
                problem = str(error)
        metadata = {
            "batch_id": batch.batch_id,
            "review_state": batch.status,
            "content_sha256": batch.content_sha256,
            "failed_checks": dg.MetadataValue.json(batch.failed_checks),
            "decided_by": decision["reviewer"] if decision else "",
            "decision_reason": decision["reason"] if decision else "",
            "decision_signature": ("verified" if problem is None else f"NOT VALID: {problem}") if decision else "",
            "review": f"fitatlas review show {batch.batch_id}",
        }
        tables = sorted({check["table"] for check in batch.failed_checks})
        keys = [dg.AssetKey("publication"), *(audited_key(table) for table in tables)]
        events.extend(dg.AssetObservation(asset_key=key, metadata=metadata) for key in keys)
    return events, states


def approval_sensor(interval_s: int) -> dg.SensorDefinition:
    return dg.sensor(
        name="approval_sensor",
        job=publish_batch_job,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Publishes the newest approved (or passed, unpublished) batch once; supersedes older ones; "
        "reports held batches awaiting review.",
    )(approval_tick)


def approval_tick(context: dg.SensorEvaluationContext, fitatlas: FitAtlasResource) -> dg.SensorResult:
    """One evaluation of the approval sensor (module docstring)."""
    settings = fitatlas.settings

    def run_in_progress(run_id: str) -> bool:
        run = context.instance.get_run_by_id(run_id)
        return run is not None and not run.is_finished

    events, states = review_state_events(settings, json.loads(context.cursor or "{}"))
    cursor = json.dumps(states, sort_keys=True)
    plan = plan_publications(settings, run_in_progress)
    for batch in plan.superseded:
        if mark_superseded(settings, batch.batch_id):
            context.log.info(f"batch {batch.batch_id} superseded: a newer batch is published")
    for batch, reason in plan.not_publishable:
        context.log.warning(f"batch {batch.batch_id} ({batch.status}) not published: {reason}")
    for batch in plan.left_to_newer:
        context.log.info(f"batch {batch.batch_id} left for newer batch {plan.to_publish.batch_id}")
    queue = held_summary(settings)
    if queue:
        context.log.info(queue)
    refused = "; ".join(f"batch {batch.batch_id} not published: {reason}" for batch, reason in plan.not_publishable)
    if plan.to_publish is None:
        return dg.SensorResult(
            skip_reason="; ".join(filter(None, [refused, queue])) or "no approved or passed batch newer than the current publication",
            asset_events=events,
            cursor=cursor,
        )
    batch = plan.to_publish
    context.log.info(f"requesting publication of batch {batch.batch_id} ({batch.status})")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=publication_run_key(batch), tags={BATCH_TAG: batch.batch_id})],
        asset_events=events,
        cursor=cursor,
    )
