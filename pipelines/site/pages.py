"""Jinja2 rendering of the index, model and GPU pages (autoescape on, undefined names fail, and a
template can only print formatted values: ``format.check_output`` refuses None and raw floats)."""

from __future__ import annotations

from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from pipelines.site import format as fmt
from pipelines.site.data import Publication
from pipelines.site.model_view import cheapest_api, display_name, gpu_groups, gpu_label, model_page_name

TEMPLATES = Path(__file__).parent / "templates"


def _show(value: object, kind: str, missing: str) -> str:
    """Format ``value`` with the formatter ``kind``, or say ``missing`` when it has no value."""
    return fmt.or_missing(fmt.FILTERS[kind], value, missing)


def fit_cell(cell: dict | None) -> Markup:
    """One cell of the compatibility matrix: fewest GPUs and fit class, or "no fit". A function, not
    a macro: a model page has thousands of these cells, and a Jinja macro call costs ~10x more."""
    if not cell:
        return Markup('<span class="fit-none">no fit</span>')
    fit_class = escape(cell["fit_class"])
    html = (f'<span class="fit-{fit_class}">{fmt.integer(cell["gpu_count"])}&times; &middot; '
            f'{escape(cell["fit_class"].replace("_", " "))}</span>')
    if cell.get("kv_dtype") == "fp8":
        html += ' <span class="badge" title="fits at this count only with an FP8 KV cache">FP8 KV</span>'
    return Markup(html)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        finalize=fmt.check_output,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt.FILTERS)
    env.globals.update(show=_show, page_of=model_page_name, fit_cell=fit_cell)
    return env


def _sort_key(value: object) -> str:
    return f"{float(value):.6g}" if fmt.is_value(value) else ""


def index_context(pub: Publication) -> dict:
    models = []
    for model_id, model in pub.models.items():
        recs = pub.recommendations.get(model_id, [])
        top = dict(recs[0], gpu_name=gpu_label(pub, recs[0]["gpu_id"])) if recs else None
        api = cheapest_api(pub.prices.get(model_id, []))
        meta = pub.metadata.get(model_id)
        models.append({
            **model,
            "name": display_name(model_id),
            "page": model_page_name(model_id),
            "vendor": meta["vendor"] if meta and meta.get("vendor") else f"not published ({model_id.split('/', 1)[0]})",
            "api": api,
            "top": top,
            "sort": {
                "params_total": _sort_key(model["params_total"]),
                "params_active": _sort_key(model["params_active"]),
                "context": _sort_key(model["max_context"]),
                "api": _sort_key(api["output_usd_per_mtok"] if api else None),
                "self": _sort_key(top["cost_per_mtok_usd"] if top else None),
            },
        })
    groups = [
        (name, [dict(g, runs=len(pub.models_by_gpu.get(g["gpu_id"], ()))) for g in gpus]) for name, gpus in gpu_groups(pub)
    ]
    r0 = next((r[0] for r in pub.recommendations.values() if r), None)
    note = (
        f"{r0['input_len']:,} input + {r0['output_len']:,} output tokens, ITL SLO {fmt.ms(r0['itl_slo_ms'])}"
        if r0 else "no recommendation is published"
    )
    return {"models": models, "gpus": pub.gpus, "gpu_groups": groups, "workload_note": note}


def gpu_context(pub: Publication, gpu_id: str) -> dict:
    rows = sorted(
        ({**r, "name": display_name(r["model_id"])} for r in pub.speed_by_gpu.get(gpu_id, [])),
        key=lambda r: (r["name"].lower(), r["precision"]),
    )
    rank1 = [
        {**recs[0], "name": display_name(model_id)}
        for model_id, recs in pub.recommendations.items()
        if recs and recs[0]["gpu_id"] == gpu_id
    ]
    return {
        "gpu": pub.gpus[gpu_id],
        "rows": rows,
        "rank1": rank1,
        "models_fit": len(pub.models_by_gpu.get(gpu_id, ())),
        "total_models": len(pub.models),
        "has_speed": pub.has("model_gpu_speed"),
    }


def render_index(env: jinja2.Environment, pub: Publication) -> str:
    return env.get_template("index.html").render(root="", publication=pub.publication, **index_context(pub))


def render_model(env: jinja2.Environment, context: dict) -> str:
    """``context``: ``model_view.model_context``, its ``svg`` filled with the rendered charts."""
    return env.get_template("model.html").render(root="../", **context)


def render_gpu(env: jinja2.Environment, pub: Publication, gpu_id: str) -> str:
    return env.get_template("gpu.html").render(root="../", publication=pub.publication, **gpu_context(pub, gpu_id))
