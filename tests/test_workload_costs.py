"""workload_costs (sizing.workloads): cost per 1,000 requests and per month, cheapest API vs the rank-1
self-hosted configuration. Expected values are computed by hand from the rules in the module doc of
sizing.workloads and its profiles (sizing.workloads.WORKLOAD_PROFILES)."""

from __future__ import annotations

import polars as pl
import pytest

from sizing.workloads import WORKLOAD_COST_COLUMNS, WORKLOAD_PROFILES, WorkloadProfile, workload_costs

PRICES = pl.DataFrame(
    {
        "model_id": ["m", "m", "m", "m", "n"],
        "provider": ["a", "b", "c", "d", "a"],
        "input_usd_per_mtok": [1.0, 0.5, 0.1, 0.01, 0.2],
        "output_usd_per_mtok": [2.0, 5.0, 0.1, 0.01, 0.0],
        "is_canonical": [True, True, False, True, True],
        "excluded_reason": [None, None, None, "below sibling price", None],
    }
)
# rank 1 of m: 2 GPUs at $1/hour each -> $1,460/month (730 h), $2/hour. Its mix is 1,000 + 1,000
# tokens at batch 10 and ITL 20 ms with 0.1 s of prefill compute per prompt, so sizing.speed's steady
# state gives 10 x 1,000 / (1,000 x 0.02 + 10 x 0.1) = 10,000 / 21 = 476.19 output tok/s, and
# $2 / 3,600 / 476.19 x 1e6 / 0.5 = $2.3333/M output at utilisation 0.5.
DECODE_M = 10_000 / 21
RECS = pl.DataFrame(
    {
        "model_id": ["m", "m", "n"],
        "rank": [1, 2, 1],
        "gpu_id": ["h100", "l40s", "h100"],
        "gpu_count": [2, 4, 1],
        "tensor_parallel": [2, 2, 1],
        "pipeline_parallel": [1, 2, 1],
        "precision": ["fp8", "bf16", "bf16"],
        "decode_tok_s": [DECODE_M, 500.0, 800.0],
        "itl_ms": [20.0, 30.0, 15.0],
        "batch_size": [10, 8, 4],
        "ttft_ms": [100.0, 200.0, 50.0],
        "input_len": [1000, 1000, 1000],
        "output_len": [1000, 1000, 1000],
        "cost_per_month_usd": [1460.0, 2920.0, None],  # n is unpriced: no self-hosted row
        "cost_per_mtok_usd_at_utilisation": [2 / 3600 / DECODE_M * 1e6 / 0.5, 1.0, None],
        "utilisation": [0.5, 0.5, 0.5],
    }
)


@pytest.fixture(scope="module")
def costs() -> pl.DataFrame:
    return workload_costs(RECS, PRICES)


def row(costs: pl.DataFrame, model: str, profile: str, option: str) -> dict:
    rows = costs.filter(model_id=model, profile=profile, option=option)
    assert rows.height == 1, rows
    return rows.row(0, named=True)


def test_profiles_are_the_stated_token_mixes():
    # CONTRACT.md of issue 11: short 400 + 100 = 500, medium 1,500 + 500 = 2,000, long 7,000 + 1,000 = 8,000
    mixes = {p.name: (p.input_tokens, p.output_tokens) for p in WORKLOAD_PROFILES.profiles}
    assert mixes == {"short": (400, 100), "medium": (1500, 500), "long": (7000, 1000)}
    assert {name: sum(mix) for name, mix in mixes.items()} == {"short": 500, "medium": 2000, "long": 8000}


def test_columns_and_no_row_without_a_price_or_recommendation(costs):
    assert costs.columns == WORKLOAD_COST_COLUMNS
    # m: 3 profiles x 2 options; n: its only canonical price has output $0 (not comparable) and its
    # rank 1 has no rental price, so no row at all (never $0.00)
    assert costs.group_by("model_id").len().sort("model_id").rows() == [("m", 6)]
    assert (costs["usd_per_1k_requests"] > 0).all() and (costs["monthly_requests"] == 100_000).all()


