"""Describe many configs with each model isolated: its own time and memory budget, its own failure.

``describe_isolated(items, budget)`` sizes every ``SizingInput`` in worker processes
(``python -m sizing.isolation``: a fresh interpreter that imports only the sizing library, so it
never inherits the caller's threads, locks or open files, and needs nothing of the caller's
``__main__``). Each worker caps its own address space (``RLIMIT_AS``) at ``budget.memory_mb`` and
takes one model at a time; the parent gives every model ``budget.timeout_s`` of wall-clock time.
Whatever happens to one model -- an exception, a ``MemoryError`` under the cap, a worker killed by
the kernel, a model still running at its deadline (its worker is killed and replaced by a fresh
one) -- that model becomes ``supported=False`` with the reason, and the others go on. Results come
back in input order.

The worker parses the JSON texts itself (``sizing.validation.load_config_json``: size and depth
caps), so parsing happens inside the budget too. Requests and answers are JSON lines over the
worker's stdin/stdout (no pickle: nothing a worker sends can execute in the parent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from sizing.constants import SIZING_BUDGET, SizingBudget
from sizing.model_spec import KVGroup, ModelSpec

#: How long a fresh worker may take to import the sizing library before it is given up on
#: (normally ~0.4 s; generous for a loaded machine). Not part of any model's budget.
WORKER_START_TIMEOUT_S = 120.0
_READY = "ready"
DEFAULT_SIZER = "sizing.isolation:describe_one"


@dataclass(frozen=True)
class SizingInput:
    """One model to size: the JSON texts as landed (None when absent)."""

    model_id: str
    config: str | None
    quant_config: str | None = None
    safetensors_dtypes: str | None = None


@dataclass
class IsolationReport:
    """What the isolation did, for run metadata."""

    models: int = 0
    workers: int = 0
    workers_started: int = 0
    seconds: float = 0.0
    timed_out: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "workers": self.workers,
            "workers_started": self.workers_started,
            "seconds": round(self.seconds, 3),
            "timed_out": self.timed_out,
            "worker_crashed": self.crashed,
        }


def describe_one(item: SizingInput) -> ModelSpec:
    """Parse and describe one model in the current process (what a worker runs). Never raises."""
    from sizing.architecture import describe
    from sizing.validation import ConfigRejected, clip_reason, load_config_json

    try:
        config = load_config_json(item.config or "{}", what="config.json")
        quant = load_config_json(item.quant_config, what="hf_quant_config.json") if item.quant_config else None
        dtypes = load_config_json(item.safetensors_dtypes, what="safetensors parameters") if item.safetensors_dtypes else None
    except ConfigRejected as rejected:
        return ModelSpec(model_id=item.model_id, supported=False, reason=clip_reason(f"config rejected: {rejected.reason}"))
    return describe(
        config,
        model_id=item.model_id,
        quant_config=quant if isinstance(quant, dict) else None,
        safetensors_dtypes=dtypes if isinstance(dtypes, dict) else None,
    )


def describe_isolated(
    items: list[SizingInput], budget: SizingBudget = SIZING_BUDGET, *, sizer: str = DEFAULT_SIZER
) -> tuple[list[ModelSpec], IsolationReport]:
    """Describe every item under the per-model budget; results in input order.

    ``sizer`` (``module:function``, importable by a fresh interpreter) is what a worker calls per
    item; tests substitute one that hangs, allocates or crashes."""
    report = IsolationReport(models=len(items))
    started = time.perf_counter()
    results: list[ModelSpec | None] = [None] * len(items)
    pending = deque(range(len(items)))
    workers: list[_Worker] = []
    report.workers = min(len(items), _worker_count(budget))

    def start_worker() -> _Worker:
        report.workers_started += 1
        worker = _Worker(budget, sizer)
        workers.append(worker)
        return worker

    def fail(index: int, reason: str) -> None:
        results[index] = ModelSpec(model_id=items[index].model_id, supported=False, reason=reason)

    try:
        starts_left = report.workers + len(items)  # at most one replacement worker per model
        while pending or any(w.index is not None for w in workers):
            workers[:] = [w for w in workers if w.alive_or_busy()]
            while pending and len(workers) < report.workers and starts_left > 0:
                starts_left -= 1
                start_worker()
            if pending and not workers:  # workers cannot start at all (broken environment)
                for index in pending:
                    fail(index, "no sizing worker could be started")
                pending.clear()
                break
            for worker in [w for w in workers if w.ready and w.index is None]:
                if not pending:
                    break
                index = pending.popleft()
                if not worker.send(index, items[index]):
                    pending.appendleft(index)  # it died idle: nothing of this model ran
                    worker.kill()
            waiting = [w for w in workers if not w.killed and (not w.ready or w.index is not None)]
            if not waiting:
                continue
            deadline = min(w.deadline for w in waiting)
            for stdout in wait([w.stdout for w in waiting], timeout=max(0.0, deadline - time.monotonic())):
                worker = next(w for w in waiting if w.stdout is stdout)
                message = worker.read()
                if not worker.ready:
                    if message == _READY:
                        worker.ready, worker.deadline = True, float("inf")
                    else:
                        worker.kill()  # died while starting; replaced on the next turn
                    continue
                index, worker.index = worker.index, None
                if isinstance(message, ModelSpec):
                    results[index] = message
                    worker.deadline = float("inf")
                    continue
                code = worker.kill()
                report.crashed.append(items[index].model_id)
                fail(index, f"the sizing worker died (exit code {code}) while sizing this config: over the "
                            f"{budget.memory_mb:,} MiB memory budget, or a crash of the process")
            now = time.monotonic()
            for worker in waiting:
                if worker.killed or worker.deadline > now:
                    continue
                if worker.index is not None:  # a straggler: stop it; a fresh worker takes the next model
                    report.timed_out.append(items[worker.index].model_id)
                    fail(worker.index, f"sizing took longer than the {budget.timeout_s:g} s budget per model (stopped)")
                    worker.index = None
                worker.kill()
    finally:
        for worker in workers:
            worker.close()
    report.seconds = time.perf_counter() - started
    return [spec for spec in results if spec is not None], report


def _worker_count(budget: SizingBudget) -> int:
    wanted = budget.workers or (os.cpu_count() or 1)
    return max(1, min(wanted, budget.max_workers))


class _Worker:
    """One ``python -m sizing.isolation`` process: JSON lines in, JSON lines out."""

    def __init__(self, budget: SizingBudget, sizer: str):
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sizing.isolation", str(budget.memory_mb), sizer],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        self.timeout_s = budget.timeout_s
        self.ready = False
        self.killed = False
        self.index: int | None = None
        self.deadline = time.monotonic() + WORKER_START_TIMEOUT_S

    def send(self, index: int, item: SizingInput) -> bool:
        try:
            self.stdin.write(json.dumps(asdict(item)).encode() + b"\n")
            self.stdin.flush()
        except (OSError, ValueError):
            return False
        self.index = index
        self.deadline = time.monotonic() + self.timeout_s
        return True

    def read(self) -> ModelSpec | str | None:
        """The worker's next line: "ready", a ModelSpec, or None (it died / sent garbage)."""
        try:
            line = self.stdout.readline()
            message = json.loads(line) if line.endswith(b"\n") else None
        except (OSError, ValueError):
            return None
        if message == _READY:
            return _READY
        try:
            return _spec_from_json(message)
        except (TypeError, ValueError, KeyError):
            return None

    def alive_or_busy(self) -> bool:
        return not self.killed and (self.index is not None or self.process.poll() is None)

    def kill(self) -> int | None:
        self.killed = True
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._close_pipes()
        return self.process.returncode

    def close(self) -> None:
        if self.killed:
            return
        try:
            self.stdin.close()  # EOF: the worker's loop ends
            self.process.wait(2)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def _close_pipes(self) -> None:
        for pipe in (self.stdin, self.stdout):
            try:
                pipe.close()
            except (OSError, ValueError):
                pass


