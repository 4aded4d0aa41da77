"""Write-audit-publish end to end: bad inputs are held, reviewers decide, the sensor publishes.

Real parts only: the whole graph runs in-process on copies of the bundled snapshot into temporary
data dirs, with a real (ephemeral) Dagster instance, the real suites, the real review ledger, the
CLI's `main`, and `approval_sensor` evaluated with `build_sensor_context`. One clean baseline run
is shared; each scenario copies its data dir (shutil.copytree) and runs once more on a bad input.
In-process runs and the sensor get their settings as resources (`tests/pipeline_runs.py`); only
the CLI reads the environment, which each test sets for it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from pipeline_runs import definitions_for, run_job, run_pipeline
from review_keys import ReviewerKeys, reviewer_keys, set_cli_environment

from pipelines.batches import batch_content_hash, content_hash
from pipelines.cli import main as fitatlas
from pipelines.defs.publish.assets import BATCH_TAG
from pipelines.publishing import read_publications, site_index
from pipelines.review_ledger import get_batch, list_batches, record_check_outcome, register_batch
from pipelines.settings import SNAPSHOT_DIR, Settings

pytestmark = pytest.mark.integration


def published_state(data_dir: Path) -> dict[str, bytes]:
    """The bytes BI can read: published.duckdb and each file behind `current` (Parquet and site pages)."""
    current = data_dir / "published" / "current"
    state = {"published.duckdb": (data_dir / "published.duckdb").read_bytes(), "current ->": os.readlink(current).encode()}
    for path in sorted(p for p in current.rglob("*") if p.is_file()):
        state[path.relative_to(current).as_posix()] = path.read_bytes()
    return state


def copy_snapshot(tmp_path: Path) -> Path:
    snapshot = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT_DIR, snapshot)
    return snapshot


@pytest.fixture(scope="module")
def instance():
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, instance) -> Path:
    data_dir = tmp_path_factory.mktemp("baseline") / "data"
    result = run_pipeline(data_dir, instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert [row["batch_id"] for row in read_publications(data_dir / "published.duckdb")] == [result.run_id]
    return data_dir


def spec_sheet_with_8000_gb(tmp_path: Path) -> dict[str, Path]:
    snapshot = copy_snapshot(tmp_path)
    # ml-engineering's memory table is the first-priority memory source (seed gpu_spec_source_priority);
    # the gpus suite holds memory above 2 TB per GPU.
    sheet = snapshot / "spec_sheets" / "ml-engineering_accelerator_memory.csv"
    text = sheet.read_text()
    assert "NVIDIA H100 SXM,80,HBM3,3.35" in text
    sheet.write_text(text.replace("NVIDIA H100 SXM,80,HBM3,3.35", "NVIDIA H100 SXM,8000,HBM3,3.35"))
    return {"snapshot_dir": snapshot, "spec_sheets_dir": snapshot / "spec_sheets"}


def price_a_million_times_off(tmp_path: Path) -> dict[str, Path]:
    snapshot = copy_snapshot(tmp_path)
    path = snapshot / "prices" / "openrouter_api_v1_models.json"
    listing = json.loads(path.read_text())
    (entry,) = [m for m in listing["data"] if m["id"] == "qwen/qwen3-8b"]
    # The snapshot's OpenRouter price for Qwen3-8B input is "0.000000117" USD per token (0.117 per 1M);
    # a million times that is 117,000 USD per 1M tokens, above the suite's 500 USD ceiling.
    assert entry["pricing"]["prompt"] == "0.000000117"
    entry["pricing"]["prompt"] = "0.117"
    path.write_text(json.dumps(listing))
    return {"snapshot_dir": snapshot}


def duplicated_model(tmp_path: Path) -> dict[str, Path]:
    snapshot = copy_snapshot(tmp_path)
    path = snapshot / "hf" / "models.json"
    listing = json.loads(path.read_text())
    (entry,) = [m for m in listing["models"] if m["model_id"] == "Qwen/Qwen3-8B"]
    # Hugging Face repo ids are case-insensitive: qwen/qwen3-8b is the same repo listed twice.
    listing["models"].append({**entry, "model_id": "qwen/qwen3-8b"})
    path.write_text(json.dumps(listing))
    return {"snapshot_dir": snapshot}


def config_missing_layers(tmp_path: Path) -> dict[str, Path]:
    snapshot = copy_snapshot(tmp_path)
    path = snapshot / "hf" / "Qwen__Qwen3-4B" / "config.json"
    config = json.loads(path.read_text())
    del config["num_hidden_layers"]
    path.write_text(json.dumps(config))
    return {"snapshot_dir": snapshot}


# scenario -> (how the input is broken (-> Settings overrides), audited table that must hold, key of the offending row)
BAD_INPUTS = {
    "memory_8000_gb": (spec_sheet_with_8000_gb, "gpus", ("gpu_id", "nvidia-h100-sxm-80gb")),
    "price_1e6_off": (price_a_million_times_off, "provider_prices", ("model_id", "Qwen/Qwen3-8B")),
    "duplicated_model": (duplicated_model, "models", ("model_id", "qwen/qwen3-8b")),
    "config_missing_layers": (config_missing_layers, "unsupported_models", ("model_id", "Qwen/Qwen3-4B")),
}


@pytest.fixture(scope="module")
def held_scenarios(baseline: Path, instance, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """scenario -> (its data dir after the bad run, the batch id); runs lazily, once per scenario."""
    cache: dict[str, tuple[Path, str]] = {}

    def get(name: str) -> tuple[Path, str]:
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            data_dir = root / "data"
            shutil.copytree(baseline, data_dir, symlinks=True)
            overrides = BAD_INPUTS[name][0](root)
            result = run_pipeline(data_dir, instance, **overrides)
            cache[name] = (data_dir, result.run_id)
        return cache[name]

    return get


@pytest.fixture
def scenario_copy(held_scenarios, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reviewers: ReviewerKeys):
    """A private copy of a held scenario's data dir -> (data dir, batch id, its settings with the
    test's reviewers file). The CLI's environment names those settings, with alice's key and a
    DAGSTER_HOME of the test's own (for `publish`)."""

    def copy(name: str) -> tuple[Path, str, Settings]:
        source, batch_id = held_scenarios(name)
        data_dir = tmp_path / "data"
        shutil.copytree(source, data_dir, symlinks=True)
        settings = Settings.for_data_dir(data_dir, reviewers_path=reviewers.reviewers_path)
        set_cli_environment(monkeypatch, settings, key=reviewers["alice"])
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
        return data_dir, batch_id, settings

    return copy


