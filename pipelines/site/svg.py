"""Vega-Lite specs to inline SVG with vl-convert, offline.

vl-convert's cost is text: it measures each label by converting its glyphs to outlines (~80 µs a
character, measured), so a site's few hundred charts take seconds of CPU. Two things keep a
publication's build short:

- **Reuse.** An SVG is a pure function of its spec, its accessible name and the vl-convert version,
  so rendered charts are kept in a cache directory keyed by the SHA-256 of the three, and a
  publication redraws only the charts whose data changed. Entries the build did not use are pruned.
- **Drawing ahead.** A run knows its charts once its batch is frozen: `warm` hands the ones not yet
  cached to a background worker that fills the cache while the batch's checks run on the other
  core, and the site build (`Rendering`) first waits for such a worker of its own process.
- **Workers.** vl-convert holds the GIL (threads measured no faster), so the charts left to draw are
  split over worker processes, one per CPU: each is `python -m pipelines.site.svg`, reading a JSON
  list of [spec, label] on stdin and writing the JSON list of SVGs on stdout. A plain subprocess,
  not multiprocessing: nothing of the caller (its main module, Dagster's threads) is re-imported
  or forked.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path

#: below this many charts a worker's start-up (~0.5 s: Python and vl-convert) costs more than it saves
MIN_CHARTS_PER_WORKER = 24
#: a cache's temporary file older than this was left by a worker that died mid-write
STALE_TMP_S = 600
#: bump when `render` changes what it does to vl-convert's output (invalidates cached SVGs)
RENDER_VERSION = 1


def render(spec: dict, label: str) -> str:
    """One chart as SVG, its root element given role="img" and the chart's accessible name."""
    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(spec)
    start = svg.index("<svg")
    return svg[:start] + f'<svg role="img" aria-label="{html.escape(label, quote=True)}"' + svg[start + 4 :]


@cache
def _renderer() -> str:
    from importlib.metadata import version

    return f"{RENDER_VERSION}/vl-convert-python {version('vl-convert-python')}"


def cache_key(spec: dict, label: str) -> str:
    """SHA-256 of what an SVG depends on: the spec, the label, the renderer and its version."""
    payload = json.dumps([_renderer(), spec, label], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class Rendering:
    """Charts being rendered by worker processes (or, when too few for a worker, here on `result`).

    With ``cache_dir``, charts drawn by an earlier build are read from it instead, and `result`
    stores the new ones and removes those this build did not use."""

    def __init__(self, items: Sequence[tuple[dict, str]], workers: int | None = None, cache_dir: Path | None = None):
        self._items = list(items)
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._keys: list[str] = []
        self._svgs: list[str | None] = [None] * len(self._items)
        if self._cache_dir is not None:
            wait_for_warming(self._cache_dir)
            self._keys = [cache_key(spec, label) for spec, label in self._items]
            for i, key in enumerate(self._keys):
                path = self._cache_dir / f"{key}.svg"
                if path.is_file():
                    self._svgs[i] = path.read_text(encoding="utf-8")
        self._todo = [i for i, svg in enumerate(self._svgs) if svg is None]
        workers = workers or len(os.sched_getaffinity(0))
        self._workers = max(1, min(workers, len(self._todo) // MIN_CHARTS_PER_WORKER))
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
            process.stdin.write(json.dumps([self._items[i] for i in self._todo[offset :: self._workers]]))
            process.stdin.close()
            process.stdin = None  # communicate() then only reads
            self._processes.append(process)

    @property
    def reused(self) -> int:
        """How many charts came from the cache."""
        return len(self._items) - len(self._todo)

    def result(self) -> list[str]:
        """The SVGs, in the order of the items."""
        if self._processes:
            for offset, process in enumerate(self._processes):
                out, err = process.communicate()
                if process.returncode != 0:
                    raise RuntimeError(f"chart worker failed (exit {process.returncode}): {err[-2000:]}")
                for i, svg in zip(self._todo[offset :: self._workers], json.loads(out), strict=True):
                    self._svgs[i] = svg
        else:
            for i in self._todo:
                self._svgs[i] = render(*self._items[i])
        if self._cache_dir is not None:
            self._store()
        return [svg for svg in self._svgs if svg is not None]

    def _store(self) -> None:
        for i in self._todo:
            _store(self._cache_dir, self._keys[i], self._svgs[i])
        used = {f"{key}.svg" for key in self._keys}
        for entry in self._cache_dir.glob("*.svg"):
            if entry.name not in used:
                entry.unlink(missing_ok=True)
        for entry in self._cache_dir.glob(".*.tmp"):  # left by a worker killed mid-write
            if time.time() - entry.stat().st_mtime > STALE_TMP_S:
                entry.unlink(missing_ok=True)


def _store(cache_dir: Path, key: str, svg: str) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{key}.svg"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(svg, encoding="utf-8")
    tmp.replace(path)


#: background workers started by `warm` in this process, by cache directory
_warming: dict[Path, list[subprocess.Popen]] = {}
#: how long a site build waits for this process's background worker before drawing the rest itself
WARM_WAIT_S = 60.0


def warm(items: Sequence[tuple[dict, str]], cache_dir: Path) -> int:
    """Start drawing the charts of ``items`` not yet in ``cache_dir`` in one background worker
    (one core: the other is the checks'); it stores each SVG as soon as it is drawn. Returns how
    many it was given. Nothing waits for it but a later `Rendering` of this process on the same
    cache: a worker that dies or is slow only leaves that build more to draw."""
    cache_dir = Path(cache_dir).resolve()
    todo = [(spec, label) for spec, label in items if not (cache_dir / f"{cache_key(spec, label)}.svg").is_file()]
    if not todo:
        return 0
    cache_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.site.svg", "--into", str(cache_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    process.stdin.write(json.dumps(todo))
    process.stdin.close()
    _warming.setdefault(cache_dir, []).append(process)
    return len(todo)


def wait_for_warming(cache_dir: Path, timeout: float = WARM_WAIT_S) -> None:
    """Let this process's background workers on ``cache_dir`` finish (up to ``timeout`` in all)."""
    for process in _warming.pop(Path(cache_dir).resolve(), []):
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def render_all(items: Sequence[tuple[dict, str]], workers: int | None = None, cache_dir: Path | None = None) -> list[str]:
    """SVGs of ``items`` (spec, label), in order, rendered by up to ``workers`` processes (default:
    the CPUs this process may use), reusing those in ``cache_dir``."""
    return Rendering(items, workers, cache_dir).result()


def _worker(argv: Sequence[str]) -> None:
    """Render [spec, label] items from stdin: as a JSON list on stdout, or with ``--into DIR``
    each stored in that cache as soon as it is drawn."""
    items = json.load(sys.stdin)
    if argv[:1] == ["--into"]:
        cache_dir = Path(argv[1])
        for spec, label in items:
            _store(cache_dir, cache_key(spec, label), render(spec, label))
        return
    json.dump([render(spec, label) for spec, label in items], sys.stdout)


if __name__ == "__main__":
    _worker(sys.argv[1:])
