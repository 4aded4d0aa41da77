"""What `fitatlas run` materialises: every source, then only what is stale below it.

A run is two Dagster runs of the `full_pipeline` job, under the one warehouse lock the CLI holds:

1. **Ingest**: every raw asset, with its checks. They must look at the sources, so they always run;
   each reports a content-based data version (`raw_table_version`), which an unchanged source keeps.
2. **Plan** (`plan_stale`): Dagster's own stale-status resolver (`CachingStaleStatusResolver`, what
   `RunRequest(stale_assets_only=True)` uses) names the assets below the raw layer that are
   *missing* (never materialised) or *stale*: their code version (`pipelines.versions`) differs from
   the one recorded at their last materialisation, an upstream data version differs from the one
   recorded then, or a dependency was added or removed. Three rules of ours complete it:

   - an asset whose latest ERROR-severity check failed or never completed (a dbt test, a Great
     Expectations suite) is stale: a held batch, or a refused or failed publication, is retried by
     the next run even when nothing changed;
   - an asset materialised before the warehouse file was created (`meta.warehouse`) is stale: its
     table is not in this warehouse;
   - the publication (and site) is judged by content, as the gate judges it: up to date when BI sees
     the content of the latest audited batch. A batch whose content BI already sees materialises no
     publication, so Dagster's resolver would call it stale for ever; one BI does not see (held,
     refused, failed, rolled back) is tried again;
   - `model_changes` diffs against the publication BI reads, which is not upstream of it: when the
     audit runs and BI reads another publication than the one it compared with, it runs first;
   - the resolver looks one edge up, so everything downstream of a stale asset is selected too, and
     the audit, its checks and the publication go together (the publication publishes the batch its
     own run froze), as do the assets of a multi-asset that cannot run apart.
3. **The stale assets**, in one run with their checks, or nothing when all are fresh: no dbt, sizing,
   audit, checks or publication, and the console says what ran, what was skipped and why. The run
   sizes every shard of `sizing_shard` in one step (a partition range); a partitioned asset is stale
   when any partition of its current set is (e.g. FITATLAS_SIZING_SHARDS changed). With
   FITATLAS_EXECUTOR=dask and the shards stale, it is three parts instead: the stale assets above the
   shards, one run per shard side by side on Dask (`pipelines.dask_shards`), then the rest.

A failed run leaves what it did not materialise stale (Dagster records nothing for it), so the next
run picks it up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import duckdb

from pipelines.defs.ingest.assets import RAW_SOURCES, raw_asset_key
from pipelines.defs.publish.assets import PUBLICATION_KEY, SITE_KEY
from pipelines.defs.sizing.assets import GRID_KEYS, INPUTS_KEY, SHARD_KEY
from pipelines.settings import Settings

RUN_PART_TAG = "fitatlas/run_part"
INGEST_RUN_TAG = "fitatlas/ingest_run"
RAW_KEYS = frozenset(raw_asset_key(table) for table in RAW_SOURCES)
PUBLISH_KEYS = frozenset({PUBLICATION_KEY, SITE_KEY})
MODEL_CHANGES = dg.AssetKey("model_changes")
NO_PUBLICATION = "none (first publication)"  # model_changes' previous_publication_id metadata before any


def _audited_keys(asset_graph) -> set[dg.AssetKey]:
    return {key for key in asset_graph.materializable_asset_keys if key.path[0] == "audited"}


@dataclass(frozen=True)
class Plan:
    """Why each directly stale asset is stale, what the downstream run materialises, what it skips."""

    causes: Mapping[dg.AssetKey, tuple[str, ...]]
    selected: tuple[dg.AssetKey, ...]
    fresh: tuple[dg.AssetKey, ...]
    groups: Mapping[dg.AssetKey, str] = field(default_factory=dict)
    #: the sizing shards the run must size when it selects `sizing_shard` (`_shard_partitions`)
    shard_partitions: tuple[str, ...] = ()

    def group_counts(self, keys: Iterable[dg.AssetKey]) -> str:
        counts = Counter(self.groups.get(key, "other") for key in keys)
        return ", ".join(f"{group} {count}" for group, count in sorted(counts.items()))


def _stale_status_resolver(instance: dg.DagsterInstance, asset_graph):
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._time import get_current_datetime

    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    return CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)


def _describe(cause) -> str:
    from dagster._core.definitions.data_version import StaleCauseCategory

    if cause.category == StaleCauseCategory.CODE:
        return "its code version changed"
    if cause.dependency is not None and cause.category == StaleCauseCategory.DATA:
        return f"{cause.dependency.asset_key.to_user_string()} changed since it last ran"
    return cause.reason


def _resolver_causes(instance, asset_graph, candidates: Iterable[dg.AssetKey]) -> dict[dg.AssetKey, list[str]]:
    resolver = _stale_status_resolver(instance, asset_graph)
    causes: dict[dg.AssetKey, list[str]] = {}
    for key in candidates:
        partitions = asset_graph.get(key).partitions_def
        if partitions is None:
            reasons = _status_reasons(resolver, key, None)
        else:
            reasons = _partition_reasons(resolver, key, list(partitions.get_partition_keys()))
        if reasons:
            causes[key] = reasons
    return causes


def _status_reasons(resolver, key: dg.AssetKey, partition: str | None) -> list[str]:
    from dagster._core.definitions.data_version import StaleStatus

    status = resolver.get_status(key, partition)
    if status == StaleStatus.MISSING:
        return ["never materialised"]
    if status == StaleStatus.STALE:
        return list(dict.fromkeys(_describe(c) for c in resolver.get_stale_causes(key, partition))) or ["stale"]
    return []


def _partition_reasons(resolver, key: dg.AssetKey, partitions: list[str], shown: int = 3) -> list[str]:
    """A partitioned asset (the sizing shards) is stale when any partition of its current set is:
    each reason with how many partitions it applies to. (Its status without a partition says nothing
    of partitions that were never materialised, e.g. after the shard count changed.)"""
    by_reason: dict[str, list[str]] = {}
    for partition in partitions:
        for reason in _status_reasons(resolver, key, partition):
            by_reason.setdefault(reason, []).append(partition)
    return [
        f"{len(keys)} of {len(partitions)} partitions {reason} ({', '.join(keys[:shown])}{', ...' if len(keys) > shown else ''})"
        for reason, keys in by_reason.items()
    ]


def _check_causes(instance, asset_graph, candidates: set[dg.AssetKey]) -> dict[dg.AssetKey, list[str]]:
    """Assets whose latest ERROR-severity check failed, or was planned and never completed."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    check_keys = [key for key in asset_graph.asset_check_keys if key.asset_key in candidates]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys) if check_keys else {}
    causes: dict[dg.AssetKey, list[str]] = {}
    for check_key, record in latest.items():
        if record.status == Status.SUCCEEDED:
            continue
        if record.status == Status.FAILED:
            evaluation = record.event.dagster_event.event_specific_data if record.event and record.event.dagster_event else None
            if getattr(evaluation, "severity", dg.AssetCheckSeverity.ERROR) != dg.AssetCheckSeverity.ERROR:
                continue
            reason = f"its check {check_key.name} failed in run {record.run_id[:8]}"
        else:  # planned: it ran in no run that finished, or its run is still going
            run = instance.get_run_by_id(record.run_id)
            if run is not None and not run.is_finished:
                continue
            reason = f"its check {check_key.name} did not run to completion in run {record.run_id[:8]}"
        causes.setdefault(check_key.asset_key, []).append(reason)
    return causes


