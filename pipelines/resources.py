"""The Dagster resources every asset, check and sensor takes its configuration from.

- `fitatlas` (`FitAtlasResource`): the typed settings (paths, source mode, watchlist, reviewers,
  Hub discovery).
- `warehouse` (`WarehouseResource`): the working DuckDB file, through dagster-duckdb's resource.
- `live_sources` (`LiveSourcesResource`): where live mode fetches from and the HTTP policy; the Hub
  token reaches it as `dg.EnvVar("HF_TOKEN")`, so it is resolved in the run and never shown in the
  UI's resource config.
- `dbt` (`DbtCliResource`), built in `pipelines.defs.transform`.

`fitatlas_resources(settings, environ)` builds them from `Settings` once, where the code location
(or a test) decides the settings.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from pipelines.defs.ingest.http import HttpPolicy, Secret
from pipelines.defs.ingest.live_config import (
    DEFAULT_GENAI_PRICES_URL,
    DEFAULT_GPU_PRICES_URLS,
    DEFAULT_HF_ENDPOINT,
    DEFAULT_LITELLM_URL,
    DEFAULT_OPENROUTER_URL,
    LiveConfig,
)
from pipelines.settings import Settings, SettingsError, SourceMode, parse_discover


class FitAtlasResource(dg.ConfigurableResource):
    """Where FitAtlas keeps its files and which sources it lands; `.settings` is what pure code takes."""

    data_dir: str = Field(description="Warehouse, batches, published tables and review ledger live here.")
    source_mode: SourceMode = Field(default="snapshot", description="snapshot: the bundled snapshot; live: the real sources.")
    snapshot_dir: str = Field(description="The bundled snapshot (pipelines/snapshot unless a test swaps it).")
    spec_sheets_dir: str = Field(description="GPU spec sheets dropped here are landed (the spec-sheet sensor watches it).")
    watchlist_path: str = Field(description="The Hub models live mode tracks (YAML `models:` list).")
    reviewers_path: str = Field(description="Who may approve a held batch, with their SSH public keys.")
    discover: str = Field(
        default="",
        description="Live mode: Hub listings whose models are tracked besides the watchlist "
        "(FITATLAS_DISCOVER, e.g. top-downloads:2000,trending:500); empty: off.",
    )

    @classmethod
    def for_settings(cls, settings: Settings) -> FitAtlasResource:
        return cls(
            data_dir=str(settings.data_dir),
            source_mode=settings.source_mode,
            snapshot_dir=str(settings.snapshot_dir),
            spec_sheets_dir=str(settings.spec_sheets_dir),
            watchlist_path=str(settings.watchlist_path),
            reviewers_path=str(settings.reviewers_path),
            discover=",".join(str(item) for item in settings.discover),
        )

    @property
    def settings(self) -> Settings:
        return Settings(
            data_dir=Path(self.data_dir),
            source_mode=self.source_mode,
            snapshot_dir=Path(self.snapshot_dir),
            spec_sheets_dir=Path(self.spec_sheets_dir),
            watchlist_path=Path(self.watchlist_path),
            reviewers_path=Path(self.reviewers_path),
            discover=parse_discover(self.discover),
        )


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource, with two changes our single-writer warehouse needs: the
    connection is closed when the block raises (DuckDBResource 0.29 closes it only on success, so a
    failed step would keep the file's write lock until garbage collection), and the file's directory
    is created on first use. Like DuckDBResource, opening retries while another process holds the
    file: the steps of one daemon-launched run (e.g. two checks of one raw table) run in parallel
    processes, and DuckDB lets one process at a time open the file."""

    #: waits between attempts to open a file another process holds: 0.1 s doubling, about 100 s in all
    open_retries: int = 10

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        attempt = 0
        while True:
            try:
                return duckdb.connect(self.database, read_only=read_only, config=self.connection_config)
            except duckdb.IOException:
                if attempt >= self.open_retries:
                    raise
                time.sleep(0.1 * 2**attempt)
                attempt += 1

    @contextlib.contextmanager
    def get_connection(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:  # type: ignore[override]
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        con = self._open(read_only)
        try:
            yield con
        finally:
            con.close()


class LiveSourcesResource(dg.ConfigurableResource):
    """Where live mode fetches from and how hard it tries. The URLs keep huggingface_hub's
    `HF_ENDPOINT`/`HF_TOKEN` meaning; only their hosts (plus the Hub's file CDN, plus
    `extra_allowed_hosts`) may be contacted, which is also the redirect allow-list."""

    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    hf_token: str | None = Field(default=None, description="Hub token; set as EnvVar('HF_TOKEN'), never as a value.")
    openrouter_urls: list[str] = [DEFAULT_OPENROUTER_URL]
    litellm_urls: list[str] = [DEFAULT_LITELLM_URL]
    genai_prices_urls: list[str] = [DEFAULT_GENAI_PRICES_URL]
    gpu_prices_urls: list[str] = list(DEFAULT_GPU_PRICES_URLS)
    extra_allowed_hosts: list[str] = []
    timeout_s: float = HttpPolicy.timeout_s
    attempt_deadline_s: float = HttpPolicy.attempt_deadline_s
    max_attempts: int = HttpPolicy.max_attempts
    backoff_base_s: float = HttpPolicy.backoff_base_s
    backoff_max_s: float = HttpPolicy.backoff_max_s
    max_server_wait_s: float = HttpPolicy.max_server_wait_s
    max_bytes: int = HttpPolicy.max_bytes
    concurrency: int = HttpPolicy.concurrency

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> LiveSourcesResource:
        """HF_ENDPOINT, HF_TOKEN (as an EnvVar), FITATLAS_{OPENROUTER,LITELLM,GENAI_PRICES,GPU_PRICES}_URL
        (comma-separated), FITATLAS_HTTP_ALLOWED_HOSTS and FITATLAS_HTTP_* policy numbers."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if env.get("HF_ENDPOINT"):
            values["hf_endpoint"] = env["HF_ENDPOINT"].rstrip("/")
        if env.get("HF_TOKEN", "").strip():
            values["hf_token"] = dg.EnvVar("HF_TOKEN")
        for name, field in (
            ("FITATLAS_OPENROUTER_URL", "openrouter_urls"),
            ("FITATLAS_LITELLM_URL", "litellm_urls"),
            ("FITATLAS_GENAI_PRICES_URL", "genai_prices_urls"),
            ("FITATLAS_GPU_PRICES_URL", "gpu_prices_urls"),
            ("FITATLAS_HTTP_ALLOWED_HOSTS", "extra_allowed_hosts"),
        ):
            urls = [url.strip() for url in env.get(name, "").split(",") if url.strip()]
            if urls:
                values[field] = urls
        for name, field, kind in (
            ("FITATLAS_HTTP_TIMEOUT_S", "timeout_s", float),
            ("FITATLAS_HTTP_DEADLINE_S", "attempt_deadline_s", float),
            ("FITATLAS_HTTP_MAX_ATTEMPTS", "max_attempts", int),
            ("FITATLAS_HTTP_BACKOFF_S", "backoff_base_s", float),
            ("FITATLAS_HTTP_BACKOFF_MAX_S", "backoff_max_s", float),
            ("FITATLAS_HTTP_MAX_SERVER_WAIT_S", "max_server_wait_s", float),
            ("FITATLAS_HTTP_MAX_BYTES", "max_bytes", int),
            ("FITATLAS_HTTP_CONCURRENCY", "concurrency", int),
        ):
            raw = env.get(name)
            if raw in (None, ""):
                continue
            try:
                values[field] = kind(float(raw)) if kind is int else kind(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r}: expected a number") from None
        return cls(**values)  # type: ignore[arg-type]

    def live_config(self) -> LiveConfig:
        token = (self.hf_token or "").strip()
        return LiveConfig(
            hf_endpoint=self.hf_endpoint.rstrip("/"),
            hf_token=Secret(token) if token else None,
            openrouter_urls=tuple(self.openrouter_urls),
            litellm_urls=tuple(self.litellm_urls),
            genai_prices_urls=tuple(self.genai_prices_urls),
            gpu_prices_urls=tuple(self.gpu_prices_urls),
            extra_allowed_hosts=tuple(self.extra_allowed_hosts),
            policy=HttpPolicy(
                timeout_s=self.timeout_s,
                attempt_deadline_s=self.attempt_deadline_s,
                max_attempts=max(1, self.max_attempts),
                backoff_base_s=self.backoff_base_s,
                backoff_max_s=self.backoff_max_s,
                max_server_wait_s=self.max_server_wait_s,
                max_bytes=self.max_bytes,
                concurrency=max(1, self.concurrency),
            ),
        )


def fitatlas_resources(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Every resource but dbt's, for `settings`; live sources read from `environ` (default: os.environ)."""
    return {
        "fitatlas": FitAtlasResource.for_settings(settings),
        "warehouse": WarehouseResource(database=str(settings.warehouse_path)),
        "live_sources": LiveSourcesResource.from_environment(environ),
    }
