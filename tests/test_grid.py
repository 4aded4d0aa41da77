"""The vectorised grid (sizing.grid) and the one-model estimate built on it (sizing.estimate)."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest
from test_kv_per_gpu import gpu_frame, hand_frames, hand_specs, llama_8b

from sizing.estimate import estimate
from sizing.grid import FIT_COLUMNS, RECOMMENDATION_COLUMNS, fit_matrix, recommendations
from sizing.model_spec import specs_to_frames


@pytest.fixture(scope="module")
def frames():
    models, groups = hand_frames()
    return models, groups, gpu_frame()


@pytest.fixture(scope="module")
def fm(frames):
    models, groups, gpus = frames
    return fit_matrix(models, groups, gpus)


def test_fit_matrix_columns_and_size(fm, frames):
    models, _, gpus = frames
    assert fm.columns == FIT_COLUMNS
    assert fm.schema["max_concurrent_seqs"] == pl.Int64 and fm.schema["fits"] == pl.Boolean
    # every model has 131072 context here except Mixtral (32768): 5 precisions x 4 GPUs x 5 counts
    per_model = fm.group_by("model_id").len()
    expected = {m: 5 * gpus.height * 5 * (2 if m.startswith("mistralai") else 3) for m in models["model_id"]}
    assert dict(zip(per_model["model_id"], per_model["len"], strict=True)) == expected
    assert fm.select(pl.struct("model_id", "gpu_id", "precision", "gpu_count", "context_length", "kv_dtype").is_unique().all()).item()


def test_every_supported_model_gets_a_recommendation(fm, frames):
    models, groups, gpus = frames
    recs = recommendations(fm, models, groups, gpus, None)
    fitting = set(fm.filter(pl.col("fits"))["model_id"])
    assert set(recs["model_id"]) == fitting == set(models["model_id"])
    assert recs.columns == RECOMMENDATION_COLUMNS
    # unpriced GPUs are kept (consumer-24g has no price), ranks are 1..n per model
    for _, part in recs.group_by("model_id"):
        assert part["rank"].to_list() == list(range(1, part.height + 1))


def test_ranking_reproducible_from_columns(fm, frames):
    models, groups, gpus = frames
    recs = recommendations(fm, models, groups, gpus, None, top_n=10)
    for _, part in recs.group_by("model_id"):
        part = part.sort("rank")
        tier = part.filter(pl.col("cost_per_mtok_usd").is_not_null() & pl.col("meets_itl_slo"))
        # within the priced SLO-meeting tier: cost never decreases with rank; score = 100 x best / cost
        assert tier["cost_per_mtok_usd"].is_sorted()
        if tier.height:
            assert tier["score"][0] == pytest.approx(100.0)
            best = tier["cost_per_mtok_usd"].min()
            assert (tier["score"] - 100 * best / tier["cost_per_mtok_usd"]).abs().max() < 1e-9
        # SLO-meeting rows come before SLO-missing ones among priced rows
        priced = part.filter(pl.col("cost_per_mtok_usd").is_not_null())
        meets = priced["meets_itl_slo"].to_list()
        assert meets == sorted(meets, reverse=True)
        assert part["gpu_id"].is_unique().all()
        assert (part["batch_size"] <= part["max_concurrent_seqs"].clip(lower_bound=1) * 2 ** 10).all()


def test_invalid_or_unfit_rows_never_recommended(fm, frames):
    models, groups, gpus = frames
    recs = recommendations(fm, models, groups, gpus, None, top_n=50)
    joined = recs.join(fm, on=["model_id", "gpu_id", "precision", "gpu_count", "context_length", "kv_dtype"])
    assert joined.height == recs.height and joined["fits"].all() and joined["tp_valid"].all()


def test_estimate_matches_grid_row(fm, frames):
    models, groups, gpus = frames
    gpu = gpus.filter(pl.col("gpu_id") == "h100-sxm").row(0, named=True)
    est = estimate(llama_8b(), gpu, gpu_count=2, precision="fp8", context=32768)
    row = fm.filter(pl.col("model_id") == "meta-llama/Llama-3.1-8B", pl.col("gpu_id") == "h100-sxm",
                    pl.col("precision") == "fp8", pl.col("gpu_count") == 2, pl.col("context_length") == 32768).row(0, named=True)
    for k in ("fits", "fit_class", "max_concurrent_seqs"):
        assert est[k] == row[k], k
    for k in ("kv_pool_gb", "headroom_gb", "weights_gb_per_gpu"):
        assert est[k] == pytest.approx(row[k], rel=1e-12), k
    assert est["kv_bytes_per_seq"] == 32768 * 131_072 // 2
    assert est["kv_bytes_per_token"] == 131_072 // 2
    assert est["decode_tok_s"] > est["decode_tok_s_batch1"] > 0
    assert est["ttft_ms"] > 0 and est["itl_ms"] > 0
    assert est["cost_per_mtok_usd"] == pytest.approx(2 * 2.49 / (3600 * est["decode_tok_s"]) * 1e6)


def test_estimate_without_gpu_and_unsupported():
    e = estimate(llama_8b(), None)
    assert e["supported"] and e["precision"] == "bf16" and e["context"] == 32768
    assert e["kv_bytes_per_seq"] == 32768 * 131_072 and e["fits"] is None and e["decode_tok_s"] is None
    bad = dataclasses.replace(llama_8b(), supported=False, reason="unknown model_type foo")
    e2 = estimate(bad, {"gpu_id": "x", "memory_gb": 80.0})
    assert not e2["supported"] and e2["reason"] == "unknown model_type foo" and e2["fits"] is None


def test_estimate_no_fit_has_no_speed():
    gpu = gpu_frame().filter(pl.col("gpu_id") == "consumer-24g").row(0, named=True)
    e = estimate(hand_specs()[2], gpu, precision="bf16")  # 405B on one 24 GB card
    assert e["fits"] is False and e["fit_class"] == "no_fit" and e["decode_tok_s"] is None


def test_grid_has_no_rows_for_unsupported_and_handles_empty_prices(frames):
    models, groups, gpus = frames
    bad = dataclasses.replace(llama_8b(), model_id="x/bad", supported=False, reason="r")
    m2, g2 = specs_to_frames([bad])
    fm = fit_matrix(pl.concat([models, m2]), pl.concat([groups, g2]), gpus, precisions=("bf16",), gpu_counts=(1,), contexts=(4096,))
    assert "x/bad" not in set(fm["model_id"])
    empty = pl.DataFrame(schema={"model_id": pl.Utf8, "provider": pl.Utf8, "input_usd_per_mtok": pl.Float64, "output_usd_per_mtok": pl.Float64})
    recs = recommendations(fm, models, groups, gpus, empty)
    assert recs["cheapest_api_output_usd_per_mtok"].null_count() == recs.height
