"""`fitatlas bench --models N`: size a synthetic catalogue of N distinct architectures, timed.

The worst case for the engine (``sizing.synthetic``: every model its own sizing signature, so dedup
saves nothing) against every GPU of the current publication, over the published precisions, GPU
counts, contexts and KV dtypes (``sizing.catalogue.size_catalogue``, in chunks). Configs are
described (``sizing.architecture.describe``, ~2 ms each) in one worker process per CPU; the grid
runs in this process. Prints one JSON object; a benchmark, not a test (``make bench``).
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import polars as pl

#: configs described per worker task (large enough that pickling a frame back is cheap)
DESCRIBE_TASK = 1000


class BenchError(ValueError):
    """The bench cannot run (no publication to take GPUs from, bad arguments)."""


def published_gpus(published_path: Path) -> pl.DataFrame:
    import duckdb

    if not published_path.exists():
        raise BenchError(f"no publication at {published_path} to take the GPUs from: run `fitatlas run` first")
    con = duckdb.connect(str(published_path), read_only=True)
    try:
        return con.sql("select * from gpus order by gpu_id").pl()
    finally:
        con.close()


def snapshot_bases(hf_dir: Path) -> list:
    """The bundled configs that describe as supported, one per sizing signature (a base sharing a
    signature would make its synthetic variants collide)."""
    from sizing.architecture import describe
    from sizing.model_spec import specs_to_frames
    from sizing.signature import signatures
    from sizing.synthetic import BaseConfig

    bases = []
    for path in sorted(Path(hf_dir).glob("*/config.json")):
        quant = path.parent / "hf_quant_config.json"
        bases.append(BaseConfig(path.parent.name.replace("__", "/", 1), json.loads(path.read_text()),
                                json.loads(quant.read_text()) if quant.exists() else None))
    specs = [describe(b.config, model_id=b.model_id, quant_config=b.quant_config) for b in bases]
    models, groups = specs_to_frames([s for s in specs if s.supported])
    first = set(signatures(models, groups).unique("signature", keep="first", maintain_order=True)["model_id"])
    return [b for b in bases if b.model_id in first]


def _describe_range(task: tuple[list, int, int]) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Worker: models ``start..stop`` of the synthetic catalogue over ``bases``, described, as the
    grid's frames; a variant the base's layout rejects is replaced by its width-and-context one."""
    from sizing.architecture import describe
    from sizing.model_spec import specs_to_frames
    from sizing.synthetic import fallback, perturb
    from sizing.synthetic import synthetic_name as name

    bases, start, stop = task
    specs, unsupported = [], 0
    for i in range(start, stop):
        base, k = bases[i % len(bases)], i // len(bases)
        spec = describe(perturb(base.config, k), model_id=name(base, k), quant_config=base.quant_config)
        if not spec.supported:
            plain = fallback(base, k)
            spec = describe(plain.config, model_id=plain.model_id, quant_config=plain.quant_config)
        unsupported += not spec.supported
        specs.append(spec)
    models, groups = specs_to_frames(specs)
    return models, groups, unsupported


def describe_catalogue(bases: Sequence, n_models: int, workers: int) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, int]]:
    tasks = [(list(bases), start, min(start + DESCRIBE_TASK, n_models)) for start in range(0, n_models, DESCRIBE_TASK)]
    if workers <= 1 or len(tasks) == 1:
        yield from map(_describe_range, tasks)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        yield from pool.map(_describe_range, tasks)


