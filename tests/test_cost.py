"""Cost formulas (sizing.cost) and their use in recommendations.

Reference anchor: shared/reference/README.md -- $/M tokens = $/month / (tok/s x 3600 x 730) x 1e6,
e.g. $7,516 / (280 x 3600 x 730) = $10.21.
"""

from __future__ import annotations

import polars as pl
import pytest
from test_kv_per_gpu import gpu_frame, hand_frames

from sizing.constants import COST
from sizing.cost import api_prices, cost_per_month, cost_per_mtok, cost_per_mtok_from_monthly
from sizing.grid import fit_matrix, recommendations


def test_reference_page_cost_per_mtok():
    assert cost_per_mtok_from_monthly(7516, 280) == pytest.approx(10.21, abs=0.005)


def test_hourly_and_monthly_forms_agree():
    assert COST.hours_per_month == 730
    monthly = cost_per_month(2.49, 8)  # 8 x $2.49/h x 730 h = $14,541.60
    assert monthly == pytest.approx(14_541.6)
    assert cost_per_mtok(2.49, 8, 1000.0) == pytest.approx(cost_per_mtok_from_monthly(monthly, 1000.0))
    # 8 x 2.49 / (3600 x 1000) x 1e6 = $5.533/M; at 50 % duty cycle twice that
    assert cost_per_mtok(2.49, 8, 1000.0) == pytest.approx(5.5333, abs=1e-4)
    assert cost_per_mtok(2.49, 8, 1000.0, utilisation=0.5) == pytest.approx(2 * 5.5333, abs=1e-3)


def test_api_prices_cheapest_and_mix():
    prices = pl.DataFrame({"model_id": ["m", "m", "n"], "provider": ["a", "b", "a"],
                           "input_usd_per_mtok": [0.10, 0.50, 1.0], "output_usd_per_mtok": [0.40, 0.30, 2.0]})
    got = api_prices(prices, input_len=3000, output_len=1000).collect().sort("model_id")
    m = got.row(0, named=True)
    assert m["cheapest_api_output_usd_per_mtok"] == 0.30
    # at 3 input tokens per output token: a = 0.40 + 3 x 0.10 = 0.70, b = 0.30 + 3 x 0.50 = 1.80
    assert m["api_usd_per_mtok_at_mix"] == pytest.approx(0.70)


@pytest.fixture(scope="module")
def recs() -> pl.DataFrame:
    models, groups = hand_frames()
    prices = pl.DataFrame({"model_id": ["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B"], "provider": ["a", "b"],
                           "input_usd_per_mtok": [0.02, 0.05], "output_usd_per_mtok": [0.05, 0.08]})
    fm = fit_matrix(models, groups, gpu_frame())
    return recommendations(fm, models, groups, gpu_frame(), prices, input_len=1024, output_len=1024, top_n=10)


def test_recommendation_costs_consistent(recs):
    priced = recs.filter(pl.col("cost_per_mtok_usd").is_not_null())
    # a cost wherever the GPU has an hourly price: gpu_frame() prices all but consumer-24g
    assert set(priced["gpu_id"]) == {"h100-sxm", "b200", "l40s"}
    assert set(recs.filter(pl.col("cost_per_mtok_usd").is_null())["gpu_id"]) == {"consumer-24g"}
    for r in priced.iter_rows(named=True):
        assert r["cost_per_mtok_usd"] == pytest.approx(cost_per_mtok_from_monthly(r["cost_per_month_usd"], r["decode_tok_s"]))
        assert r["cost_per_mtok_usd_at_utilisation"] == pytest.approx(r["cost_per_mtok_usd"] / r["utilisation"])
        assert r["input_len"] == 1024 and r["output_len"] == 1024  # the token mix travels with the cost
    llama = priced.filter(pl.col("model_id") == "meta-llama/Llama-3.1-8B").row(0, named=True)
    assert llama["cheapest_api_output_usd_per_mtok"] == 0.05
    assert llama["api_usd_per_mtok_at_mix"] == pytest.approx(0.07)  # 0.05 + 1 x 0.02
    assert llama["breakeven_mtok_per_month"] == pytest.approx(llama["cost_per_month_usd"] / 0.07)


def test_unpriced_gpus_ranked_after_priced(recs):
    for _, part in recs.group_by("model_id"):
        part = part.sort("rank")
        priced = part["cost_per_mtok_usd"].is_not_null().to_list()
        assert priced == sorted(priced, reverse=True)  # all priced rows first
        assert part.filter(pl.col("cost_per_mtok_usd").is_null())["score"].null_count() == part.filter(
            pl.col("cost_per_mtok_usd").is_null()).height
