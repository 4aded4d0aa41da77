"""Calibration error of the speed estimate against measured TensorRT-LLM throughput (held-out rows).

    .venv/bin/python benchmarks/calibrate.py            # held-out error with the constants in sizing.constants
    .venv/bin/python benchmarks/calibrate.py --fit      # refit SPEED_CLASSES on the train rows, print them to paste
    .venv/bin/python benchmarks/calibrate.py --rows     # also print every row (estimate vs measured)

Data: ``pipelines/snapshot/benchmarks/serving_calibration.csv`` (112 rows, TensorRT-LLM v1.0
perf-overview, H100/H200 FP8; bundled from ``../shared/data`` by the snapshot tool) and
``benchmarks/measurements/serving_measurements_extra.csv`` (788 rows: B200/GB200/B300/GB300 FP4,
more H100/H200/GH200 FP8, MoE incl. DeepSeek-R1, gpt-oss, Qwen3-30B-A3B; sources in the README
there). MLPerf and unknown-precision rows are excluded. Estimates, split and error come from
``sizing.calibration`` (the same code the published ``calibration`` table uses): ``decode_tok_s`` at
the best batch with no ITL SLO, batches up to 8192 (trtllm-bench's CUDA-graph cap).

Error = ``max(est/meas, meas/est)`` ("x"), reported on the held-out rows (id number a multiple of
3), never used to fit. "before" = the global constants alone (TP-only MoE, no class multipliers, as
published before the class calibration); "after" = ``sizing.constants.DECODE``/``PREFILL`` with
``SPEED_CLASSES`` and the MoE attention-DP term. This is a benchmark, not a test: it prints, it does
not assert (tests/test_calibration.py asserts the committed figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402

from pipelines.defs.sizing.calibration import MEASUREMENT_FILES  # noqa: E402  (one home for the inputs)
from sizing.calibration import (  # noqa: E402
    calibration_table,
    error_summary,
    fit_class_scales,
    load_measurements,
    load_specs,
)
from sizing.constants import DECODE, PREFILL  # noqa: E402

CONFIGS = REPO / "pipelines" / "snapshot" / "hf"


def _dense_moe(table: pl.DataFrame) -> pl.DataFrame:
    return table.with_columns(kind=pl.when(pl.col("is_moe")).then(pl.lit("moe")).otherwise(pl.lit("dense")))


def report(table: pl.DataFrame, label: str) -> None:
    t = _dense_moe(table)
    print(f"\n== {label}: held-out rows, error = max(est/meas, meas/est) ==")
    with pl.Config(tbl_rows=60, tbl_width_chars=160, float_precision=3, tbl_hide_dataframe_shape=True):
        overall = error_summary(t)
        o = overall.row(0, named=True)
        print(f"overall: rows={o['rows']} median={o['median_error']:.3f}x p90={o['p90_error']:.3f}x "
              f"(median est/meas {o['median_ratio']:.3f})")
        print(error_summary(t, ["gpu_generation"]))
        print(error_summary(t, ["kind"]))
        print(error_summary(t, ["speed_class"]))
        print(error_summary(t, ["model", "gpu_generation"]))


def paste_block(classes: dict, held: dict, fitted: str) -> str:
    lines = ["SPEED_CLASSES: Mapping[str, SpeedClass] = MappingProxyType(", "    {"]
    for key, c in classes.items():
        ids = textwrap.fill(", ".join(f'"{i}"' for i in c.train_ids) + ",", width=108,
                            initial_indent=" " * 16, subsequent_indent=" " * 16)
        lines += [
            f'        "{key}": SpeedClass(',
            f"            mbu_scale={c.mbu_scale}, mfu_scale={c.mfu_scale}, held_out_rows={c.held_out_rows}, "
            f'held_out_median={c.held_out_median}, held_out_p90={c.held_out_p90}, fitted="{fitted}",',
            "            train_ids=(", ids, "            ),", "        ),",
        ]
    lines += ["    }", ")", "", "# Calibration fields:", f"held_out_rows={held['rows']}, "
              f"held_out_median={round(held['median_error'], 3)}, held_out_p90={round(held['p90_error'], 3)}"]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit", action="store_true", help="refit SPEED_CLASSES on the train rows (~1 min) and print them")
    ap.add_argument("--rows", action="store_true", help="print every held-out row")
    args = ap.parse_args()
    measurements = load_measurements(MEASUREMENT_FILES)
    specs = load_specs(CONFIGS)
    print(f"measurements: {measurements.height} rows (MLPerf / unknown precision excluded) from "
          f"{', '.join(p.name for p in MEASUREMENT_FILES)}; models with a bundled config: {len(specs)}")
    empty = {}
    before = calibration_table(
        measurements, specs,
        decode=dataclasses.replace(DECODE, class_scales=empty, moe_attention_dp=False),
        prefill=dataclasses.replace(PREFILL, class_scales=empty),
    )
    after = calibration_table(measurements, specs)
    skipped = measurements.join(after.select("measurement_id"), on="measurement_id", how="anti")
    print(f"rows with an estimate: {after.height} (train {after.filter(pl.col('split') == 'train').height}, "
          f"held out {after.filter(pl.col('split') == 'held_out').height}); no estimate: {skipped.height} "
          f"({', '.join(sorted(set(skipped['model'].to_list())))})")
    report(before, "before (global constants only)")
    report(after, "after (sizing.constants: SPEED_CLASSES + MoE attention DP)")
    if args.rows:
        with pl.Config(tbl_rows=1000, tbl_width_chars=200, float_precision=2):
            print(after.filter(pl.col("split") == "held_out").select(
                "measurement_id", "model", "gpu", "gpu_count", "parallelism", "precision", "input_len", "output_len",
                "measured_tok_s", "estimate_tok_s", "estimate_batch_size", "ratio"))
    if args.fit:
        today = date.today().isoformat()
        classes = fit_class_scales(measurements, specs, fitted=today)
        refit = calibration_table(
            measurements, specs,
            decode=dataclasses.replace(DECODE, class_scales=classes),
            prefill=dataclasses.replace(PREFILL, class_scales=classes),
        )
        report(refit, "refit (paste below into sizing/constants.py)")
        print("\n" + paste_block(classes, error_summary(refit).row(0, named=True), today))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
