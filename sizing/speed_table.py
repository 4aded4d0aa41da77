"""``model_gpu_speed``: speed per model x GPU x precision, not only the best per GPU.

Taken from the frame ``sizing.grid`` evaluates for the recommendations (one evaluation yields both,
``sizing.grid.rank_and_speeds``).
"""

from __future__ import annotations

import polars as pl

SPEED_COLUMNS = [
    "model_id",
    "gpu_id",
    "precision",
    "gpu_generation",
    "gpu_count",
    "tensor_parallel",
    "pipeline_parallel",
    "context_length",
    "decode_tok_s",
    "decode_tok_s_slo",
    "decode_tok_s_batch1",
    "itl_ms",
    "ttft_ms",
    "speed_basis",
    "speed_error_band",
    "cost_per_month_usd",
    "cost_per_mtok_usd",
    "weights_gb_per_gpu",
    "kv_gb_per_seq",
    "overhead_gb",
    "fit_class",
    "needs_other_checkpoint",
    "checkpoint_model_id",
]


def speed_table(evaluated: pl.LazyFrame) -> pl.LazyFrame:
    """``model_gpu_speed``: per model x GPU x precision, the evaluated row with the fewest GPUs (every
    evaluated row fits with a valid layout, ``fit_matrix``'s ``fits``), ties (several KV dtypes in a
    library caller's frame) broken by ``kv_dtype``. ``decode_tok_s`` is the highest output tok/s over
    every batch (no SLO); ``decode_tok_s_slo`` the highest whose ITL meets the SLO (null when no batch
    does); ``itl_ms``, ``cost_per_mtok_usd`` are at the batch recommendations use (the SLO-bound one,
    else the highest-throughput one), so a row equal to a recommendation's configuration carries its
    numbers."""
    return (
        evaluated.sort(["model_id", "gpu_id", "precision", "gpu_count", "kv_dtype"])
        .unique(subset=["model_id", "gpu_id", "precision"], keep="first", maintain_order=True)
        .with_columns(
            decode_tok_s_slo=pl.when(pl.col("meets_itl_slo")).then(pl.col("decode_tok_s")),
            decode_tok_s=pl.col("decode_tok_s_max"),
        )
        .select(SPEED_COLUMNS)
    )
