"""Vega-Lite specs to inline SVG with vl-convert, offline. One process: vl-convert holds the GIL
(threads measured no faster), and worker processes would re-import their caller's main module."""

from __future__ import annotations

import html
from collections.abc import Sequence

import vl_convert as vlc


def render(spec: dict, label: str) -> str:
    """One chart as SVG, its root element given role="img" and the chart's accessible name."""
    svg = vlc.vegalite_to_svg(spec)
    start = svg.index("<svg")
    return svg[:start] + f'<svg role="img" aria-label="{html.escape(label, quote=True)}"' + svg[start + 4 :]


def render_all(items: Sequence[tuple[dict, str]]) -> list[str]:
    """SVGs of ``items`` (spec, label), in order."""
    return [render(spec, label) for spec, label in items]
