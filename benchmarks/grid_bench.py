"""Time the full fit matrix + recommendations at production scale and report peak memory.

    .venv/bin/python benchmarks/grid_bench.py [--repeat 3]

Models: every config in ``../shared/data/hf_configs`` through ``sizing.architecture.describe``
(~110, the real catalogue), padded with renamed copies to at least 110 supported models. GPUs: 45
synthetic rows spread over datasheet-like memory / bandwidth / peak values, ~20 % without a price and
~30 % without FP8, so every code path runs. Scale: models x 45 GPUs x 5 precisions x 5 counts x 3
contexts (~370k rows). Peak memory = process max RSS (``resource.getrusage``), which includes Polars'
native allocations. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402

from sizing.grid import fit_matrix, recommendations  # noqa: E402
from sizing.model_spec import specs_to_frames  # noqa: E402

CONFIGS = REPO.parent / "shared" / "data" / "hf_configs"
N_MODELS = 110
N_GPUS = 45


def load_specs() -> list:
    from sizing.architecture import describe

    specs = []
    for d in sorted(p for p in CONFIGS.iterdir() if (p / "config.json").exists()):
        cfg = json.loads((d / "config.json").read_text())
        qpath = d / "hf_quant_config.json"
        quant = json.loads(qpath.read_text()) if qpath.exists() else None
        specs.append(describe(cfg, model_id=d.name.replace("__", "/"), quant_config=quant))
    supported = [s for s in specs if s.supported]
    i = 0
    while len(supported) < N_MODELS and supported:
        supported.append(dataclasses.replace(supported[i % len(supported)], model_id=f"copy{i}/{supported[i % len(supported)].model_id}"))
        i += 1
    return specs + supported[len([s for s in specs if s.supported]):]


def gpus_frame() -> pl.DataFrame:
    base = [  # (memory GB, BW GB/s, bf16, fp8, fp4, link GB/s, $/h)
        (80, 3350, 989, 1979, None, 450, 2.49), (141, 4800, 989, 1979, None, 450, 3.5),
        (180, 8000, 2250, 4500, 9000, 900, 5.99), (48, 864, 362, 733, None, None, 0.99),
        (24, 1008, 165, None, None, None, None), (80, 2039, 312, None, None, 300, 1.29),
        (192, 5300, 1307, 2615, None, 448, 2.99), (32, 1792, 210, 420, 840, None, 0.89),
        (40, 1555, 312, None, None, 300, 1.1),
    ]
    rows = []
    for i in range(N_GPUS):
        mem, bw, bf16, fp8, fp4, link, price = base[i % len(base)]
        k = 1 + 0.01 * (i // len(base))
        rows.append(dict(gpu_id=f"gpu{i:02d}", vendor="nvidia", name=f"GPU {i}", memory_gb=float(mem), memory_bandwidth_gbps=bw * k,
                         bf16_tflops=bf16 * k, fp8_tflops=fp8 and fp8 * k, int8_tops=fp8 and fp8 * k, fp4_tflops=fp4,
                         interconnect_gbps=link, tdp_w=500.0, hourly_usd=price and price * k))
    return pl.DataFrame(rows, schema_overrides={c: pl.Float64 for c in ("fp8_tflops", "int8_tops", "fp4_tflops", "interconnect_gbps", "hourly_usd", "memory_bandwidth_gbps", "bf16_tflops")})


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    specs = load_specs()
    models, groups = specs_to_frames(specs)
    gpus = gpus_frame()
    prices = models.select("model_id").head(40).with_columns(provider=pl.lit("p"), input_usd_per_mtok=pl.lit(0.2), output_usd_per_mtok=pl.lit(0.6))
    print(f"models: {models.height} ({int(models['supported'].sum())} supported), kv groups: {groups.height}, gpus: {gpus.height}")
    rss0 = peak_rss_mb()
    for i in range(args.repeat):
        t0 = time.perf_counter()
        fm = fit_matrix(models, groups, gpus)
        t1 = time.perf_counter()
        recs = recommendations(fm, models, groups, gpus, prices)
        t2 = time.perf_counter()
        print(f"run {i + 1}: fit_matrix {fm.height:,} rows in {t1 - t0:.2f}s; recommendations {recs.height:,} rows "
              f"({recs['model_id'].n_unique()} models) in {t2 - t1:.2f}s")
    print(f"fit rows fitting: {int(fm['fits'].sum()):,}; peak RSS {peak_rss_mb():.0f} MB (before grid {rss0:.0f} MB)")
    missing = set(models.filter(pl.col("supported"))["model_id"]) - set(recs["model_id"])
    print(f"supported models without a recommendation: {len(missing)} {sorted(missing)[:5]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
