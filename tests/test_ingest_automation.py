"""Sensors, schedules and downstream automation of ingest, against real Dagster instances."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from fake_sources import OPENROUTER_PATH, SHARED_DATA, FakeSources, Fault
from processes import stop_process_group, wait_for

from pipelines.defs.ingest.assets import raw_assets
from pipelines.defs.ingest.automation import DOWNSTREAM_CONDITION, hf_model_sensor, ingest_schedules, spec_sheet_sensor
from pipelines.resources import fitatlas_resources
from pipelines.settings import REPO_ROOT, Cadence, Settings
from pipelines.warehouse import connect

pytestmark = pytest.mark.integration

H100_SHEET = SHARED_DATA / "gpus" / "aiconfigurator_systems" / "h100_sxm.yaml"
A100_SHEET = SHARED_DATA / "gpus" / "aiconfigurator_systems" / "a100_sxm.yaml"
MODELS = ["Qwen/Qwen3-0.6B", "microsoft/phi-2", "Qwen/Qwen2.5-1.5B"]


def raw_asset(table: str) -> dg.AssetsDefinition:
    return next(asset for asset in raw_assets if asset.key == dg.AssetKey(["raw", table]))


class Setup:
    """The settings and resources one test runs with: a temp warehouse and spec-sheet directory,
    snapshot mode unless the test goes live (then its fake sources configure `live_sources`)."""

    def __init__(self, tmp_path: Path):
        self.sheets = tmp_path / "sheets"
        self.sheets.mkdir()
        self.settings = Settings.for_data_dir(tmp_path / "data", spec_sheets_dir=self.sheets)
        self.environ: dict[str, str] = {}

    def go_live(self, watchlist: Path, environ: dict[str, str]) -> None:
        self.settings = Settings.for_data_dir(
            self.settings.data_dir, spec_sheets_dir=self.sheets, source_mode="live", watchlist_path=watchlist
        )
        self.environ = environ

    @property
    def resources(self) -> dict[str, object]:
        return fitatlas_resources(self.settings, self.environ)


@pytest.fixture
def isolated(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


@pytest.fixture
def live(isolated: Setup, tmp_path: Path):
    with FakeSources() as server:
        for repo in MODELS:
            server.add_model(repo, sha="1" * 40)
        watchlist = tmp_path / "watchlist.yaml"
        watchlist.write_text("models:\n" + "".join(f"  - {repo}\n" for repo in MODELS))
        isolated.go_live(
            watchlist,
            {
                "HF_ENDPOINT": server.base_url,
                "FITATLAS_OPENROUTER_URL": server.url(OPENROUTER_PATH),
                "FITATLAS_HTTP_TIMEOUT_S": "1",
                "FITATLAS_HTTP_MAX_ATTEMPTS": "2",
                "FITATLAS_HTTP_BACKOFF_S": "0.01",
            },
        )
        yield server, watchlist, isolated


SPEC_SHEET_SENSOR = spec_sheet_sensor(30)
HF_MODEL_SENSOR = hf_model_sensor(900)


def evaluate(sensor: dg.SensorDefinition, setup: Setup, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=setup.resources))
    assert isinstance(result, dg.SensorResult), result
    return result


# --- spec-sheet sensor ---------------------------------------------------------------------------


def test_spec_sheet_sensor_requests_one_run_per_change(isolated: Setup):
    with dg.instance_for_test() as instance:
        empty = evaluate(SPEC_SHEET_SENSOR, isolated, instance, None)
        assert not empty.run_requests and empty.cursor == "{}"

        shutil.copy(H100_SHEET, isolated.sheets / "h100_sxm.yaml")
        dropped = evaluate(SPEC_SHEET_SENSOR, isolated, instance, empty.cursor)
        assert len(dropped.run_requests) == 1
        request = dropped.run_requests[0]
        assert request.run_config == {"ops": {"raw__gpu_spec_sheets": {"config": {"items": ["h100_sxm.yaml"], "force": False}}}}
        assert set(json.loads(dropped.cursor)) == {"h100_sxm.yaml"}

        unchanged = evaluate(SPEC_SHEET_SENSOR, isolated, instance, dropped.cursor)
        assert not unchanged.run_requests and unchanged.cursor == dropped.cursor

        (isolated.sheets / "h100_sxm.yaml").write_text(H100_SHEET.read_text() + "\n# revised\n")
        changed = evaluate(SPEC_SHEET_SENSOR, isolated, instance, unchanged.cursor)
        assert len(changed.run_requests) == 1 and changed.run_requests[0].run_key != request.run_key

        (isolated.sheets / "h100_sxm.yaml").write_bytes(H100_SHEET.read_bytes())
        reverted = evaluate(SPEC_SHEET_SENSOR, isolated, instance, changed.cursor)
        assert len(reverted.run_requests) == 1
        assert reverted.run_requests[0].run_key not in {request.run_key, changed.run_requests[0].run_key}


def test_the_requested_run_lands_exactly_the_changed_sheet(isolated: Setup):
    shutil.copy(H100_SHEET, isolated.sheets / "h100_sxm.yaml")
    shutil.copy(A100_SHEET, isolated.sheets / "a100_sxm.yaml")
    with dg.instance_for_test() as instance:
        first = evaluate(SPEC_SHEET_SENSOR, isolated, instance, json.dumps({"a100_sxm.yaml": "stale"}))
        assert first.run_requests[0].run_config["ops"]["raw__gpu_spec_sheets"]["config"]["items"] == [
            "a100_sxm.yaml", "h100_sxm.yaml"
        ]
        (isolated.sheets / "h100_sxm.yaml").write_text(H100_SHEET.read_text() + "\n# revised\n")
        request = evaluate(SPEC_SHEET_SENSOR, isolated, instance, first.cursor).run_requests[0]
        result = dg.materialize(
            [raw_asset("gpu_spec_sheets")], instance=instance, run_config=request.run_config, resources=isolated.resources
        )
        assert result.success
    with connect(isolated.settings.warehouse_path) as con:
        landed = con.execute("select distinct location from raw.gpu_spec_sheets").fetchall()
    assert [Path(location).name for (location,) in landed] == ["h100_sxm.yaml"]


# --- Hub sensor ----------------------------------------------------------------------------------


def test_hf_sensor_skips_in_snapshot_mode(isolated: Setup):
    with dg.instance_for_test() as instance:
        result = HF_MODEL_SENSOR(dg.build_sensor_context(instance=instance, resources=isolated.resources))
    assert isinstance(result, dg.SkipReason)


def test_hf_sensor_requests_only_models_whose_sha_changed(live):
    server, watchlist, setup = live
    with dg.instance_for_test() as instance:
        first = evaluate(HF_MODEL_SENSOR, setup, instance, None)
        assert first.run_requests[0].run_config["ops"]["raw__hf_model_configs"]["config"]["items"] == MODELS

        same = evaluate(HF_MODEL_SENSOR, setup, instance, first.cursor)
        assert not same.run_requests

        server.models["microsoft/phi-2"].sha = "2" * 40
        changed = evaluate(HF_MODEL_SENSOR, setup, instance, same.cursor)
        assert [r.run_config["ops"]["raw__hf_model_configs"]["config"]["items"] for r in changed.run_requests] == [
            ["microsoft/phi-2"]
        ]

        server.add_model("nvidia/DeepSeek-V3.1-NVFP4", sha="3" * 40)
        watchlist.write_text(watchlist.read_text() + "  - nvidia/DeepSeek-V3.1-NVFP4\n")
        added = evaluate(HF_MODEL_SENSOR, setup, instance, changed.cursor)
        assert added.run_requests[0].run_config["ops"]["raw__hf_model_configs"]["config"]["items"] == [
            "nvidia/DeepSeek-V3.1-NVFP4"
        ]

        server.always("/api/models/Qwen/Qwen3-0.6B", Fault.status_code(503))
        outage = evaluate(HF_MODEL_SENSOR, setup, instance, added.cursor)
        assert not outage.run_requests and json.loads(outage.cursor)["Qwen/Qwen3-0.6B"] == "1" * 40


def test_a_sha_change_re_ingests_only_that_model(live):
    server, _watchlist, setup = live
    asset = raw_asset("hf_model_configs")
    with dg.instance_for_test() as instance:
        first = evaluate(HF_MODEL_SENSOR, setup, instance, None)
        assert dg.materialize([asset], instance=instance, run_config=first.run_requests[0].run_config, resources=setup.resources).success
        server.models["Qwen/Qwen2.5-1.5B"].sha = "9" * 40
        request = evaluate(HF_MODEL_SENSOR, setup, instance, first.cursor).run_requests[0]
        resolves_before = [p for p in server.paths_requested() if "/resolve/" in p or "/api/models/" in p]
        result = dg.materialize([asset], instance=instance, run_config=request.run_config, resources=setup.resources)
        assert result.success
    asked = [p for p in server.paths_requested() if "/resolve/" in p or "/api/models/" in p][len(resolves_before):]
    assert asked == ["/api/models/Qwen/Qwen2.5-1.5B", f"/Qwen/Qwen2.5-1.5B/resolve/{'9' * 40}/config.json"]
    metadata = result.asset_materializations_for_node("raw__hf_model_configs")[0].metadata
    assert metadata["records_landed"].value == 1 and metadata["items_checked"].value == 1


# --- schedules and downstream automation ------------------------------------------------------------


def test_weekly_full_refresh_forces_every_raw_source():
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance)
        weekly = next(schedule for schedule in ingest_schedules(Cadence()) if schedule.name == "weekly_full_refresh")
        run_config = weekly.evaluate_tick(context).run_requests[0].run_config
    assert len(run_config["ops"]) == len(raw_assets)
    assert all(op["config"]["force"] for op in run_config["ops"].values())


def test_downstream_follows_a_raw_table_only_when_it_landed_something(live):
    server, _watchlist, setup = live
    raw = raw_asset("openrouter_models")

    @dg.asset(deps=[raw.key], automation_condition=DOWNSTREAM_CONDITION)
    def provider_prices_downstream() -> None: ...

    defs = dg.Definitions(assets=[raw, provider_prices_downstream], resources=setup.resources)
    with dg.instance_for_test() as instance:
        assert dg.materialize([raw, provider_prices_downstream], instance=instance, resources=setup.resources).success
        cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor

        assert dg.materialize([raw], instance=instance, resources=setup.resources).success  # 304: nothing landed
        quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        assert quiet.total_requested == 0

        document = json.loads((SHARED_DATA / "prices" / "openrouter_api_v1_models_2026-08-19.json").read_bytes())
        document["data"][0]["pricing"]["prompt"] = "0.000002"
        server.bodies[OPENROUTER_PATH] = json.dumps(document).encode()
        assert dg.materialize([raw], instance=instance, resources=setup.resources).success
        woken = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor)
        assert woken.total_requested == 1
        assert woken.get_num_requested(provider_prices_downstream.key) == 1


def test_the_code_location_loads_with_ingest_automation():
    from pipelines.definitions import defs

    with dg.instance_for_test():  # resolving a repository reads the current instance's defs-state storage
        repository = defs().get_repository_def()
    assert {"spec_sheet_sensor", "hf_model_sensor", "downstream_automation"} <= {s.name for s in repository.sensor_defs}
    assert {"nightly_prices", "weekly_full_refresh"} <= {s.name for s in repository.schedule_defs}


# --- the daemon, end to end ------------------------------------------------------------------------

DAEMON_DEFS = """
import dagster as dg
from pipelines.defs.ingest.assets import raw_assets
from pipelines.defs.ingest.automation import spec_sheet_ingest_job, spec_sheet_sensor
from pipelines.resources import fitatlas_resources
from pipelines.settings import Cadence, Settings