def peak_rss_mb() -> float:
    """Largest resident set of this process or any worker it waited for (MB = 2^20 bytes)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def run_bench(published_path: Path, hf_dir: Path, n_models: int, *, chunk_size: int | None = None,
              workers: int | None = None, out_dir: Path | None = None, peer_sample: int = 0,
              dask_shards: int = 0, dask_address: str | None = None) -> dict:
    """Describe and size ``n_models`` synthetic models; the figures `fitatlas bench` prints. With
    ``peer_sample``, llm-analysis also sizes that many of the same cells in this process
    (``pipelines.peer_bench``) and the report compares the time per cell. With ``dask_shards``, the
    grid is sized in that many shards on a Dask cluster instead (``_bench_on_dask``)."""
    from pipelines.defs.sizing.shards import GRID_TABLES, ParquetShards
    from sizing.catalogue import DEFAULT_CHUNK, size_catalogue

    if n_models < 1:
        raise BenchError(f"--models {n_models}: must be at least 1")
    if dask_shards and (out_dir or peer_sample):
        raise BenchError("--dask-shards sizes on the cluster and keeps no rows: it does not combine with --out or --peer-sample")
    if dask_shards < 0:
        raise BenchError(f"--dask-shards {dask_shards}: must be at least 1 (or 0: size in this process)")
    started = time.perf_counter()
    gpus = published_gpus(published_path)
    bases = snapshot_bases(hf_dir)
    workers = workers or len(os.sched_getaffinity(0))
    parts = list(describe_catalogue(bases, n_models, workers))
    models = pl.concat([p[0] for p in parts])
    groups = pl.concat([p[1] for p in parts])
    unsupported = sum(p[2] for p in parts)
    del parts
    seconds_describe = time.perf_counter() - started

    if dask_shards:
        return {**_bench_on_dask(models, groups, gpus, dask_shards, dask_address, workers, chunk_size or DEFAULT_CHUNK),
                "models": n_models, "unsupported": unsupported, "seconds_describe": round(seconds_describe, 2),
                "seconds_total": round(time.perf_counter() - started, 2)}
    sink = ParquetShards(out_dir, GRID_TABLES) if out_dir else _discard
    sized = size_catalogue(models, groups, gpus, None, chunk_size=chunk_size or DEFAULT_CHUNK, sink=sink)
    report = {
        "models": n_models,
        "supported": sized.models,
        "unsupported": unsupported,
        "distinct_signatures": sized.signatures,
        "gpus": gpus.height,
        "fit_rows": sized.fit_rows,
        "recommendation_rows": sized.recommendation_rows,
        "speed_rows": sized.speed_rows,
        "chunks": sized.chunks,
        "seconds_describe": round(seconds_describe, 2),
        "seconds_fit": round(sized.seconds_fit, 2),
        "seconds_recommend": round(sized.seconds_recommend, 2),
        "seconds_total": round(time.perf_counter() - started, 2),
        "peak_rss_mb": peak_rss_mb(),
        "workers": workers,
    }
    if peer_sample:
        from pipelines.peer_bench import llm_analysis_cells, our_cells, per_cell_ratio

        peer = llm_analysis_cells(models, gpus, sample=peer_sample)
        report["peer"] = peer
        report["per_cell"] = per_cell_ratio(sized.seconds_fit + sized.seconds_recommend, our_cells(models, gpus), peer)
    return report


def _size_one_shard(models, groups, gpus, shard: tuple[int, int], chunk_size: int) -> dict:
    """On a Dask worker: one shard of the catalogue, its counts, time and the worker's peak RSS."""
    from sizing.catalogue import size_catalogue

    started = time.perf_counter()
    sized = size_catalogue(models, groups, gpus, None, chunk_size=chunk_size, sink=_discard, shard=shard)
    return {"signatures": sized.signatures, "fit_rows": sized.fit_rows,
            "recommendation_rows": sized.recommendation_rows, "seconds": round(time.perf_counter() - started, 2),
            "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _bench_on_dask(models, groups, gpus, shards: int, address: str | None, workers: int, chunk_size: int) -> dict:
    """The grid in ``shards`` shards on the scheduler at ``address`` (else a LocalCluster of
    ``workers`` processes): the engine `sizing_shard` runs on a cluster, without Dagster around it."""
    from distributed import Client

    from pipelines.defs.executor import dask_cluster

    with dask_cluster(address, workers) as cluster, Client(cluster) as client:
        started = time.perf_counter()
        frames = client.scatter([models, groups, gpus], broadcast=True)
        futures = [client.submit(_size_one_shard, *frames, (index, shards), chunk_size, pure=False)
                   for index in range(shards)]
        results = client.gather(futures)
        seconds = time.perf_counter() - started
        cluster_workers = len(client.scheduler_info()["workers"])
    return {
        "distinct_signatures": sum(r["signatures"] for r in results),
        "gpus": gpus.height,
        "fit_rows": sum(r["fit_rows"] for r in results),
        "recommendation_rows": sum(r["recommendation_rows"] for r in results),
        "dask_shards": shards,
        "dask_workers": cluster_workers,
        "seconds_sizing_on_dask": round(seconds, 2),
        "shard_seconds": [r["seconds"] for r in results],
        "worker_peak_rss_mb": max(r["worker_peak_rss_mb"] for r in results),
        "peak_rss_mb": peak_rss_mb(),
    }


def _discard(table: str, frame: pl.DataFrame) -> None:
    """A sink that keeps nothing: the bench counts rows, it does not store them."""
