"""Two real `fitatlas run`s in a row, in a data directory whose path holds a quote and a space.

The first publishes; the second, on unchanged sources, lands nothing, finds nothing stale below the
raw layer (`pipelines.rerun`), freezes no batch and publishes nothing, saying so on the CLI. Every
path reaches SQL quoted (ATTACH, COPY ... TO), so the quote in the path breaks nothing. (A batch
whose content equals the current publication's, frozen because something upstream was re-run, is
not published again: tests/test_rerun_staleness.py.)

The CLI runs as a subprocess and reads its settings from the environment (its interface, set with
`env=`); the test reads the results in-process with `Settings.for_data_dir` of the same data dir and
opens the CLI's Dagster instance from its directory, changing no environment variable of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from review_keys import cli_environment

from pipelines.batches import batch_content_hash, batch_path
from pipelines.gate import decide
from pipelines.publishing import read_publications
from pipelines.review_ledger import get_batch, list_batches
from pipelines.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration


def fitatlas_run(settings: Settings, dagster_home: Path) -> tuple[subprocess.CompletedProcess, float]:
    """`fitatlas run` as a subprocess whose environment names exactly `settings`."""
    env = {**os.environ, **cli_environment(settings), "DAGSTER_HOME": str(dagster_home)}
    started = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("fitatlas")), "run"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    return done, time.monotonic() - started


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runs") / "it's a data dir"
    data_dir, dagster_home = root / "data", root / ".dagster"
    settings = Settings.for_data_dir(data_dir)
    first, first_s = fitatlas_run(settings, dagster_home)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    published_after_first = (data_dir / "published.duckdb").read_bytes()
    second, second_s = fitatlas_run(settings, dagster_home)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    print(f"first run {first_s:.0f}s, second run {second_s:.0f}s")
    return {
        "data_dir": data_dir, "dagster_home": dagster_home, "first": first, "second": second,
        "published_after_first": published_after_first, "settings": settings,
    }


def run_id_of(done: subprocess.CompletedProcess) -> str:
    line = next(line for line in done.stdout.splitlines() if line.startswith("run "))
    return line.split()[1].rstrip(":")


def test_a_data_dir_with_a_quote_and_a_space_publishes(two_runs):
    settings = two_runs["settings"]
    assert "'" in str(settings.data_dir) and " " in str(settings.data_dir)
    first_batch = run_id_of(two_runs["first"])
    assert f"batch {first_batch} published as" in two_runs["first"].stdout
    history = read_publications(settings.published_path)
    assert [row["batch_id"] for row in history] == [first_batch]
    current = (settings.published_parquet_dir / "current").resolve()
    con = duckdb.connect()
    try:  # the Parquet export (COPY ... TO a quoted path) is complete and readable
        rows = con.execute("select count(*) from read_parquet(?)", [str(current / "models.parquet")]).fetchone()[0]
    finally:
        con.close()
    assert rows == history[0]["row_counts"]["models"] > 0


def test_an_unchanged_second_run_publishes_nothing_and_says_so(two_runs):
    settings = two_runs["settings"]
    first_batch = run_id_of(two_runs["first"])
    second = two_runs["second"].stdout
    history = read_publications(settings.published_path)
    assert len(history) == 1 and history[0]["batch_id"] == first_batch
    assert "nothing new landed" in second and "nothing stale below the raw layer" in second
    assert (
        f"unchanged: nothing new to publish; the current publication is {history[0]['publication_id']} "
        f"(batch {first_batch}, content sha256 {get_batch(settings, first_batch).content_sha256})"
    ) in second
    assert not any(line.startswith("run ") for line in second.splitlines())  # no batch was frozen
    assert [b.batch_id for b in list_batches(settings)] == [first_batch]
    assert settings.published_path.read_bytes() == two_runs["published_after_first"]
    assert len(list((settings.data_dir / "publications").glob("*.duckdb"))) == 1


def test_the_second_run_leaves_the_publication_asset_alone(two_runs):
    first_batch = run_id_of(two_runs["first"])
    # the instance the CLI runs wrote to, opened from its directory (the CLI's DAGSTER_HOME)
    with dg.DagsterInstance.from_config(str(two_runs["dagster_home"])) as instance:
        observed = instance.fetch_observations(dg.AssetKey("publication"), limit=10).records
        materialized = instance.fetch_materializations(dg.AssetKey("publication"), limit=10).records
    assert observed == []
    assert [r.run_id for r in materialized] == [first_batch]


def test_the_hash_is_sensitive_to_a_real_content_change(two_runs, tmp_path):
    settings = two_runs["settings"]
    first_batch = run_id_of(two_runs["first"])
    original = batch_path(settings, first_batch)
    assert batch_content_hash(original) == get_batch(settings, first_batch).content_sha256
    assert decide(settings, first_batch).allowed is False  # already published: never twice
    changed = tmp_path / "changed.duckdb"
    changed.write_bytes(original.read_bytes())
    con = duckdb.connect(str(changed))
    try:
        gpu = con.execute("select min(gpu_id) from gpus").fetchone()[0]
        con.execute("update gpus set memory_gb = memory_gb + 1 where gpu_id = ?", [gpu])
    finally:
        con.close()
    assert batch_content_hash(changed) != batch_content_hash(original)
