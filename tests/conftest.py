"""Shared fixtures: the dbt manifest @dbt_assets needs at import, and where shared/data lives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# The test session is a process start, like the CLI's: no telemetry from dbt or GE anywhere below.
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def pytest_sessionstart(session: pytest.Session) -> None:
    """`make test` parses dbt first; a bare `pytest` gets the same manifest here."""
    manifest = REPO_ROOT / "dbt_project" / "target" / "manifest.json"
    if manifest.exists():
        return
    dbt = Path(sys.executable).with_name("dbt")
    subprocess.run([str(dbt), "parse", "--profiles-dir", ".", "--quiet"], cwd=REPO_ROOT / "dbt_project", check=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data not found at {SHARED_DATA}: CI lays ../shared beside the clone")
    return SHARED_DATA
