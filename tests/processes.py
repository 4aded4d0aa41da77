"""Waiting on and stopping the real processes tests start (daemons, CLI runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.5):
    """Poll ``predicate`` until it returns something truthy; ``timeout_s`` bounds a failure, it is not
    a speed assertion (give loaded CI machines room). ``interval_s`` is how long a poll waits: short
    where the waiting test holds something the process under test is queued behind."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def stop_process_group(process: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM the process's group (started with ``start_new_session=True``), SIGKILL after ``grace_s``."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
