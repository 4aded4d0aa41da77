"""Sizing a whole catalogue: each distinct sizing signature once, in chunks of bounded memory.

``size_catalogue`` gives the same rows as ``fit_matrix`` + ``rank_and_speeds`` over the whole
catalogue (a test holds it row for row on the bundled snapshot), but

- **dedup**: models that share a sizing signature (``sizing.signature``: fine-tunes and re-uploads
  of one architecture) are sized once, by one representative, and the rows are copied to every
  member; what differs per model is then applied per model: API prices (``sizing.cost``) and the
  sibling repo with other weights (``sizing.checkpoints``);
- **chunks**: the signatures are sized ``chunk_size`` at a time and each chunk's rows are handed to
  ``sink`` (e.g. written to Parquet) instead of being kept, so memory is bounded by a chunk, not by
  the catalogue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import polars as pl

from sizing.checkpoints import checkpoint_columns
from sizing.constants import (
    DEFAULT_CONTEXTS,
    DEFAULT_GPU_COUNTS,
    PUBLISHED_KV_DTYPES,
    RECOMMENDATION_KV_DTYPE,
    WORKLOAD,
)
from sizing.cost import api_prices, breakeven_mtok_per_month
from sizing.grid import RECOMMENDATION_COLUMNS, fit_matrix, rank_and_speeds
from sizing.model_spec import PRECISIONS
from sizing.signature import shard_index_expr, signatures
from sizing.speed_table import SPEED_COLUMNS

#: signatures sized per chunk: measured on 2 cores, larger chunks gain little speed and cost memory
DEFAULT_CHUNK = 250
#: columns of a recommendation that depend on the model's own API prices, not on its signature
_API_COLUMNS = ("cheapest_api_output_usd_per_mtok", "api_usd_per_mtok_at_mix", "breakeven_mtok_per_month")

Sink = Callable[[str, pl.DataFrame], None]


@dataclass
class CatalogueSizing:
    """Counts of what was sized, and the frames when no sink took them."""

    models: int = 0
    signatures: int = 0
    chunks: int = 0
    fit_rows: int = 0
    recommendation_rows: int = 0
    speed_rows: int = 0
    seconds_fit: float = 0.0
    seconds_recommend: float = 0.0
    frames: dict[str, list[pl.DataFrame]] = field(default_factory=dict)

    def table(self, name: str) -> pl.DataFrame:
        """A table kept in memory (``sink`` None): ``fit_matrix``, ``recommendations``, ``model_gpu_speed``."""
        return pl.concat(self.frames[name]) if self.frames.get(name) else pl.DataFrame()


def representatives(models: pl.DataFrame, kv_groups: pl.DataFrame) -> pl.DataFrame:
    """``model_id``, ``signature``, ``representative`` (the first model id of its signature, sorted)."""
    sig = signatures(models, kv_groups)
    return sig.with_columns(representative=pl.col("model_id").min().over("signature")).sort("model_id")


def _expand(rows: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    """Rows of representatives copied to every member model of their signature."""
    columns = rows.columns
    return (
        rows.rename({"model_id": "representative"})
        .join(members.select("representative", "model_id"), on="representative")
        .select(columns)
    )


def _per_model(recs: pl.DataFrame, speeds: pl.DataFrame, siblings: pl.DataFrame, api: pl.DataFrame
               ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Re-apply what is the model's own: its sibling checkpoint repo and its API prices."""
    recs = (
        recs.drop("checkpoint_model_id", *_API_COLUMNS)
        .join(siblings, on=["model_id", "precision"], how="left")
        .join(api, on="model_id", how="left")
        .with_columns(breakeven_mtok_per_month=breakeven_mtok_per_month(
            pl.col("cost_per_month_usd"), pl.col("api_usd_per_mtok_at_mix")))
    )
    speeds = speeds.drop("checkpoint_model_id").join(siblings, on=["model_id", "precision"], how="left")
    return recs.select(RECOMMENDATION_COLUMNS), speeds.select(SPEED_COLUMNS)


