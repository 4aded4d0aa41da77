"""Cost per 1,000 requests and per month of short / medium / long requests: cheapest API vs the best
self-hosted configuration (``workload_costs``). Pure Polars over the recommendations and provider
prices; one row per model x profile x option, and no row where no price or recommendation gives it
(never $0.00).

Profiles (``WORKLOAD_PROFILES`` below): short 400 + 100, medium 1,500 + 500, long 7,000 +
1,000 input + output tokens. ``N`` = ``monthly_requests`` (100,000), ``u`` = the recommendation's
utilisation (duty cycle, ``COST.default_utilisation``).

- ``cheapest_api``: over the model's comparable prices (``sizing.cost.comparable_prices``: canonical,
  no ``excluded_reason``, positive input and output prices), the provider whose
  ``usd_per_1k_requests = 1,000 x (input_tokens x input $/M + output_tokens x output $/M) / 1e6`` is
  lowest for the mix (ties: provider name). ``usd_per_month = usd_per_1k_requests x N / 1,000``
  (APIs bill per token).
- ``best_self_hosted``: the rank-1 recommendation, priced (its ``cost_per_month_usd`` is known), timed
  with the speed model's own steady state (``sizing.speed``): at batch ``B`` a replica's output rate
  is ``tok/s = B x out0 / (out0 x ITL + B x Pc0)`` for the recommendation's mix (``input_len`` +
  ``output_len`` = ``in0`` + ``out0``), where ``Pc0`` is the prefill compute of one ``in0``-token
  prompt. So ``Pc0 = out0 / tok/s - out0 x ITL / B`` comes back exactly from the published
  ``decode_tok_s``, ``itl_ms`` and ``batch_size``, and a request of ``in`` + ``out`` tokens keeps the
  replica busy ``busy_s = out x ITL / B + Pc0 x in / in0`` seconds (prefill scaled linearly with the
  prompt: the attention term, quadratic in the prompt, is left out -- about 3.5 % of a 7,000-token
  prompt's prefill FLOPs on Llama-3.1-405B -- so long prompts err slightly low). For the
  recommendation's own mix this is exactly ``out0 / tok/s``: the table agrees with
  ``cost_per_mtok_usd_at_utilisation``. Rented at ``$/hour = cost_per_month_usd / 730`` and busy a
  fraction ``u`` of the time (idle time is billed): ``usd_per_1k_requests = 1,000 x $/hour / 3,600 x
  busy_s / u``. A replica is rented whole: ``usd_per_month = replicas x cost_per_month_usd`` with
  ``replicas = max(1, ceil(N x busy_s / 3,600 / (730 x u)))`` -- at low volume, one replica's month,
  not N x the per-request cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sizing.constants import COST
from sizing.cost import comparable_prices


@dataclass(frozen=True)
class WorkloadProfile:
    name: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class WorkloadProfiles:
    """Request profiles of ``workload_costs`` (product choices, stated on every row; CONTRACT.md of
    issue 11, the reference page's short/medium/long cost per 1,000 requests).

    - short 400 in + 100 out = 500 tokens: a chat turn or a classification;
    - medium 1,500 in + 500 out = 2,000 tokens: a retrieval-augmented answer;
    - long 7,000 in + 1,000 out = 8,000 tokens: summarising a document.
    Input dominates in all three (4:1, 3:1, 7:1), as in served traffic where prompts carry context.

    ``monthly_requests`` 100,000 (~3,300 a day, a small production application) is the stated volume
    ``usd_per_month`` is computed at; ``per_requests`` 1,000 is the unit of ``usd_per_1k_requests``."""

    profiles: tuple[WorkloadProfile, ...] = (
        WorkloadProfile("short", 400, 100),
        WorkloadProfile("medium", 1_500, 500),
        WorkloadProfile("long", 7_000, 1_000),
    )
    monthly_requests: int = 100_000
    per_requests: int = 1_000


WORKLOAD_PROFILES = WorkloadProfiles()


WORKLOAD_COST_COLUMNS = [
    "model_id",
    "profile",
    "input_tokens",
    "output_tokens",
    "option",
    "provider",
    "config",
    "usd_per_1k_requests",
    "monthly_requests",
    "usd_per_month",
    "basis",
]
_SCHEMA = {
    "model_id": pl.Utf8,
    "profile": pl.Utf8,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "option": pl.Utf8,
    "provider": pl.Utf8,
    "config": pl.Utf8,
    "usd_per_1k_requests": pl.Float64,
    "monthly_requests": pl.Int64,
    "usd_per_month": pl.Float64,
    "basis": pl.Utf8,
}


def _profiles_frame(profiles: tuple[WorkloadProfile, ...]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "profile": [p.name for p in profiles],
            "input_tokens": [p.input_tokens for p in profiles],
            "output_tokens": [p.output_tokens for p in profiles],
            "_profile_order": list(range(len(profiles))),
        },
        schema={"profile": pl.Utf8, "input_tokens": pl.Int64, "output_tokens": pl.Int64, "_profile_order": pl.Int64},
    )


def _text(value: pl.Expr, decimals: int) -> pl.Expr:
    return value.round(decimals).cast(pl.Utf8)


def _per_1k(input_usd_per_mtok: pl.Expr, output_usd_per_mtok: pl.Expr, per_requests: int) -> pl.Expr:
    return (
        per_requests
        * (pl.col("input_tokens") * input_usd_per_mtok + pl.col("output_tokens") * output_usd_per_mtok)
        / 1e6
    )


def _cheapest_api(prices: pl.LazyFrame, profiles: pl.LazyFrame, monthly_requests: int, per_requests: int) -> pl.LazyFrame:
    return (
        comparable_prices(prices)
        .select("model_id", "provider", "input_usd_per_mtok", "output_usd_per_mtok")
        .join(profiles, how="cross")
        .with_columns(usd_per_1k_requests=_per_1k(pl.col("input_usd_per_mtok"), pl.col("output_usd_per_mtok"), per_requests))
        .sort(["model_id", "_profile_order", "usd_per_1k_requests", "provider"])
        .unique(subset=["model_id", "profile"], keep="first", maintain_order=True)
        .with_columns(
            option=pl.lit("cheapest_api"),
            config=pl.lit(None, pl.Utf8),
            usd_per_month=pl.col("usd_per_1k_requests") * monthly_requests / per_requests,
            basis=pl.format(
                "API: {}'s canonical standard price (${}/M input, ${}/M output; provider_prices is_canonical, "
                "no excluded_reason), the lowest of the model's comparable prices for this mix: "
                "{} x ({} input x input price + {} output x output price) / 1e6; per month: {} requests billed per token",
                "provider",
                _text(pl.col("input_usd_per_mtok"), 6),
                _text(pl.col("output_usd_per_mtok"), 6),
                pl.lit(per_requests),
                "input_tokens",
                "output_tokens",
                pl.lit(monthly_requests),
            ),
        )
    )


def _best_self_hosted(
    recommendations: pl.LazyFrame, profiles: pl.LazyFrame, monthly_requests: int, per_requests: int, hours_per_month: float
) -> pl.LazyFrame:
    itl_s = pl.col("itl_ms") / 1e3
    busy_s = (
        pl.col("output_tokens") * itl_s / pl.col("batch_size")
        + pl.col("_prefill_s0") * pl.col("input_tokens") / pl.col("input_len")
    )
    replicas = pl.max_horizontal(
        pl.lit(1.0), (monthly_requests * pl.col("_busy_s") / 3600.0 / (hours_per_month * pl.col("utilisation"))).ceil()
    ).cast(pl.Int64)
    layout = pl.format("{} x {} {} TP{}", "gpu_count", "gpu_id", "precision", "tensor_parallel")
    return (
        recommendations.filter(
            (pl.col("rank") == 1)
            & (pl.col("cost_per_month_usd") > 0)
            & (pl.col("decode_tok_s") > 0)
            & (pl.col("itl_ms") > 0)
            & (pl.col("batch_size") > 0)
            & (pl.col("input_len") > 0)
            & (pl.col("output_len") > 0)
            & (pl.col("utilisation") > 0)
        )
        .with_columns(
            _hourly=pl.col("cost_per_month_usd") / hours_per_month,
            # what the published rate leaves for prefill once decode steps are paid (sizing.speed); a
            # rounding residue below zero is no prefill time, not negative time
            _prefill_s0=pl.max_horizontal(
                pl.lit(0.0),
                pl.col("output_len") / pl.col("decode_tok_s") - pl.col("output_len") * itl_s / pl.col("batch_size"),
            ),
        )
        .join(profiles, how="cross")
        .with_columns(_busy_s=busy_s)
        .with_columns(
            usd_per_1k_requests=per_requests * pl.col("_hourly") / 3600.0 * pl.col("_busy_s") / pl.col("utilisation"),
            _replicas=replicas,
        )
        .with_columns(
            option=pl.lit("best_self_hosted"),
            provider=pl.lit(None, pl.Utf8),
            config=pl.when(pl.col("pipeline_parallel") > 1)
            .then(pl.format("{} PP{}", layout, "pipeline_parallel"))
            .otherwise(layout),
            usd_per_month=pl.col("_replicas") * pl.col("cost_per_month_usd"),
            basis=pl.format(
                "self-hosted: rank-1 recommendation (${}/hour) busy {}% of the time (utilisation; idle time is billed); "
                "one request keeps the replica busy {} output x ITL {} ms / batch {} + prefill {} s x {} / {} prompt "
                "tokens = {} s (prefill per prompt recovered from the published {} tok/s: sizing.workloads); "
                "{} x $/hour / 3,600 x busy s / utilisation; per month: {} whole replica(s) x ${}/month (730 h) "
                "serve {} requests at that utilisation",
                _text(pl.col("_hourly"), 4),
                _text(pl.col("utilisation") * 100, 1),
                "output_tokens",
                _text(pl.col("itl_ms"), 2),
                "batch_size",
                _text(pl.col("_prefill_s0"), 4),
                "input_tokens",
                "input_len",
                _text(pl.col("_busy_s"), 4),
                _text(pl.col("decode_tok_s"), 1),
                pl.lit(per_requests),
                "_replicas",
                _text(pl.col("cost_per_month_usd"), 2),
                pl.lit(monthly_requests),
            ),
        )
    )


def workload_costs(
    recommendations: pl.DataFrame | pl.LazyFrame,
    prices: pl.DataFrame | pl.LazyFrame,
    *,
    profiles: tuple[WorkloadProfile, ...] = WORKLOAD_PROFILES.profiles,
    monthly_requests: int = WORKLOAD_PROFILES.monthly_requests,
    per_requests: int = WORKLOAD_PROFILES.per_requests,
    hours_per_month: float = COST.hours_per_month,
) -> pl.DataFrame:
    """Per model x profile x option (``cheapest_api``, ``best_self_hosted``): cost per
    ``per_requests`` requests and per month at ``monthly_requests`` (rules in the module doc)."""
    frame = _profiles_frame(profiles)
    parts = [
        _cheapest_api(prices.lazy(), frame, monthly_requests, per_requests),
        _best_self_hosted(recommendations.lazy(), frame, monthly_requests, per_requests, hours_per_month),
    ]
    return (
        pl.concat(
            [
                part.with_columns(monthly_requests=pl.lit(monthly_requests, pl.Int64))
                .select(*WORKLOAD_COST_COLUMNS, "_profile_order")
                .cast(_SCHEMA)
                for part in parts
            ]
        )
        # no row where a value is not a positive finite number (never $0.00, NaN or inf)
        .filter(
            pl.col("usd_per_1k_requests").is_finite()
            & (pl.col("usd_per_1k_requests") > 0)
            & pl.col("usd_per_month").is_finite()
            & (pl.col("usd_per_month") > 0)
        )
        .sort(["model_id", "_profile_order", "option"])
        .select(WORKLOAD_COST_COLUMNS)
        .collect()
    )
