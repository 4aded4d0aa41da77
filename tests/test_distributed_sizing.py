"""The sizing shards on a local Dask cluster publish what an in-process run publishes.

Three real `fitatlas run`s on one data dir, each a subprocess whose environment names its settings:

1. in-process, FITATLAS_SIZING_SHARDS=2: the first publication;
2. FITATLAS_EXECUTOR=dask with 3 shards and a LocalCluster of 2 worker processes (no address set):
   the planner finds the 3 new partitions never materialised and the grid loaded from 2 shards, the
   shards run as 3 Dagster runs on Dask, and the batch they feed has exactly the content hash of the
   first publication, so nothing new is published;
3. on Dask again after one shard's files were removed: the planner names that shard, and only it runs.

Comparing within one data dir is what makes the content hash comparable: a fresh data dir lands the
sources at another time, and landing times are part of the published content (source freshness).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from review_keys import cli_environment

from pipelines.defs.sizing.sharding import MANIFEST, ShardStore, shard_keys
from pipelines.publishing import read_publications
from pipelines.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration
SHARD = dg.AssetKey("sizing_shard")


def fitatlas_run(settings: Settings, dagster_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **cli_environment(settings), "DAGSTER_HOME": str(dagster_home)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("fitatlas")), "run"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("distributed")
    data_dir, dagster_home = root / "data", root / ".dagster"
    in_process = fitatlas_run(Settings.for_data_dir(data_dir, sizing_shards=2), dagster_home)
    first_publication = read_publications(data_dir / "published.duckdb")[-1]
    dask_settings = Settings.for_data_dir(data_dir, sizing_shards=3, executor="dask", dask_workers=2)
    on_dask = fitatlas_run(dask_settings, dagster_home)
    removed = shard_keys(3)[1]
    (ShardStore(dask_settings.sizing_shards_dir).shard_dir(removed) / MANIFEST).unlink()
    repaired = fitatlas_run(dask_settings, dagster_home)
    return {"data_dir": data_dir, "dagster_home": dagster_home, "in_process": in_process, "on_dask": on_dask,
            "repaired": repaired, "removed": removed, "first_publication": first_publication}


def test_the_dask_run_finds_the_new_shards_stale_and_runs_each_on_the_cluster(runs):
    out = runs["on_dask"].stdout
    assert "sizing_shard: 3 of 3 partitions never materialised (000-of-003, 001-of-003, 002-of-003)" in out
    assert "fit_matrix: it was loaded from 2 shards, FITATLAS_SIZING_SHARDS is now 3" in out
    assert "sizing shards: 3 of 3 on Dask, a run each" in out
    assert re.search(r"local Dask cluster tcp://127\.0\.0\.1:\d+: 2 worker process\(es\)", out)
    for key in shard_keys(3):
        assert re.search(rf"  shard {key}: run [0-9a-f-]{{36}} success", out), key


def test_the_dask_run_publishes_exactly_the_in_process_content(runs):
    first = runs["first_publication"]
    out = runs["on_dask"].stdout
    assert f"has exactly the content of the current publication {first['publication_id']}" in out
    assert f"content sha256 {first['content_sha256']}" in out
    assert len(read_publications(runs["data_dir"] / "published.duckdb")) == 1


def shard_runs(out: str) -> dict[str, str]:
    """partition -> run id, from the CLI's `  shard <key>: run <id> success` lines."""
    return dict(re.findall(r"^  shard (\d{3}-of-\d{3}): run ([0-9a-f-]{36}) success$", out, flags=re.MULTILINE))


def test_each_shard_was_a_run_of_its_own_whose_step_ran_in_a_dask_worker(runs):
    dask_runs = shard_runs(runs["on_dask"].stdout)
    assert sorted(dask_runs) == shard_keys(3) and len(set(dask_runs.values())) == 3
    with dg.DagsterInstance.from_config(str(runs["dagster_home"])) as instance:
        step_pids = set()
        for key, run_id in dask_runs.items():
            run = instance.get_run_by_id(run_id)
            assert (run.job_name, run.tags["dagster/partition"]) == ("sizing_shards", key)
            materialized = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=SHARD, asset_partitions=[key]), limit=10).records
            assert run_id in {record.run_id for record in materialized}
            entries = instance.all_logs(run_id)
            events = [entry.dagster_event for entry in entries if entry.dagster_event]
            orchestrator = next(e.pid for e in events if e.event_type == dg.DagsterEventType.RUN_START)
            step = next(e.pid for e in events if e.event_type == dg.DagsterEventType.STEP_START)
            assert step != orchestrator  # the step ran elsewhere: in a Dask worker process
            assert any("steps go to the Dask scheduler at tcp://127.0.0.1:" in entry.user_message for entry in entries)
            step_pids.add(step)
    # three shards on the one local cluster of two workers: its processes took them, none was started per run
    assert len(step_pids) <= 2


def test_a_shard_whose_files_are_gone_is_sized_again_alone(runs):
    out = runs["repaired"].stdout
    removed = runs["removed"]
    assert f"shard {removed} has no complete result in" in out
    assert "sizing shards: 1 of 3 on Dask, a run each" in out
    assert list(shard_runs(out)) == [removed]
    first = runs["first_publication"]
    assert f"content sha256 {first['content_sha256']}" in out
    assert ShardStore(runs["data_dir"] / "sizing").problems(shard_keys(3)) == []


# --- the code location's executor, as daemon-launched runs use it --------------------------------


def test_a_shard_run_with_no_address_goes_to_a_local_cluster_of_its_own(tmp_path, monkeypatch):
    """What a backfill of `sizing_shard` does with FITATLAS_EXECUTOR=dask and no scheduler address:
    the run's step goes to a LocalCluster the executor starts for the run. The job is the real one,
    rebuilt from the environment by the run and by the worker (`pipelines.definitions:sizing_shards_job`)."""
    from test_shard_store import snapshot_inputs

    from pipelines.definitions import sizing_shards_job

    data_dir = tmp_path / "data"
    for name, value in {"FITATLAS_DATA_DIR": str(data_dir), "FITATLAS_EXECUTOR": "dask",
                        "FITATLAS_DASK_WORKERS": "1", "FITATLAS_SIZING_SHARDS": "2"}.items():
        monkeypatch.setenv(name, value)
    store = ShardStore(Settings.from_environment().sizing_shards_dir)
    store.write_inputs("v1", snapshot_inputs())
    with dg.instance_for_test() as instance:
        with dg.execute_job(dg.reconstructable(sizing_shards_job), instance,
                            tags={"dagster/partition": "001-of-002"}) as result:
            assert result.success
            entries = instance.all_logs(result.run_id)
    assert any("steps go to the Dask scheduler at tcp://127.0.0.1:" in entry.user_message for entry in entries)
    manifest = store.read_manifest("001-of-002")
    assert manifest is not None and manifest.inputs_version == "v1"
    assert manifest.pid != os.getpid()  # sized in the cluster's worker process
    assert store.read_manifest("000-of-002") is None  # one partition, one shard


def test_an_unreachable_scheduler_is_named_with_its_address(monkeypatch):
    from pipelines import dask_shards

    monkeypatch.setattr(dask_shards, "CONNECT_TIMEOUT", "2s")
    settings = Settings.for_data_dir(Path("/nonexistent"), executor="dask", dask_address="tcp://127.0.0.1:9")
    with pytest.raises(dask_shards.DaskUnavailable) as raised, dask_shards.dask_scheduler(settings, print):
        pass
    assert "cannot reach the Dask scheduler at FITATLAS_DASK_ADDRESS=tcp://127.0.0.1:9 within 2s" in str(raised.value)
