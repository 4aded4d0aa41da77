"""Atomic publication under crashes and concurrency, with real processes.

- A publisher killed with SIGKILL after each step of a publication (it announces each step through
  `publish_batch`'s `on_step` callback and waits there to be killed) leaves `published.duckdb` and
  the Parquet export whole: exactly the previous publication or the new one, the one the step says,
  never a mix, and the next publication succeeds over whatever it left behind.
- Two publishers of one approved batch publish it once; two `fitatlas run` on one data dir both
  finish, one after the other, with no duplicate publication.

Batches for the crash and publisher tests are synthetic but real DuckDB files (one table per
audited table), registered in a real review ledger. The processes hand over through lines on their
stdout and stdin, never through a sleep, so the outcomes do not depend on the machine's speed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from processes import wait_for
from review_keys import cli_environment, reviewer_keys

from pipelines.batches import AUDITED_TABLES, batch_path, content_hash
from pipelines.gate import publish_if_allowed
from pipelines.publishing import PUBLISHED_TABLES, PublicationRefused, exclusive_lock, read_publications, rollback
from pipelines.review import approve
from pipelines.review_ledger import (
    LedgerConflict,
    claim_for_publication,
    get_batch,
    record_check_outcome,
    register_batch,
)
from pipelines.settings import REPO_ROOT, Settings
from pipelines.warehouse import warehouse_lock, warehouse_lock_path

pytestmark = pytest.mark.integration

ROWS_PER_TABLE = 1_000
# The gate as `fitatlas` runs it, with `publish_batch`'s step callback announcing each step on
# stdout. --wait-for-go: say "ready", then start only on a "go" line on stdin. --pause-at STEP:
# stop after that step until killed.
PUBLISHER = """
import argparse, functools, signal, sys
import pipelines.gate
from pipelines.publishing import PublicationRefused, publish_batch
from pipelines.settings import Settings
parser = argparse.ArgumentParser()
parser.add_argument("batch_id")
parser.add_argument("--wait-for-go", action="store_true")
parser.add_argument("--pause-at")
args = parser.parse_args()

def announce(step):
    print(f"step {step}", flush=True)
    if step == args.pause_at:
        signal.pause()

pipelines.gate.publish_batch = functools.partial(publish_batch, on_step=announce)
if args.wait_for_go:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go")
print("publishing", flush=True)
try:
    pipelines.gate.publish_if_allowed(Settings.from_environment(), args.batch_id)
except PublicationRefused as error:
    print(f"refused: {error}", flush=True)
else:
    print("published", flush=True)
"""
# What a publisher announces, in order (`publish_batch`'s docstring): every point it can die at.
PUBLICATION_STEPS = [
    "claimed",
    *(f"copied {table}" for table in AUDITED_TABLES),
    "built",
    "archived",
    *(f"exported {table}" for table in PUBLISHED_TABLES),
    "site",
    "parquet version",
    "parquet current",
    "staged",
    "swapped",
]


def settings_for(data_dir: Path, reviewers_path: Path | None = None) -> Settings:
    """The settings of `data_dir`, as `start_publisher` hands them to its subprocess."""
    return Settings.for_data_dir(data_dir, **({"reviewers_path": reviewers_path} if reviewers_path else {}))


def make_batch(settings: Settings, batch_id: str, *, seed: int, failing: bool = False) -> str:
    path = batch_path(settings, batch_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        for table in AUDITED_TABLES:
            con.execute(
                f"create table {table} as select range as id, md5((range + {seed})::varchar) as payload from range({ROWS_PER_TABLE})"
            )
        digest = content_hash(con)
    finally:
        con.close()
    register_batch(settings, batch_id=batch_id, run_id=batch_id, content_sha256=digest, path=path,
                   row_counts={t: ROWS_PER_TABLE for t in AUDITED_TABLES})
    record_check_outcome(settings, batch_id=batch_id, passed=3, failed=int(failing), errored=0,
                         failed_checks=[{"table": "gpus", "expectation": "x", "status": "failed", "unexpected_count": 1}] if failing else [],
                         complete=True)
    return digest


def published_hash(settings: Settings) -> str:
    """The content hash of what `published.duckdb` holds, checked against its own publications row."""
    con = duckdb.connect(str(settings.published_path), read_only=True)
    try:
        digest = content_hash(con)
        recorded = con.execute("select content_sha256 from publications order by published_at desc, publication_id desc limit 1").fetchone()[0]
    finally:
        con.close()
    assert digest == recorded
    return digest


def parquet_hash(settings: Settings) -> str:
    """The content hash of the Parquet version `current` points to, read through one resolved path."""
    version = (settings.published_parquet_dir / "current").resolve()
    assert {p.stem for p in version.glob("*.parquet")} == set(PUBLISHED_TABLES)
    con = duckdb.connect()
    try:
        for table in AUDITED_TABLES:
            con.execute(f"create view {table} as select * from read_parquet('{version / (table + '.parquet')}')")
        return content_hash(con)
    finally:
        con.close()


def leftovers(settings: Settings) -> list[str]:
    found = [p.name for p in (settings.data_dir / "publications").glob(".*")]
    found += [p.name for p in settings.published_parquet_dir.glob(".*")]
    found += [p.name for p in settings.data_dir.glob(".published.duckdb*")]
    return found


def start_publisher(data_dir: Path, batch_id: str, *options: str, settings: Settings | None = None) -> subprocess.Popen:
    """A publisher process on `data_dir` (or `settings`), configured the way the CLI is: by its environment."""
    env = {**os.environ, **cli_environment(settings or settings_for(data_dir))}
    argv = [sys.executable, "-c", PUBLISHER, batch_id, *options]
    return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def read_until(process: subprocess.Popen, line: str) -> list[str]:
    """The lines a publisher printed up to and including `line`; fails with its stderr if it exits first."""
    seen: list[str] = []
    while not seen or seen[-1] != line:
        next_line = process.stdout.readline()
        if not next_line:
            process.wait()
            raise AssertionError(f"publisher exited ({process.returncode}) before {line!r}: {seen}\n{process.stderr.read()}")
        seen.append(next_line.rstrip("\n"))
    return seen


@pytest.fixture(scope="module")
def old_published_new_passed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A data dir whose current publication is batch `old`, with a passed, unpublished batch `new`."""
    data_dir = tmp_path_factory.mktemp("pristine") / "data"
    settings = settings_for(data_dir)
    old_hash = make_batch(settings, "old", seed=0)
    publish_if_allowed(settings, "old")
    new_hash = make_batch(settings, "new", seed=1)
    assert old_hash != new_hash
    return data_dir, old_hash, new_hash


