"""Class calibration of the speed estimate (sizing.calibration, sizing.constants.SPEED_CLASSES).

Measurements: the bundled snapshot's benchmarks/serving_calibration.csv and benchmarks/measurements/ (NVIDIA TensorRT-LLM perf-overview
editions; sources in benchmarks/measurements/README.md). Model configs: the bundled snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from pipelines.defs.sizing.calibration import MEASUREMENT_FILES
from sizing.calibration import (
    MEASUREMENT_GPUS,
    calibration_table,
    error_summary,
    load_measurements,
    load_specs,
    split_expr,
)
from sizing.constants import CALIBRATION, DECODE, SPEED_CLASSES
from sizing.speed import gpu_generation_expr, speed_basis_columns, speed_class_expr

REPO = Path(__file__).resolve().parents[1]
MEASUREMENTS = MEASUREMENT_FILES  # the bundled TensorRT-LLM v1.0 rows + the ones collected for issue 8
CONFIGS = REPO / "pipelines" / "snapshot" / "hf"


@pytest.fixture(scope="module")
def measurements() -> pl.DataFrame:
    return load_measurements(MEASUREMENTS)


@pytest.fixture(scope="module")
def table(measurements) -> pl.DataFrame:
    return calibration_table(measurements, load_specs(CONFIGS))


def _classes(rows: list[dict]) -> list[str]:
    frame = pl.DataFrame(rows)
    return frame.select(generation=gpu_generation_expr(), key=speed_class_expr())["key"].to_list()


def test_gpu_generation_from_id_and_name():
    # NVIDIA H100 datasheet: Hopper architecture; B200 (DGX B200 datasheet): Blackwell.
    frame = pl.DataFrame(
        {
            "gpu_id": ["H100", "nvidia-h100-sxm-80gb", "B200", "nvidia-gb200-186gb", "nvidia-gh200-96gb",
                       "nvidia-rtx-5090-32gb", "amd-mi300x-192gb", "nvidia-a100-sxm-80gb", "nvidia-l40s-48gb"],
            "name": ["H100 SXM 80GB", "H100 SXM5", "B200 180GB", "GB200 NVL72 (per GPU)", "GH200 Grace Hopper",
                     "GeForce RTX 5090", "Instinct MI300X", "A100 SXM4 80GB", "L40S"],
        }
    )
    assert frame.select(g=gpu_generation_expr())["g"].to_list() == [
        "hopper", "hopper", "blackwell", "blackwell", "hopper", "blackwell_client", "cdna3", "ampere", "ada",
    ]


def test_speed_class_key():
    rows = [
        dict(gpu_id="nvidia-h100-sxm-80gb", name="H100 SXM5", precision="fp8", is_moe=False),
        dict(gpu_id="nvidia-b200-sxm-180gb", name="B200 SXM", precision="fp4", is_moe=True),
    ]
    assert _classes(rows) == ["hopper:fp8:dense", "blackwell:fp4:moe"]


def test_held_out_split_never_overlaps_train(measurements, table):
    split = measurements.with_columns(split=split_expr())
    train = set(split.filter(pl.col("split") == "train")["measurement_id"])
    held = set(split.filter(pl.col("split") == "held_out")["measurement_id"])
    assert train and held and not train & held
    assert train | held == set(measurements["measurement_id"])
    # X003 (GH200 8B FP8, v0.17 edition) is held out, X001 / X002 train: ids whose number is a multiple of 3.
    assert "X003" in held and {"X001", "X002"} <= train
    # no class was fitted on a held-out row
    for key, cls in SPEED_CLASSES.items():
        assert not set(cls.train_ids) & held, key
        assert set(cls.train_ids) == set(table.filter((pl.col("speed_class") == key) & (pl.col("split") == "train"))["measurement_id"])


def test_measurements_exclude_mlperf_and_unknown_precision(measurements):
    # X781 (MLPerf v5.1 B200x8, precision not stated) and X785 (MI300X MLPerf, FP8 but no parallelism) are out.
    assert not {"X781", "X785", "X786"} & set(measurements["measurement_id"])
    assert set(measurements["precision"]) <= {"fp8", "fp4", "bf16", "int8", "int4"}


def test_fitted_constants_reproduce_committed_held_out_error(table):
    """The committed CALIBRATION / SPEED_CLASSES summary is what the committed measurements give."""
    overall = error_summary(table).row(0, named=True)
    assert overall["rows"] == CALIBRATION.held_out_rows
    assert overall["median_error"] == pytest.approx(CALIBRATION.held_out_median, abs=0.01)
    assert overall["p90_error"] == pytest.approx(CALIBRATION.held_out_p90, abs=0.01)
    by_class = error_summary(table, ["speed_class"]).rows_by_key("speed_class", named=True, unique=True)
    for key, cls in SPEED_CLASSES.items():
        assert by_class[key]["rows"] == cls.held_out_rows
        assert by_class[key]["median_error"] == pytest.approx(cls.held_out_median, abs=0.01)
        assert by_class[key]["p90_error"] == pytest.approx(cls.held_out_p90, abs=0.01)


def test_held_out_rows_b200_fp4_405b(table):
    # S-rows are H100/H200 FP8 v1.0; X-rows include B200 FP4 Llama 3.1 405B (v0.19/v0.21/v1.0 editions).
    rows = table.filter((pl.col("model") == "Llama 3.1 405B") & (pl.col("gpu") == "B200") & (pl.col("split") == "held_out"))
    assert rows.height > 0
    # after calibration the B200 FP4 405B class is no longer 1.6x over the measurements (issue 8 item 5)
    assert 0.8 < rows["ratio"].median() < 1.25


def test_calibration_table_columns(table):
    assert table["ratio"].is_finite().all() and (table["ratio"] > 0).all()
    assert table["source"].null_count() == 0
    assert table["measurement_id"].is_unique().all()
    assert set(table["split"]) == {"train", "held_out"}


def test_speed_basis_calibrated_and_extrapolated():
    rows = pl.DataFrame(
        [
            dict(gpu_id="nvidia-b200-sxm-180gb", name="B200 SXM", precision="fp4", is_moe=False),
            dict(gpu_id="amd-mi300x-192gb", name="Instinct MI300X", precision="bf16", is_moe=False),
        ]
    ).with_columns(**speed_basis_columns(SPEED_CLASSES))
    b200, mi300x = rows.to_dicts()
    assert b200["speed_basis"] == "calibrated"
    assert b200["speed_error_band"] == pytest.approx(SPEED_CLASSES["blackwell:fp4:dense"].held_out_p90)
    assert mi300x["speed_basis"] == "extrapolated"
    assert mi300x["speed_error_band"] == pytest.approx(CALIBRATION.held_out_p90)


def test_decode_applies_class_scales():
    assert DECODE.class_scales is SPEED_CLASSES and DECODE.moe_attention_dp


H100 = MEASUREMENT_GPUS.filter(pl.col("gpu_id") == "H100").row(0, named=True)


def _estimate(capsys, monkeypatch, *extra: str) -> dict:
    from pipelines import cli

    monkeypatch.setattr(cli, "_published_gpus", lambda: [dict(H100, gpu_id="nvidia-h100-sxm-80gb", vendor="NVIDIA")])
    config = CONFIGS / "meta-llama__Meta-Llama-3.1-8B" / "config.json"
    code = cli.main(["estimate", "--config", str(config), "--gpu", "nvidia-h100-sxm-80gb", "--precision", "fp8",
                     "--context", "8192", "--json", *extra])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_cli_estimate_itl_slo_and_max_throughput(capsys, monkeypatch):
    default = _estimate(capsys, monkeypatch)
    assert default["itl_slo_ms"] == 50.0  # WORKLOAD.itl_slo_ms
    assert default["max_throughput_tok_s"] >= default["decode_tok_s"] > 0
    assert default["speed_basis"] == "calibrated"
    assert default["speed_error_band"] == pytest.approx(SPEED_CLASSES["hopper:fp8:dense"].held_out_p90)
    tight = _estimate(capsys, monkeypatch, "--itl-slo-ms", "10")
    assert tight["itl_slo_ms"] == 10.0
    assert tight["itl_ms"] <= 10.0 and tight["meets_itl_slo"] is True
    assert tight["decode_tok_s"] < default["decode_tok_s"]
    # the unbounded figure does not depend on the SLO
    assert tight["max_throughput_tok_s"] == pytest.approx(default["max_throughput_tok_s"])
    assert tight["max_throughput_batch_size"] >= tight["batch_size"]
