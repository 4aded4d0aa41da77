"""One-model estimate for the CLI, computed by the grid code on one-row frames (no second model).

``estimate(spec, gpu, ...)`` builds ``models``/``kv_groups`` frames from the spec, a one-row ``gpus``
frame from ``gpu`` and calls ``sizing.grid.fit_matrix`` (memory fit) and
``sizing.grid.evaluate_configs`` (speed, cost) -- exactly the functions the published grid uses.

Speed keys: ``decode_tok_s`` is the throughput at the best batch whose ITL meets ``itl_slo_ms``
(default ``WORKLOAD.itl_slo_ms``); ``max_throughput_tok_s`` (with ``max_throughput_batch_size`` and
``max_throughput_itl_ms``) is the best batch with no latency SLO, up to the engine's batch cap
(vLLM ``max_num_seqs`` and the KV pool), so ``max_throughput_tok_s >= decode_tok_s``.
``speed_basis`` / ``speed_error_band``: as in the recommendations (``sizing.grid``).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from sizing.constants import COST, WORKLOAD
from sizing.grid import evaluate_configs, fit_matrix
from sizing.kv import kv_bytes_per_token, kv_per_gpu_frame
from sizing.model_spec import PRECISIONS, ModelSpec, specs_to_frames

_FIT_KEYS = (
    "fits",
    "fit_class",
    "tensor_parallel",
    "pipeline_parallel",
    "expert_parallel",
    "tp_valid",
    "layout_reason",
    "max_concurrent_seqs",
    "weights_gb_per_gpu",
    "kv_gb_per_seq",
    "overhead_gb",
    "usable_gb",
    "kv_pool_gb",
    "headroom_gb",
)
_SPEED_KEYS = (
    "batch_size",
    "max_concurrent_seqs_workload",
    "decode_tok_s",
    "max_throughput_tok_s",
    "max_throughput_batch_size",
    "max_throughput_itl_ms",
    "decode_tok_s_batch1",
    "itl_ms",
    "itl_ms_batch1",
    "ttft_ms",
    "meets_itl_slo",
    "itl_slo_ms",
    "cost_per_month_usd",
    "cost_per_mtok_usd",
    "cost_per_mtok_usd_at_utilisation",
    "utilisation",
    "capacity_mtok_per_month",
    "cheapest_api_output_usd_per_mtok",
    "api_usd_per_mtok_at_mix",
    "breakeven_mtok_per_month",
    "workload_exceeds_context",
    "speed_basis",
    "speed_error_band",
)


def default_precision(spec: ModelSpec) -> str:
    return spec.checkpoint_precision if spec.checkpoint_precision in PRECISIONS else "bf16"


def default_context(spec: ModelSpec) -> int:
    cap = WORKLOAD.default_estimate_context
    return min(spec.max_context, cap) if spec.max_context > 0 else cap


def estimate(
    spec: ModelSpec,
    gpu: dict[str, Any] | None = None,
    *,
    gpu_count: int = 1,
    precision: str | None = None,
    kv_dtype: str = "bf16",
    context: int | None = None,
    input_len: int = WORKLOAD.input_len,
    output_len: int = WORKLOAD.output_len,
    prices: pl.DataFrame | None = None,
    itl_slo_ms: float | None = WORKLOAD.itl_slo_ms,
    utilisation: float = COST.default_utilisation,
) -> dict[str, Any]:
    """Estimate for one model (and optionally one GPU type x ``gpu_count``). Keys with no meaning for
    the inputs (e.g. speed without a GPU, cost without a price) are None."""
    out: dict[str, Any] = {
        "model_id": spec.model_id,
        "supported": spec.supported,
        "reason": spec.reason,
        "params_total": spec.params_total,
        "params_active": spec.params_active,
        "weights_bytes": dict(spec.weights_bytes),
        "weights_bytes_checkpoint": spec.weights_bytes_checkpoint,
        "precision": None,
        "kv_dtype": kv_dtype,
        "context": None,
        "gpu_id": None,
        "gpu_count": gpu_count,
        "input_len": input_len,
        "output_len": output_len,
        "kv_bytes_per_token": None,
        "kv_bytes_per_seq": None,
        **{k: None for k in _FIT_KEYS},
        **{k: None for k in _SPEED_KEYS},
    }
    if not spec.supported:
        return out
    precision = precision or default_precision(spec)
    context = context or default_context(spec)
    out.update(precision=precision, context=context)
    if spec.weights_bytes.get(precision, 0) <= 0:
        out["reason"] = f"no weight size for precision {precision!r}"
        return out
    models, groups = specs_to_frames([spec])
    out["kv_bytes_per_token"] = kv_bytes_per_token(spec.kv_groups, tp=gpu_count, kv_dtype=kv_dtype)
    kv = kv_per_gpu_frame(groups, gpu_counts=(gpu_count,), contexts=(context,), kv_dtypes=(kv_dtype,)).collect()
    out["kv_bytes_per_seq"] = int(kv["kv_bytes_per_seq"][0]) if kv.height else None
    if gpu is None:
        return out

    gpu_row = dict(gpu)
    gpu_row.setdefault("gpu_id", gpu_row.get("name", "gpu"))
    gpu_row.setdefault("name", gpu_row["gpu_id"])
    gpus = pl.DataFrame([gpu_row])
    out["gpu_id"] = gpu_row["gpu_id"]
    fm = fit_matrix(
        models, groups, gpus, precisions=(precision,), gpu_counts=(gpu_count,), contexts=(context,), kv_dtype=kv_dtype
    )
    if fm.height == 0:
        out["fits"] = False
        out["fit_class"] = "no_fit"
        out["reason"] = f"context {context} exceeds the model's max_context {spec.max_context}"
        return out
    row = fm.row(0, named=True)
    out.update({k: row[k] for k in _FIT_KEYS})
    if not row["fits"]:
        return out
    price_frame = prices.filter(pl.col("model_id") == spec.model_id) if prices is not None else None
    def evaluate(slo_ms: float | None) -> pl.DataFrame:
        return evaluate_configs(
            fm,
            models,
            groups,
            gpus,
            price_frame,
            input_len=input_len,
            output_len=output_len,
            itl_slo_ms=slo_ms,
            utilisation=utilisation,
        ).collect()

    ev = evaluate(itl_slo_ms)
    if ev.height:
        speed = ev.row(0, named=True)
        out.update({k: speed.get(k) for k in _SPEED_KEYS if k in speed})
        unbounded = evaluate(None).row(0, named=True) if itl_slo_ms is not None else speed
        out.update(
            max_throughput_tok_s=unbounded["decode_tok_s"],
            max_throughput_batch_size=unbounded["batch_size"],
            max_throughput_itl_ms=unbounded["itl_ms"],
        )
    return out
