"""`fitatlas run` materialises only what is stale (issue 12: no-change re-runs are cheap).

One data directory, one Dagster instance, a private copy of the bundled snapshot, and a sequence of
real runs (the CLI as a subprocess, except the code-version bump, which runs the CLI's own
`pipelines.rerun.run_stale` in-process on definitions with one asset's code version changed):

1. a first run publishes;
2. an unchanged run materialises only the ingest assets, publishes nothing and says so;
3. one snapshot price changed: exactly the assets downstream of that raw table re-run, and publish;
4. `calibration`'s code version bumped: it, the audit and the publication step re-run, nothing else;
5. a price a million times off: the batch is held (the provider_prices suite fails);
6. an unchanged run retries the audit and the publication (the held batch is not taken for done),
   without re-running dbt or sizing.

Real parts only: DuckDB files, dbt, the Great Expectations suites, a Dagster instance on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType
from pipeline_runs import definitions_for, with_code_version
from review_keys import cli_environment

from pipelines.dbt_project import fitatlas_dbt_project
from pipelines.definitions import FULL_PIPELINE
from pipelines.defs.ingest.assets import RAW_SOURCES, raw_asset_key
from pipelines.defs.ingest.freshness import source_key
from pipelines.publishing import read_publications
from pipelines.rerun import run_stale
from pipelines.review_ledger import get_batch
from pipelines.settings import DBT_PROJECT_DIR, REPO_ROOT, SNAPSHOT_DIR, Settings
from pipelines.warehouse import warehouse_lock

pytestmark = pytest.mark.integration

PRICE_FILE = Path("prices") / "openrouter_api_v1_models.json"
CALIBRATION = dg.AssetKey("calibration")
PUBLICATION = dg.AssetKey("publication")
INGEST_KEYS = {raw_asset_key(t) for t in RAW_SOURCES} | {source_key(t) for t in RAW_SOURCES}


@dataclass(frozen=True)
class Stage:
    """One `fitatlas run`: its output, its two Dagster runs (the second only when something was
    stale), the runs the instance holds after it, and the publications after it."""

    stdout: str
    returncode: int
    ingest_run_id: str
    run_id: str | None
    runs_after: int
    publications: list[dict]


def _run_ids(stdout: str) -> tuple[str, str | None]:
    ingest = next(line.split()[2].rstrip(":") for line in stdout.splitlines() if line.startswith("ingest run "))
    stale = [line.split()[1].rstrip(":") for line in stdout.splitlines() if line.startswith("run ")]
    return ingest, (stale[0] if stale else None)


def _runs(dagster_home: Path) -> int:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return instance.get_runs_count()


def cli_run(settings: Settings, dagster_home: Path) -> Stage:
    env = {**os.environ, **cli_environment(settings), "DAGSTER_HOME": str(dagster_home)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("fitatlas")), "run"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert "ingest run " in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    ingest, stale = _run_ids(done.stdout)
    return Stage(done.stdout, done.returncode, ingest, stale, _runs(dagster_home), read_publications(settings.published_path))


def asset_graph(defs: dg.Definitions):
    """The resolved asset graph. Resolving reads the current instance's defs-state storage (a context
    variable an entered instance sets); without a live one here, an earlier test's disposed instance
    can be left current ("undefined DagsterInstance weakref"), as test_code_location does it."""
    with dg.instance_for_test():
        return defs.resolve_asset_graph()


def bumped_code_version_run(settings: Settings, dagster_home: Path) -> Stage:
    """What `fitatlas run` does, with `calibration`'s code version changed (as a deployment that
    edited its module would have it)."""
    defs = definitions_for(settings)
    bumped = with_code_version(defs, CALIBRATION, asset_graph(defs).get(CALIBRATION).code_version + "-bumped")
    lines: list[str] = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance, warehouse_lock(settings.data_dir, holder="test"):
        outcome = run_stale(bumped, instance, settings, job=FULL_PIPELINE, say=lines.append)
    run_id = outcome.downstream.run_id if outcome.downstream else None
    return Stage(
        "\n".join(lines), 0 if outcome.success else 1, outcome.ingest.run_id, run_id, _runs(dagster_home),
        read_publications(settings.published_path),
    )


def set_price(snapshot: Path, model: str, prompt: str) -> None:
    path = snapshot / PRICE_FILE
    listing = json.loads(path.read_text())
    (entry,) = [m for m in listing["data"] if m["id"] == model]
    entry["pricing"]["prompt"] = prompt
    path.write_text(json.dumps(listing))


def materialized(dagster_home: Path, run_id: str | None) -> set[dg.AssetKey]:
    if run_id is None:
        return set()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    return {record.event_log_entry.dagster_event.asset_key for record in records}


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("rerun")
    snapshot = root / "snapshot"
    shutil.copytree(SNAPSHOT_DIR, snapshot)
    settings = Settings.for_data_dir(root / "data", snapshot_dir=snapshot)
    home = root / "dagster"
    stages: dict[str, Stage] = {}
    stages["first"] = cli_run(settings, home)
    assert stages["first"].returncode == 0, stages["first"].stdout[-3000:]
    published_after_first = settings.published_path.read_bytes()
    stages["unchanged"] = cli_run(settings, home)
    published_after_unchanged = settings.published_path.read_bytes()
    # The snapshot's OpenRouter price for Qwen3-8B input is 0.117 USD per 1M tokens; 0.130 is +11 %,
    # inside the suite's 50 % move between publications.
    set_price(snapshot, "qwen/qwen3-8b", "0.00000013")
    stages["price_changed"] = cli_run(settings, home)
    stages["code_bumped"] = bumped_code_version_run(settings, home)
    # A million times off: above the provider_prices suite's 500 USD per 1M tokens ceiling.
    set_price(snapshot, "qwen/qwen3-8b", "0.13")
    stages["held"] = cli_run(settings, home)
    stages["retried"] = cli_run(settings, home)
    return {
        "settings": settings, "home": home, "stages": stages,
        "published_after_first": published_after_first, "published_after_unchanged": published_after_unchanged,
        "graph": asset_graph(definitions_for(settings)),
    }


def test_every_asset_below_the_sources_declares_a_code_version(tmp_path):
    graph = asset_graph(definitions_for(Settings.for_data_dir(tmp_path / "data")))
    assert [key for key in graph.materializable_asset_keys if not graph.get(key).code_version] == []


def test_a_dbt_model_code_version_follows_its_sql_and_its_yaml(tmp_path):
    """What `fitatlas run` compares for a dbt model: its SQL and the YAML that configures it (a model
    edited in either re-runs with its downstream, as the code-version bump above does)."""
    from pipelines.defs.transform.dbt_assets import TRANSLATOR

    props = json.loads(Path(fitatlas_dbt_project.manifest_path).read_text())["nodes"]["model.fitatlas.gpus"]
    version = TRANSLATOR.get_code_version(props)
    graph = asset_graph(definitions_for(Settings.for_data_dir(tmp_path / "data")))
    assert graph.get(dg.AssetKey("gpus")).code_version == version
    assert TRANSLATOR.get_code_version({**props, "raw_code": props["raw_code"] + "\n-- edited"}) != version
    edited = tmp_path / "gpus.yml"
    edited.write_text((DBT_PROJECT_DIR / "models" / "marts" / "gpus.yml").read_text() + "\n# edited\n")
    assert TRANSLATOR.get_code_version({**props, "patch_path": f"fitatlas://{os.path.relpath(edited, DBT_PROJECT_DIR)}"}) != version
    assert TRANSLATOR.get_code_version({**props, "patch_path": "fitatlas://models/marts/gpus.yml"}) == version


def test_an_unchanged_run_materialises_only_the_ingest_assets(story):
    first, unchanged = story["stages"]["first"], story["stages"]["unchanged"]
    assert unchanged.returncode == 0, unchanged.stdout[-3000:]
    assert unchanged.run_id is None  # no second Dagster run was started
    assert unchanged.runs_after == first.runs_after + 1
    assert materialized(story["home"], unchanged.ingest_run_id) == INGEST_KEYS
    # the first run materialised everything, through the same two-step path
    assert CALIBRATION in materialized(story["home"], first.run_id)


def test_an_unchanged_run_publishes_nothing_and_says_so(story):
    first, unchanged = story["stages"]["first"], story["stages"]["unchanged"]
    assert unchanged.publications == first.publications and len(first.publications) == 1
    assert story["published_after_unchanged"] == story["published_after_first"]
    assert "nothing new landed" in unchanged.stdout
    assert "nothing stale below the raw layer" in unchanged.stdout
    assert "skipped dbt, sizing, audit, checks and publication" in unchanged.stdout
    assert f"unchanged: nothing new to publish; the current publication is {first.publications[0]['publication_id']}" in unchanged.stdout
    assert "Running with dbt" not in unchanged.stdout


def test_a_changed_price_file_reruns_exactly_what_is_downstream_of_it_and_publishes(story):
    graph, home = story["graph"], story["home"]
    stage = story["stages"]["price_changed"]
    assert stage.returncode == 0, stage.stdout[-3000:]
    raw = raw_asset_key("openrouter_models")
    downstream = set(dg.AssetSelection.assets(raw).downstream().resolve(graph)) - {raw}
    audited = {key for key in graph.materializable_asset_keys if key.path[0] == "audited"}  # one batch, frozen whole
    assert materialized(home, stage.run_id) == downstream | audited
    assert not {CALIBRATION, dg.AssetKey("model_specs"), dg.AssetKey("gpus")} & materialized(home, stage.run_id)
    assert "records landed: " in stage.stdout and "in raw.openrouter_models" in stage.stdout
    assert "staging/stg_openrouter__models: raw/openrouter_models changed since it last ran" in stage.stdout
    assert len(stage.publications) == 2 and stage.publications[-1]["batch_id"] == stage.run_id
    assert f"batch {stage.run_id} published as {stage.publications[-1]['publication_id']}" in stage.stdout


def test_a_code_version_bump_reruns_the_asset_and_its_downstream(story):
    graph, home = story["graph"], story["home"]
    stage = story["stages"]["code_bumped"]
    assert stage.returncode == 0, stage.stdout
    assert "calibration: its code version changed" in stage.stdout
    downstream = set(dg.AssetSelection.assets(CALIBRATION).downstream().resolve(graph))
    audited = {key for key in graph.materializable_asset_keys if key.path[0] == "audited"}
    # model_changes was diffed against the publication before the price change's: the new batch
    # diffs against the one BI reads now
    previous = story["stages"]["price_changed"].publications[-1]["publication_id"]
    assert f"model_changes: it compares with publication {story['stages']['first'].publications[0]['publication_id']}; " \
        f"BI now reads {previous}" in stage.stdout
    # the publication step ran and found the content BI already sees: nothing new published
    expected = (downstream | audited | {dg.AssetKey("model_changes")}) - {PUBLICATION, dg.AssetKey("site")}
    assert materialized(home, stage.run_id) == expected
    assert PUBLICATION in downstream
    assert stage.publications == story["stages"]["price_changed"].publications
    with dg.DagsterInstance.from_config(str(home)) as instance:
        observed = [r for r in instance.fetch_observations(PUBLICATION, limit=5).records if r.run_id == stage.run_id]
    assert observed and observed[0].asset_observation.metadata["published"].value is False


def test_a_held_batch_is_retried_by_the_next_unchanged_run(story):
    settings, graph, home = story["settings"], story["graph"], story["home"]
    held, retried = story["stages"]["held"], story["stages"]["retried"]
    assert held.returncode == 1 and f"batch {held.run_id} is held for review" in held.stdout
    assert get_batch(settings, held.run_id).status == "held"
    # nothing landed and no table changed: only the audit and the publication step run again
    audited = {key for key in graph.materializable_asset_keys if key.path[0] == "audited"}
    assert "nothing new landed" in retried.stdout
    assert materialized(home, retried.run_id) == audited
    assert "audited/provider_prices: its check expectations failed in run" in retried.stdout
    assert "publishing is tried again" in retried.stdout
    assert get_batch(settings, retried.run_id).status == "held"
    assert retried.publications == story["stages"]["price_changed"].publications
