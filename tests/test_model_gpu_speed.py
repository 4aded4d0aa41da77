"""model_gpu_speed (sizing.grid.rank_and_speeds): the fewest-GPU fitting configuration per model x GPU x
precision, from the same evaluation recommendations rank. Hand models and datasheet GPUs of
test_kv_per_gpu (config.json of each model, NVIDIA datasheets)."""

from __future__ import annotations

import polars as pl
import pytest
from test_kv_per_gpu import gpu_frame, hand_frames

from sizing.constants import COST
from sizing.grid import SPEED_COLUMNS, fit_matrix, rank_and_speeds, recommendations


@pytest.fixture(scope="module")
def grid():
    models, groups = hand_frames()
    gpus = gpu_frame()
    fm = fit_matrix(models, groups, gpus)
    ranked, speeds = rank_and_speeds(fm, models, groups, gpus)
    return fm, models, groups, gpus, ranked, speeds


def test_one_evaluation_gives_the_same_recommendations(grid):
    fm, models, groups, gpus, ranked, _ = grid
    assert ranked.equals(recommendations(fm, models, groups, gpus))


def test_columns_and_one_row_per_model_gpu_precision(grid):
    *_, speeds = grid
    assert speeds.columns == SPEED_COLUMNS
    assert speeds.select(pl.struct("model_id", "gpu_id", "precision").is_unique().all()).item()


def test_llama_70b_bf16_on_h100_needs_four_gpus(grid):
    # test_memory_fit.test_more_gpus_never_fit_less: Llama-3.1-70B bf16 on H100 first fits at TP4
    # (141.1 GB of weights; 70.55 + 5.40 GB per GPU at TP2 exceeds the 72.85 GB usable).
    *_, speeds = grid
    row = speeds.filter(model_id="meta-llama/Llama-3.1-70B", gpu_id="h100-sxm", precision="bf16").row(0, named=True)
    assert (row["gpu_count"], row["tensor_parallel"], row["pipeline_parallel"], row["context_length"]) == (4, 4, 1, 4096)


def test_fewest_gpus_that_fit_at_the_row_context(grid):
    fm, *_, speeds = grid
    fewest = (
        fm.filter(pl.col("fits") & (pl.col("kv_dtype") == "bf16"))
        .group_by("model_id", "gpu_id", "precision", "context_length")
        .agg(pl.col("gpu_count").min().alias("fewest"))
    )
    joined = speeds.join(fewest, on=["model_id", "gpu_id", "precision", "context_length"], how="left")
    assert joined.filter(pl.col("fewest") != pl.col("gpu_count")).height == 0
    assert joined["fewest"].null_count() == 0


def test_max_speed_bounds_slo_speed_and_cost_is_at_the_recommendation_point(grid):
    *_, speeds = grid
    known = speeds.filter(pl.col("decode_tok_s").is_not_null())
    assert known.height > 0 and (known["decode_tok_s"] > 0).all()
    slo = known.filter(pl.col("decode_tok_s_slo").is_not_null())
    assert (slo["decode_tok_s_slo"] <= slo["decode_tok_s"] * (1 + 1e-12)).all()
    assert (slo["itl_ms"] <= 50.0).all()  # WORKLOAD.itl_slo_ms: itl_ms is at the SLO-bound batch
    # sizing.cost: $/M = $/month / (tok/s x 3600 x 730) x 1e6 at the rate recommendations use
    # (the SLO-bound one when the SLO can be met, else the max)
    priced = known.filter(pl.col("cost_per_month_usd").is_not_null())
    assert priced.height > 0
    rate = priced["decode_tok_s_slo"].fill_null(priced["decode_tok_s"])
    expected = priced["cost_per_month_usd"] / (rate * 3600 * COST.hours_per_month) * 1e6
    assert ((priced["cost_per_mtok_usd"] / expected - 1).abs() < 1e-9).all()


def test_unmeetable_slo_leaves_slo_speed_null_and_keeps_the_max(grid):
    fm, models, groups, gpus, _, speeds = grid
    _, strict = rank_and_speeds(fm, models, groups, gpus, itl_slo_ms=1e-6)
    assert strict["decode_tok_s_slo"].null_count() == strict.height
    both = speeds.join(strict, on=["model_id", "gpu_id", "precision"], suffix="_strict")
    assert both.filter(pl.col("decode_tok_s") != pl.col("decode_tok_s_strict")).height == 0


def test_rank1_configuration_carries_the_recommendation_numbers(grid):
    *_, ranked, speeds = grid
    top = ranked.filter(pl.col("rank") == 1).join(
        speeds, on=["model_id", "gpu_id", "precision", "gpu_count"], suffix="_speed", how="inner"
    )
    assert top.height > 0
    for column in ("itl_ms", "ttft_ms", "cost_per_mtok_usd", "decode_tok_s_batch1"):
        assert top.filter(pl.col(column).ne_missing(pl.col(f"{column}_speed"))).height == 0, column


def test_each_row_names_its_gpus_generation_by_the_speed_classes_rule(grid):
    """sizing.speed.GPU_GENERATIONS over gpu_id + name: H100 -> hopper, B200 -> blackwell, L40S ->
    ada; a GPU no pattern matches is 'other' (the site then groups it by vendor and segment)."""
    *_, speeds = grid
    generations = dict(speeds.select("gpu_id", "gpu_generation").unique().iter_rows())
    assert generations == {"h100-sxm": "hopper", "b200": "blackwell", "l40s": "ada", "consumer-24g": "other"}
