"""What makes ingest run by itself: two sensors, two schedules, and eager automation downstream.

- `spec_sheet_sensor` hashes the spec-sheet directory each tick. Sheets that are new or changed
  since the cursor (json `{relative path: sha256}`) produce one run of `raw/gpu_spec_sheets`
  narrowed to exactly those sheets.
- `hf_model_sensor` (live mode) asks the Hub for each watchlist model's commit sha, and with
  discovery on (`FITATLAS_DISCOVER`) reads the discovered models' shas from the Hub listings
  themselves (`expand[]=sha`: a page of up to 1,000 models per request, not a request per model).
  Models whose sha differs from the cursor (json `{repo: sha}`), including models just added to
  the watchlist or newly listed, produce one run of `raw/hf_model_configs` narrowed to exactly
  those models.

  Per-model re-ingest is run config (`items: [repo, ...]`), not dynamic partitions: the raw table
  is one append-only table with the repo as record key, the asset is already incremental per model
  (a model whose landed sha is current is not fetched), and every downstream asset (dbt, sizing) is
  unpartitioned, so per-model partitions would add a partition set to manage and a partition
  mapping at every edge while buying nothing: downstream rebuilds from the whole table either way.

- Run keys are digests of (item, previous sha, new sha), so the same change never runs twice (a
  daemon restart that re-evaluates a tick is deduplicated by Dagster), while a sheet changed back
  to an earlier content is a new change. Cursors live in the Dagster instance and survive restarts.
  A cursor advances when the run is requested, not when it succeeds: an item whose run failed is
  caught by the weekly full refresh (or the next change).
- `nightly_prices` refreshes the four price tables (conditional GETs: unchanged files cost a 304);
  `weekly_full_refresh` re-checks every raw source ignoring remembered shas and ETags.
- `downstream_automation` gives every asset below the raw layer, except publication, the eager
  condition, with one change: a raw dependency counts as updated only when its data version
  changed, i.e. when it landed rows or its source's stale state changed (the version is content-based,
  `raw_table_version`). So downstream materialises when a raw table lands something, and a run that
  found nothing new triggers nothing. An asset whose code version changed (a deployment that edited
  its code or the `sizing` library) materialises too. Publication is left to
  the quality gate's approval sensor. The condition is applied as this sensor's `default_condition`
  so no other module's asset definitions change; an asset that sets its own condition keeps it.

All of it runs with the warehouse pool's single writer, like every other warehouse asset.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import dagster as dg

from pipelines.defs.ingest.assets import RAW_SOURCES, raw_asset_key, raw_op_name
from pipelines.defs.ingest.discovery import discover_models
from pipelines.defs.ingest.http import Fetched
from pipelines.defs.ingest.live_config import LiveConfig
from pipelines.defs.ingest.live_source import parse_model_info
from pipelines.defs.ingest.records import SourceFormatError
from pipelines.defs.ingest.watchlist import read_watchlist
from pipelines.resources import FitAtlasResource, LiveSourcesResource
from pipelines.settings import Cadence, Discovery

PRICE_TABLES = ("openrouter_models", "litellm_prices", "genai_prices", "gpu_rental_prices")
PUBLISH_GROUP = "publish"
TRIGGER_TAG = "fitatlas/trigger"


def _raw_selection(*tables: str) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*(raw_asset_key(table) for table in tables))


def raw_run_config(table: str, *, items: list[str] | None = None, force: bool = False) -> dict:
    return {"ops": {raw_op_name(table): {"config": {"items": items or [], "force": force}}}}


def change_key(prefix: str, changes: list[tuple[str, str | None, str]]) -> str:
    """A run key naming one set of changes: (item, previous sha, new sha) triples."""
    text = "\n".join(f"{item}\0{before or ''}\0{after}" for item, before, after in sorted(changes, key=lambda c: c[0]))
    return f"{prefix}:{hashlib.sha256(text.encode()).hexdigest()}"


spec_sheet_ingest_job = dg.define_asset_job(
    "ingest_spec_sheets",
    selection=_raw_selection("gpu_spec_sheets"),
    description="Land new or changed GPU spec sheets (requested by spec_sheet_sensor).",
)
hf_model_ingest_job = dg.define_asset_job(
    "ingest_hf_models",
    selection=_raw_selection("hf_model_configs"),
    description="Land the configs of watchlist (and discovered) models whose Hub sha changed (requested by hf_model_sensor).",
)
price_ingest_job = dg.define_asset_job(
    "ingest_prices",
    selection=_raw_selection(*PRICE_TABLES),
    description="Refresh API token prices and GPU rental prices.",
)
full_refresh_job = dg.define_asset_job(
    "ingest_full_refresh",
    selection=_raw_selection(*RAW_SOURCES),
    description="Re-check every raw source, ignoring remembered Hub shas and ETags.",
)


def spec_sheet_digests(directory: Path) -> dict[str, str]:
    """{path relative to the directory: sha256} for the files the spec-sheet ingest would read."""
    if not directory.is_dir():
        return {}
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def ingest_changes(
    context: dg.SensorEvaluationContext,
    previous: dict[str, str],
    current: dict[str, str],
    *,
    raw_table: str,
    key_prefix: str,
    trigger: str,
    what: str,
    nothing: str,
) -> dg.SensorResult:
    """One run request landing exactly the items whose digest moved since the cursor (item -> digest)."""
    changes = [(item, previous.get(item), digest) for item, digest in current.items() if previous.get(item) != digest]
    cursor = json.dumps(current, sort_keys=True)
    if not changes:
        return dg.SensorResult(skip_reason=nothing, cursor=cursor)
    changed = [item for item, _before, _after in changes]
    context.log.info(f"{len(changed)} {what}: {', '.join(changed[:20])}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=change_key(key_prefix, changes),
                run_config=raw_run_config(raw_table, items=changed),
                tags={TRIGGER_TAG: trigger},
            )
        ],
        cursor=cursor,
    )


def spec_sheet_sensor(interval_s: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="spec_sheet_sensor",
        job=spec_sheet_ingest_job,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="A new or changed file in the spec-sheet directory -> one ingest of exactly those sheets.",
    )
    def _sensor(context: dg.SensorEvaluationContext, fitatlas: FitAtlasResource) -> dg.SensorResult:
        directory = fitatlas.settings.spec_sheets_dir
        previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        current = spec_sheet_digests(directory)
        return ingest_changes(
            context, previous, current, raw_table="gpu_spec_sheets", key_prefix="spec-sheets",
            trigger="spec_sheet_change", what="new or changed spec sheet(s)",
            nothing=f"no new or changed sheet in {directory}",
        )

    return _sensor


def hf_model_sensor(interval_s: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="hf_model_sensor",
        job=hf_model_ingest_job,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Live mode: a watchlist or discovered model whose Hub commit sha changed (or a newly "
        "listed model) -> one ingest of exactly those models.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, fitatlas: FitAtlasResource, live_sources: LiveSourcesResource
    ) -> dg.SensorResult | dg.SkipReason:
        settings = fitatlas.settings
        if settings.source_mode != "live":
            return dg.SkipReason("the source mode is not 'live' (FITATLAS_SOURCE): the Hub is not polled")
        return hf_sha_changes(context, settings.watchlist_path, live_sources.live_config(), settings.discover)

    return _sensor


def hf_sha_changes(
    context: dg.SensorEvaluationContext, watchlist_path: Path, live: LiveConfig, discover: tuple[Discovery, ...] = ()
) -> dg.SensorResult:
    """Ask the Hub for each watchlist model's sha (and the listings for the discovered ones');
    request an ingest of those that moved."""
    watchlist = read_watchlist(watchlist_path)
    for entry, reason in watchlist.rejected:
        context.log.warning(f"watchlist entry {entry}: {reason}")
    previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    urls = [f"{live.hf_endpoint}/api/models/{repo}" for repo in watchlist.models]
    with live.fetcher() as fetcher:
        outcomes = fetcher.get_many(urls)
        discovery = discover_models(fetcher, live.hf_endpoint, discover) if discover else None
    current: dict[str, str] = {}
    for repo, url, outcome in zip(watchlist.models, urls, outcomes, strict=True):
        try:
            if not isinstance(outcome, Fetched):
                raise SourceFormatError(url, getattr(outcome, "reason", "unexpected 304"), record_key=repo)
            current[repo] = parse_model_info(outcome.content, url).sha
        except SourceFormatError as error:
            context.log.warning(f"{repo}: model info unavailable ({error.reason}); keeping its last known sha")
            if repo in previous:
                current[repo] = previous[repo]
    tracked = f"{len(watchlist.models)} watchlist model(s)"
    if discovery is not None:
        for repo, sha in discovery.shas().items():
            current.setdefault(repo, sha)
        for failure in discovery.all_failures[:20]:
            context.log.warning(f"discovery: {failure}")
        if discovery.failures:  # a listing stopped short: keep the last known shas of what it did not reach
            context.log.warning("a Hub listing stopped short; keeping the last known sha of every model it did not list")
            for repo, sha in previous.items():
                current.setdefault(repo, sha)
        tracked += f" and {len(discovery.repos())} discovered ({', '.join(str(d) for d in discover)})"
    return ingest_changes(
        context, previous, current, raw_table="hf_model_configs", key_prefix="hf-models",
        trigger="hf_sha_change", what="model(s) changed on the Hub",
        nothing=f"no sha changed among {tracked}",
    )


def ingest_schedules(cadence: Cadence) -> list[dg.ScheduleDefinition]:
    nightly_prices = dg.ScheduleDefinition(
        name="nightly_prices",
        job=price_ingest_job,
        cron_schedule=cadence.price_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        tags={TRIGGER_TAG: "nightly_prices"},
        description="Nightly pricing cron: OpenRouter, LiteLLM, genai-prices and GPU rental prices.",
    )
    weekly_full_refresh = dg.ScheduleDefinition(
        name="weekly_full_refresh",
        job=full_refresh_job,
        cron_schedule=cadence.full_refresh_cron,
        execution_timezone="UTC",
        run_config={"ops": {op: cfg for table in RAW_SOURCES for op, cfg in raw_run_config(table, force=True)["ops"].items()}},
        default_status=dg.DefaultScheduleStatus.RUNNING,
        tags={TRIGGER_TAG: "weekly_full_refresh"},
        description="Weekly full refresh of every raw source, past remembered shas and ETags.",
    )
    return [nightly_prices, weekly_full_refresh]


AC = dg.AutomationCondition


def landed_or_updated_deps(raw: dg.AssetSelection) -> dg.AutomationCondition:
    """Eager's `any_deps_updated`, except that a raw dependency counts only when its data version
    changed: a raw run that landed nothing (every nightly with unchanged prices) triggers nothing."""
    updated_elsewhere = AC.any_deps_match(
        (AC.newly_updated() & ~AC.executed_with_root_target()) | AC.will_be_requested()
    ).ignore(raw)
    raw_landed = AC.any_deps_match(AC.data_version_changed()).allow(raw)
    # a deployment that changed the asset's code (its code_version, `pipelines.versions`) re-runs it
    # too, as `fitatlas run` does: a new sizing constant must reach the published numbers
    return (updated_elsewhere | raw_landed | AC.code_version_changed()).with_label("any_deps_updated")


DOWNSTREAM_CONDITION = AC.eager().replace("any_deps_updated", landed_or_updated_deps(_raw_selection(*RAW_SOURCES)))

def downstream_automation(interval_s: int) -> dg.AutomationConditionSensorDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # default_condition needs the (beta) user-code evaluation
        return dg.AutomationConditionSensorDefinition(
            "downstream_automation",
            target=dg.AssetSelection.all() - _raw_selection(*RAW_SOURCES) - dg.AssetSelection.groups(PUBLISH_GROUP),
            default_condition=DOWNSTREAM_CONDITION,
            use_user_code_server=True,
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=interval_s,
            description="Materialise what is downstream of a raw table when it lands something (eager); "
            "publication stays with the quality gate.",
        )


INGEST_JOBS = [spec_sheet_ingest_job, hf_model_ingest_job, price_ingest_job, full_refresh_job]


def ingest_sensors(cadence: Cadence) -> list[dg.SensorDefinition]:
    return [
        spec_sheet_sensor(cadence.spec_sheet_sensor_s),
        hf_model_sensor(cadence.hf_sensor_s),
        downstream_automation(cadence.automation_s),
    ]
