"""One writer per warehouse, whoever starts the run.

`fitatlas run` holds the warehouse lock around its in-process run; runs the daemon launches take the
same lock in their run worker (`pipelines.defs.executor`). Tested with the executor alone (a
reconstructable job run by `execute_job` while the test holds the lock) and end to end: a real
`fitatlas run` while a real `dagster-daemon` (the `make dev` workspace) launches a sensor run on
the same data directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from pipelines.publishing import exclusive_lock, read_publications
from pipelines.review_ledger import get_batch
from pipelines.settings import REPO_ROOT, SNAPSHOT_DIR, Settings
from pipelines.warehouse import WAREHOUSE_POOL, warehouse_lock, warehouse_lock_path

pytestmark = pytest.mark.integration

# --- the executor alone ----------------------------------------------------------------------------


@dg.asset(pool=WAREHOUSE_POOL)
def writes_the_warehouse() -> None:
    Path(os.environ["ONE_WRITER_MARK"]).write_text(str(time.time()))


@dg.asset
def writes_nothing() -> None:
    pass


def _job(name: str, asset) -> dg.JobDefinition:
    from pipelines.defs.executor import fitatlas_executor

    # Rebuilt in each step process from this file: the data dir reaches it the way it reaches the
    # code location, through the process environment.
    executor = fitatlas_executor(Settings.from_environment())
    defs = dg.Definitions(assets=[asset], jobs=[dg.define_asset_job(name, selection=[asset.key])], executor=executor)
    return defs.resolve_job_def(name)


def warehouse_job() -> dg.JobDefinition:
    return _job("warehouse_job", writes_the_warehouse)


def warehouse_job_under_dask() -> dg.JobDefinition:
    return _job("warehouse_job_under_dask", writes_the_warehouse)


def other_job() -> dg.JobDefinition:
    return _job("other_job", writes_nothing)


def reconstructable_from_this_file(function: str):
    """The job as a daemon's run worker loads it: from a file, in new step processes."""
    from dagster._core.definitions.reconstruct import ReconstructableJob

    return ReconstructableJob.for_file(__file__, function)


