"""Build the static site of one publication: ``build_site(published_db, out_dir)``.

Reads only the tables of ``published_db`` (opened read-only) and writes ``index.html``,
``models/<model_id with "/" -> "--">.html`` and ``gpus/<gpu_id>.html`` into ``out_dir``. Every
style, script and chart is inline: the pages load nothing from the network, from file:// too.
Before a page is written its text is checked for placeholder values (NaN, inf, None, null,
undefined, $0.00): a page that would show one stops the build instead.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.site import data, svg
from pipelines.site.model_view import model_context, model_page_name
from pipelines.site.pages import environment, render_gpu, render_index, render_model

#: what a page may never show (word-bounded, so isNaN in a script or "information" is fine)
FORBIDDEN = re.compile(r"\b(?:NaN|nan|inf|None|null|undefined)\b|\$0\.00(?!\d)|\$-")
#: external resource loads (a plain citation link <a href="https://..."> is not one)
EXTERNAL_LOAD = re.compile(
    r"""<(?:script|img|iframe|source|video|audio|embed)\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//"""
    r"""|<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""",
    re.IGNORECASE,
)


class SiteError(ValueError):
    """A page would show a placeholder value or load something from the network."""


@dataclass(frozen=True)
class SiteReport:
    index: Path
    model_pages: int
    gpu_pages: int
    seconds: float


def check_page(name: str, page: str) -> None:
    """Refuse a page that shows a placeholder or loads an external resource."""
    for pattern, what in ((FORBIDDEN, "a placeholder value"), (EXTERNAL_LOAD, "an external resource load")):
        if match := pattern.search(page):
            start = max(match.start() - 80, 0)
            raise SiteError(f"{name} would contain {what} {match.group(0)!r}: ...{page[start:match.end() + 80]}...")


def _write(path: Path, page: str) -> None:
    check_page(str(path), page)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)


def _unreadable(out_dir: Path, reason: str, started: float) -> SiteReport:
    """A publication the pages cannot be built from still gets an index saying why, not a crash."""
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    _write(index, environment().get_template("unreadable.html").render(reason=reason))
    return SiteReport(index=index, model_pages=0, gpu_pages=0, seconds=time.perf_counter() - started)


def build_site(published_db: Path, out_dir: Path, *, charts: bool = True) -> SiteReport:
    """Render the site of ``published_db`` into ``out_dir``; pages of models or GPUs no longer
    published are removed. ``charts=False`` leaves the charts out (their tables stay)."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    try:
        pub = data.load(Path(published_db))
    except data.UnreadablePublication as error:
        return _unreadable(out_dir, str(error), started)
    (out_dir / "models").mkdir(parents=True, exist_ok=True)
    (out_dir / "gpus").mkdir(parents=True, exist_ok=True)
    env = environment()

    contexts = {model_id: model_context(pub, model_id, draw_charts=charts) for model_id in pub.models}
    jobs = [(model_id, key, chart) for model_id, c in contexts.items() for key, chart in c["chart_specs"].items()]
    # the chart workers run while this process writes the GPU pages and the index
    rendering = svg.Rendering([(chart.spec, chart.label) for _m, _k, chart in jobs])

    written: set[Path] = set()
    for gpu_id in pub.gpus:
        path = out_dir / "gpus" / f"{gpu_id}.html"
        _write(path, render_gpu(env, pub, gpu_id))
        written.add(path)
    index = out_dir / "index.html"
    _write(index, render_index(env, pub))

    for (model_id, key, _chart), image in zip(jobs, rendering.result(), strict=True):
        contexts[model_id]["svg"][key] = image
    for model_id, context in contexts.items():
        path = out_dir / "models" / model_page_name(model_id)
        _write(path, render_model(env, context))
        written.add(path)
    for stale in [*(out_dir / "models").glob("*.html"), *(out_dir / "gpus").glob("*.html")]:
        if stale not in written:
            stale.unlink()
    return SiteReport(index=index, model_pages=len(pub.models), gpu_pages=len(pub.gpus),
                      seconds=time.perf_counter() - started)
