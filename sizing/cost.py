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
  Only *comparable* prices count (``api_prices``): positive input and output prices, and, when the
  frame carries the provider_prices columns, ``excluded_reason`` null (standard tier, no zero,
  placeholder or below-sibling price) and ``is_canonical`` (one price per model and provider).
  So the cheapest API is never $0.00: a model with no comparable price has none (null).
- ``breakeven_mtok_per_month = cost_per_month_usd / api_usd_per_mtok_at_mix``: million output tokens
  per month (at the row's token mix) above which the replica is cheaper than the cheapest API. It is
  only achievable when below ``capacity_mtok_per_month = tok/s x 3600 x 730 / 1e6``. Null (never
  inf, never negative) when there is no positive API price at the mix or no rental price.

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
        breakeven_mtok_per_month(monthly, pl.col("api_usd_per_mtok_at_mix")).alias("breakeven_mtok_per_month"),
    ]


def breakeven_mtok_per_month(monthly_usd: pl.Expr, api_usd_per_mtok_at_mix: pl.Expr) -> pl.Expr:
    """$/month / API $ per 1e6 output tokens; null unless both are finite, the API price is positive
    and the monthly cost is not negative (a free or missing API price has no break-even)."""
    valid = (
        api_usd_per_mtok_at_mix.is_finite()
        & (api_usd_per_mtok_at_mix > 0)
        & monthly_usd.is_finite()
        & (monthly_usd >= 0)
    )
    return pl.when(valid).then(monthly_usd / api_usd_per_mtok_at_mix).otherwise(None).cast(pl.Float64)


# provider_prices columns that say whether a row may be compared (see the dbt schema YAML).
EXCLUSION_COLUMN = "excluded_reason"
CANONICAL_COLUMN = "is_canonical"


def comparable_prices(prices: pl.LazyFrame) -> pl.LazyFrame:
    """The rows an API comparison may use: positive input and output prices, and, when the frame has
    them, ``excluded_reason`` null and ``is_canonical`` true. A frame without those columns (a library
    caller's own price list) is taken as already one comparable row per provider."""
    columns = prices.collect_schema().names()
    keep = (
        pl.col("output_usd_per_mtok").is_not_null()
        & pl.col("input_usd_per_mtok").is_not_null()
        & (pl.col("output_usd_per_mtok") > 0)
        & (pl.col("input_usd_per_mtok") > 0)
    )
    if EXCLUSION_COLUMN in columns:
        keep = keep & pl.col(EXCLUSION_COLUMN).is_null()
    if CANONICAL_COLUMN in columns:
        keep = keep & pl.col(CANONICAL_COLUMN).fill_null(False)
    return prices.filter(keep)


def api_prices(prices: pl.DataFrame | pl.LazyFrame | None, input_len: int, output_len: int) -> pl.LazyFrame:
    """Cheapest API output price and cheapest blended price per output token at the mix, per model,
    over comparable prices only (``comparable_prices``). Models without one are absent (the join in
    the grid leaves their API columns null)."""
    schema = {"model_id": pl.Utf8, "cheapest_api_output_usd_per_mtok": pl.Float64, "api_usd_per_mtok_at_mix": pl.Float64}
    if prices is None:
        return pl.LazyFrame(schema=schema)
    ratio = input_len / output_len
    return (
        comparable_prices(prices.lazy())
        .group_by("model_id")
        .agg(
            pl.col("output_usd_per_mtok").min().cast(pl.Float64).alias("cheapest_api_output_usd_per_mtok"),
            (pl.col("output_usd_per_mtok") + pl.col("input_usd_per_mtok") * ratio)
            .min()
            .cast(pl.Float64)
            .alias("api_usd_per_mtok_at_mix"),
        )
    )
