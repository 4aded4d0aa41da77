"""The code location's executor: Dagster's multiprocess executor, one writer per warehouse, and
Dask for the runs that need no warehouse (the sizing shards) when FITATLAS_EXECUTOR=dask.

Runs the daemon launches (sensors, schedules, declarative automation, the UI's launchpad) execute in
a run worker that orchestrates the steps through this executor. When the run has a step in the
`warehouse` pool it first takes `pipelines.warehouse.warehouse_lock` — the same flock `fitatlas run`
holds around its in-process run — and keeps it until the last step ends. So a CLI run and a
daemon-launched run never write the warehouse at the same time, whichever starts first: the later one
logs whom it waits for and starts when the other finishes. (`execute_in_process` always swaps in
Dagster's in-process executor, so the CLI takes the lock itself.)

With FITATLAS_EXECUTOR=dask, a run with no step in the `warehouse` pool — a run of `sizing_shard`
partitions, which read and write only Parquet files — goes to a Dask cluster through dagster-dask
(`ShardDaskExecutor`): the scheduler at FITATLAS_DASK_ADDRESS, or a `LocalCluster` of worker
processes for the run when it is unset, or the address in the run's executor config (`dask_address`,
how `fitatlas run` hands its shard runs the one local cluster it starts). Warehouse runs never go
to Dask: its scheduler knows nothing of Dagster pools, so two steps could write the one DuckDB file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster._core.execution.retries import RetryMode

from pipelines.settings import Settings
from pipelines.warehouse import WAREHOUSE_POOL, warehouse_lock

DASK_ADDRESS_CONFIG = "dask_address"
# A local cluster's dashboard on a free port (8787 may be taken by another cluster); its workers'
# shutdown chatter (heartbeats to a scheduler that closed first) kept out of the console: a step's
# errors reach the Dagster event log through the step itself.
LOCAL_CLUSTER_OPTIONS = {"dashboard_address": ":0", "silence_logs": logging.CRITICAL}


@contextmanager
def dask_cluster(address: str | None, workers: int | None) -> Iterator:
    """What `distributed.Client` connects to for the block: the scheduler at `address`, else a
    `LocalCluster` of `workers` processes of one thread each (Dagster steps are not thread-safe),
    closed when the block ends."""
    if address:
        yield address
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, **LOCAL_CLUSTER_OPTIONS) as cluster:
        yield cluster


def plan_uses_warehouse(execution_plan) -> bool:
    return any(getattr(step, "pool", None) == WAREHOUSE_POOL for step in execution_plan.steps)


class ShardDaskExecutor(dg.Executor):
    """dagster-dask's `DaskExecutor`, with task keys that carry the run id. DaskExecutor names a task
    `<job>.<step>`; two runs of one job on one cluster (two shards of `sizing_shard` side by side)
    then submit the same key, and Dask hands the second run the first run's events without running
    its step (seen with dagster-dask 0.29.27: both runs succeed, one partition is materialised).
    Otherwise the same: each step is a Dask task that rebuilds the job from its reconstructable
    pointer on the worker and executes that one step against the run's (persistent) instance."""

    def __init__(self, address: str | None, workers: int | None):
        self.address = address
        self.workers = workers

    @property
    def retries(self) -> RetryMode:
        return RetryMode.DISABLED

    def execute(self, plan_context, execution_plan) -> Iterator:
        from dagster._core.errors import raise_execution_interrupts
        from dagster._utils import iterate_with_context
        from dagster_dask.executor import get_dask_resource_requirements, query_on_dask_worker
        from distributed import Client, as_completed

        if not plan_context.instance.is_persistent:
            raise dg.DagsterInvariantViolationError(
                "FITATLAS_EXECUTOR=dask needs a persistent Dagster instance (DAGSTER_HOME): Dask workers "
                "write their steps' events to it"
            )
        instance_ref = plan_context.instance.get_ref()
        with dask_cluster(self.address, self.workers) as cluster, Client(cluster) as client:
            plan_context.log.info(f"run {plan_context.run_id}: steps go to the Dask scheduler at "
                                  f"{getattr(cluster, 'scheduler_address', cluster)}")
            futures = {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    waits_for = [futures[key] for step_input in step.step_inputs for key in step_input.dependency_keys]
                    futures[step.key] = client.submit(
                        query_on_dask_worker, waits_for, plan_context.reconstructable_job,
                        plan_context.dagster_run, plan_context.run_config, [step.key], instance_ref,
                        execution_plan.known_state,
                        key=f"{plan_context.job_name}.{step.key}.{plan_context.run_id}",
                        resources=get_dask_resource_requirements(step.tags),
                    )
            done = as_completed(list(futures.values()), with_results=True)
            for _future, events in iterate_with_context(raise_execution_interrupts, done):
                yield from events


class WarehouseWriterExecutor(dg.Executor):
    """Wraps another executor; holds the warehouse lock of `data_dir` around its whole execution.
    With `elsewhere`, a run with no warehouse step goes there instead (module docstring)."""

    def __init__(self, inner: dg.Executor, data_dir: Path, elsewhere: dg.Executor | None = None):
        self._inner = inner
        self._data_dir = data_dir
        self._elsewhere = elsewhere

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator:
        if not plan_uses_warehouse(execution_plan):
            yield from (self._elsewhere or self._inner).execute(plan_context, execution_plan)
            return
        data_dir = self._data_dir
        run_id = plan_context.run_id

        def say_waiting(holder: str) -> None:
            plan_context.log.info(f"waiting for the warehouse of {data_dir}: held by {holder or 'another run'}")

        with warehouse_lock(data_dir, holder=f"dagster run {run_id}", on_wait=say_waiting):
            plan_context.log.debug(f"run {run_id} holds the warehouse lock of {data_dir}")
            yield from self._inner.execute(plan_context, execution_plan)


def fitatlas_executor(settings: Settings) -> dg.ExecutorDefinition:
    """Dagster's multiprocess executor (same config), holding the warehouse lock of the settings'
    data dir for warehouse runs; with `settings.executor == "dask"`, runs without warehouse steps on
    Dask (config `dask_address` overrides FITATLAS_DASK_ADDRESS)."""
    fields = dict(dg.multiprocess_executor.config_schema.config_type.fields)
    fields[DASK_ADDRESS_CONFIG] = dg.Field(
        str, is_required=False,
        description="FITATLAS_EXECUTOR=dask: the scheduler this run's shard steps go to (default FITATLAS_DASK_ADDRESS, "
        "else a local cluster per run)",
    )

    @dg.executor(
        name="multiprocess_warehouse_writer",
        config_schema=fields,
        requirements=dg.multiprocess_executor.get_requirements,
    )
    def _executor(init_context: dg.InitExecutorContext) -> dg.Executor:
        config = dict(init_context.executor_config)
        address = config.pop(DASK_ADDRESS_CONFIG, None) or settings.dask_address
        local_context = init_context._replace(executor_config=config)
        elsewhere = ShardDaskExecutor(address, settings.dask_workers) if settings.executor == "dask" else None
        return WarehouseWriterExecutor(
            dg.multiprocess_executor.executor_creation_fn(local_context), settings.data_dir, elsewhere
        )

    return _executor