@pytest.fixture
def reviewers(tmp_path: Path) -> ReviewerKeys:
    """alice, with a real SSH key listed in the test's own reviewers file."""
    return reviewer_keys(tmp_path, "alice")


def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what earlier steps (e.g. a pipeline run's dbt) printed
    code = fitatlas(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def evaluate_sensor(settings: Settings, instance: dg.DagsterInstance) -> dg.SensorResult:
    """One tick of the code location's approval sensor, with the `fitatlas` resource it builds for `settings`."""
    defs = definitions_for(settings)
    sensor = defs.resolve_sensor_def("approval_sensor")
    return sensor(dg.build_sensor_context(instance=instance, resources={"fitatlas": defs.resources["fitatlas"]}))


def execute_request(settings: Settings, instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """The run the daemon would launch for `request`: `publish_batch` of the code location for `settings`."""
    return run_job(settings, instance, "publish_batch", tags={**request.tags, "dagster/run_key": request.run_key})


@pytest.mark.parametrize("scenario", list(BAD_INPUTS))
def test_bad_input_is_held_and_listed_with_its_rows(scenario, held_scenarios, baseline, capsys, monkeypatch):
    data_dir, batch_id = held_scenarios(scenario)
    _, table, (key, value) = BAD_INPUTS[scenario]
    settings = Settings.for_data_dir(data_dir)
    set_cli_environment(monkeypatch, settings)
    assert get_batch(settings, batch_id).status == "held"
    assert published_state(data_dir) == published_state(baseline)

    code, out, _ = cli(capsys, "review", "show", batch_id, "--json")
    assert code == 0
    report = json.loads(out)
    offending = [item for item in report["failed_expectations"] if item["table"] == table]
    assert offending, [(i["table"], i["expectation"]) for i in report["failed_expectations"]]
    assert any(row.get(key) == value for item in offending for row in item["sample_rows"])
    assert report["publishable"] is False and report["decidable"] is True

    with duckdb.connect(report["batch_file"], read_only=True) as con:
        every_row = [json.loads(row[0]) for item in offending for row in con.execute(item["all_rows_sql"]).fetchall()]
    assert any(row.get(key) == value for row in every_row)
    assert all(item["all_rows_sql"] in item["all_rows_query"] for item in offending)

    code, out, _ = cli(capsys, "review", "list", "--status", "held")
    assert code == 0 and batch_id in out


def test_approved_batch_is_published_by_the_sensor_once(scenario_copy, instance, capsys):
    data_dir, batch_id, settings = scenario_copy("memory_8000_gb")
    code, out, err = cli(capsys, "review", "approve", batch_id, "--reviewer", "alice", "--reason", "H100 memory confirmed by vendor")
    assert code == 0, err

    first, second = evaluate_sensor(settings, instance), evaluate_sensor(settings, instance)
    (request,) = first.run_requests
    content_sha256 = get_batch(settings, batch_id).content_sha256
    assert request.run_key == f"publish:{batch_id}:{content_sha256}"
    assert [r.run_key for r in second.run_requests] == [request.run_key]
    assert request.tags[BATCH_TAG] == batch_id

    result = execute_request(settings, instance, request)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    latest = read_publications(data_dir / "published.duckdb")[-1]
    assert (latest["batch_id"], latest["approval_kind"], latest["approved_by"]) == (batch_id, "reviewer", "alice")
    with duckdb.connect(str(data_dir / "published.duckdb"), read_only=True) as con:
        assert con.execute("select memory_gb from gpus where gpu_id = 'nvidia-h100-sxm-80gb'").fetchone()[0] > 2000

    assert evaluate_sensor(settings, instance).run_requests == []
    assert get_batch(settings, batch_id).status == "published"
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key}))
    assert len(runs) == 1


