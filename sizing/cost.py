"""Cost of a self-hosted replica vs API prices (Polars expressions + scalar helpers).

- ``cost_per_month_usd = hourly_usd x gpu_count x 730``  (``COST.hours_per_month``)
- ``cost_per_mtok_usd = hourly_usd x gpu_count / (3600 x tok/s) x 1e6`` at the max-throughput batch
  (equivalently $/month / (tok/s x 3600 x 730) x 1e6: the reference page's
  $7,516 / (280 x 3600 x 730) x 1e6 = $10.21/M)
- ``cost_per_mtok_usd_at_utilisation = cost_per_mtok_usd / utilisation`` (duty cycle; an idle GPU is
  still billed)
- API side, per model: ``cheapest_api_output_usd_per_mtok = min(output price)`` over providers and
  ``api_usd_per_mtok_at_mix = min(output + input x input_len/output_len)``: what an API charges per
  million *output* tokens when every output token brings ``input_len/output_len`` input tokens.
- ``breakeven_mtok_per_month = cost_per_month_usd / api_usd_per_mtok_at_mix``: million output tokens
  per month (at the row's token mix) above which the replica is cheaper than the cheapest API. It is
  only achievable when below ``capacity_mtok_per_month = tok/s x 3600 x 730 / 1e6``.

Every derived cost is per *output* token at the row's ``input_len``/``output_len`` mix; the columns
carry the mix.
"""

from __future__ import annotations

import polars as pl

from sizing.constants import COST


def cost_per_month(hourly_usd: float, gpu_count: int, hours_per_month: float = COST.hours_per_month) -> float:
    return hourly_usd * gpu_count * hours_per_month


def cost_per_mtok(hourly_usd: float, gpu_count: int, tok_s: float, utilisation: float = 1.0) -> float:
    return hourly_usd * gpu_count / (3600.0 * tok_s * utilisation) * 1e6


def cost_per_mtok_from_monthly(monthly_usd: float, tok_s: float, hours_per_month: float = COST.hours_per_month) -> float:
    return monthly_usd / (tok_s * 3600.0 * hours_per_month) * 1e6


def cost_columns(tok_s: pl.Expr, utilisation: float, hours_per_month: float = COST.hours_per_month) -> list[pl.Expr]:
    """Expressions over a frame with hourly_usd, gpu_count, api_usd_per_mtok_at_mix."""
    hourly = pl.col("hourly_usd") * pl.col("gpu_count")
    per_mtok = hourly / (3600.0 * tok_s) * 1e6
    monthly = hourly * hours_per_month
    return [
        monthly.alias("cost_per_month_usd"),
        per_mtok.alias("cost_per_mtok_usd"),
        (per_mtok / utilisation).alias("cost_per_mtok_usd_at_utilisation"),
        pl.lit(utilisation).alias("utilisation"),
        (tok_s * 3600.0 * hours_per_month / 1e6).alias("capacity_mtok_per_month"),
        (monthly / pl.col("api_usd_per_mtok_at_mix")).alias("breakeven_mtok_per_month"),
    ]


def api_prices(prices: pl.DataFrame | pl.LazyFrame | None, input_len: int, output_len: int) -> pl.LazyFrame:
    """Cheapest API output price and cheapest blended price per output token at the mix, per model."""
    schema = {"model_id": pl.Utf8, "cheapest_api_output_usd_per_mtok": pl.Float64, "api_usd_per_mtok_at_mix": pl.Float64}
    if prices is None:
        return pl.LazyFrame(schema=schema)
    ratio = input_len / output_len
    return (
        prices.lazy()
        .filter(pl.col("output_usd_per_mtok").is_not_null())
        .group_by("model_id")
        .agg(
            pl.col("output_usd_per_mtok").min().cast(pl.Float64).alias("cheapest_api_output_usd_per_mtok"),
            (pl.col("output_usd_per_mtok") + pl.col("input_usd_per_mtok").fill_null(0.0) * ratio)
            .min()
            .cast(pl.Float64)
            .alias("api_usd_per_mtok_at_mix"),
        )
    )