def test_sigkill_after_every_publication_step_leaves_old_or_new_publication_whole(old_published_new_passed, tmp_path):
    """Killed after each step in turn, the publisher leaves BI exactly the state that step implies:
    the old publication until the Parquet `current` swap, new Parquet beside the old DuckDB file
    until the DuckDB swap (the DuckDB file is the commit point), the new one after. The next
    publication then leaves both new and nothing half-built behind."""
    pristine, old_hash, new_hash = old_published_new_passed
    whole_run = tmp_path / "whole run"
    shutil.copytree(pristine, whole_run, symlinks=True)
    process = start_publisher(whole_run, "new")
    out, err = process.communicate(timeout=120)
    assert out.splitlines() == ["publishing", *(f"step {step}" for step in PUBLICATION_STEPS), "published"], err

    for index, step in enumerate(PUBLICATION_STEPS):
        data_dir = tmp_path / f"killed after {step}"
        shutil.copytree(pristine, data_dir, symlinks=True)
        process = start_publisher(data_dir, "new", "--pause-at", step)
        try:
            read_until(process, f"step {step}")
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL, step
        settings = settings_for(data_dir)
        duckdb_is_new = index >= PUBLICATION_STEPS.index("swapped")
        parquet_is_new = index >= PUBLICATION_STEPS.index("parquet current")
        expected = (new_hash if duckdb_is_new else old_hash, new_hash if parquet_is_new else old_hash)
        assert (published_hash(settings), parquet_hash(settings)) == expected, step
        assert get_batch(settings, "new").status == "publishing", step

        if duckdb_is_new:  # it died after the commit point: recovery records the publication
            with pytest.raises(PublicationRefused, match="already published"):
                publish_if_allowed(settings, "new")
        else:
            publish_if_allowed(settings, "new")
        assert (published_hash(settings), parquet_hash(settings)) == (new_hash, new_hash), step
        assert [row["batch_id"] for row in read_publications(settings.published_path)] == ["old", "new"], step
        assert get_batch(settings, "new").status == "published", step
        assert leftovers(settings) == [], step


def test_leftover_building_and_staged_files_do_not_break_the_next_publication(old_published_new_passed, tmp_path):
    pristine, _, new_hash = old_published_new_passed
    data_dir = tmp_path / "data"
    shutil.copytree(pristine, data_dir, symlinks=True)
    settings = settings_for(data_dir)
    (data_dir / "publications" / ".20261127T000000000000Z-dead.duckdb.building").write_bytes(b"half a file")
    (data_dir / "publications" / ".20261127T000000000000Z-dead.duckdb.building.wal").write_bytes(b"wal")
    (data_dir / ".published.duckdb.staged").write_bytes(b"half a copy")
    (data_dir / "published" / ".20261127T000000000000Z-dead.building").mkdir()
    (data_dir / "published" / ".current.staged").symlink_to("nowhere")
    publish_if_allowed(settings, "new")
    assert published_hash(settings) == new_hash and parquet_hash(settings) == new_hash
    assert leftovers(settings) == []


