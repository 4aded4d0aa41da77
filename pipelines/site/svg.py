"""Vega-Lite specs to inline SVG with vl-convert, offline.

vl-convert holds the GIL (threads measured no faster), so a site's few hundred charts are split over
worker processes, one per CPU: each is `python -m pipelines.site.svg`, reading a JSON list of
[spec, label] on stdin and writing the JSON list of SVGs on stdout. A plain subprocess, not
multiprocessing: nothing of the caller (its main module, Dagster's threads) is re-imported or forked.
Measured on the bundled snapshot (312 charts, 2 CPUs): 7.5 s in one process, about half in two.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from collections.abc import Sequence

#: below this many charts a worker's start-up (~0.5 s: Python and vl-convert) costs more than it saves
MIN_CHARTS_PER_WORKER = 24


def render(spec: dict, label: str) -> str:
    """One chart as SVG, its root element given role="img" and the chart's accessible name."""
    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(spec)
    start = svg.index("<svg")
    return svg[:start] + f'<svg role="img" aria-label="{html.escape(label, quote=True)}"' + svg[start + 4 :]


class Rendering:
    """Charts being rendered by worker processes (or, when too few for a worker, here on `result`)."""

    def __init__(self, items: Sequence[tuple[dict, str]], workers: int | None = None):
        self._items = list(items)
        workers = workers or len(os.sched_getaffinity(0))
        self._workers = max(1, min(workers, len(self._items) // MIN_CHARTS_PER_WORKER))
        self._processes: list[subprocess.Popen] = []
        if self._workers == 1:
            return
        for offset in range(self._workers):
            process = subprocess.Popen(
                [sys.executable, "-m", "pipelines.site.svg"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            # a worker reads all its input before it writes anything, so every one is busy before we read
            process.stdin.write(json.dumps(self._items[offset :: self._workers]))
            process.stdin.close()
            process.stdin = None  # communicate() then only reads
            self._processes.append(process)

    def result(self) -> list[str]:
        """The SVGs, in the order of the items."""
        if not self._processes:
            return [render(spec, label) for spec, label in self._items]
        rendered: list[str] = [""] * len(self._items)
        for offset, process in enumerate(self._processes):
            out, err = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"chart worker failed (exit {process.returncode}): {err[-2000:]}")
            rendered[offset :: self._workers] = json.loads(out)
        return rendered


def render_all(items: Sequence[tuple[dict, str]], workers: int | None = None) -> list[str]:
    """SVGs of ``items`` (spec, label), in order, rendered by up to ``workers`` processes (default:
    the CPUs this process may use)."""
    return Rendering(items, workers).result()


def _worker() -> None:
    items = json.load(sys.stdin)
    json.dump([render(spec, label) for spec, label in items], sys.stdout)


if __name__ == "__main__":
    _worker()