def test_rejected_batch_is_never_published_and_stays_listed(scenario_copy, instance, capsys):
    data_dir, batch_id, settings = scenario_copy("price_1e6_off")
    before = published_state(data_dir)
    code, _, err = cli(capsys, "review", "reject", batch_id, "--reviewer", "alice", "--reason", "price off by 1e6")
    assert code == 0, err

    result = evaluate_sensor(settings, instance)
    assert result.run_requests == []
    code, out, _ = cli(capsys, "review", "list", "--status", "rejected", "--json")
    assert [item["batch_id"] for item in json.loads(out)] == [batch_id]
    code, _, err = cli(capsys, "publish", batch_id)
    assert code == 2 and "rejected" in err
    assert published_state(data_dir) == before

    code, out, _ = cli(capsys, "review", "show", batch_id, "--json")
    (decision,) = json.loads(out)["decisions"]
    assert (decision["decision"], decision["reviewer"], decision["reason"]) == ("reject", "alice", "price off by 1e6")
    assert any(check["table"] == "provider_prices" for check in decision["failed_checks"])


def test_approval_void_when_batch_changed_afterwards(scenario_copy, instance, capsys):
    data_dir, batch_id, settings = scenario_copy("memory_8000_gb")
    before = published_state(data_dir)
    code, _, err = cli(capsys, "review", "approve", batch_id, "--reviewer", "alice", "--reason", "looks fine")
    assert code == 0, err
    with duckdb.connect(str(data_dir / "batches" / f"{batch_id}.duckdb")) as con:
        con.execute("update gpus set memory_gb = 80 where gpu_id = 'nvidia-h100-sxm-80gb'")

    assert evaluate_sensor(settings, instance).run_requests == []
    forced = execute_request(settings, instance, dg.RunRequest(run_key=f"publish:{batch_id}:forced", tags={BATCH_TAG: batch_id}))
    assert not forced.success
    code, _, err = cli(capsys, "publish", batch_id)
    assert code == 2 and "changed" in err
    assert published_state(data_dir) == before
    assert get_batch(settings, batch_id).status == "approved"