# Each case its own job function: Dagster caches a reconstructed job per pointer within a process, and
# the executor reads the environment when the job is built.
@pytest.mark.parametrize(("executor", "job"), [("in_process", "warehouse_job"), ("dask", "warehouse_job_under_dask")])
def test_a_daemon_style_run_waits_for_the_warehouse_lock_and_says_for_whom(tmp_path, monkeypatch, executor, job):
    """With FITATLAS_EXECUTOR=dask too: a run with a warehouse step never goes to Dask (its scheduler
    knows nothing of the lock), it runs here and waits."""
    from processes import wait_for  # not at the top: step processes load this file without tests/ on their path

    data_dir = tmp_path / "data dir's"
    monkeypatch.setenv("FITATLAS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("FITATLAS_EXECUTOR", executor)
    mark = tmp_path / "mark"
    monkeypatch.setenv("ONE_WRITER_MARK", str(mark))
    outcome: dict = {}
    with dg.instance_for_test() as instance:

        def run() -> None:
            result = dg.execute_job(reconstructable_from_this_file(job), instance=instance)
            outcome["success"], outcome["run_id"] = result.success, result.run_id

        with warehouse_lock(data_dir, holder="fitatlas run (pid 4242)"):
            worker = threading.Thread(target=run)
            worker.start()
            wait_for(
                lambda: any("waiting for the warehouse" in (e.user_message or "") for r in instance.get_runs() for e in instance.all_logs(r.run_id)),
                300, "the run to report waiting for the warehouse lock", interval_s=0.2,
            )
            assert not mark.exists()  # it did not write while the lock was held
            released_at = time.time()
        worker.join(timeout=120)
        assert outcome["success"]
        assert float(mark.read_text()) >= released_at
        messages = [e.user_message for e in instance.all_logs(outcome["run_id"])]
        assert any("held by fitatlas run (pid 4242" in m for m in messages)
        assert not any("Dask scheduler" in m for m in messages)


def test_a_run_without_warehouse_steps_does_not_wait(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    monkeypatch.setenv("FITATLAS_DATA_DIR", str(data_dir))
    with dg.instance_for_test() as instance, warehouse_lock(data_dir, holder="someone"):
        assert dg.execute_job(reconstructable_from_this_file("other_job"), instance=instance).success


def test_the_code_location_runs_every_job_with_the_warehouse_writer_executor():
    from pipelines.definitions import defs

    with dg.instance_for_test():
        names = {job.executor_def.name for job in defs().get_repository_def().get_all_jobs()}
    assert names == {"multiprocess_warehouse_writer"}


# --- a real daemon and a real CLI run ---------------------------------------------------------------


def _lock_is_held(path: Path) -> bool:
    try:
        with exclusive_lock(path, wait=False):
            return False
    except BlockingIOError:
        return True


def test_cli_run_while_the_daemon_launches_a_sensor_run(tmp_path, monkeypatch):
    """Ordered so the contention is certain on any machine: the daemon is up (its spec-sheet sensor
    has ticked on an empty directory), then `fitatlas run` takes the warehouse lock, then a sheet
    lands in the sensor's directory and the daemon launches its ingest while the CLI run holds the
    lock. Waits have no tight bounds (a loaded 2-core machine loads the code server slowly); a dead
    daemon fails at once with its log."""
    # imported here: step processes load this file as a job module, without tests/ on their path
    from processes import stop_process_group, wait_for

    root = tmp_path / "one writer's dir"
    data_dir, home = root / "data", root / ".dagster"
    cli_sheets, sensor_sheets = root / "spec_sheets", root / "sensor_sheets"
    home.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "pipelines" / "dagster.yaml", home / "dagster.yaml")
    shutil.copytree(SNAPSHOT_DIR / "spec_sheets", cli_sheets)
    sensor_sheets.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("FITATLAS_SNAPSHOT_DIR", "FITATLAS_SOURCE")},
        "FITATLAS_DATA_DIR": str(data_dir),
        "FITATLAS_SPEC_SHEETS_DIR": str(cli_sheets),
        "DAGSTER_HOME": str(home),
        "FITATLAS_SPEC_SHEET_SENSOR_INTERVAL_S": "1",
        # downstream automation stays out of this test (it runs only the first, empty tick): what is
        # under test is the CLI run against a sensor-launched ingest
        "FITATLAS_AUTOMATION_INTERVAL_S": "86400",
        "FITATLAS_APPROVAL_SENSOR_INTERVAL_S": "5",
        "PYTHONPATH": str(REPO_ROOT),
    }
    for name, value in env.items():
        if name.startswith(("FITATLAS_", "DAGSTER_")):
            monkeypatch.setenv(name, value)
    bin_dir = Path(sys.executable).parent
    daemon_log_path = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO_ROOT,
        env={**env, "FITATLAS_SPEC_SHEETS_DIR": str(sensor_sheets)},
        stdout=daemon_log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    cli = None

    def daemon_alive() -> bool:
        assert daemon.poll() is None, daemon_log_path.read_text()[-3000:]
        return True

    try:
        wait_for(lambda: daemon_alive() and "spec_sheet_sensor" in daemon_log_path.read_text(), 900,
                  "the daemon to evaluate the spec-sheet sensor")
        cli = subprocess.Popen(
            [str(bin_dir / "fitatlas"), "run"], cwd=REPO_ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        wait_for(lambda: _lock_is_held(warehouse_lock_path(data_dir)) or cli.poll() is not None, 900, "the CLI run to take the lock")
        assert cli.poll() is None, cli.communicate()
        sheet = next(p for p in sorted(cli_sheets.rglob("*")) if p.is_file())
        target = sensor_sheets / sheet.relative_to(cli_sheets)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sheet, target)
        with dg.DagsterInstance.get() as instance:

            def sensor_runs() -> list[dg.DagsterRun]:
                return list(instance.get_runs(filters=dg.RunsFilter(job_name="ingest_spec_sheets")))

            def waited(run_id: str) -> bool:
                return any("waiting for the warehouse" in (e.user_message or "") for e in instance.all_logs(run_id))

            wait_for(lambda: daemon_alive() and sensor_runs(), 900, "the sensor to launch a spec-sheet run")
            run_id = sensor_runs()[0].run_id
            cli_still_running = wait_for(lambda: waited(run_id) or cli.poll() is not None or "done", 900, "the sensor run")
            cli_out, cli_err = cli.communicate(timeout=1800)
            assert cli.returncode == 0, cli_out[-3000:] + cli_err[-3000:]
            assert "success" in cli_out.splitlines()[0] or any(line.startswith("run ") and "success" in line for line in cli_out.splitlines())
            final = wait_for(
                lambda: (r := instance.get_run_by_id(run_id)) is not None and r.is_finished and r, 900, "the sensor run to finish"
            )
            assert final.status == dg.DagsterRunStatus.SUCCESS, [e.user_message for e in instance.all_logs(run_id)][-20:]
            assert waited(run_id), "the sensor run started while the CLI run held the warehouse, yet did not wait"
            assert cli_still_running
            # whatever the daemon launched next (automation, publication) finishes too, without lock errors
            wait_for(
                lambda: all(r.is_finished for r in instance.get_runs()), 900, "every daemon-launched run to finish"
            )
            runs = instance.get_runs()
            failed = [r for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
            errors = [e.user_message for r in runs for e in instance.all_logs(r.run_id) if "lock" in (e.user_message or "").lower() and "conflicting" in (e.user_message or "").lower()]
            assert not failed, [(r.job_name, r.status) for r in failed]
            assert not errors, errors
    finally:
        stop_process_group(daemon)
        if cli is not None:
            stop_process_group(cli)
    settings = Settings.for_data_dir(data_dir)
    history = read_publications(settings.published_path)
    hashes = [row["content_sha256"] for row in history]
    assert hashes and len(hashes) == len(set(hashes))  # each content is published once
    cli_batch = next(line.split()[1].rstrip(":") for line in cli_out.splitlines() if line.startswith("run "))
    assert get_batch(settings, cli_batch).content_sha256 in hashes