def _spec_from_json(message: Any) -> ModelSpec:
    if not isinstance(message, dict):
        raise ValueError("not a spec")
    groups = tuple(KVGroup(**group) for group in message.pop("kv_groups"))
    return ModelSpec(**message, kv_groups=groups)


# --- the worker ---------------------------------------------------------------------------------


def _worker_main(memory_mb: int, sizer: str = DEFAULT_SIZER) -> None:
    """Cap the address space, say ready, then answer one JSON line per request line until EOF."""
    import importlib

    _limit_memory(memory_mb)
    import sizing.architecture  # noqa: F401 -- imported before "ready", outside any model's budget

    module, _, function = sizer.partition(":")
    size = getattr(importlib.import_module(module), function)

    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print() in sizing code must not corrupt the protocol
    out.write(json.dumps(_READY).encode() + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            item = SizingInput(**request)
        except Exception as error:  # noqa: BLE001
            item, spec = None, None
            reason = f"unreadable sizing request: {type(error).__name__}"
        else:
            try:
                spec = size(item)
            except MemoryError:
                spec, reason = None, f"sizing this config needed more than the {memory_mb:,} MiB memory budget"
            except BaseException as error:  # noqa: BLE001 -- report, never die silently
                spec, reason = None, f"sizing failed: {type(error).__name__}"
        if spec is None:
            spec = ModelSpec(model_id=item.model_id if item else "?", supported=False, reason=reason)
        try:
            answer = json.dumps(asdict(spec)).encode() + b"\n"
        except MemoryError:
            answer = json.dumps(asdict(ModelSpec(model_id=spec.model_id, supported=False, reason=(
                f"sizing this config needed more than the {memory_mb:,} MiB memory budget")))).encode() + b"\n"
        out.write(answer)
        out.flush()


def _limit_memory(memory_mb: int) -> None:
    try:
        import resource
    except ImportError:  # not POSIX: the wall-clock budget still applies
        return
    limit = memory_mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]) if len(sys.argv) > 1 else SIZING_BUDGET.memory_mb,
                 sys.argv[2] if len(sys.argv) > 2 else DEFAULT_SIZER)
