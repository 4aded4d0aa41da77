"""What changed for each model between the current publication and this run's tables (``model_changes``).

Pure Polars (no Dagster, no files): the asset reads both sides and passes frames. One row per change,
all values as text, ``previous_publication_id`` on every row (null when there is no previous
publication: then every published model is a ``new_model`` and nothing else is reported).

- ``new_model`` / ``removed_model``: a model published now and not before / before and not now
  (``subject`` 'model'; ``before``/``after`` 'not published' / 'published').
The other kinds are reported for models published in both, so a new model is one row, not dozens:
- ``price``: a provider's canonical comparable price (``sizing.cost.comparable_prices``: is_canonical,
  no excluded_reason, positive prices) differs, appeared or disappeared (``subject`` the provider;
  ``before``/``after`` '$<input>/$<output>' per 1e6 tokens, or 'no price').
- ``new_fit`` / ``lost_fit``: a GPU x precision on which the model now fits / no longer fits
  (``subject`` '<gpu_id> <precision>'; the fitting side says 'fits on N GPU(s)', the other 'does not
  fit'). From ``model_gpu_speed``, or, for a previous publication that has none, from its
  ``fit_matrix`` (``fits_from_fit_matrix``: the same KV dtype and context ``model_gpu_speed`` uses).
- ``estimate``: the rank-1 recommendation's ``decode_tok_s`` or ``cost_per_mtok_usd`` moved by more
  than ``CHANGE_RULES.estimate_tolerance`` (1 %) relative to before, or became known/unknown
  (``subject`` the column; ``before``/``after`` '<value> (<count> x <gpu_id> <precision>)').
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sizing.constants import RECOMMENDATION_KV_DTYPE, WORKLOAD
from sizing.cost import comparable_prices

CHANGE_COLUMNS = ["model_id", "change_kind", "subject", "before", "after", "previous_publication_id"]
CHANGE_KINDS = ("new_model", "removed_model", "price", "new_fit", "lost_fit", "estimate")
_SCHEMA = {c: pl.Utf8 for c in CHANGE_COLUMNS}


@dataclass(frozen=True)
class PublishedTables:
    """One side of the comparison. ``fits``: model_id, gpu_id, precision, gpu_count (one row per model
    x GPU x precision that fits: ``model_gpu_speed``, or ``fits_from_fit_matrix``)."""

    models: pl.DataFrame
    provider_prices: pl.DataFrame
    fits: pl.DataFrame
    recommendations: pl.DataFrame


@dataclass(frozen=True)
class ChangeRules:
    """When ``model_changes`` reports a rank-1 estimate change: ``decode_tok_s`` or
    ``cost_per_mtok_usd`` moved by more than ``estimate_tolerance`` (1 %, relative to the previous
    value) -- the same width ``Ranking.tie_band`` treats as a tie, far inside the estimate's own error
    (``CALIBRATION.held_out_p90``), so last-digit noise is never reported as a change."""

    estimate_tolerance: float = 0.01
    estimate_columns: tuple[str, ...] = ("decode_tok_s", "cost_per_mtok_usd")


CHANGE_RULES = ChangeRules()



def fits_from_fit_matrix(
    fit_matrix: pl.DataFrame | pl.LazyFrame,
    *,
    kv_dtype: str = RECOMMENDATION_KV_DTYPE,
    seq_total: int = WORKLOAD.input_len + WORKLOAD.output_len,
) -> pl.DataFrame:
    """The fewest GPUs per model x GPU x precision that fit, as ``model_gpu_speed`` counts them: at the
    recommendations' KV dtype and, per model, the smallest context holding ``seq_total`` tokens (else
    the largest the model has)."""
    rows = fit_matrix.lazy().filter(pl.col("kv_dtype") == kv_dtype)
    holding = pl.col("context_length").filter(pl.col("context_length") >= seq_total).min()
    context = rows.group_by("model_id").agg(
        pl.when(holding.is_not_null()).then(holding).otherwise(pl.col("context_length").max()).alias("context_length")
    )
    return (
        rows.join(context, on=["model_id", "context_length"], how="semi")
        .filter(pl.col("fits"))
        .group_by("model_id", "gpu_id", "precision")
        .agg(pl.col("gpu_count").min())
        .collect()
    )


def _price_text(prices: pl.DataFrame) -> pl.LazyFrame:
    return comparable_prices(prices.lazy()).select(
        "model_id",
        pl.col("provider").alias("subject"),
        pl.format("${}/${}", pl.col("input_usd_per_mtok").round(6), pl.col("output_usd_per_mtok").round(6)).alias("text"),
    ).unique(subset=["model_id", "subject"], keep="first").sort(["model_id", "subject"])


def _fit_text(fits: pl.DataFrame) -> pl.LazyFrame:
    return fits.lazy().select(
        "model_id",
        pl.format("{} {}", "gpu_id", "precision").alias("subject"),
        pl.format("fits on {} GPU(s)", "gpu_count").alias("text"),
    )


def _rank1(recommendations: pl.DataFrame, columns: tuple[str, ...]) -> pl.LazyFrame:
    config = pl.format("{} x {} {}", "gpu_count", "gpu_id", "precision")
    return (
        recommendations.lazy()
        .filter(pl.col("rank") == 1)
        .unpivot(on=list(columns), index=["model_id", "gpu_count", "gpu_id", "precision"], variable_name="subject", value_name="value")
        .select(
            "model_id",
            "subject",
            pl.col("value").cast(pl.Float64),
            pl.when(pl.col("value").is_not_null())
            .then(pl.format("{} ({})", pl.col("value").cast(pl.Float64).round(4), config))
            .alias("text"),
        )
    )


def _outer(before: pl.LazyFrame, after: pl.LazyFrame, common: pl.LazyFrame) -> pl.LazyFrame:
    return (
        before.join(common, on="model_id", how="semi")
        .join(after.join(common, on="model_id", how="semi"), on=["model_id", "subject"], how="full", coalesce=True, suffix="_after")
        .rename({"text": "before", "text_after": "after"})
    )


def model_changes(
    current: PublishedTables,
    previous: PublishedTables | None,
    previous_publication_id: str | None,
    *,
    rules: ChangeRules = CHANGE_RULES,
) -> pl.DataFrame:
    """Every change of the module doc, sorted by model, kind (in ``CHANGE_KINDS`` order), subject."""
    now = current.models.lazy().select("model_id").unique()
    if previous is None:
        parts = [now.select("model_id", change_kind=pl.lit("new_model"), subject=pl.lit("model"),
                            before=pl.lit("not published"), after=pl.lit("published"))]
    else:
        then = previous.models.lazy().select("model_id").unique()
        common = now.join(then, on="model_id", how="semi")
        prices = _outer(_price_text(previous.provider_prices), _price_text(current.provider_prices), common).filter(
            pl.col("before").ne_missing(pl.col("after"))
        )
        fits = _outer(_fit_text(previous.fits), _fit_text(current.fits), common)
        estimates = (
            _outer(_rank1(previous.recommendations, rules.estimate_columns),
                   _rank1(current.recommendations, rules.estimate_columns), common)
            .filter(
                pl.col("value").is_null().ne(pl.col("value_after").is_null())
                | ((pl.col("value_after") / pl.col("value") - 1.0).abs() > rules.estimate_tolerance)
            )
        )
        parts = [
            now.join(then, on="model_id", how="anti").select(
                "model_id", change_kind=pl.lit("new_model"), subject=pl.lit("model"),
                before=pl.lit("not published"), after=pl.lit("published")),
            then.join(now, on="model_id", how="anti").select(
                "model_id", change_kind=pl.lit("removed_model"), subject=pl.lit("model"),
                before=pl.lit("published"), after=pl.lit("not published")),
            prices.select("model_id", change_kind=pl.lit("price"), subject="subject",
                          before=pl.col("before").fill_null("no price"), after=pl.col("after").fill_null("no price")),
            fits.filter(pl.col("before").is_null()).select(
                "model_id", change_kind=pl.lit("new_fit"), subject="subject", before=pl.lit("does not fit"), after="after"),
            fits.filter(pl.col("after").is_null()).select(
                "model_id", change_kind=pl.lit("lost_fit"), subject="subject", before="before", after=pl.lit("does not fit")),
            estimates.select("model_id", change_kind=pl.lit("estimate"), subject="subject",
                             before=pl.col("before").fill_null("unknown"), after=pl.col("after").fill_null("unknown")),
        ]
    order = {kind: i for i, kind in enumerate(CHANGE_KINDS)}
    return (
        pl.concat([part.select(CHANGE_COLUMNS[:-1]).cast({c: pl.Utf8 for c in CHANGE_COLUMNS[:-1]}) for part in parts])
        .with_columns(previous_publication_id=pl.lit(previous_publication_id, pl.Utf8))
        .with_columns(_order=pl.col("change_kind").replace_strict(order, return_dtype=pl.Int64))
        .sort(["model_id", "_order", "subject"])
        .select(CHANGE_COLUMNS)
        .collect()
    )
