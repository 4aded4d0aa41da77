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
from pipelines.site.charts import Chart
from pipelines.site.model_view import model_context, model_page_name
from pipelines.site.pages import environment, render_gpu, render_index, render_model

#: what a page may never show (word-bounded, so isNaN in a script or "information" is fine)
FORBIDDEN = re.compile(r"\b(?:NaN|nan|inf|None|null|undefined)\b|\$0\.00(?!\d)|\$-")
#: the words of FORBIDDEN without their bounds: a literal alternation scans a page ~5x faster, and
#: FORBIDDEN then only looks at each hit with one character either side ("information" is no hit)
_FORBIDDEN_CANDIDATE = re.compile(r"NaN|nan|inf|None|null|undefined|\$0\.00|\$-")
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
    charts_drawn: int = 0
    charts_reused: int = 0


def check_page(name: str, page: str) -> None:
    """Refuse a page that shows a placeholder or loads an external resource."""
    for candidate in _FORBIDDEN_CANDIDATE.finditer(page):
        start = max(candidate.start() - 1, 0)
        if match := FORBIDDEN.search(page[start : candidate.end() + 1]):
            _refuse(name, page, "a placeholder value", match.group(0), start + match.start(), start + match.end())
    if match := EXTERNAL_LOAD.search(page):
        _refuse(name, page, "an external resource load", match.group(0), match.start(), match.end())


def _refuse(name: str, page: str, what: str, found: str, start: int, end: int) -> None:
    raise SiteError(f"{name} would contain {what} {found!r}: ...{page[max(start - 80, 0):end + 80]}...")


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


def _chart_jobs(contexts: dict[str, dict]) -> list[tuple[str, str, Chart]]:
    return [(model_id, key, chart) for model_id, c in contexts.items() for key, chart in c["chart_specs"].items()]


def prerender_charts(batch_db: Path, chart_cache: Path) -> int:
    """Start drawing, in the background, the charts the site of ``batch_db`` (a frozen batch: the
    tables a publication copies) will show, into ``chart_cache`` (``svg.warm``). Reads the file here
    and now, before the batch's checks open it for writing. Returns how many charts were handed on."""
    pub = data.load(Path(batch_db))
    contexts = {model_id: model_context(pub, model_id) for model_id in pub.models}
    return svg.warm([(chart.spec, chart.label) for _m, _k, chart in _chart_jobs(contexts)], chart_cache)


def build_site(published_db: Path, out_dir: Path, *, charts: bool = True, chart_cache: Path | None = None) -> SiteReport:
    """Render the site of ``published_db`` into ``out_dir``; pages of models or GPUs no longer
    published are removed. ``charts=False`` leaves the charts out (their tables stay);
    ``chart_cache`` keeps rendered charts for the next build (``svg.Rendering``)."""
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
    jobs = _chart_jobs(contexts)
    # the chart workers run while this process writes the GPU pages and the index
    rendering = svg.Rendering([(chart.spec, chart.label) for _m, _k, chart in jobs], cache_dir=chart_cache)

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
                      seconds=time.perf_counter() - started,
                      charts_drawn=len(jobs) - rendering.reused, charts_reused=rendering.reused)
