"""Atomic publication under crashes and concurrency, with real processes.

- A publisher killed with SIGKILL at several points leaves `published.duckdb` and the Parquet
  export whole: exactly the previous publication or the new one, never a mix, and the next
  publication succeeds over whatever it left behind.
- Two publishers of one approved batch publish it once; two `fitatlas run` on one data dir both
  finish, one after the other, with no duplicate publication.

Batches for the crash and publisher tests are synthetic but real DuckDB files (one table per
audited table, large enough that publishing takes seconds), registered in a real review ledger.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pipelines.batches import AUDITED_TABLES, batch_path, content_hash
from pipelines.gate import publish_if_allowed
from pipelines.publishing import PUBLISHED_TABLES, PublicationRefused, exclusive_lock, read_publications, rollback
from pipelines.review import approve
from pipelines.review_ledger import LedgerConflict, claim_for_publication, get_batch, record_check_outcome, register_batch
from pipelines.settings import REPO_ROOT, Settings, load_settings
from pipelines.warehouse import warehouse_lock, warehouse_lock_path
from review_keys import reviewer_setup

ROWS_PER_TABLE = 400_000
PUBLISHER = """
import sys, time
from pathlib import Path
from pipelines.gate import publish_if_allowed
from pipelines.publishing import PublicationRefused
from pipelines.settings import load_settings
go = Path(sys.argv[2]) if len(sys.argv) > 2 else None
while go is not None and not go.exists():
    time.sleep(0.005)
print("publishing", flush=True)
try:
    publish_if_allowed(load_settings(), sys.argv[1])
except PublicationRefused as error:
    print(f"refused: {error}", flush=True)
else:
    print("published", flush=True)
"""


def settings_for(data_dir: Path) -> Settings:
    os.environ["FITATLAS_DATA_DIR"] = str(data_dir)
    return load_settings()


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


def start_publisher(data_dir: Path, batch_id: str, go: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "FITATLAS_DATA_DIR": str(data_dir)}
    argv = [sys.executable, "-c", PUBLISHER, batch_id, *([str(go)] if go else [])]
    return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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


def test_sigkill_during_publish_leaves_old_or_new_publication_whole(old_published_new_passed, tmp_path):
    pristine, old_hash, new_hash = old_published_new_passed
    calibration = tmp_path / "calibration"
    shutil.copytree(pristine, calibration, symlinks=True)
    process = start_publisher(calibration, "new")
    assert process.stdout.readline().strip() == "publishing"
    started = time.monotonic()
    assert process.stdout.readline().strip() == "published", process.stderr.read()
    duration = time.monotonic() - started
    process.wait()

    outcomes = []
    for fraction in (0.02, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9):
        data_dir = tmp_path / f"kill-{fraction}"
        shutil.copytree(pristine, data_dir, symlinks=True)
        process = start_publisher(data_dir, "new")
        assert process.stdout.readline().strip() == "publishing"
        time.sleep(fraction * duration)
        process.send_signal(signal.SIGKILL)
        process.wait()
        settings = settings_for(data_dir)
        seen = published_hash(settings)
        assert seen in (old_hash, new_hash), fraction
        assert parquet_hash(settings) in (old_hash, new_hash), fraction
        outcomes.append((fraction, process.returncode, "new" if seen == new_hash else "old"))

        try:
            publish_if_allowed(settings, "new")
        except PublicationRefused as error:
            assert "already published" in str(error), (fraction, error)
        assert published_hash(settings) == new_hash
        assert parquet_hash(settings) == new_hash
        assert [row["batch_id"] for row in read_publications(settings.published_path)] == ["old", "new"]
        assert get_batch(settings, "new").status == "published"
        assert leftovers(settings) == [], fraction
    assert any(code == -signal.SIGKILL for _, code, _ in outcomes), outcomes
    assert any(state == "old" and code == -signal.SIGKILL for _, code, state in outcomes), outcomes


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


def test_two_publishers_of_one_approved_batch_publish_it_once(old_published_new_passed, tmp_path, monkeypatch):
    pristine, _, new_hash = old_published_new_passed
    data_dir = tmp_path / "data"
    shutil.copytree(pristine, data_dir, symlinks=True)
    settings = settings_for(data_dir)
    make_batch(settings, "approved", seed=2, failing=True)
    keys = reviewer_setup(tmp_path, monkeypatch, "alice")  # a real SSH key; publishers verify its signature
    approve(settings, "approved", reviewer="alice", reason="checked by hand", key=keys["alice"])

    go = tmp_path / "go"
    publishers = [start_publisher(data_dir, "approved", go) for _ in range(2)]
    time.sleep(1.0)
    go.touch()
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
    deadline = time.monotonic() + 60
    while True:
        try:
            with exclusive_lock(lock, wait=False):
                pass
        except (BlockingIOError, FileNotFoundError):
            break
        assert time.monotonic() < deadline and first.poll() is None, "first run never took the run lock"
        time.sleep(0.05)
    second = fitatlas_run(data_dir, dagster_home)
    first_out, first_err = first.communicate(timeout=900)
    second_out, second_err = second.communicate(timeout=900)
    assert first.returncode == 0, first_out + first_err
    assert second.returncode == 0, second_out + second_err
    assert "waiting for it to finish" in second_err

    settings = settings_for(data_dir)
    history = read_publications(settings.published_path)
    batches = [row["batch_id"] for row in history]
    # The second run's batch has the first's content: it is not published again, and says so.
    assert len(batches) == 1
    assert "unchanged: batch" in second_out and "nothing new published" in second_out
    assert published_hash(settings) == get_batch(settings, batches[-1]).content_sha256
    assert parquet_hash(settings) == history[-1]["content_sha256"]
