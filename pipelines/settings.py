"""FitAtlas's typed settings: where its files live, which sources it lands, how often it looks.

The environment is read in one place, `Settings.from_environment` (and `Cadence.from_environment`),
when a process starts: the CLI, or the code location loading (`pipelines.definitions`). What it reads
is validated there, so a bad `FITATLAS_SOURCE` stops the code location from loading with the
variable's name, instead of failing inside an asset. Assets never read the environment; they get
these settings through Dagster resources (`pipelines.resources`).

`FITATLAS_DISCOVER` (off by default) asks live mode to also track text-generation models from the
Hub's model listing, e.g. `top-downloads:2000,trending:500`; `parse_discover` reads and validates it
(see `pipelines.defs.ingest.discovery` for what is listed and how).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

REPO_ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT_DIR = REPO_ROOT / "pipelines" / "snapshot"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
DEFAULT_WATCHLIST = REPO_ROOT / "pipelines" / "watchlist.yaml"
DEFAULT_REVIEWERS = REPO_ROOT / "reviewers.yaml"

SourceMode = Literal["snapshot", "live"]
SOURCE_MODES: tuple[str, ...] = get_args(SourceMode)
# Where the sizing shards' steps run (pipelines.defs.executor): on this machine (the CLI in-process,
# the daemon's runs in worker processes), or on a Dask cluster through dagster-dask.
ExecutorKind = Literal["in_process", "dask"]
EXECUTOR_KINDS: tuple[str, ...] = get_args(ExecutorKind)
#: sizing shards (Dagster partitions of `sizing_shard`) unless FITATLAS_SIZING_SHARDS says otherwise:
#: one per core of a small box; more only costs a file set per shard.
DEFAULT_SIZING_SHARDS = 4
#: shard keys have three digits (`007-of-128`)
MAX_SIZING_SHARDS = 999


class SettingsError(ValueError):
    """A setting that cannot be used, named with the environment variable that set it."""


DISCOVER_VARIABLE = "FITATLAS_DISCOVER"
# Discovery mode -> the Hub listing's `sort` key (huggingface_hub `HfApi.list_models` maps its
# `trending_score` to the wire value `trendingScore`; `downloads` is the Hub's 30-day download count).
DISCOVERY_SORTS: dict[str, str] = {"top-downloads": "downloads", "trending": "trendingScore"}
# The largest catalogue issue 12 sizes (100,000 models); a bigger N is more likely a typo than a plan,
# and every discovered model costs Hub requests on its first ingest.
MAX_DISCOVER_COUNT = 100_000
_COUNT = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Discovery:
    """One `<mode>:<count>` item of FITATLAS_DISCOVER: the first `count` models of a Hub listing."""

    mode: str
    count: int

    @property
    def sort(self) -> str:
        return DISCOVERY_SORTS[self.mode]

    def __str__(self) -> str:
        return f"{self.mode}:{self.count}"


def parse_discover(raw: str | None) -> tuple[Discovery, ...]:
    """`top-downloads:2000,trending:500` -> its items, in order; empty or unset -> () (discovery off).

    Each item is `<mode>:<count>`, mode one of DISCOVERY_SORTS, count a whole number from 1 to
    MAX_DISCOVER_COUNT, each mode at most once. Anything else raises SettingsError naming the
    variable, the item and what is wrong with it."""
    if raw is None or not raw.strip():
        return ()
    items: list[Discovery] = []
    for item in (part.strip() for part in raw.split(",")):
        reason = _discover_item_problem(item, items)
        if reason:
            raise SettingsError(f"{DISCOVER_VARIABLE}={raw!r}: item {item!r}: {reason}")
        mode, _, count = (part.strip() for part in item.partition(":"))
        items.append(Discovery(mode, int(count)))
    return tuple(items)


def _discover_item_problem(item: str, earlier: list[Discovery]) -> str | None:
    """What is wrong with one FITATLAS_DISCOVER item, or None."""
    modes = ", ".join(DISCOVERY_SORTS)
    if not item:
        return "empty item (expected <mode>:<count>, items separated by commas)"
    mode, colon, count = (part.strip() for part in item.partition(":"))
    if not colon:
        return f"expected <mode>:<count>, e.g. top-downloads:2000 (modes: {modes})"
    if mode not in DISCOVERY_SORTS:
        return f"unknown mode {mode!r}: expected one of {modes}"
    if not _COUNT.fullmatch(count):
        return f"count {count!r} is not a whole number"
    if len(count) > len(str(MAX_DISCOVER_COUNT)) or not 1 <= int(count) <= MAX_DISCOVER_COUNT:
        return f"count {count[:20]} is out of range: expected 1 to {MAX_DISCOVER_COUNT:,}"
    if any(existing.mode == mode for existing in earlier):
        return f"mode {mode!r} is given twice"
    return None


@dataclass(frozen=True)
class Settings:
    """Paths and the source mode; what the pure modules (batches, publishing, review) take."""

    data_dir: Path
    source_mode: SourceMode
    snapshot_dir: Path
    spec_sheets_dir: Path
    watchlist_path: Path = DEFAULT_WATCHLIST
    reviewers_path: Path = DEFAULT_REVIEWERS
    discover: tuple[Discovery, ...] = ()
    sizing_shards: int = DEFAULT_SIZING_SHARDS
    executor: ExecutorKind = "in_process"
    dask_address: str | None = None
    dask_workers: int | None = None

    def __post_init__(self) -> None:
        if self.source_mode not in SOURCE_MODES:
            raise SettingsError(f"FITATLAS_SOURCE={self.source_mode!r}: expected one of {', '.join(SOURCE_MODES)}")
        if self.executor not in EXECUTOR_KINDS:
            raise SettingsError(f"FITATLAS_EXECUTOR={self.executor!r}: expected one of {', '.join(EXECUTOR_KINDS)}")
        if not 1 <= self.sizing_shards <= MAX_SIZING_SHARDS:
            raise SettingsError(f"FITATLAS_SIZING_SHARDS={self.sizing_shards!r}: expected 1 to {MAX_SIZING_SHARDS}")
        if self.dask_workers is not None and self.dask_workers < 1:
            raise SettingsError(f"FITATLAS_DASK_WORKERS={self.dask_workers!r}: expected at least 1")
        if self.dask_address is not None and "://" not in self.dask_address:
            raise SettingsError(
                f"FITATLAS_DASK_ADDRESS={self.dask_address!r}: expected a scheduler address such as tcp://host:8786"
            )

    @classmethod
    def for_data_dir(cls, data_dir: Path, **overrides: object) -> Settings:
        """The defaults (bundled snapshot, repo watchlist and reviewers) around `data_dir`."""
        snapshot_dir = Path(overrides.pop("snapshot_dir", SNAPSHOT_DIR)).resolve()  # type: ignore[arg-type]
        values: dict[str, object] = {
            "data_dir": Path(data_dir).resolve(),
            "source_mode": "snapshot",
            "snapshot_dir": snapshot_dir,
            "spec_sheets_dir": snapshot_dir / "spec_sheets",
            **overrides,
        }
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """FITATLAS_DATA_DIR, FITATLAS_SOURCE, FITATLAS_SNAPSHOT_DIR, FITATLAS_SPEC_SHEETS_DIR,
        FITATLAS_WATCHLIST and FITATLAS_REVIEWERS, each defaulting to the repo's own,
        FITATLAS_DISCOVER (default: off), FITATLAS_SIZING_SHARDS (default 4), FITATLAS_EXECUTOR
        (`in_process` or `dask`), FITATLAS_DASK_ADDRESS (a running scheduler; unset: a local
        cluster) and FITATLAS_DASK_WORKERS (the local cluster's worker processes; default: cores)."""
        env = os.environ if environ is None else environ
        snapshot_dir = Path(env.get("FITATLAS_SNAPSHOT_DIR") or SNAPSHOT_DIR).resolve()
        return cls(
            data_dir=Path(env.get("FITATLAS_DATA_DIR") or REPO_ROOT / "data").resolve(),
            source_mode=env.get("FITATLAS_SOURCE") or "snapshot",  # type: ignore[arg-type]
            snapshot_dir=snapshot_dir,
            spec_sheets_dir=Path(env.get("FITATLAS_SPEC_SHEETS_DIR") or snapshot_dir / "spec_sheets").resolve(),
            watchlist_path=Path(env.get("FITATLAS_WATCHLIST") or DEFAULT_WATCHLIST).resolve(),
            reviewers_path=Path(env.get("FITATLAS_REVIEWERS") or DEFAULT_REVIEWERS).resolve(),
            discover=parse_discover(env.get(DISCOVER_VARIABLE)),
            sizing_shards=_whole_number(env, "FITATLAS_SIZING_SHARDS", DEFAULT_SIZING_SHARDS),
            executor=env.get("FITATLAS_EXECUTOR") or "in_process",  # type: ignore[arg-type]
            dask_address=env.get("FITATLAS_DASK_ADDRESS") or None,
            dask_workers=_whole_number(env, "FITATLAS_DASK_WORKERS", None),
        )

    @property
    def warehouse_path(self) -> Path:
        """The working DuckDB file: raw, staging, marts and sizing tables. BI never opens it."""
        return self.data_dir / "warehouse.duckdb"

    @property
    def published_path(self) -> Path:
        """The only DuckDB file BI reads; replaced whole with os.replace on each publication."""
        return self.data_dir / "published.duckdb"

    @property
    def published_parquet_dir(self) -> Path:
        return self.data_dir / "published"

    @property
    def sizing_shards_dir(self) -> Path:
        """The sizing inputs and each shard's grid rows (Parquet), on their way into the warehouse
        (pipelines.defs.sizing.sharding). On a cluster every worker must see it at this path."""
        return self.data_dir / "sizing"

    @property
    def chart_cache_dir(self) -> Path:
        """The site's rendered charts, kept so the next publication redraws only those that changed."""
        return self.data_dir / "cache" / "charts"


def _whole_number(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if not _COUNT.fullmatch(raw.strip()) or len(raw.strip()) > 6:
        raise SettingsError(f"{name}={raw!r}: expected a whole number")
    return int(raw)


@dataclass(frozen=True)
class Cadence:
    """How often the daemon's sensors look and when the schedules fire: fixed when the code
    location loads, since Dagster reads them from the sensor and schedule definitions."""

    spec_sheet_sensor_s: int = 30
    hf_sensor_s: int = 900
    automation_s: int = 30
    approval_sensor_s: int = 30
    price_cron: str = "0 3 * * *"
    full_refresh_cron: str = "0 4 * * 0"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Cadence:
        env = os.environ if environ is None else environ
        defaults = cls()

        def seconds(name: str, default: int) -> int:
            raw = env.get(name)
            if raw in (None, ""):
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r}: expected a whole number of seconds") from None
            if value < 1:
                raise SettingsError(f"{name}={raw!r}: expected at least 1 second")
            return value

        return cls(
            spec_sheet_sensor_s=seconds("FITATLAS_SPEC_SHEET_SENSOR_INTERVAL_S", defaults.spec_sheet_sensor_s),
            hf_sensor_s=seconds("FITATLAS_HF_SENSOR_INTERVAL_S", defaults.hf_sensor_s),
            automation_s=seconds("FITATLAS_AUTOMATION_INTERVAL_S", defaults.automation_s),
            approval_sensor_s=seconds("FITATLAS_APPROVAL_SENSOR_INTERVAL_S", defaults.approval_sensor_s),
            price_cron=env.get("FITATLAS_PRICE_SCHEDULE_CRON") or defaults.price_cron,
            full_refresh_cron=env.get("FITATLAS_FULL_REFRESH_CRON") or defaults.full_refresh_cron,
        )
