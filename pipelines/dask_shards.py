"""`fitatlas run` with FITATLAS_EXECUTOR=dask: every sizing shard in a Dagster run of its own, the
runs side by side, each run's step on a Dask worker.

A Dagster run materialises one partition (or one range, in one step), so shards run in parallel
only as parallel runs, as a backfill of `sizing_shard` would launch them. Each run is orchestrated
by a process of its own here (Dagster captures a run's output per process, so two runs cannot share
one) and executed by the code location's executor, which sends a run without warehouse steps to the
Dask scheduler (`pipelines.defs.executor.ShardDaskExecutor`). The runs rebuild the code location
from the environment, as every Dask worker does: FITATLAS_* must describe the same settings there.

The cluster is the scheduler at FITATLAS_DASK_ADDRESS, or a `LocalCluster` of
FITATLAS_DASK_WORKERS (default: one per core) worker processes started for the shard runs.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dagster as dg

from pipelines.defs.executor import dask_cluster
from pipelines.defs.sizing.sharding import shard_keys
from pipelines.settings import Settings, SettingsError

#: how long `fitatlas run` waits for FITATLAS_DASK_ADDRESS to answer
CONNECT_TIMEOUT = "20s"


class DaskUnavailable(RuntimeError):
    """The configured scheduler does not answer; the message names the address and the error."""


@dataclass(frozen=True)
class ShardRun:
    """One shard's Dagster run."""

    partition: str
    run_id: str
    success: bool


@contextmanager
def dask_scheduler(settings: Settings, say: Callable[[str], None]) -> Iterator[tuple[str, int]]:
    """The scheduler address the shard runs use and how many workers it has (module docstring)."""
    from distributed import Client

    if settings.dask_address:
        try:
            with Client(settings.dask_address, timeout=CONNECT_TIMEOUT) as client:
                workers = len(client.scheduler_info()["workers"])
        except (OSError, TimeoutError) as error:
            raise DaskUnavailable(
                f"cannot reach the Dask scheduler at FITATLAS_DASK_ADDRESS={settings.dask_address} within "
                f"{CONNECT_TIMEOUT}: {error}"
            ) from error
        say(f"Dask scheduler {settings.dask_address}: {workers} worker(s)")
        yield settings.dask_address, max(workers, 1)
        return
    workers = settings.dask_workers or os.cpu_count() or 1
    with dask_cluster(None, workers) as cluster:
        say(f"local Dask cluster {cluster.scheduler_address}: {workers} worker process(es), dashboard {cluster.dashboard_link}")
        yield cluster.scheduler_address, workers


def _run_shard(instance_ref, partition: str, address: str, run_config: Mapping[str, Any], tags: Mapping[str, str]) -> ShardRun:
    """One shard's run, in a process of its own (module docstring)."""
    from pipelines.definitions import sizing_shards_job

    run_config = {**run_config, "execution": {"config": {"dask_address": address}}}
    with dg.DagsterInstance.from_ref(instance_ref) as instance, dg.execute_job(
        dg.reconstructable(sizing_shards_job), instance, run_config=run_config,
        tags={**tags, "dagster/partition": partition}, raise_on_error=False,
    ) as result:
        return ShardRun(partition, result.run_id, result.success)


def run_shards_on_dask(
    instance: dg.DagsterInstance,
    settings: Settings,
    partitions: Sequence[str] | None = None,
    *,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> list[ShardRun]:
    """Each shard of `partitions` (default: every shard of `settings.sizing_shards`) in its own run
    on Dask; the runs in shard order."""
    if settings.executor != "dask":
        raise SettingsError(f"FITATLAS_EXECUTOR={settings.executor!r}: shard runs on Dask need FITATLAS_EXECUTOR=dask")
    rebuilt = Settings.from_environment()
    if rebuilt.data_dir != settings.data_dir or rebuilt.executor != "dask":
        raise SettingsError(
            "shard runs rebuild the code location from the environment, which says "
            f"FITATLAS_DATA_DIR={rebuilt.data_dir} and FITATLAS_EXECUTOR={rebuilt.executor}, not this run's "
            f"{settings.data_dir} and dask"
        )
    if not instance.is_persistent:
        raise dg.DagsterInvariantViolationError("shard runs on Dask need a persistent Dagster instance (DAGSTER_HOME)")
    current = shard_keys(settings.sizing_shards)
    keys = list(partitions or current)
    if not set(keys) <= set(current):
        raise ValueError(f"not shards of FITATLAS_SIZING_SHARDS={settings.sizing_shards}: {sorted(set(keys) - set(current))}")
    with dask_scheduler(settings, say) as (address, workers):
        # orchestrators wait on their step; more of them than workers would only queue on the cluster
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(len(keys), workers), mp_context=spawn) as pool:
            futures = [
                pool.submit(_run_shard, instance.get_ref(), key, address, dict(run_config or {}), dict(tags or {}))
                for key in keys
            ]
            runs = [future.result() for future in futures]
    for run in runs:
        say(f"  shard {run.partition}: run {run.run_id} {'success' if run.success else 'FAILED'}")
    return runs
