"""What one model page shows, section by section, computed from the published rows (no formatting:
the templates format every number through ``pipelines.site.format``). A section with no row says
so in the template; nothing here invents a value for it."""

from __future__ import annotations

from pipelines.site import charts
from pipelines.site.data import FIT_CLASSES, PRECISIONS, Publication
from pipelines.site.format import is_value

#: fit_matrix's overhead split (sizing.memory): column -> (what the table says, the chart's legend)
OVERHEAD_PARTS = {
    "activation_gb": ("activation peak", "activations"),
    "non_torch_gb": ("CUDA context and NCCL communication buffers", "CUDA context + NCCL"),
    "cuda_graph_gb": ("CUDA graphs", "CUDA graphs"),
}
CHART_GPUS = 12  # bars in the throughput chart (the table lists every GPU)


def model_page_name(model_id: str) -> str:
    """File name of a model's page: ``meta-llama/Llama-3.1-8B`` -> ``meta-llama--Llama-3.1-8B.html``."""
    return model_id.replace("/", "--") + ".html"


def display_name(model_id: str) -> str:
    return model_id.split("/", 1)[-1]


def comparable(price: dict) -> bool:
    """A price comparisons may use: canonical, not excluded, both rates given (README 'Prices we compare')."""
    return (
        price.get("excluded_reason") is None
        and bool(price.get("is_canonical"))
        and is_value(price.get("output_usd_per_mtok"))
        and is_value(price.get("input_usd_per_mtok"))
    )


def cheapest_api(prices: list[dict]) -> dict | None:
    rows = [p for p in prices if comparable(p)]
    return min(rows, key=lambda p: (p["output_usd_per_mtok"], p["input_usd_per_mtok"], p["provider"])) if rows else None


def gpu_label(pub: Publication, gpu_id: str) -> str:
    gpu = pub.gpus.get(gpu_id)
    return gpu["name"] if gpu else gpu_id


#: how a generation key of sizing.speed.GPU_GENERATIONS reads, newest first within a vendor
GENERATION_NAMES = {
    "blackwell": "NVIDIA Blackwell (datacenter)", "blackwell_client": "NVIDIA Blackwell (RTX, workstation)",
    "hopper": "NVIDIA Hopper", "ada": "NVIDIA Ada Lovelace", "ampere": "NVIDIA Ampere", "turing": "NVIDIA Turing",
    "cdna4": "AMD CDNA 4", "cdna3": "AMD CDNA 3", "cdna2": "AMD CDNA 2", "gaudi": "Intel Gaudi",
}


def gpu_groups(pub: Publication) -> list[tuple[str, list[dict]]]:
    """GPUs grouped by generation (model_gpu_speed.gpu_generation, the speed classes' rule), in the
    order above; a GPU the publication gives no generation for falls back to its vendor and segment."""
    groups: dict[str, list[dict]] = {}
    for gpu in pub.gpus.values():
        generation = pub.generations.get(gpu["gpu_id"])  # 'other' has no entry in GENERATION_NAMES
        name = GENERATION_NAMES.get(generation) if generation else None
        groups.setdefault(name or f"{gpu['vendor']} {gpu['segment']} (no published generation)", []).append(gpu)
    order = {name: i for i, name in enumerate(GENERATION_NAMES.values())}
    return sorted(groups.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))


def _best_per_gpu(rows: list[dict]) -> list[dict]:
    """Per GPU, its configuration with the highest SLO-bound throughput (rows that cannot meet the
    SLO left out), fastest GPU first."""
    best: dict[str, dict] = {}
    for row in rows:
        if not is_value(row.get("decode_tok_s_slo")):
            continue
        held = best.get(row["gpu_id"])
        if held is None or row["decode_tok_s_slo"] > held["decode_tok_s_slo"]:
            best[row["gpu_id"]] = row
    return sorted(best.values(), key=lambda r: -r["decode_tok_s_slo"])


