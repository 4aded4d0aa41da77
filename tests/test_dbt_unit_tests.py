"""Every dbt unit test runs and passes, with real dbt on a real (temporary) DuckDB warehouse.

dbt silently ignores a `unit_tests:` block nested under its model entry, so a test can vanish
without any failure; comparing what ran with what `dbt ls` lists, and a floor on that count,
catches it. Unit tests need their parent relations to exist (dbt reads their columns), so seeds
and models are first built over empty raw tables shaped as the ingest and sizing assets create
them. dbt writes into the temporary directory (--target-path, --log-path), never
dbt_project/target, whose manifest other tests import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from test_dbt_normalisation import DBT_PROJECT, RAW_TABLES

from pipelines.defs.ingest.freshness import ensure_attempts_table
from pipelines.defs.ingest.landing import land_units
from pipelines.warehouse import replace_table
from sizing.model_spec import specs_to_frames

pytestmark = pytest.mark.integration

UNIT_TESTS_AT_LEAST = 15
"""Unit tests dbt listed once every block sat at the top level of its model's YAML (issue 10)."""


def empty_warehouse(path: Path) -> Path:
    """Raw and sizing tables with their real columns and no rows: what dbt's sources need."""
    with duckdb.connect(str(path)) as con:
        for raw_table in RAW_TABLES:
            land_units(con, raw_table=raw_table, batch_id="empty", units=())
        ensure_attempts_table(con)
        models, _ = specs_to_frames([])
        replace_table(con, "sizing.model_specs", models)
    return path


def dbt(warehouse: Path, command: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`dbt <command>` on `warehouse`, its target and logs beside it. (test_dbt_normalisation's
    dbt_build only builds, and `dbt build --select test_type:unit` selects nothing.)"""
    executable = Path(sys.executable).with_name("dbt")
    return subprocess.run(
        [str(executable), command, "--profiles-dir", ".", "--target-path", str(warehouse.parent / "target"),
         "--log-path", str(warehouse.parent / "logs"), *arguments],
        cwd=DBT_PROJECT,
        env={**os.environ, "FITATLAS_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_dbt_unit_test_runs_and_passes(tmp_path: Path) -> None:
    warehouse = empty_warehouse(tmp_path / "warehouse.duckdb")
    listing = dbt(warehouse, "ls", "--quiet", "--resource-type", "unit_test", "--output", "json", "--output-keys", "unique_id")
    assert listing.returncode == 0, listing.stdout[-6000:]
    listed = {json.loads(line)["unique_id"] for line in listing.stdout.splitlines() if line.startswith("{")}

    parents = dbt(warehouse, "build", "--exclude-resource-type", "test", "unit_test")
    assert parents.returncode == 0, parents.stdout[-6000:]
    unit = dbt(warehouse, "test", "--select", "test_type:unit")
    assert unit.returncode == 0, unit.stdout[-6000:]

    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    ran = {result["unique_id"]: result["status"] for result in results}
    assert set(ran) == listed
    assert set(ran.values()) == {"pass"}
    assert len(listed) >= UNIT_TESTS_AT_LEAST