def warehouse_created_at(settings: Settings) -> datetime | None:
    """When this warehouse file was first used (`pipelines.versions.warehouse_id`), UTC; None if unknown."""
    if not settings.warehouse_path.exists():
        return None
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        exists = con.execute(
            "select 1 from information_schema.tables where table_schema = 'meta' and table_name = 'warehouse'"
        ).fetchone()
        row = con.execute("select min(created_at) from meta.warehouse").fetchone() if exists else None
    finally:
        con.close()
    return row[0].replace(tzinfo=UTC) if row and row[0] else None


def _storage_causes(instance, settings: Settings, candidates: Iterable[dg.AssetKey]) -> dict[dg.AssetKey, list[str]]:
    """Assets whose table is not in this warehouse: materialised before the file was created."""
    created = warehouse_created_at(settings)
    causes: dict[dg.AssetKey, list[str]] = {}
    if created is None:
        return causes
    for key in candidates:
        record = instance.get_latest_materialization_event(key)
        if record is not None and record.timestamp < created.timestamp():
            causes[key] = [f"materialised before this warehouse was created ({created:%Y-%m-%d %H:%M:%S} UTC)"]
    return causes


def _shard_causes(instance, settings: Settings, asset_graph) -> dict[dg.AssetKey, list[str]]:
    """The sizing shards live in files, not in the warehouse: a shard whose files are gone or were
    sized from other inputs is stale whatever Dagster recorded, and the grid tables are stale when
    they were loaded from another number of shards than FITATLAS_SIZING_SHARDS now asks for."""
    from pipelines.defs.sizing.sharding import ShardStore

    keys = list(asset_graph.get(SHARD_KEY).partitions_def.get_partition_keys())
    causes: dict[dg.AssetKey, list[str]] = {}
    if instance.get_latest_materialization_event(INPUTS_KEY) is None:
        return causes  # never sized: the resolver says so
    problems = ShardStore(settings.sizing_shards_dir).problems(keys)
    if problems:
        causes[SHARD_KEY] = [f"{len(problems)} of {len(keys)} shards cannot be loaded ({problems[0]}"
                             f"{'; ...' if len(problems) > 1 else ''})"]
    for key in GRID_KEYS:
        record = instance.get_latest_materialization_event(key)
        loaded = record.asset_materialization.metadata.get("shards") if record else None
        if loaded is not None and int(loaded.value) != len(keys):
            causes[key] = [f"it was loaded from {loaded.value} shards, FITATLAS_SIZING_SHARDS is now {len(keys)}"]
    return causes