def _compat(pub: Publication, model_id: str, rec_context: int | None) -> dict:
    by_ctx = pub.compat.get(model_id, {})
    contexts = [c for c in pub.contexts if c in by_ctx] or list(pub.contexts)
    default = rec_context if rec_context in contexts else (contexts[0] if contexts else None)
    tables = []
    for ctx in contexts:
        cells = by_ctx.get(ctx, {})
        groups = []
        for name, gpus in gpu_groups(pub):
            rows = [{"gpu": g, "cells": [cells.get((g["gpu_id"], p)) for p in PRECISIONS]} for g in gpus]
            groups.append({"name": name, "rows": rows})
        fitting = len({g for (g, _p) in cells})
        tables.append({"context": ctx, "groups": groups, "fitting_gpus": fitting, "default": ctx == default})
    return {"tables": tables, "precisions": PRECISIONS, "fit_classes": FIT_CLASSES}


def _memory(pub: Publication, model: dict, top_fit: dict | None) -> dict:
    weights = [
        {"precision": p, "gb": model.get(f"weights_gb_{p}"), "checkpoint": p == model.get("checkpoint_precision")}
        for p in PRECISIONS
    ]
    breakdown = None
    if top_fit:
        gpu = pub.gpus.get(top_fit["gpu_id"], {})
        outside = (gpu.get("memory_gb") or 0) - (top_fit.get("usable_gb") or 0)
        split = all(is_value(top_fit.get(c)) for c in OVERHEAD_PARTS)
        overhead = (
            [{"part": label, "legend": legend, "gb": top_fit[column], "order": 2 + i}
             for i, (column, (label, legend)) in enumerate(OVERHEAD_PARTS.items())]
            if split  # publications before the split carry only the total
            else [{"part": "overhead (activations + CUDA graphs + comm. buffers, total)", "legend": "overhead (total)",
               "gb": top_fit["overhead_gb"], "order": 2}]
        )
        breakdown = {
            "fit": top_fit,
            "gpu": gpu,
            "split": split,
            "parts": [
                {"part": "weights", "gb": top_fit["weights_gb_per_gpu"], "order": 0},
                {"part": "KV-cache pool", "legend": "KV cache", "gb": top_fit["kv_pool_gb"], "order": 1},
                *overhead,
                {"part": "outside the engine's memory budget", "legend": "outside the budget", "gb": outside,
                 "order": 2 + len(OVERHEAD_PARTS)},
            ],
        }
        breakdown["parts"] = [p for p in breakdown["parts"] if is_value(p["gb"]) and p["gb"] > 0]
    return {"weights": weights, "breakdown": breakdown}


def _precision_impact(pub: Publication, model: dict, speed: list[dict], gpu_id: str | None) -> list[dict]:
    """Per precision: total weights (models) and, on the rank-1 GPU, the fewest GPUs and speed
    (model_gpu_speed)."""
    on_gpu = {r["precision"]: r for r in speed if r["gpu_id"] == gpu_id}
    return [{"precision": p, "weights_gb": model.get(f"weights_gb_{p}"), "speed": on_gpu.get(p)} for p in PRECISIONS]


def _deployment(recs: list[dict], speed: list[dict], api: dict | None) -> dict:
    single = next((r for r in recs if r["gpu_count"] == 1), None)
    single_speed = None
    if single is None:
        ones = [r for r in speed if r["gpu_count"] == 1 and is_value(r.get("cost_per_mtok_usd"))]
        single_speed = min(ones, key=lambda r: r["cost_per_mtok_usd"]) if ones else None
    fewest = min(speed, key=lambda r: (r["gpu_count"], r["weights_gb_per_gpu"] or 0)) if speed else None
    several = next((r for r in recs if r["gpu_count"] > 1), None)
    return {"api": api, "single": single, "single_speed": single_speed, "fewest": fewest, "several": several}


def _speed_for(speed: list[dict], rec: dict) -> dict | None:
    for row in speed:
        if row["gpu_id"] == rec["gpu_id"] and row["precision"] == rec["precision"] and row["gpu_count"] == rec["gpu_count"]:
            return row
    return None