@pytest.mark.parametrize(
    ("profile", "provider", "usd_per_1k"),
    [
        # a: 1,000 x (400 x $1 + 100 x $2) / 1e6 = $0.60; b: 1,000 x (400 x $0.5 + 100 x $5) / 1e6 = $0.70
        ("short", "a", 0.60),
        # a: (1,500 x 1 + 500 x 2) / 1e3 = $2.50; b: (750 + 2,500) / 1e3 = $3.25
        ("medium", "a", 2.50),
        # a: (7,000 + 2,000) / 1e3 = $9.00; b: (3,500 + 5,000) / 1e3 = $8.50 -- the cheapest depends on the mix
        ("long", "b", 8.50),
    ],
)
def test_cheapest_api_is_the_lowest_comparable_canonical_price_for_the_mix(costs, profile, provider, usd_per_1k):
    # c is not canonical and d is excluded: both would be cheaper, neither may be used (sizing.cost.comparable_prices)
    r = row(costs, "m", profile, "cheapest_api")
    assert r["provider"] == provider and r["config"] is None
    assert r["usd_per_1k_requests"] == pytest.approx(usd_per_1k)
    assert r["usd_per_month"] == pytest.approx(usd_per_1k * 100)  # 100,000 requests / 1,000
    assert f"{provider}'s canonical" in r["basis"]


@pytest.mark.parametrize(
    ("profile", "busy_s"),
    [
        # busy = out x ITL / B + prefill 0.1 s x in / 1,000 (the recommendation's prompt)
        ("short", 100 * 0.02 / 10 + 0.1 * 400 / 1000),  # 0.2 + 0.04 = 0.24 s
        ("medium", 500 * 0.02 / 10 + 0.1 * 1500 / 1000),  # 1.0 + 0.15 = 1.15 s
        ("long", 1000 * 0.02 / 10 + 0.1 * 7000 / 1000),  # 2.0 + 0.7 = 2.7 s
    ],
)
def test_best_self_hosted_times_each_request_with_the_speed_models_decode_and_prefill(costs, profile, busy_s):
    r = row(costs, "m", profile, "best_self_hosted")
    assert r["config"] == "2 x h100 fp8 TP2" and r["provider"] is None
    # 1,000 requests x $2/h / 3,600 s x busy s / utilisation 0.5: short $0.26667, medium $1.27778, long $3.00
    assert r["usd_per_1k_requests"] == pytest.approx(1000 * 2 / 3600 * busy_s / 0.5)
    assert r["usd_per_1k_requests"] == pytest.approx({"short": 0.266667, "medium": 1.277778, "long": 3.0}[profile], rel=1e-5)
    # short: 100,000 x 0.24 s = 6.7 busy hours, within one replica's 730 h x 0.5 -> one whole replica's month
    assert r["usd_per_month"] == pytest.approx(1460.0)
    assert "utilisation" in r["basis"] and "prefill" in r["basis"]


def test_the_recommendations_own_mix_costs_what_its_published_rate_says():
    """Prefill is not counted twice: at the recommendation's own 1,000 + 1,000 mix, the per-request cost
    is exactly 1,000 output tokens at cost_per_mtok_usd_at_utilisation ($2.3333/M -> $2.3333 per 1,000)."""
    r = row(workload_costs(RECS, PRICES, profiles=(WorkloadProfile("own", 1000, 1000),)), "m", "own", "best_self_hosted")
    assert r["usd_per_1k_requests"] == pytest.approx(1000 * 1000 * RECS["cost_per_mtok_usd_at_utilisation"][0] / 1e6)


def test_self_hosted_month_counts_whole_replicas_at_volume():
    # 10,000,000 short requests x 0.24 busy s = 666.7 h > 365 h (730 h x 0.5) -> 2 replicas = $2,920
    costs = workload_costs(RECS, PRICES, monthly_requests=10_000_000)
    r = row(costs, "m", "short", "best_self_hosted")
    assert r["usd_per_month"] == pytest.approx(2920.0)
    assert row(costs, "m", "short", "cheapest_api")["usd_per_month"] == pytest.approx(0.60 * 10_000)


def test_pipeline_parallel_config_is_spelled_out():
    recs = RECS.with_columns(rank=pl.when(pl.col("gpu_id") == "l40s").then(1).otherwise(2)).filter(pl.col("model_id") == "m")
    r = row(workload_costs(recs, PRICES), "m", "short", "best_self_hosted")
    assert r["config"] == "4 x l40s bf16 TP2 PP2"
