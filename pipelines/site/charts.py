"""Charts drawn when the site is built: Altair (Vega-Lite) specs, rendered offline to inline SVG by
vl-convert (``pipelines.site.svg``). No hand-written SVG. Each function returns a ``Chart``: the
Vega-Lite spec and its accessible name; every chart is shown beside a table with its numbers.

Speed (measured): Altair builds each kind of spec once (``_template``), then only the data
changes per page (to_dict costs ~10-30 ms a chart). vl-convert's cost is mostly text measurement,
per character of band and legend labels: ``labelLimit=0`` (no truncation by measuring) halves a
bar chart's time, and the charts carry no title inside the SVG (the page's heading and caption
name them).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import cache

import altair as alt

WIDTH = 560
#: one colour per part of model_view's VRAM breakdown (weights, KV cache, activations, CUDA context +
#: NCCL, CUDA graphs, outside the budget); Vega repeats a range that is too short
VRAM_COLORS = ["#1f5f99", "#2a9d8f", "#e9a23b", "#8e6bb8", "#c2577a", "#9aa5b1"]
FRONTIER_DOMAIN = ["on the frontier", "dominated"]


@dataclass(frozen=True)
class Chart:
    spec: dict
    label: str


def _empty() -> alt.Data:
    return alt.Data(values=[])


@cache
def _template(kind: str) -> dict:
    if kind == "throughput":
        chart = (
            alt.Chart(_empty())
            .mark_bar(color="#1f5f99")
            .encode(
                x=alt.X("tok_s:Q", title="tok/s within the ITL SLO", axis=alt.Axis(tickCount=4, format="~s")),
                y=alt.Y("config:N", sort="-x", title=None, axis=alt.Axis(labelLimit=0)),
            )
            .properties(width=WIDTH - 260, height=alt.Step(16))
        )
    elif kind == "vram":
        chart = (
            alt.Chart(_empty())
            .mark_bar()
            .encode(
                x=alt.X("gb:Q", stack="zero", title="GB per GPU", axis=alt.Axis(tickCount=4)),
                color=alt.Color("part:N", sort=alt.SortField("order"), title=None, scale=alt.Scale(range=VRAM_COLORS),
                                legend=alt.Legend(labelLimit=0, orient="bottom", columns=1)),
                order=alt.Order("order:Q"),
            )
            .properties(width=WIDTH - 120, height=36)
        )
    elif kind == "frontier":
        base = alt.Chart(_empty())
        points = base.mark_circle(size=45, opacity=0.75).encode(
            x=alt.X("usd_month:Q", title="$ per month", scale=alt.Scale(type="log", nice=False), axis=alt.Axis(format="$~s")),
            y=alt.Y("tok_s:Q", title="max tok/s", scale=alt.Scale(type="log", nice=False), axis=alt.Axis(format="~s")),
            color=alt.Color("frontier:N", title=None, scale=alt.Scale(domain=FRONTIER_DOMAIN, range=["#b5485d", "#9aa5b1"]),
                            legend=alt.Legend(labelLimit=0, orient="bottom")),
        )
        line = (
            base.transform_filter(alt.datum.frontier == FRONTIER_DOMAIN[0])
            .mark_line(color="#b5485d")
            .encode(x="usd_month:Q", y="tok_s:Q", order="usd_month:Q")
        )
        chart = (points + line).properties(width=WIDTH - 140, height=240)
    else:
        raise ValueError(kind)
    return chart.to_dict(validate=False)


def _with_values(kind: str, rows: list[dict], label: str) -> Chart:
    spec = copy.deepcopy(_template(kind))
    spec["data"] = {"values": rows}
    return Chart(spec=spec, label=label)


def throughput_by_gpu(rows: list[dict], label: str) -> Chart:
    """Horizontal bars: SLO-bound decode tok/s of the best configuration per GPU.
    ``rows``: config (count x GPU precision), tok_s."""
    return _with_values("throughput", rows, label)


def vram_breakdown(rows: list[dict], label: str) -> Chart:
    """One stacked bar: GB per GPU by part (weights, KV pool, overheads, outside the engine's
    budget). ``rows``: part, gb, order; the legend shows ``legend`` where a row has one (the table
    beside the chart names each part in full)."""
    return _with_values("vram", [{"part": r.get("legend", r["part"]), "gb": r["gb"], "order": r["order"]} for r in rows], label)


def cost_frontier(rows: list[dict], label: str) -> Chart:
    """Every priced configuration, $/month against max decode tok/s (log scales), the frontier
    (no other configuration both cheaper and faster) joined by a line. ``rows``: usd_month, tok_s,
    frontier ('on the frontier' | 'dominated'). The axes end on ticks of ``log_ticks``: a log axis
    left to Vega draws and measures a label for every candidate tick before dropping overlaps."""
    chart = _with_values("frontier", rows, label)
    encoding = chart.spec["layer"][0]["encoding"]
    for channel, field in (("x", "usd_month"), ("y", "tok_s")):
        values = [r[field] for r in rows]
        ticks = log_ticks(min(values), max(values))
        encoding[channel]["axis"]["values"] = ticks
        encoding[channel]["scale"]["domain"] = [ticks[0], ticks[-1]]
    return chart


def log_ticks(low: float, high: float) -> list[float]:
    """Ticks of a log axis over [low, high] (both > 0): 1, 2 and 5 times each power of ten (only the
    powers of ten past three decades), from the last tick at or below ``low`` to the first at or
    above ``high``, so the axis is labelled at both ends (two ticks at least)."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    multiples = (1,) if last - first > 3 else (1, 2, 5)
    candidates = [m * 10.0**k for k in range(first - 1, last + 2) for m in multiples]
    start = max(i for i, t in enumerate(candidates) if t <= low * (1 + 1e-9))
    end = min(i for i, t in enumerate(candidates) if t >= high * (1 - 1e-9))
    return candidates[start : max(end, start + 1) + 1]


def frontier(rows: list[dict]) -> list[dict]:
    """The rows no other row beats on both cost (lower) and throughput (higher), cheapest first."""
    best: list[dict] = []
    top = 0.0
    for row in sorted(rows, key=lambda r: (r["usd_month"], -r["tok_s"])):
        if row["tok_s"] > top:
            best.append(row)
            top = row["tok_s"]
    return best