def test_two_publishers_of_one_approved_batch_publish_it_once(old_published_new_passed, tmp_path):
    pristine, _, new_hash = old_published_new_passed
    data_dir = tmp_path / "data"
    shutil.copytree(pristine, data_dir, symlinks=True)
    keys = reviewer_keys(tmp_path, "alice")  # a real SSH key; publishers verify its signature
    settings = settings_for(data_dir, keys.reviewers_path)
    make_batch(settings, "approved", seed=2, failing=True)
    approve(settings, "approved", reviewer="alice", reason="checked by hand", key=keys["alice"])

    publishers = [start_publisher(data_dir, "approved", "--wait-for-go", settings=settings) for _ in range(2)]
    for publisher in publishers:
        read_until(publisher, "ready")
    for publisher in publishers:
        publisher.stdin.write("go\n")
        publisher.stdin.flush()
    outputs = [p.communicate(timeout=120)[0] for p in publishers]
    assert all(p.returncode == 0 for p in publishers), outputs
    assert sorted(out.splitlines()[-1].split(":")[0] for out in outputs) == ["published", "refused"], outputs
    batches = [row["batch_id"] for row in read_publications(settings.published_path)]
    assert batches == ["old", "approved"]
    assert read_publications(settings.published_path)[-1]["approved_by"] == "alice"


def test_publication_claim_is_a_compare_and_set(old_published_new_passed, tmp_path):
    pristine, _, _ = old_published_new_passed
    data_dir = tmp_path / "data"
    shutil.copytree(pristine, data_dir, symlinks=True)
    settings = settings_for(data_dir)
    claim_for_publication(settings, "new")
    with pytest.raises(LedgerConflict, match="publishing"):
        claim_for_publication(settings, "new")


def test_rollback_refuses_when_publications_moved_since_the_signed_decision(old_published_new_passed, tmp_path):
    """A signed rollback names the publications it undoes and restores; one landing in between makes
    the restore refuse under the publish lock instead of restoring something nobody signed."""
    pristine, old_hash, new_hash = old_published_new_passed
    data_dir = tmp_path / "data"
    shutil.copytree(pristine, data_dir, symlinks=True)
    settings = settings_for(data_dir)
    publish_if_allowed(settings, "new")
    stack = [row["publication_id"] for row in read_publications(settings.published_path)]
    signed_from, signed_to = stack[-1], stack[-2]
    make_batch(settings, "newer", seed=3)
    publish_if_allowed(settings, "newer")  # lands after the decision was signed
    with pytest.raises(PublicationRefused, match="changed since"):
        rollback(settings, requested_by="alice", expected_from=signed_from, expected_to=signed_to)
    assert published_hash(settings) != new_hash and published_hash(settings) != old_hash
    current = read_publications(settings.published_path)[-1]["publication_id"]
    assert rollback(settings, requested_by="alice", expected_from=current, expected_to=signed_from)
    assert published_hash(settings) == new_hash


def fitatlas_run(data_dir: Path, dagster_home: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "FITATLAS_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(dagster_home)}
    env.pop("FITATLAS_SNAPSHOT_DIR", None)
    env.pop("FITATLAS_SPEC_SHEETS_DIR", None)
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("fitatlas")), "run", *extra],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_run_with_no_wait_fails_fast_while_another_run_holds_the_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with warehouse_lock(data_dir, holder="test"):
        process = fitatlas_run(data_dir, tmp_path / "dagster", "--no-wait")
        _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert err.startswith("fitatlas: another run is writing the warehouse of")


def test_two_runs_at_once_both_finish_in_turn_without_duplicate_publication(tmp_path):
    data_dir, dagster_home = tmp_path / "data", tmp_path / "dagster"
    first = fitatlas_run(data_dir, dagster_home)
    lock = warehouse_lock_path(data_dir)

    def first_holds_the_lock() -> bool:
        assert first.poll() is None, first.communicate()
        try:
            with exclusive_lock(lock, wait=False):
                return False
        except (BlockingIOError, FileNotFoundError):
            return True

    wait_for(first_holds_the_lock, 300, "the first run to take the run lock", interval_s=0.05)
    second = fitatlas_run(data_dir, dagster_home)
    first_out, first_err = first.communicate(timeout=900)
    second_out, second_err = second.communicate(timeout=900)
    assert first.returncode == 0, first_out + first_err
    assert second.returncode == 0, second_out + second_err
    assert "waiting for it to finish" in second_err

    settings = settings_for(data_dir)
    history = read_publications(settings.published_path)
    batches = [row["batch_id"] for row in history]
    # The second run finds nothing changed (pipelines.rerun): it freezes no batch, publishes nothing
    # again, and says so.
    assert len(batches) == 1
    assert "nothing stale below the raw layer" in second_out and "unchanged: nothing new to publish" in second_out
    assert published_hash(settings) == get_batch(settings, batches[-1]).content_sha256
    assert parquet_hash(settings) == history[-1]["content_sha256"]