def model_context(pub: Publication, model_id: str, *, draw_charts: bool = True) -> dict:
    model = pub.models[model_id]
    meta = pub.metadata.get(model_id)
    prices = pub.prices.get(model_id, [])
    recs = pub.recommendations.get(model_id, [])
    speed = pub.speed.get(model_id, [])
    top = recs[0] if recs else None
    top_fit = pub.top_fit.get(model_id)
    api = cheapest_api(prices)
    name = display_name(model_id)

    best_gpu = _best_per_gpu(speed)
    throughput_rows = [
        {"config": f"{r['gpu_count']} x {gpu_label(pub, r['gpu_id'])} {r['precision']}", "tok_s": r["decode_tok_s_slo"]}
        for r in best_gpu[:CHART_GPUS]
    ]
    priced = [
        {"usd_month": r["cost_per_month_usd"], "tok_s": r["decode_tok_s"],
         "label": f"{r['gpu_count']} x {gpu_label(pub, r['gpu_id'])} {r['precision']}", "row": r}
        for r in speed
        if is_value(r.get("cost_per_month_usd")) and r["cost_per_month_usd"] > 0
        and is_value(r.get("decode_tok_s")) and r["decode_tok_s"] > 0
    ]
    front = charts.frontier(priced)
    on_front = {id(r) for r in front}
    for row in priced:
        row["frontier"] = "on the frontier" if id(row) in on_front else "dominated"

    memory = _memory(pub, model, top_fit)
    # chart specs; build.py renders them to SVG (all pages at once, in parallel) into context["svg"]
    specs: dict[str, charts.Chart] = {}
    if draw_charts:
        if len(throughput_rows) >= 3:  # fewer bars: the table says it as well
            specs["throughput"] = charts.throughput_by_gpu(throughput_rows, f"{name}: decode throughput within the ITL SLO, by GPU")
        if memory["breakdown"] and memory["breakdown"]["parts"]:
            b = memory["breakdown"]
            specs["vram"] = charts.vram_breakdown(
                b["parts"], f"{name}: memory of one GPU, {b['fit']['gpu_count']} x {b['gpu'].get('name', b['fit']['gpu_id'])} {b['fit']['precision']}")
        if len(front) >= 2 and len(priced) >= 5:  # a frontier worth looking at
            specs["frontier"] = charts.cost_frontier(
                [{k: v for k, v in r.items() if k != "row"} for r in priced], f"{name}: $ per month against max tok/s, every priced configuration")

    similar = [
        {**s, "model": pub.models.get(s["similar_model_id"]), "name": display_name(s["similar_model_id"])}
        for s in pub.similar.get(model_id, [])
    ]
    workload = pub.workload.get(model_id, [])
    return {
        "model": model,
        "model_id": model_id,
        "name": name,
        "meta": meta,
        "hub_org": model_id.split("/", 1)[0],
        "publication": pub.publication,
        "has": {t: pub.has(t) for t in ("model_metadata", "similar_models", "model_gpu_speed", "workload_costs", "model_changes")},
        "prices": prices,
        "api": api,
        "excluded_prices": [p for p in prices if p.get("excluded_reason")],
        "recs": [{**r, "speed": _speed_for(speed, r)} for r in recs],
        "top": top,
        "top_fit": top_fit,
        "memory": memory,
        "compat": _compat(pub, model_id, top["context_length"] if top else None),
        "deployment": _deployment(recs, speed, api),
        "workload_api": [w for w in workload if w["option"] == "cheapest_api"],
        "workload_self": [w for w in workload if w["option"] == "best_self_hosted"],
        "workload_volume": next((w["monthly_requests"] for w in workload if is_value(w.get("monthly_requests"))), None),
        "best_gpu": best_gpu,
        "chart_gpus": CHART_GPUS,
        "no_slo_gpus": sorted({gpu_label(pub, r["gpu_id"]) for r in speed} - {gpu_label(pub, r["gpu_id"]) for r in best_gpu}),
        "frontier": front,
        "precision_impact": _precision_impact(pub, model, speed, top["gpu_id"] if top else None),
        "similar": similar,
        "similar_rule": similar[0]["rule"] if similar else None,
        "changes": pub.changes.get(model_id, []),
        "chart_specs": specs,
        "svg": {"throughput": None, "vram": None, "frontier": None},
        "gpu_label": lambda gpu_id: gpu_label(pub, gpu_id),
        "gpus": pub.gpus,
    }
