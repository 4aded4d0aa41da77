"""`fitatlas bench` (pipelines.bench) on a small catalogue: the real CLI in a subprocess, GPUs from a
published.duckdb made here (the datasheet GPUs of test_kv_per_gpu), the bundled snapshot's configs
as bases. Counts are checked against the sizing library run directly on the same models; timings are
reported, never asserted (benchmarks measure speed, tests do not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from test_kv_per_gpu import gpu_frame

from pipelines.bench import _describe_range, snapshot_bases
from pipelines.settings import SNAPSHOT_DIR
from sizing.constants import PUBLISHED_KV_DTYPES, RECOMMENDATION_KV_DTYPE
from sizing.grid import fit_matrix, rank_and_speeds

N = 40
KEYS = {"models", "distinct_signatures", "gpus", "fit_rows", "recommendation_rows", "seconds_fit",
        "seconds_recommend", "peak_rss_mb"}  # the list; the report carries a few more


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("bench-data")
    con = duckdb.connect(str(data / "published.duckdb"))
    con.register("g", gpu_frame().to_arrow())
    con.execute("create table gpus as select * from g")
    con.close()
    return data


def bench(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FITATLAS_DATA_DIR": str(data_dir), "FITATLAS_SNAPSHOT_DIR": str(SNAPSHOT_DIR)}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "bench", *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def reference():
    """The same N synthetic models sized in one piece by the library."""
    models, groups, unsupported = _describe_range((snapshot_bases(SNAPSHOT_DIR / "hf"), 0, N))
    gpus = gpu_frame()
    fits = fit_matrix(models, groups, gpus, kv_dtype=PUBLISHED_KV_DTYPES)
    recs, _ = rank_and_speeds(fits.filter(pl.col("kv_dtype") == RECOMMENDATION_KV_DTYPE), models, groups, gpus)
    return fits.height, recs.height, unsupported


def test_the_report_counts_what_one_whole_grid_gives(data_dir, reference, tmp_path):
    (tmp_path / "rows").mkdir()
    (tmp_path / "rows" / "notes.txt").write_text("the reader's own file")
    done = bench(data_dir, "--models", str(N), "--chunk", "7", "--workers", "2", "--json", "--out", str(tmp_path / "rows"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert KEYS <= report.keys()
    fit_rows, recommendation_rows, unsupported = reference
    assert unsupported == 0
    assert (report["models"], report["distinct_signatures"], report["gpus"]) == (N, N, gpu_frame().height)
    assert (report["fit_rows"], report["recommendation_rows"]) == (fit_rows, recommendation_rows)
    assert report["chunks"] == -(-N // 7)
    assert report["peak_rss_mb"] > 0 and report["seconds_fit"] >= 0 and report["seconds_recommend"] > 0
    # --out keeps every chunk's rows as Parquet: they add up to the counts
    written = pl.scan_parquet(tmp_path / "rows" / "fit_matrix" / "*.parquet").select(pl.len()).collect().item()
    assert written == fit_rows
    assert len(list((tmp_path / "rows" / "recommendations").glob("part-*.parquet"))) == report["chunks"]
    assert (tmp_path / "rows" / "notes.txt").read_text() == "the reader's own file"  # only the table folders are replaced


def test_shards_on_a_local_dask_cluster_add_up_to_the_whole_grid(data_dir, reference):
    done = bench(data_dir, "--models", str(N), "--chunk", "7", "--workers", "2", "--dask-shards", "3", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    fit_rows, recommendation_rows, _ = reference
    assert (report["fit_rows"], report["recommendation_rows"], report["distinct_signatures"]) == (
        fit_rows, recommendation_rows, N)
    assert (report["dask_shards"], report["dask_workers"], len(report["shard_seconds"])) == (3, 2, 3)
    assert report["worker_peak_rss_mb"] > 0


def test_dask_shards_keep_no_rows_so_out_is_refused(data_dir, tmp_path):
    done = bench(data_dir, "--models", "5", "--dask-shards", "2", "--out", str(tmp_path / "rows"))
    assert done.returncode == 2
    assert "--dask-shards sizes on the cluster and keeps no rows: it does not combine with --out" in done.stderr


def test_without_a_publication_it_says_what_to_run(tmp_path):
    done = bench(tmp_path, "--models", "5")
    assert done.returncode == 2
    assert "no publication at" in done.stderr and "fitatlas run" in done.stderr


def test_a_catalogue_needs_a_model(data_dir):
    done = bench(data_dir, "--models", "0")
    assert done.returncode == 2 and "--models 0: must be at least 1" in done.stderr