@dg.definitions
def defs():
    return dg.Definitions(
        assets=raw_assets,
        jobs=[spec_sheet_ingest_job],
        sensors=[spec_sheet_sensor(Cadence.from_environment().spec_sheet_sensor_s)],
        resources=fitatlas_resources(Settings.from_environment()),
    )
"""


def _start_daemon(home: Path, defs_file: Path, env: dict[str, str]) -> subprocess.Popen:
    daemon = Path(sys.executable).with_name("dagster-daemon")
    return subprocess.Popen(
        [str(daemon), "run", "-f", str(defs_file), "-d", str(REPO_ROOT)],
        env={**env, "DAGSTER_HOME": str(home)},
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_daemon_runs_the_sensor_once_per_change_and_keeps_its_cursor_across_restarts(
    isolated: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "pipelines" / "dagster.yaml", home / "dagster.yaml")
    defs_file = tmp_path / "daemon_defs.py"
    defs_file.write_text(DAEMON_DEFS)
    env = {
        **os.environ,
        "FITATLAS_DATA_DIR": str(isolated.settings.data_dir),
        "FITATLAS_SPEC_SHEETS_DIR": str(isolated.sheets),
        "FITATLAS_SPEC_SHEET_SENSOR_INTERVAL_S": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    shutil.copy(H100_SHEET, isolated.sheets / "h100_sxm.yaml")

    def runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
        return list(instance.get_runs(filters=dg.RunsFilter(job_name="ingest_spec_sheets")))

    def sensor_ticks(instance: dg.DagsterInstance) -> int:
        state = [s for s in instance.all_instigator_state() if s.name == "spec_sheet_sensor"]
        return len(instance.get_ticks(state[0].instigator_origin_id, state[0].selector_id)) if state else 0

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        daemon = _start_daemon(home, defs_file, env)
        try:
            wait_for(lambda: [r for r in runs(instance) if r.status == dg.DagsterRunStatus.SUCCESS], 900, "the first run")
        finally:
            stop_process_group(daemon)
        assert len(runs(instance)) == 1
        ticks_before_restart = sensor_ticks(instance)

        daemon = _start_daemon(home, defs_file, env)
        try:
            wait_for(lambda: sensor_ticks(instance) >= ticks_before_restart + 2, 900, "sensor ticks after restart")
            assert len(runs(instance)) == 1  # the cursor survived: the same sheet is not ingested again
            (isolated.sheets / "a100_sxm.yaml").write_bytes(A100_SHEET.read_bytes())
            wait_for(lambda: len(runs(instance)) == 2, 900, "a run for the new sheet")
        finally:
            stop_process_group(daemon)
        newest = runs(instance)[0]
        assert newest.run_config["ops"]["raw__gpu_spec_sheets"]["config"]["items"] == ["a100_sxm.yaml"]