def size_catalogue(
    models: pl.DataFrame,
    kv_groups: pl.DataFrame,
    gpus: pl.DataFrame,
    prices: pl.DataFrame | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    sink: Sink | None = None,
    precisions: Sequence[str] = PRECISIONS,
    gpu_counts: Sequence[int] = DEFAULT_GPU_COUNTS,
    contexts: Sequence[int] = DEFAULT_CONTEXTS,
    kv_dtypes: Sequence[str] = PUBLISHED_KV_DTYPES,
    recommendation_kv_dtype: str = RECOMMENDATION_KV_DTYPE,
    shard: tuple[int, int] | None = None,
    **workload,
) -> CatalogueSizing:
    """Fit matrix, recommendations and speed table of every supported model (see module doc).
    ``sink(table, frame)`` receives each chunk's rows (tables ``fit_matrix``, ``recommendations``,
    ``model_gpu_speed``); without one they are kept in the result. ``shard=(i, n)`` sizes only the
    signatures of shard ``i`` of ``n`` (``sizing.signature.shard_index``) while still reading the
    whole catalogue for what is per model (sibling repos); the n shards together give every row
    once. ``workload``: ``input_len``, ``output_len``, ``top_n``, ``itl_slo_ms``, ``utilisation`` of
    ``rank_and_speeds``."""
    supported = models.filter(pl.col("supported"))
    members = representatives(supported, kv_groups)
    if shard is not None:
        index, count = shard
        if not 0 <= index < count:
            raise ValueError(f"shard {index} of {count}: expected 0 <= shard < count")
        members = members.filter(shard_index_expr(pl.col("signature"), count) == index)
    reps = members.select("representative").unique().sort("representative").to_series().to_list()
    result = CatalogueSizing(models=members.height, signatures=len(reps))
    keep = sink or (lambda name, frame: result.frames.setdefault(name, []).append(frame))
    input_len = workload.get("input_len", WORKLOAD.input_len)
    output_len = workload.get("output_len", WORKLOAD.output_len)
    # per model, over the whole catalogue (a sibling repo may sit in another chunk)
    siblings = checkpoint_columns(supported.lazy(), pl.LazyFrame({"precision": list(precisions)})).select(
        "model_id", "precision", "checkpoint_model_id").collect()
    api = api_prices(prices, input_len, output_len).collect()
    # no signature at all still gives each table once, empty with its columns
    for start in range(0, len(reps), chunk_size) or [0]:
        chunk_ids = pl.Series("model_id", reps[start : start + chunk_size])
        chunk_models = supported.filter(pl.col("model_id").is_in(chunk_ids.implode()))
        chunk_groups = kv_groups.filter(pl.col("model_id").is_in(chunk_ids.implode()))
        chunk_members = members.filter(pl.col("representative").is_in(chunk_ids.implode()))
        started = time.perf_counter()
        matrix = fit_matrix(chunk_models, chunk_groups, gpus, precisions=precisions, gpu_counts=gpu_counts,
                            contexts=contexts, kv_dtype=tuple(kv_dtypes))
        fitted = time.perf_counter()
        ranked, speeds = rank_and_speeds(
            matrix.filter(pl.col("kv_dtype") == recommendation_kv_dtype), chunk_models, chunk_groups, gpus, None, **workload
        )
        result.seconds_fit += fitted - started
        result.seconds_recommend += time.perf_counter() - fitted
        ranked, speeds = _per_model(_expand(ranked, chunk_members), _expand(speeds, chunk_members), siblings, api)
        fit = _expand(matrix, chunk_members)
        keep("fit_matrix", fit)
        keep("recommendations", ranked)
        keep("model_gpu_speed", speeds)
        result.chunks += 1
        result.fit_rows += fit.height
        result.recommendation_rows += ranked.height
        result.speed_rows += speeds.height
    return result
