"""Issue 9: the three poisoned configs through the live path, next to good models.

A loopback fake Hub (tests/fake_sources.py) serves two good repos and three hostile ones: a
config with ``"hidden_size": 1e308`` (OverflowError in sizing before), one with
``"num_hidden_layers": 100000000`` (60 s and 6 GB before) and one holding a 200,000-deep JSON array
(RecursionError before). The whole `full_pipeline` job runs in-process with a real (ephemeral)
Dagster instance on a temp data dir: the run succeeds and publishes the good models; the two
parseable configs are `unsupported_models` rows naming the field, the value and the bound; the deep
one is held back at landing, in `raw.ingest_failures`, with its reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from duckdb_rows import query
from fake_sources import (
    LITELLM_PATH,
    SHARED_DATA,
    FakeSources,
    litellm_subset,
    live_mode_env,
)
from pipeline_runs import run_live

pytestmark = pytest.mark.integration

SHA = "d" * 40
GOOD = {"Qwen/Qwen3-0.6B", "Qwen/Qwen2.5-1.5B"}
HIDDEN = "evil/Hidden-1e308"
LAYERS = "evil/Layers-100M"
DEEP = "evil/Deep-JSON"
WATCHLIST = ["Qwen/Qwen3-0.6B", HIDDEN, LAYERS, DEEP, "Qwen/Qwen2.5-1.5B"]


def poisoned_dirs(root: Path) -> dict[str, Path]:
    base = json.loads((SHARED_DATA / "hf_configs" / "Qwen__Qwen3-0.6B" / "config.json").read_text())
    bodies = {
        HIDDEN: json.dumps({**base, "hidden_size": 1e308}),
        LAYERS: json.dumps({**base, "num_hidden_layers": 100_000_000}),
        DEEP: json.dumps(base)[:-1] + ', "poison": ' + "[" * 200_000 + "]" * 200_000 + "}",
    }
    dirs = {}
    for repo, body in bodies.items():
        directory = root / repo.replace("/", "__")
        directory.mkdir(parents=True)
        (directory / "config.json").write_text(body)
        dirs[repo] = directory
    return dirs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("poisoned")
    watchlist = tmp / "watchlist.yaml"
    watchlist.write_text("models:\n" + "".join(f"  - {json.dumps(repo)}\n" for repo in WATCHLIST))
    with FakeSources() as server:
        for repo in GOOD:
            server.add_model(repo, sha=SHA)
        for repo, directory in poisoned_dirs(tmp / "hub").items():
            server.add_model(repo, sha=SHA, directory=directory)
        server.bodies[LITELLM_PATH] = litellm_subset(300)
        data_dir = tmp / "data"
        env = live_mode_env(server, data_dir, watchlist, ("lambda",))
        with dg.DagsterInstance.ephemeral() as instance:
            yield data_dir, run_live(env, instance)


def test_the_run_succeeds_and_publishes_the_good_models(run):
    data_dir, result = run
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    published = data_dir / "published.duckdb"
    assert {r[0] for r in query(published, "select model_id from models")} == GOOD
    assert {r[0] for r in query(published, "select distinct model_id from recommendations")} == GOOD
    assert query(published, "select approval_kind from publications") == [("auto",)]


def test_parseable_poisoned_configs_are_unsupported_with_field_value_and_bound(run):
    data_dir, _result = run
    rows = dict(query(data_dir / "published.duckdb", "select model_id, reason from unsupported_models"))
    assert rows[HIDDEN] == "config rejected: hidden_size = 1e+308 is a float, not an integer (must be an integer in [1, 131,072])"
    assert rows[LAYERS].startswith("config rejected: num_hidden_layers = 100,000,000 is outside the plausible range [1, 2,048]")
    assert not GOOD & set(rows)


def test_the_deep_config_is_held_back_at_landing_with_its_reason(run):
    data_dir, result = run
    warehouse = data_dir / "warehouse.duckdb"
    failures = dict(query(
        warehouse,
        "select record_key, reason from raw.ingest_failures where raw_table = 'hf_model_configs' and batch_id = ?",
        [result.run_id],
    ))
    assert set(failures) == {DEEP}
    assert failures[DEEP] == "JSON nested deeper than the parser's recursion limit"
    landed = {r[0] for r in query(warehouse, "select distinct record_key from raw.hf_model_configs")}
    assert landed == GOOD | {HIDDEN, LAYERS}


def test_model_specs_metadata_names_the_unsupported_and_the_budget(run):
    _data_dir, result = run
    metadata = result.asset_materializations_for_node("model_specs")[0].metadata
    assert metadata["models"].value == 4 and metadata["supported"].value == 2
    assert set(metadata["unsupported"].value) == {HIDDEN, LAYERS}
    isolation = metadata["sizing_isolation"].value
    assert isolation["timed_out"] == [] and isolation["worker_crashed"] == []
    assert isolation["timeout_s_per_model"] > 0 and isolation["memory_mb_per_worker"] > 0
