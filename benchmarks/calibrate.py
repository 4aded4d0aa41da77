"""Calibrate the decode/prefill efficiency constants against measured TensorRT-LLM throughput.

    .venv/bin/python benchmarks/calibrate.py            # report with the constants in sizing.constants
    .venv/bin/python benchmarks/calibrate.py --fit      # also fit them (coordinate descent), report both

Data: ``../shared/data/benchmarks/serving_calibration.csv`` (relative to the repo; NVIDIA
TensorRT-LLM v1.0 perf-overview, ``trtllm-bench`` max-throughput, H100 SXM / H200 SXM, FP8 ModelOpt
checkpoints with FP8 KV cache). Metric compared: ``output_tok_s_total`` vs our ``decode_tok_s`` at the
best batch (no ITL SLO), for the row's input/output lengths, via the same ``sizing.grid`` code the
pipeline publishes.

Specs: with ``sizing.architecture`` importable, ``describe()`` on the configs in
``../shared/data/hf_configs``; otherwise hand-built ModelSpecs for the dense Llama rows only (params by
the sizing_anchors 2.1 formula, FP8 weights with embeddings / LM head kept in BF16 as ModelOpt's
``exclude_modules: [lm_head]`` says). Rows whose model has no config (Llama 4 Scout) are skipped.

GPUs (datasheet, dense tensor peaks; memory in 1e9 bytes as the gpus frame convention):
- H100 SXM 80GB: 3,350 GB/s, 989 BF16 / 1,979 FP8 TFLOPS, NVLink4 900 GB/s bidir = 450 GB/s/dir
  (NVIDIA H100 datasheet)
- H200 SXM 141GB: 4,800 GB/s, same compute as H100 (NVIDIA H200 datasheet)
- B200 180GB: 8,000 GB/s, 2,250 BF16 / 4,500 FP8 / 9,000 FP4 TFLOPS, NVLink5 1,800 GB/s bidir
  (NVIDIA DGX B200 / HGX B200 datasheet)
- GB200 (per GPU) 186 GB, 8,000 GB/s, 2,500 BF16 / 5,000 FP8 / 10,000 FP4 (GB200 NVL72 datasheet)
This is a benchmark, not a test: it prints errors, it does not assert.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402

from sizing.constants import DECODE, PREFILL, DecodeEfficiency, PrefillEfficiency  # noqa: E402
from sizing.grid import evaluate_configs, fit_matrix  # noqa: E402
from sizing.kv import kv_bytes_per_token  # noqa: E402
from sizing.model_spec import KVGroup, ModelSpec, specs_to_frames  # noqa: E402

DATA = REPO.parent / "shared" / "data"
CSV = DATA / "benchmarks" / "serving_calibration.csv"
CONFIGS = DATA / "hf_configs"

MODEL_DIRS = {
    "Llama 3.1 8B": "meta-llama__Meta-Llama-3.1-8B",
    "Llama 3.3 70B": "meta-llama__Llama-3.3-70B-Instruct",
    "Llama 3.1 405B": "meta-llama__Meta-Llama-3.1-405B",
    "Qwen3-235B-A22B": "Qwen__Qwen3-235B-A22B",
    "Llama 4 Maverick": "meta-llama__Llama-4-Maverick-17B-128E-Instruct",
    "Llama 4 Scout": None,  # no config in shared/data
}

GPUS = pl.DataFrame(
    [
        dict(gpu_id="H100", vendor="nvidia", name="H100 SXM 80GB", memory_gb=80.0, memory_bandwidth_gbps=3350.0,
             bf16_tflops=989.0, fp8_tflops=1979.0, int8_tops=1979.0, fp4_tflops=None, interconnect_gbps=450.0,
             tdp_w=700.0, hourly_usd=None),
        dict(gpu_id="H200", vendor="nvidia", name="H200 SXM 141GB", memory_gb=141.0, memory_bandwidth_gbps=4800.0,
             bf16_tflops=989.0, fp8_tflops=1979.0, int8_tops=1979.0, fp4_tflops=None, interconnect_gbps=450.0,
             tdp_w=700.0, hourly_usd=None),
        dict(gpu_id="B200", vendor="nvidia", name="B200 180GB", memory_gb=180.0, memory_bandwidth_gbps=8000.0,
             bf16_tflops=2250.0, fp8_tflops=4500.0, int8_tops=4500.0, fp4_tflops=9000.0, interconnect_gbps=900.0,
             tdp_w=1000.0, hourly_usd=None),
        dict(gpu_id="GB200", vendor="nvidia", name="GB200 186GB", memory_gb=186.0, memory_bandwidth_gbps=8000.0,
             bf16_tflops=2500.0, fp8_tflops=5000.0, int8_tops=5000.0, fp4_tflops=10000.0, interconnect_gbps=900.0,
             tdp_w=1200.0, hourly_usd=None),
    ]
)

PRECISION = {"FP8": "fp8", "FP4": "fp4", "BF16": "bf16", "FP16": "bf16"}
BATCHES = tuple(2**i for i in range(14))  # up to 8192: trtllm-bench CUDA-graph batch sizes


def _hand_llama(model_id: str, cfg: dict) -> ModelSpec:
    """Dense Llama spec from config (sizing_anchors 2.1): used until sizing.architecture lands."""
    L, h, nq = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
    nkv, I, V = cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["vocab_size"]
    d = cfg.get("head_dim") or h // nq
    tied = cfg.get("tie_word_embeddings", False)
    per_layer = h * nq * d + 2 * h * nkv * d + nq * d * h + 3 * h * I + 2 * h
    emb = V * h * (1 if tied else 2)
    params = L * per_layer + emb + h
    unq = emb + (2 * L + 1) * h
    q = params - unq
    weights = {"bf16": 2 * params, "fp8": q + 2 * unq, "int8": q + 2 * unq,
               "int4": int(q * 4.25 / 8) + 2 * unq, "fp4": int(q * 4.5 / 8) + 2 * unq}
    groups = (KVGroup("full", L, nkv, 2 * d),)
    return ModelSpec(
        model_id=model_id, supported=True, architecture=cfg["architectures"][0], model_type=cfg.get("model_type"),
        params_total=params, params_active=params, params_embedding=emb, params_unquantized=unq, num_layers=L,
        hidden_size=h, num_attention_heads=nq, num_kv_heads=nkv, head_dim=d, vocab_size=V,
        max_context=cfg.get("max_position_embeddings", 0), attention_kind="gqa",
        kv_bytes_per_token_bf16=kv_bytes_per_token(groups), kv_groups=groups, checkpoint_precision="bf16",
        weights_bytes=weights, weights_bytes_checkpoint=weights["bf16"],
    )


def build_specs() -> tuple[dict[str, ModelSpec], str]:
    try:
        from sizing.architecture import describe  # type: ignore[import-not-found]
    except ImportError:
        describe = None
    specs: dict[str, ModelSpec] = {}
    for name, dirname in MODEL_DIRS.items():
        if dirname is None:
            continue
        cfg = json.loads((CONFIGS / dirname / "config.json").read_text())
        model_id = dirname.replace("__", "/")
        if describe is not None:
            spec = describe(cfg, model_id=model_id)
        elif cfg.get("model_type") == "llama" and "num_local_experts" not in cfg:
            spec = _hand_llama(model_id, cfg)
        else:
            continue
        if spec.supported:
            specs[name] = spec
    return specs, ("sizing.architecture.describe" if describe else "hand-built dense Llama specs")


def load_rows(specs: dict[str, ModelSpec]) -> tuple[pl.DataFrame, list[str]]:
    rows, skipped = [], []
    with CSV.open() as f:
        for r in csv.DictReader(f):
            spec = specs.get(r["model"])
            if spec is None:
                skipped.append(f"{r['id']} {r['model']}: no spec")
                continue
            rows.append(
                dict(id=r["id"], model=r["model"], model_id=spec.model_id, gpu_id=r["gpu"], gpu_count=int(r["gpu_count"]),
                     parallelism=r["parallelism"], precision=PRECISION[r["precision"].upper()],
                     input_len=int(r["input_len"]), output_len=int(r["output_len"]),
                     measured=float(r["output_tok_s_total"]))
            )
    return pl.DataFrame(rows), skipped


def estimate_rows(rows: pl.DataFrame, specs: dict[str, ModelSpec], decode: DecodeEfficiency, prefill: PrefillEfficiency) -> pl.DataFrame:
    models, groups = specs_to_frames(list({s.model_id: s for s in specs.values()}.values()))
    out = []
    for (inp, outp), part in rows.group_by(["input_len", "output_len"], maintain_order=True):
        ctx = 1 << max(12, math.ceil(math.log2(inp + outp)))
        fm = fit_matrix(
            models.filter(pl.col("model_id").is_in(part["model_id"].unique().to_list())), groups, GPUS,
            precisions=tuple(part["precision"].unique()), gpu_counts=tuple(sorted(part["gpu_count"].unique())),
            contexts=(ctx,), kv_dtype="fp8",
        )
        fm = fm.join(part.select("model_id", "gpu_id", "gpu_count", "precision").unique(), on=["model_id", "gpu_id", "gpu_count", "precision"], how="semi")
        ev = evaluate_configs(
            fm, models, groups, GPUS, None, input_len=inp, output_len=outp, itl_slo_ms=None,
            batch_sizes=BATCHES, max_num_seqs=BATCHES[-1], decode=decode, prefill=prefill,
        ).collect()
        out.append(
            part.join(ev.select("model_id", "gpu_id", "gpu_count", "precision", "decode_tok_s", "batch_size", "itl_ms", "ttft_ms"),
                      on=["model_id", "gpu_id", "gpu_count", "precision"], how="left")
        )
    res = pl.concat(out).with_columns(rel_err=(pl.col("decode_tok_s") - pl.col("measured")) / pl.col("measured"))
    return res.sort("id")


def summary(res: pl.DataFrame) -> dict:
    errs = res["rel_err"].drop_nulls().abs().to_list()
    logs = [abs(math.log(e)) for e in (res["decode_tok_s"] / res["measured"]).drop_nulls().to_list() if e > 0]
    missing = res["decode_tok_s"].null_count()
    return dict(rows=len(errs), no_estimate=missing, median_abs_rel_err=statistics.median(errs) if errs else None,
                worst_abs_rel_err=max(errs) if errs else None, mean_abs_log_err=statistics.fmean(logs) if logs else math.inf)


SEARCH = {
    "mbu": [0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9],
    "mfu_decode": [0.3, 0.4, 0.5, 0.6, 0.7],
    "step_overhead_s": [0.0, 250e-6, 500e-6, 1e-3, 2e-3, 3e-3, 4e-3],
    "layer_overhead_s": [0.0, 5e-6, 10e-6, 20e-6, 30e-6, 40e-6, 60e-6],
    "seq_overhead_s": [0.0, 2e-6, 5e-6, 10e-6, 20e-6],
    "allreduce_latency_s": [5e-6, 10e-6, 20e-6, 40e-6],
    "moe_mfu_scale": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0],
    "mfu_prefill": [0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8],
    "prefill_moe_mfu_scale": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0],
}
PREFILL_KEYS = {"mfu_prefill": "mfu_prefill", "prefill_moe_mfu_scale": "moe_mfu_scale"}


def fit(rows: pl.DataFrame, specs: dict[str, ModelSpec]) -> tuple[DecodeEfficiency, PrefillEfficiency, dict]:
    decode, prefill = DECODE, PREFILL
    best = summary(estimate_rows(rows, specs, decode, prefill))
    for _ in range(3):
        improved = False
        for key, values in SEARCH.items():
            for v in values:
                d2 = dataclasses.replace(decode, **{key: v}) if key not in PREFILL_KEYS else decode
                p2 = dataclasses.replace(prefill, **{PREFILL_KEYS[key]: v}) if key in PREFILL_KEYS else prefill
                s = summary(estimate_rows(rows, specs, d2, p2))
                if s["mean_abs_log_err"] < best["mean_abs_log_err"] - 1e-6:
                    best, decode, prefill, improved = s, d2, p2, True
        if not improved:
            break
    return decode, prefill, best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit", action="store_true", help="fit the efficiency constants by coordinate descent")
    args = ap.parse_args()
    specs, how = build_specs()
    rows, skipped = load_rows(specs)
    print(f"specs: {how}; rows with a spec: {rows.height}; skipped: {len(skipped)}")
    decode, prefill = DECODE, PREFILL
    if args.fit:
        decode, prefill, _ = fit(rows, specs)
        print("fitted decode:", {k: getattr(decode, k) for k in SEARCH if k not in PREFILL_KEYS})
        print("fitted prefill:", {v: getattr(prefill, v) for v in PREFILL_KEYS.values()})
    res = estimate_rows(rows, specs, decode, prefill)
    with pl.Config(tbl_rows=200, tbl_cols=20, tbl_width_chars=200, float_precision=1):
        print(res.select("id", "model", "gpu_id", "gpu_count", "input_len", "output_len", "measured", "decode_tok_s",
                         "batch_size", "itl_ms", (pl.col("rel_err") * 100).round(1).alias("err_%")))
    s = summary(res)
    print(f"rows={s['rows']} no_estimate={s['no_estimate']} median |rel err| = {100 * s['median_abs_rel_err']:.1f}% "
          f"worst = {100 * s['worst_abs_rel_err']:.1f}%  mean |log ratio| = {s['mean_abs_log_err']:.3f}")
    by_model = res.group_by("model").agg(
        (pl.col("rel_err").abs().median() * 100).round(1).alias("median_abs_err_%"),
        (pl.col("rel_err").abs().max() * 100).round(1).alias("worst_abs_err_%"),
        pl.len().alias("n"),
    ).sort("model")
    print(by_model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