def test_older_approved_batch_is_superseded_by_a_newer_publication(scenario_copy, baseline, instance, capsys):
    data_dir, held_id, settings = scenario_copy("memory_8000_gb")
    # A newer batch: the baseline's clean content with one GPU renamed, frozen after the held one,
    # every check passed.
    newer_id = "newer-clean-batch"
    (baseline_batch,) = [b for b in list_batches(settings) if b.status == "published"]
    newer_file = data_dir / "batches" / f"{newer_id}.duckdb"
    shutil.copyfile(data_dir / "batches" / f"{baseline_batch.batch_id}.duckdb", newer_file)
    with duckdb.connect(str(newer_file)) as con:
        con.execute("update gpus set name = name || ' (datasheet rev 2)' where gpu_id = 'nvidia-h100-sxm-80gb'")
    register_batch(settings, batch_id=newer_id, run_id=newer_id, content_sha256=batch_content_hash(newer_file),
                   path=newer_file, row_counts=baseline_batch.row_counts)
    record_check_outcome(settings, batch_id=newer_id, passed=baseline_batch.checks_passed, failed=0, errored=0,
                         failed_checks=[], complete=True)
    assert cli(capsys, "review", "approve", held_id, "--reviewer", "alice", "--reason", "ok")[0] == 0

    (request,) = evaluate_sensor(settings, instance).run_requests
    assert request.tags[BATCH_TAG] == newer_id
    assert execute_request(settings, instance, request).success
    assert evaluate_sensor(settings, instance).run_requests == []
    assert get_batch(settings, held_id).status == "superseded"
    assert [row["batch_id"] for row in read_publications(data_dir / "published.duckdb")][-1] == newer_id
    code, _, err = cli(capsys, "publish", held_id)
    assert code == 2 and "superseded" in err


def test_sensor_reports_held_batches_as_review_items(scenario_copy, instance):
    _, batch_id, settings = scenario_copy("memory_8000_gb")
    result = evaluate_sensor(settings, instance)
    assert result.run_requests == []
    assert result.skip_reason is not None and f"1 batch awaits review: {batch_id}" in str(result.skip_reason)
    # The review state is put on the assets in the UI: the publication and the failing audited table.
    held = [e for e in result.asset_events if e.metadata["batch_id"].value == batch_id]
    assert {e.asset_key for e in held} == {dg.AssetKey("publication"), dg.AssetKey(["audited", "gpus"])}
    assert {e.metadata["review_state"].value for e in held} == {"held"}


def test_rollback_restores_the_previous_publication(scenario_copy, instance, capsys):
    data_dir, batch_id, settings = scenario_copy("memory_8000_gb")
    before = published_state(data_dir)
    assert cli(capsys, "review", "approve", batch_id, "--reviewer", "alice", "--reason", "ok")[0] == 0
    code, _, err = cli(capsys, "publish", batch_id)
    assert code == 0, err
    assert published_state(data_dir) != before
    # the pages are part of the publication: the H100 page shows the approved batch's memory figure
    h100_page = site_index(settings).parent / "gpus" / "nvidia-h100-sxm-80gb.html"
    with duckdb.connect(str(data_dir / "published.duckdb"), read_only=True) as con:
        approved_memory = con.execute("select memory_gb from gpus where gpu_id = 'nvidia-h100-sxm-80gb'").fetchone()[0]
    assert approved_memory > 2000 and f"{approved_memory:,.1f} GB" in h100_page.read_text()

    code, _, err = cli(capsys, "publish", "--rollback", "--reviewer", "mallory", "--reason", "undo")
    assert code == 2 and "not a reviewer" in err
    code, _, err = cli(capsys, "publish", "--rollback", "--reviewer", "alice")
    assert code == 2 and "a reason is required" in err
    code, out, err = cli(capsys, "publish", "--rollback", "--reviewer", "alice", "--reason", "memory figure was wrong after all")
    assert code == 0, err
    history = read_publications(data_dir / "published.duckdb")
    assert [row["approval_kind"] for row in history] == ["auto", "reviewer", "rollback"]
    assert (history[-1]["batch_id"], history[-1]["approved_by"], history[-1]["rolled_back_from"]) == (
        history[0]["batch_id"], "alice", history[1]["publication_id"])
    assert published_state(data_dir)["published.duckdb"] != before["published.duckdb"]  # history grew
    with duckdb.connect(str(data_dir / "published.duckdb"), read_only=True) as con:
        assert con.execute("select memory_gb from gpus where gpu_id = 'nvidia-h100-sxm-80gb'").fetchone()[0] < 2000
        assert content_hash(con) == history[0]["content_sha256"]
    # ... and the rollback restored the pages with the tables: 85.9 GB (aiconfigurator h100_sxm.yaml, 80 GiB)
    page = h100_page.read_text()
    assert "85.9 GB" in page and f"{approved_memory:,.1f} GB" not in page
    code, _, err = cli(capsys, "publish", "--rollback", "--reviewer", "alice", "--reason", "again")
    assert code == 2 and "nothing to roll back" in err
