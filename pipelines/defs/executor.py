"""The code location's executor: Dagster's multiprocess executor, one writer per warehouse.

Runs the daemon launches (sensors, schedules, declarative automation, the UI's launchpad) execute in
a run worker that orchestrates the steps through this executor. When the run has a step in the
`warehouse` pool it first takes `pipelines.warehouse.warehouse_lock` — the same flock `fitatlas run`
holds around its in-process run — and keeps it until the last step ends. So a CLI run and a
daemon-launched run never write the warehouse at the same time, whichever starts first: the later one
logs whom it waits for and starts when the other finishes. (`execute_in_process` always swaps in
Dagster's in-process executor, so the CLI takes the lock itself.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from pipelines.warehouse import WAREHOUSE_POOL, warehouse_lock


def plan_uses_warehouse(execution_plan) -> bool:
    return any(getattr(step, "pool", None) == WAREHOUSE_POOL for step in execution_plan.steps)


class WarehouseWriterExecutor(dg.Executor):
    """Wraps another executor; holds the warehouse lock of `data_dir` around its whole execution."""

    def __init__(self, inner: dg.Executor, data_dir: Path):
        self._inner = inner
        self._data_dir = data_dir

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator:
        if not plan_uses_warehouse(execution_plan):
            yield from self._inner.execute(plan_context, execution_plan)
            return
        data_dir = self._data_dir
        run_id = plan_context.run_id

        def say_waiting(holder: str) -> None:
            plan_context.log.info(f"waiting for the warehouse of {data_dir}: held by {holder or 'another run'}")

        with warehouse_lock(data_dir, holder=f"dagster run {run_id}", on_wait=say_waiting):
            plan_context.log.debug(f"run {run_id} holds the warehouse lock of {data_dir}")
            yield from self._inner.execute(plan_context, execution_plan)


def warehouse_writer_executor(data_dir: Path) -> dg.ExecutorDefinition:
    """Dagster's multiprocess executor (same config), holding `data_dir`'s warehouse lock for warehouse runs."""

    @dg.executor(
        name="multiprocess_warehouse_writer",
        config_schema=dg.multiprocess_executor.config_schema,
        requirements=dg.multiprocess_executor.get_requirements,
    )
    def _executor(init_context: dg.InitExecutorContext) -> dg.Executor:
        return WarehouseWriterExecutor(dg.multiprocess_executor.executor_creation_fn(init_context), data_dir)

    return _executor