def _publication_causes(instance, settings: Settings, audited: set[dg.AssetKey]) -> dict[dg.AssetKey, list[str]]:
    """The publication is up to date when BI sees the content of the latest audited batch. Not by its
    materializations: a batch whose content BI already sees publishes nothing and materializes nothing
    (the gate's rule), which Dagster's resolver would call stale for ever."""
    from pipelines.publishing import read_publications

    history = read_publications(settings.published_path)
    if not history:
        return {PUBLICATION_KEY: [f"nothing is published at {settings.published_path} yet"]}
    records = [instance.get_latest_materialization_event(key) for key in sorted(audited)]
    if not records or any(record is None for record in records):
        return {}  # the audit is missing: the resolver selects it, and the publication with it
    latest = max(records, key=lambda record: record.timestamp).asset_materialization
    batch_sha = _metadata_text(latest.metadata.get("content_sha256"))
    current = history[-1]
    if batch_sha != current["content_sha256"]:
        batch = _metadata_text(latest.metadata.get("batch_id"))
        return {PUBLICATION_KEY: [
            f"BI sees publication {current['publication_id']} (content {current['content_sha256'][:12]}), not the latest "
            f"batch {batch} (content {batch_sha[:12]}): publishing is tried again"
        ]}
    return {}


def _metadata_text(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _publication_readers(
    instance, settings: Settings, selected: set[dg.AssetKey], asset_graph, causes: dict[dg.AssetKey, list[str]]
) -> set[dg.AssetKey]:
    """`model_changes` compares with the publication BI reads, which is no asset upstream of it (the
    publication is downstream). Its table only reaches BI through a batch, so when the audit runs and
    the publication moved since `model_changes` ran, it runs again first (the model_changes suite
    requires the diff against the current publication); when nothing is audited, it waits."""
    from pipelines.publishing import read_publications

    if MODEL_CHANGES in selected or not selected & _audited_keys(asset_graph):
        return set()
    record = instance.get_latest_materialization_event(MODEL_CHANGES)
    if record is None:
        return set()
    compared = _metadata_text(record.asset_materialization.metadata.get("previous_publication_id"))
    history = read_publications(settings.published_path)
    current = history[-1]["publication_id"] if history else NO_PUBLICATION
    if compared == current:
        return set()
    causes.setdefault(MODEL_CHANGES, []).append(f"it compares with publication {compared}; BI now reads {current}")
    return {MODEL_CHANGES}


def _shard_partitions(instance, settings: Settings, asset_graph, selected: set[dg.AssetKey]) -> tuple[str, ...]:
    """The shards a run selecting `sizing_shard` must size: every one when something above the shards
    runs too (new inputs) or the shard code changed, else those stale by Dagster's record or by
    their files. A shard run that failed costs one shard, not all of them (with Dask; in-process,
    one run sizes the whole range)."""
    from pipelines.defs.sizing.sharding import ShardStore

    if SHARD_KEY not in selected:
        return ()
    keys = list(asset_graph.get(SHARD_KEY).partitions_def.get_partition_keys())
    above = set(dg.AssetSelection.assets(SHARD_KEY).upstream(include_self=False).resolve(asset_graph))
    if selected & above:
        return tuple(keys)
    resolver = _stale_status_resolver(instance, asset_graph)
    unusable = ShardStore(settings.sizing_shards_dir).unusable(keys)
    stale = [key for key in keys if key in unusable or _status_reasons(resolver, SHARD_KEY, key)]
    return tuple(stale or keys)


def plan_stale(defs: dg.Definitions, instance: dg.DagsterInstance, settings: Settings) -> Plan:
    """The assets below the raw layer the next run must materialise (module docstring)."""
    asset_graph = defs.resolve_asset_graph()
    candidates = {key for key in asset_graph.materializable_asset_keys if key not in RAW_KEYS}
    causes: dict[dg.AssetKey, list[str]] = {}
    published_by_content = _publication_causes(instance, settings, _audited_keys(asset_graph))
    for found in (
        _resolver_causes(instance, asset_graph, sorted(candidates - PUBLISH_KEYS)),
        _check_causes(instance, asset_graph, candidates),
        _storage_causes(instance, settings, sorted(candidates - PUBLISH_KEYS - _audited_keys(asset_graph))),
        _shard_causes(instance, settings, asset_graph),
        published_by_content,
    ):
        for key, reasons in found.items():
            causes.setdefault(key, []).extend(reason for reason in reasons if reason not in causes.get(key, []))
    selected: set[dg.AssetKey] = set()
    if causes:
        selected = set(dg.AssetSelection.assets(*causes).downstream().resolve(asset_graph)) & candidates
        if selected & (PUBLISH_KEYS | _audited_keys(asset_graph)):
            selected |= PUBLISH_KEYS | _audited_keys(asset_graph)
        selected |= _publication_readers(instance, settings, selected, asset_graph, causes)
        selected = set(dg.AssetSelection.assets(*selected).required_multi_asset_neighbors().resolve(asset_graph))
    groups = {key: asset_graph.get(key).group_name or "default" for key in candidates}
    order = {key: index for index, key in enumerate(asset_graph.toposorted_asset_keys)}  # upstream first

    def ordered(keys: Iterable[dg.AssetKey]) -> tuple[dg.AssetKey, ...]:
        return tuple(sorted(keys, key=lambda key: (order.get(key, len(order)), key.to_user_string())))

    return Plan(
        causes={key: tuple(causes[key]) for key in ordered(causes)},
        selected=ordered(selected),
        fresh=ordered(candidates - selected),
        groups=groups,
        shard_partitions=_shard_partitions(instance, settings, asset_graph, selected),
    )


@dataclass
class IncrementalRun:
    """The runs of one `fitatlas run`. `downstream` is the run that audits and publishes; with the
    shards on Dask, `earlier` holds the runs before it (the assets above the shards, then one run
    per shard)."""

    ingest: dg.ExecuteInProcessResult
    plan: Plan | None = None
    downstream: dg.ExecuteInProcessResult | None = None
    earlier: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what stopped the run between its Dagster runs

    @property
    def success(self) -> bool:
        return not self.problems and all(result.success for result in self.results)

    @property
    def results(self) -> list[Any]:
        """Every run, in order; each has `run_id` and `success`."""
        return [self.ingest, *self.earlier, *([self.downstream] if self.downstream is not None else [])]


def _landed(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    landed: dict[str, int] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key in RAW_KEYS and "records_landed" in materialization.metadata:
            landed[materialization.asset_key.path[1]] = int(materialization.metadata["records_landed"].value)
    return landed


def _say_ingest(result: dg.ExecuteInProcessResult, say: Callable[[str], None]) -> None:
    landed = _landed(result)
    news = ", ".join(f"{records:,} in raw.{table}" for table, records in sorted(landed.items()) if records)
    what = f"records landed: {news}" if news else "nothing new landed"
    say(f"ingest run {result.run_id}: {'success' if result.success else 'FAILED'} "
        f"({len(landed)} of {len(RAW_SOURCES)} raw assets checked their sources; {what})")


def _say_plan(plan: Plan, say: Callable[[str], None], shown: int = 12) -> None:
    if not plan.selected:
        say(
            f"nothing stale below the raw layer: all {len(plan.fresh)} assets ({plan.group_counts(plan.fresh)}) have "
            "the code version and the upstream data versions of their last materialisation and passed their checks, "
            "and BI sees the latest batch's content; skipped dbt, sizing, audit, checks and publication"
        )
        return
    say(f"stale: {len(plan.causes)} asset(s) directly")
    for key, reasons in list(plan.causes.items())[:shown]:
        say(f"  {key.to_user_string()}: {'; '.join(reasons)}")
    if len(plan.causes) > shown:
        say(f"  ... and {len(plan.causes) - shown} more")
    skipped = f"; skipped {len(plan.fresh)} fresh ({plan.group_counts(plan.fresh)})" if plan.fresh else ""
    say(f"running {len(plan.selected)} asset(s): the stale ones and everything downstream "
        f"({plan.group_counts(plan.selected)}){skipped}")


def run_stale(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    settings: Settings,
    *,
    job: str,
    run_config: Mapping[str, Any] | None = None,
    say: Callable[[str], None] = print,
) -> IncrementalRun:
    """Ingest, plan, and materialise what is stale (module docstring). Call it as the warehouse's
    one writer (`pipelines.warehouse.warehouse_lock`): the plan must see the warehouse it runs on."""
    job_def = defs.resolve_job_def(job)
    ingest = job_def.execute_in_process(
        instance=instance, asset_selection=sorted(RAW_KEYS), run_config=run_config, raise_on_error=False,
        tags={RUN_PART_TAG: "ingest"},
    )
    _say_ingest(ingest, say)
    outcome = IncrementalRun(ingest)
    if not ingest.success:
        say("ingest failed: nothing downstream runs (the raw assets' errors are above and in the Dagster instance)")
        return outcome
    outcome.plan = plan_stale(defs, instance, settings)
    _say_plan(outcome.plan, say)
    tags = {RUN_PART_TAG: "stale", INGEST_RUN_TAG: ingest.run_id}
    selected = list(outcome.plan.selected)
    if settings.executor == "dask" and SHARD_KEY in selected:
        selected = _shards_on_dask(defs, job_def, instance, settings, outcome, run_config, tags, say)
    if selected:
        outcome.downstream = job_def.execute_in_process(
            instance=instance, asset_selection=selected, run_config=run_config, raise_on_error=False, tags=tags,
        )
    return outcome


def _shards_on_dask(defs, job_def, instance, settings, outcome, run_config, tags, say) -> list[dg.AssetKey]:
    """FITATLAS_EXECUTOR=dask: the selected assets above the shards in one run, then every shard in
    a run of its own on Dask (`pipelines.dask_shards`); returns what is left for the last run (the
    assets below the shards), or nothing when a run failed."""
    from pipelines.dask_shards import DaskUnavailable, run_shards_on_dask

    selected = list(outcome.plan.selected)
    graph = defs.resolve_asset_graph()
    below = set(dg.AssetSelection.assets(SHARD_KEY).downstream(include_self=False).resolve(graph))
    while True:  # a multi-asset runs whole (the audit): its other assets, and what is below them, go last too
        grown = set(dg.AssetSelection.assets(*below).required_multi_asset_neighbors().downstream().resolve(graph))
        if grown == below:
            break
        below = grown
    above = [key for key in selected if key not in below and key != SHARD_KEY]
    if above:
        first = job_def.execute_in_process(
            instance=instance, asset_selection=above, run_config=run_config, raise_on_error=False,
            tags={**tags, RUN_PART_TAG: "above shards"},
        )
        outcome.earlier.append(first)
        say(f"assets above the sizing shards ({len(above)}): run {first.run_id} {'success' if first.success else 'FAILED'}")
        if not first.success:
            return []
    partitions = outcome.plan.shard_partitions
    say(f"sizing shards: {len(partitions)} of {settings.sizing_shards} on Dask, a run each")
    try:
        shard_runs = run_shards_on_dask(
            instance, settings, partitions, run_config=run_config, tags={**tags, RUN_PART_TAG: "shard"}, say=say,
        )
    except DaskUnavailable as unavailable:
        say(f"{unavailable}: no shard ran, nothing below the shards runs")
        outcome.problems.append(str(unavailable))
        return []
    outcome.earlier.extend(shard_runs)
    if not all(run.success for run in shard_runs):
        say("a shard run failed: nothing below the shards runs (its error is in the Dagster instance)")
        return []
    return [key for key in selected if key in below]
