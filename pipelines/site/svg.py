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


def render_all(items: Sequence[tuple[dict, str]], workers: int | None = None) -> list[str]:
    """SVGs of ``items`` (spec, label), in order, rendered by up to ``workers`` processes (default:
    the CPUs this process may use)."""
    workers = workers or len(os.sched_getaffinity(0))
    workers = max(1, min(workers, len(items) // MIN_CHARTS_PER_WORKER))
    if workers == 1:
        return [render(spec, label) for spec, label in items]
    chunks = [list(items[i::workers]) for i in range(workers)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "pipelines.site.svg"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in chunks
    ]
    for process, chunk in zip(processes, chunks, strict=True):
        # a worker reads all its input before it writes anything, so every one is busy before we read
        process.stdin.write(json.dumps(chunk))
        process.stdin.close()
        process.stdin = None  # communicate() then only reads
    results: list[list[str]] = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"chart worker failed (exit {process.returncode}): {err[-2000:]}")
        results.append(json.loads(out))
    rendered: list[str] = [""] * len(items)
    for offset, chunk_result in enumerate(results):
        rendered[offset::workers] = chunk_result
    return rendered


def _worker() -> None:
    items = json.load(sys.stdin)
    json.dump([render(spec, label) for spec, label in items], sys.stdout)


if __name__ == "__main__":
    _worker()
