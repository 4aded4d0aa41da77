"""Estimated vs measured serving throughput: the published ``calibration`` table and its error summary.

Pure functions over a measurement frame (``load_measurements``: the CSVs in
``benchmarks/measurements/``, NVIDIA TensorRT-LLM perf-overview max-throughput runs, see the README
there). For every measurement the estimate is ``decode_tok_s`` of ``sizing.grid.evaluate_configs``
(the code the recommendations use) at the row's input/output lengths, best batch with no ITL SLO up
to the engine's CUDA-graph batch cap (``ENGINE_MAX_BATCH`` = 8192, trtllm-bench), on datasheet GPU
specs (``MEASUREMENT_GPUS``) and model specs from ``sizing.architecture.describe`` on the repo's
bundled configs (``MODEL_CONFIG_DIRS``).

Error is the ratio form ``error_ratio = max(est/meas, meas/est)`` (1.0 = exact). The split is
deterministic: a row is ``held_out`` when the number in its id is a multiple of 3 (``split_expr``),
else ``train``; ``benchmarks/calibrate.py --fit`` fits ``sizing.constants.SPEED_CLASSES`` on
``train`` rows only.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import polars as pl

from sizing.constants import DECODE, PREFILL, DecodeEfficiency, PrefillEfficiency, SpeedClass
from sizing.grid import evaluate_configs, fit_matrix
from sizing.model_spec import ModelSpec, specs_to_frames
from sizing.speed import gpu_generation_expr, speed_class_expr

#: trtllm-bench max-throughput runs pad to CUDA-graph batch sizes up to 8192 (perf-overview docs).
ENGINE_MAX_BATCH = 8192
BATCHES: tuple[int, ...] = tuple(2**i for i in range(14))

#: Measurement model name -> the bundled config directory (``<org>__<repo>``). None: no config
#: bundled, rows skipped (Llama 4 Scout, gpt-oss-20b); Llama 2 70B / Mixtral appear only in MLPerf
#: rows (excluded).
MODEL_CONFIG_DIRS: Mapping[str, str | None] = {
    "Llama 3.1 8B": "meta-llama__Meta-Llama-3.1-8B",
    "Llama 3.1 70B": "meta-llama__Meta-Llama-3.1-70B",
    "Llama 3.3 70B": "meta-llama__Llama-3.3-70B-Instruct",
    "Llama 3.1 405B": "meta-llama__Meta-Llama-3.1-405B",
    "Qwen3-235B-A22B": "Qwen__Qwen3-235B-A22B",
    "Qwen3-30B-A3B": "Qwen__Qwen3-30B-A3B",
    "Llama 4 Maverick": "meta-llama__Llama-4-Maverick-17B-128E-Instruct",
    "DeepSeek-R1-0528": "deepseek-ai__DeepSeek-R1",
    "gpt-oss-120b": "openai__gpt-oss-120b",
    "Llama 4 Scout": None,
    "gpt-oss-20b": None,
}

#: Datasheet specs of the measured GPUs (dense tensor peaks, memory bandwidth in GB/s, scale-up GB/s
#: per direction). H100 SXM / H200 SXM / GH200: NVIDIA H100, H200 and GH200 datasheets (GH200 96 GB
#: HBM3, 4.0 TB/s). B200: DGX/HGX B200 datasheet. GB200: GB200 NVL72 datasheet, per GPU. B300 /
#: GB300: HGX B300 and GB300 NVL72 pages (per GPU = system / 8 and / 72, dense = half the sparse
#: figure: B300 FP4 13.5 PF, FP8 4.5 PF, BF16 2.25 PF; GB300 FP4 15 PF, FP8 5 PF, BF16 2.5 PF;
#: 288 GB HBM3e at 8 TB/s). NVLink4 450 GB/s per direction (Hopper), NVLink5 900 (Blackwell).
MEASUREMENT_GPUS = pl.DataFrame(
    [
        dict(gpu_id="H100", name="H100 SXM 80GB", memory_gb=80.0, memory_bandwidth_gbps=3350.0, bf16_tflops=989.0,
             fp8_tflops=1979.0, int8_tops=1979.0, fp4_tflops=None, interconnect_gbps=450.0, hourly_usd=None),
        dict(gpu_id="H200", name="H200 SXM 141GB", memory_gb=141.0, memory_bandwidth_gbps=4800.0, bf16_tflops=989.0,
             fp8_tflops=1979.0, int8_tops=1979.0, fp4_tflops=None, interconnect_gbps=450.0, hourly_usd=None),
        dict(gpu_id="GH200", name="GH200 96GB HBM3", memory_gb=96.0, memory_bandwidth_gbps=4000.0, bf16_tflops=989.0,
             fp8_tflops=1979.0, int8_tops=1979.0, fp4_tflops=None, interconnect_gbps=450.0, hourly_usd=None),
        dict(gpu_id="B200", name="B200 180GB", memory_gb=180.0, memory_bandwidth_gbps=8000.0, bf16_tflops=2250.0,
             fp8_tflops=4500.0, int8_tops=4500.0, fp4_tflops=9000.0, interconnect_gbps=900.0, hourly_usd=None),
        dict(gpu_id="GB200", name="GB200 186GB", memory_gb=186.0, memory_bandwidth_gbps=8000.0, bf16_tflops=2500.0,
             fp8_tflops=5000.0, int8_tops=5000.0, fp4_tflops=10000.0, interconnect_gbps=900.0, hourly_usd=None),
        dict(gpu_id="B300", name="B300 288GB", memory_gb=288.0, memory_bandwidth_gbps=8000.0, bf16_tflops=2250.0,
             fp8_tflops=4500.0, int8_tops=None, fp4_tflops=13500.0, interconnect_gbps=900.0, hourly_usd=None),
        dict(gpu_id="GB300", name="GB300 288GB", memory_gb=288.0, memory_bandwidth_gbps=8000.0, bf16_tflops=2500.0,
             fp8_tflops=5000.0, int8_tops=None, fp4_tflops=15000.0, interconnect_gbps=900.0, hourly_usd=None),
    ],
    schema_overrides={c: pl.Float64 for c in ("fp4_tflops", "int8_tops", "hourly_usd")},
)

_PRECISION = {"FP8": "fp8", "FP4": "fp4", "BF16": "bf16", "FP16": "bf16", "INT8": "int8", "INT4": "int4"}

CALIBRATION_COLUMNS = [
    "measurement_id",
    "model",
    "model_id",
    "gpu",
    "gpu_generation",
    "gpu_count",
    "parallelism",
    "precision",
    "is_moe",
    "speed_class",
    "input_len",
    "output_len",
    "measured_tok_s",
    "estimate_tok_s",
    "estimate_batch_size",
    "ratio",
    "error_ratio",
    "split",
    "framework_version",
    "confidence",
    "source",
]


def load_measurements(paths: Iterable[str | Path]) -> pl.DataFrame:
    """Measurement rows from the CSVs (serving_calibration.csv column layout), normalised.

    Excluded: MLPerf rows (no precision or parallelism stated, dataset-defined ISL/OSL) and any row
    whose precision is not a known format. ``gpu_count`` is the replica size (``DEPn`` = n GPUs)."""
    frames = [pl.read_csv(p, infer_schema_length=0) for p in paths if Path(p).exists()]
    if not frames:
        raise FileNotFoundError(f"no measurement file among {list(map(str, paths))}")
    raw = pl.concat(frames, how="diagonal_relaxed").unique(subset="id", keep="first", maintain_order=True)
    return (
        raw.filter(
            ~pl.col("framework").fill_null("").str.contains("MLPerf")
            & ~pl.col("source").fill_null("").str.contains("inference_results")
        )
        .with_columns(precision=pl.col("precision").str.to_uppercase().replace_strict(_PRECISION, default=None))
        .filter(pl.col("precision").is_not_null())
        .select(
            pl.col("id").alias("measurement_id"),
            "model",
            pl.col("gpu"),
            pl.col("gpu_count").cast(pl.Int64),
            "parallelism",
            "precision",
            pl.col("input_len").cast(pl.Int64),
            pl.col("output_len").cast(pl.Int64),
            pl.col("output_tok_s_total").cast(pl.Float64).alias("measured_tok_s"),
            "framework_version",
            "confidence",
            "source",
        )
        .sort("measurement_id")
    )


def split_expr(id_col: str = "measurement_id") -> pl.Expr:
    """``held_out`` when the number in the id is a multiple of 3, else ``train`` (deterministic)."""
    number = pl.col(id_col).str.extract(r"(\d+)").cast(pl.Int64)
    return pl.when(number % 3 == 0).then(pl.lit("held_out")).otherwise(pl.lit("train"))


def load_specs(config_dir: str | Path, names: Iterable[str] | None = None) -> dict[str, ModelSpec]:
    """Supported specs of the measured models from ``<config_dir>/<dir>/config.json`` (missing: skipped)."""
    from sizing.architecture import describe

    specs: dict[str, ModelSpec] = {}
    for name, dirname in MODEL_CONFIG_DIRS.items():
        if dirname is None or (names is not None and name not in names):
            continue
        path = Path(config_dir) / dirname / "config.json"
        if not path.exists():
            continue
        spec = describe(json.loads(path.read_text()), model_id=dirname.replace("__", "/", 1))
        if spec.supported:
            specs[name] = spec
    return specs


def estimate_measurements(
    measurements: pl.DataFrame,
    specs: Mapping[str, ModelSpec],
    gpus: pl.DataFrame = MEASUREMENT_GPUS,
    decode: DecodeEfficiency = DECODE,
    prefill: PrefillEfficiency = PREFILL,
) -> pl.DataFrame:
    """``measurements`` with ``model_id``, ``estimate_tok_s`` (null: no spec, no GPU, or the config
    does not fit our vLLM memory budget, e.g. Llama 3.1 70B FP8 on one H100 / GH200) and
    ``estimate_batch_size``. One fit_matrix + evaluate_configs call per input/output pair."""
    names = {name: spec.model_id for name, spec in specs.items()}
    rows = measurements.with_columns(
        model_id=pl.col("model").replace_strict(names, default=None, return_dtype=pl.Utf8),
        gpu_id=pl.col("gpu"),
    )
    models, groups = specs_to_frames(list({s.model_id: s for s in specs.values()}.values()))
    keys = ["model_id", "gpu_id", "gpu_count", "precision"]
    known = rows.filter(pl.col("model_id").is_not_null() & pl.col("gpu_id").is_in(gpus["gpu_id"].to_list()))
    estimates = []
    for (inp, outp), part in known.group_by(["input_len", "output_len"], maintain_order=True):
        ctx = 1 << max(12, math.ceil(math.log2(inp + outp)))
        wanted = part.select(keys).unique()
        fm = fit_matrix(
            models.filter(pl.col("model_id").is_in(wanted["model_id"].unique().to_list())),
            groups,
            gpus.filter(pl.col("gpu_id").is_in(wanted["gpu_id"].unique().to_list())),
            precisions=tuple(wanted["precision"].unique().sort()),
            gpu_counts=tuple(sorted(wanted["gpu_count"].unique())),
            contexts=(ctx,),
            kv_dtype="fp8",
        ).join(wanted, on=keys, how="semi")
        if fm.height == 0:
            continue
        ev = evaluate_configs(
            fm, models, groups, gpus, None, input_len=inp, output_len=outp, itl_slo_ms=None,
            batch_sizes=BATCHES, max_num_seqs=ENGINE_MAX_BATCH, decode=decode, prefill=prefill,
        ).collect()
        estimates.append(
            ev.select(
                *keys,
                pl.lit(inp, pl.Int64).alias("input_len"),
                pl.lit(outp, pl.Int64).alias("output_len"),
                pl.col("decode_tok_s").alias("estimate_tok_s"),
                pl.col("batch_size").cast(pl.Int64).alias("estimate_batch_size"),
            )
        )
    schema = {"estimate_tok_s": pl.Float64, "estimate_batch_size": pl.Int64}
    est = (
        pl.concat(estimates)
        if estimates
        else pl.DataFrame(schema={**dict.fromkeys(keys), "input_len": pl.Int64, "output_len": pl.Int64, **schema})
    )
    is_moe = models.select("model_id", "is_moe")
    return (
        rows.join(est, on=[*keys, "input_len", "output_len"], how="left")
        .join(is_moe, on="model_id", how="left")
        .drop("gpu_id")
    )


def calibration_table(
    measurements: pl.DataFrame,
    specs: Mapping[str, ModelSpec],
    gpus: pl.DataFrame = MEASUREMENT_GPUS,
    decode: DecodeEfficiency = DECODE,
    prefill: PrefillEfficiency = PREFILL,
) -> pl.DataFrame:
    """The published ``calibration`` table: one row per measurement with an estimate
    (``CALIBRATION_COLUMNS``); ``ratio = estimate / measured``, ``error_ratio = max(ratio, 1/ratio)``."""
    est = estimate_measurements(measurements, specs, gpus, decode, prefill).filter(
        pl.col("estimate_tok_s").is_not_null() & (pl.col("estimate_tok_s") > 0)
    )
    ratio = pl.col("estimate_tok_s") / pl.col("measured_tok_s")
    return (
        est.join(gpus.select(pl.col("gpu_id").alias("gpu"), "name"), on="gpu", how="left")
        .with_columns(gpu_id=pl.col("gpu"))
        .with_columns(gpu_generation=gpu_generation_expr())
        .with_columns(
            speed_class=speed_class_expr(pl.col("gpu_generation")),
            ratio=ratio,
            error_ratio=pl.max_horizontal(ratio, 1.0 / ratio),
            split=split_expr(),
        )
        .select(CALIBRATION_COLUMNS)
        .sort("measurement_id")
    )


def error_summary(table: pl.DataFrame, by: Sequence[str] = (), split: str | None = "held_out") -> pl.DataFrame:
    """Rows, median and p90 of ``error_ratio`` (and the median ``ratio``, the bias) per ``by`` group."""
    rows = table if split is None else table.filter(pl.col("split") == split)
    aggs = [
        pl.len().alias("rows"),
        pl.col("error_ratio").median().alias("median_error"),
        pl.col("error_ratio").quantile(0.9, interpolation="linear").alias("p90_error"),
        pl.col("ratio").median().alias("median_ratio"),
    ]
    if not by:
        return rows.select(aggs)
    return rows.group_by(list(by)).agg(aggs).sort(list(by))


#: Search grid of the class multipliers (``fit_class_scales``).
MBU_SCALES: tuple[float, ...] = tuple(round(0.40 + 0.05 * i, 2) for i in range(21))  # 0.40 .. 1.40
MFU_SCALES: tuple[float, ...] = tuple(round(0.20 + 0.10 * i, 2) for i in range(19))  # 0.20 .. 2.00


def _with_classes(
    decode: DecodeEfficiency, prefill: PrefillEfficiency, classes: Mapping[str, SpeedClass]
) -> tuple[DecodeEfficiency, PrefillEfficiency]:
    table = MappingProxyType(dict(classes))
    return dataclasses.replace(decode, class_scales=table), dataclasses.replace(prefill, class_scales=table)


def _uniform(keys: Iterable[str], scales: Mapping[str, tuple[float, float]], attr: str, value: float) -> dict[str, SpeedClass]:
    out = {}
    for key in keys:
        mbu, mfu = scales[key]
        mbu, mfu = (value, mfu) if attr == "mbu_scale" else (mbu, value)
        out[key] = SpeedClass(mbu_scale=mbu, mfu_scale=mfu, train_ids=(), held_out_rows=0, held_out_median=None, held_out_p90=None)
    return out


def fit_class_scales(
    measurements: pl.DataFrame,
    specs: Mapping[str, ModelSpec],
    gpus: pl.DataFrame = MEASUREMENT_GPUS,
    decode: DecodeEfficiency = DECODE,
    prefill: PrefillEfficiency = PREFILL,
    *,
    rounds: int = 2,
    fitted: str = "",
) -> dict[str, SpeedClass]:
    """Fit ``mbu_scale`` then ``mfu_scale`` of every speed class (coordinate descent over
    ``MBU_SCALES`` x ``MFU_SCALES``, ``rounds`` passes) minimising the mean ``|log(est/meas)|`` of the
    class's ``train`` rows. Classes are independent (a row belongs to one class), so every candidate
    value is tried for all classes in one evaluation. Held-out rows never enter the fit; the returned
    entries carry the class's held-out error at the fitted values."""
    train = measurements.filter(split_expr() == "train")
    base = calibration_table(train, specs, gpus, *_with_classes(decode, prefill, {}))
    keys = sorted(base["speed_class"].unique().to_list())
    scales = {k: (1.0, 1.0) for k in keys}
    for _ in range(rounds):
        for attr, grid in (("mbu_scale", MBU_SCALES), ("mfu_scale", MFU_SCALES)):
            losses: dict[str, list[tuple[float, float]]] = {k: [] for k in keys}
            for value in grid:
                d, p = _with_classes(decode, prefill, _uniform(keys, scales, attr, value))
                t = calibration_table(train, specs, gpus, d, p)
                loss = t.group_by("speed_class").agg(pl.col("ratio").log().abs().mean().alias("loss"))
                for key, value_loss in loss.iter_rows():
                    losses[key].append((value_loss, value))
            for key in keys:
                best = min(losses[key])[1]
                scales[key] = (best, scales[key][1]) if attr == "mbu_scale" else (scales[key][0], best)
    provisional = {
        k: SpeedClass(mbu_scale=m, mfu_scale=f, train_ids=(), held_out_rows=0, held_out_median=None, held_out_p90=None)
        for k, (m, f) in scales.items()
    }
    full = calibration_table(measurements, specs, gpus, *_with_classes(decode, prefill, provisional))
    held = error_summary(full, ["speed_class"]).rows_by_key("speed_class", named=True, unique=True)
    out = {}
    for key in keys:
        ids = tuple(base.filter(pl.col("speed_class") == key)["measurement_id"].sort().to_list())
        h = held.get(key)
        out[key] = SpeedClass(
            mbu_scale=scales[key][0],
            mfu_scale=scales[key][1],
            train_ids=ids,
            held_out_rows=int(h["rows"]) if h else 0,
            held_out_median=round(h["median_error"], 3) if h else None,
            held_out_p90=round(h["p90_error"], 3) if h else None,
            **({"fitted": fitted} if fitted else {}),
        )
    return out
