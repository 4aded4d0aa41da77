"""Where FitAtlas keeps its files, overridable by environment so tests and CI can run in a temp dir.

One place decides every path: dbt reads the same warehouse through FITATLAS_WAREHOUSE, which
`configure_environment` exports before any dbt invocation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT_DIR = REPO_ROOT / "pipelines" / "snapshot"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    source_mode: str  # "snapshot" (bundled, default) or "live"
    snapshot_dir: Path
    spec_sheets_dir: Path

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


def load_settings() -> Settings:
    data_dir = Path(os.environ.get("FITATLAS_DATA_DIR", REPO_ROOT / "data")).resolve()
    snapshot_dir = Path(os.environ.get("FITATLAS_SNAPSHOT_DIR", SNAPSHOT_DIR)).resolve()
    return Settings(
        data_dir=data_dir,
        source_mode=os.environ.get("FITATLAS_SOURCE", "snapshot"),
        snapshot_dir=snapshot_dir,
        spec_sheets_dir=Path(os.environ.get("FITATLAS_SPEC_SHEETS_DIR", snapshot_dir / "spec_sheets")).resolve(),
    )


def configure_environment(settings: Settings | None = None) -> Settings:
    """Export what dbt and the tools we call need: the shared warehouse path and no telemetry."""
    settings = settings or load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["FITATLAS_WAREHOUSE"] = str(settings.warehouse_path)
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    return settings
