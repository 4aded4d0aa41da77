"""The code location as Dagster loads it: settings validated at load, nothing done at import.

Real parts: `dagster definitions validate` loading workspace.yaml in its own process, and a fresh
interpreter importing `pipelines.definitions`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import build_definitions
from pipelines.resources import FitAtlasResource, LiveSourcesResource, WarehouseResource
from pipelines.settings import REPO_ROOT, Cadence, Settings, SettingsError

pytestmark = pytest.mark.integration

DAGSTER = Path(sys.executable).with_name("dagster")


def validate(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").touch()
    return subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home), "FITATLAS_DATA_DIR": str(tmp_path / "data"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )


def test_the_code_location_loads_and_creates_nothing(tmp_path: Path):
    loaded = validate(tmp_path)
    assert loaded.returncode == 0, loaded.stdout[-3000:]
    assert "Validation successful for code location pipelines.definitions:defs" in loaded.stdout
    assert not (tmp_path / "data").exists()  # loading is not running: no data directory yet


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FITATLAS_SOURCE", "bogus", "FITATLAS_SOURCE='bogus': expected one of snapshot, live"),
        ("FITATLAS_APPROVAL_SENSOR_INTERVAL_S", "soon", "FITATLAS_APPROVAL_SENSOR_INTERVAL_S='soon': expected a whole number"),
        ("FITATLAS_HTTP_TIMEOUT_S", "fast", "FITATLAS_HTTP_TIMEOUT_S='fast': expected a number"),
    ],
)
def test_a_bad_setting_stops_the_load_naming_the_variable(tmp_path: Path, variable: str, value: str, message: str):
    loaded = validate(tmp_path, **{variable: value})
    assert loaded.returncode != 0
    assert message in loaded.stdout


# Third-party packages are imported first: some set their own allocator variables or warning
# filters on import (polars, dagster); what is measured is what our modules do.
IMPORT_PROBE = """
import json, os, sys, warnings
import dagster, dagster_dbt, dagster_duckdb, duckdb, httpx, polars, pyarrow, pydantic, yaml
before_env, before_filters = dict(os.environ), list(warnings.filters)
import pipelines.definitions
print(json.dumps({
    "env_changed": sorted(k for k in set(os.environ) | set(before_env) if os.environ.get(k) != before_env.get(k)),
    "filters_changed": list(warnings.filters) != before_filters,
}))
"""


def test_importing_the_definitions_module_changes_no_global_state(tmp_path: Path):
    data_dir = tmp_path / "data"
    probe = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        cwd=REPO_ROOT,
        env={**os.environ, "FITATLAS_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert json.loads(probe.stdout.splitlines()[-1]) == {"env_changed": [], "filters_changed": False}
    assert not data_dir.exists()


def test_every_asset_check_and_sensor_gets_its_configuration_from_resources(tmp_path: Path):
    settings = Settings.for_data_dir(tmp_path / "data", source_mode="live")
    defs = build_definitions(settings, Cadence(approval_sensor_s=7), environ={"FITATLAS_HTTP_TIMEOUT_S": "2.5"})
    with dg.instance_for_test():
        repository = defs.get_repository_def()
    assert set(repository.get_top_level_resources()) == {"fitatlas", "warehouse", "live_sources", "dbt"}
    resources = defs.resources
    assert isinstance(resources["fitatlas"], FitAtlasResource) and resources["fitatlas"].settings == settings
    assert isinstance(resources["warehouse"], WarehouseResource)
    assert resources["warehouse"].database == str(tmp_path.resolve() / "data" / "warehouse.duckdb")
    assert isinstance(resources["live_sources"], LiveSourcesResource) and resources["live_sources"].timeout_s == 2.5
    assert repository.get_sensor_def("approval_sensor").minimum_interval_seconds == 7


def test_settings_from_the_environment_default_to_the_repo_and_name_bad_values():
    settings = Settings.from_environment({})
    assert (settings.data_dir, settings.source_mode) == (REPO_ROOT / "data", "snapshot")
    assert settings.spec_sheets_dir == REPO_ROOT / "pipelines" / "snapshot" / "spec_sheets"
    with pytest.raises(SettingsError, match="FITATLAS_SOURCE='Live'"):
        Settings.from_environment({"FITATLAS_SOURCE": "Live"})
    with pytest.raises(SettingsError, match="FITATLAS_HF_SENSOR_INTERVAL_S='0': expected at least 1 second"):
        Cadence.from_environment({"FITATLAS_HF_SENSOR_INTERVAL_S": "0"})


def test_the_hub_token_is_an_env_var_reference_not_a_value(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secretVALUE")
    resource = LiveSourcesResource.from_environment({"HF_TOKEN": "hf_secretVALUE"})
    assert isinstance(resource.hf_token, dg.EnvVar) and resource.hf_token == "HF_TOKEN"
    live = resource.process_config_and_initialize().live_config()
    assert live.hf_token is not None and live.hf_token.reveal() == "hf_secretVALUE"


HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
sys.stdin.readline()  # hold the file until the test says so
con.close()
"""


def test_the_warehouse_waits_for_another_process_holding_the_file(tmp_path: Path):
    """Two steps of one daemon-launched run open the warehouse from parallel processes; DuckDB lets one
    process at a time have the file, so the second waits for it (as dagster-duckdb's resource does)."""
    database = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(database)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        import duckdb

        with pytest.raises(duckdb.IOException):  # no retries: the holder's lock is refused at once
            with WarehouseResource(database=str(database), open_retries=0).get_connection():
                pass
        def release() -> None:
            holder.stdin.write("release\n")
            holder.stdin.flush()

        # opened while the file is still held: only the retries let it in, once the holder lets go
        threading.Timer(0.5, release).start()
        with WarehouseResource(database=str(database)).get_connection() as con:
            assert con.execute("select 42").fetchone() == (42,)
    finally:
        holder.kill()
        holder.wait()
