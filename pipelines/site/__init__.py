"""The FitAtlas static site: one page per published model and GPU and an index, built from the
published tables alone (``build_site``). Names are imported on first use, so the chart worker
processes (``pipelines.site.svg``) start without Jinja, DuckDB or Altair."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.site.build import SiteReport, build_site, prerender_charts
    from pipelines.site.model_view import model_page_name

__all__ = ["SiteReport", "build_site", "model_page_name", "prerender_charts"]


def __getattr__(name: str) -> Any:
    if name in ("SiteReport", "build_site", "prerender_charts"):
        from pipelines.site import build

        return getattr(build, name)
    if name == "model_page_name":
        from pipelines.site.model_view import model_page_name

        return model_page_name
    raise AttributeError(name)
