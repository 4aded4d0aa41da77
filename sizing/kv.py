"""KV-cache accounting: KV groups from per-layer caches, and bytes per sequence per GPU as vLLM allocates.

Shared module: ``kv_groups`` / ``kv_bytes_per_token`` (TP=1 per-token price used by
``sizing.architecture``) and the per-GPU, per-sequence accounting used by the grid.

``kv_bytes_per_token_bf16`` counts only caches that grow with context (full attention, MLA latents,
DSA indexer keys) at TP=1 in BF16. Sliding-window and chunked-local layers hold at most ``window``
tokens, so at long context they add nothing per extra token and appear only as groups with their
window. Linear-attention / SSM layers keep a constant per-sequence state (``state`` groups).

Per KV group (``sizing.model_spec.KVGroup``), one sequence at context ``s`` on tensor-parallel degree
``t`` with KV dtype of ``b`` bytes per element (bf16 = 2, fp8 = 1; independent of weight precision):

- ``s_alloc = ceil(s / 16) * 16`` -- vLLM pages of 16 tokens (``vllm/v1/kv_cache_interface.py``).
- ``full``: ``layers * max(kv_heads // t, 1) * elems * b * s_alloc``. KV heads are split across
  ranks; when ``t > kv_heads`` each rank holds one replicated head (GQA replication).
- ``sliding`` / ``chunked``: as ``full`` but tokens capped at ``ceil(window/16)*16 + 16``
  (window + one block, vLLM ``SlidingWindowSpec``).
- ``mla``: ``layers * 1 * (kv_lora_rank + rope_dim) * b * s_alloc`` -- the latent is replicated on
  every rank, so no division by ``t`` (vLLM ``MLAAttentionSpec``; llm-d-planner divides, wrongly).
- ``state``: ``ceil(layers * state_bytes_per_layer / t)`` -- constant per sequence, in the state's
  own dtype, independent of ``s`` and ``b`` (vLLM ``MambaSpec``).

Sources and worked vectors: sizing_anchors 2.3 (Llama-3.1-8B 131,072 B/token, 405B 516,096,
DeepSeek-V3 70,272 at BF16 TP1).

``kv_bytes_per_seq`` is the scalar reference; ``kv_per_gpu_frame`` is the vectorised implementation
the grid uses (tests check they agree).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import polars as pl

from sizing.constants import KV_DTYPE_BYTES, VLLM_MEMORY
from sizing.model_spec import KVGroup

if TYPE_CHECKING:  # pragma: no cover
    from sizing.layouts import LayerCache

BF16_BYTES = 2
WINDOWED_KINDS = ("sliding", "chunked")
GROWING_KINDS = ("full", "mla")


def kv_groups(caches: list[LayerCache]) -> tuple[KVGroup, ...]:
    """Merge identical per-layer caches into groups, in first-seen order; ``none`` layers drop out."""
    counts = Counter(c for c in caches if c.kind != "none")
    return tuple(
        KVGroup(kind=c.kind, layers=n, kv_heads=c.kv_heads, elems_per_token_per_head=c.elems_per_token_per_head,
                window=c.window, state_bytes_per_layer=c.state_bytes)
        for c, n in counts.items()
    )


def kv_dtype_bytes(kv_dtype: str) -> int:
    try:
        return KV_DTYPE_BYTES[kv_dtype]
    except KeyError:
        raise ValueError(f"unknown kv_dtype {kv_dtype!r}; expected one of {sorted(KV_DTYPE_BYTES)}") from None


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


def _heads_per_rank(group: KVGroup, tp: int) -> int:
    if group.kind == "mla":
        return group.kv_heads or 1
    return max(group.kv_heads // tp, 1)


def kv_bytes_per_token(
    groups: Iterable[KVGroup], bytes_per_elem: int = BF16_BYTES, *, tp: int = 1, kv_dtype: str | None = None
) -> int:
    """Marginal bytes per extra token at long context (full + MLA groups only), per GPU at ``tp``.
    ``kv_dtype`` (bf16/fp8), when given, overrides ``bytes_per_elem``."""
    b = kv_dtype_bytes(kv_dtype) if kv_dtype is not None else bytes_per_elem
    return sum(
        g.layers * _heads_per_rank(g, tp) * g.elems_per_token_per_head * b for g in groups if g.kind in GROWING_KINDS
    )


def kv_bytes_per_seq(
    groups: Iterable[KVGroup],
    context: int,
    *,
    tp: int = 1,
    kv_dtype: str = "bf16",
    block_size: int = VLLM_MEMORY.block_size,
) -> int:
    """Bytes of KV cache (and recurrent state) one sequence of ``context`` tokens needs on each GPU."""
    b = kv_dtype_bytes(kv_dtype)
    s_alloc = _round_up(context, block_size)
    total = 0
    for g in groups:
        if g.kind == "state":
            total += -(-(g.layers * g.state_bytes_per_layer) // tp)
            continue
        tokens = s_alloc
        if g.kind in WINDOWED_KINDS and g.window:
            tokens = min(s_alloc, _round_up(g.window, block_size) + VLLM_MEMORY.window_extra_blocks * block_size)
        total += g.layers * _heads_per_rank(g, tp) * g.elems_per_token_per_head * b * tokens
    return total


# --------------------------------------------------------------------------------------------------
# Vectorised
# --------------------------------------------------------------------------------------------------


def kv_group_bytes_exprs(tp: pl.Expr, context: pl.Expr, block_size: int = VLLM_MEMORY.block_size) -> tuple[pl.Expr, pl.Expr]:
    """Per-group expressions over a frame with KV-group columns plus ``tp`` and ``context``.

    Returns ``(elem_bytes, state_bytes)``: KV bytes per sequence at 1 byte/element (multiply by the KV
    dtype's bytes) and dtype-independent recurrent-state bytes.
    """
    kind = pl.col("kind")
    s_alloc = ((context + (block_size - 1)) // block_size) * block_size
    w_alloc = ((pl.col("window") + (block_size - 1)) // block_size) * block_size + VLLM_MEMORY.window_extra_blocks * block_size
    tokens = (
        pl.when(kind.is_in(WINDOWED_KINDS) & pl.col("window").fill_null(0).gt(0))
        .then(pl.min_horizontal(s_alloc, w_alloc))
        .otherwise(s_alloc)
    )
    heads = (
        pl.when(kind == "mla")
        .then(pl.max_horizontal(pl.col("kv_heads"), pl.lit(1)))
        .otherwise(pl.max_horizontal(pl.col("kv_heads") // tp, pl.lit(1)))
    )
    elem = (
        pl.when(kind == "state")
        .then(pl.lit(0, pl.Int64))
        .otherwise(pl.col("layers") * heads * pl.col("elems_per_token_per_head") * tokens)
    )
    state = (
        pl.when(kind == "state")
        .then(-((-(pl.col("layers") * pl.col("state_bytes_per_layer"))) // tp))
        .otherwise(pl.lit(0, pl.Int64))
    )
    return elem.cast(pl.Int64), state.cast(pl.Int64)


def kv_per_gpu_frame(
    kv_groups: pl.DataFrame | pl.LazyFrame,
    *,
    gpu_counts: Sequence[int],
    contexts: Sequence[int],
    kv_dtypes: Sequence[str] = ("bf16",),
) -> pl.LazyFrame:
    """KV bytes per sequence per GPU for every (model, gpu_count, context, kv_dtype).

    Cross-joins the (small) KV-group table with the TP degrees, contexts and KV dtypes, evaluates the
    per-group expressions and sums per model. Columns: model_id, gpu_count, context_length, kv_dtype,
    kv_bytes_per_seq (Int64).
    """
    axes = (
        pl.LazyFrame({"gpu_count": list(gpu_counts)}, schema={"gpu_count": pl.Int64})
        .join(pl.LazyFrame({"context_length": list(contexts)}, schema={"context_length": pl.Int64}), how="cross")
        .join(
            pl.LazyFrame(
                {"kv_dtype": list(kv_dtypes), "_b": [kv_dtype_bytes(d) for d in kv_dtypes]},
                schema={"kv_dtype": pl.Utf8, "_b": pl.Int64},
            ),
            how="cross",
        )
    )
    elem, state = kv_group_bytes_exprs(pl.col("gpu_count"), pl.col("context_length"))
    return (
        kv_groups.lazy()
        .join(axes, how="cross")
        .with_columns((elem * pl.col("_b") + state).alias("kv_bytes_per_seq"))
        .group_by("model_id", "gpu_count", "context_length", "kv_dtype")
        .agg(pl.col("kv_bytes_per_seq").sum())
    )


def attention_tokens_frame(kv_groups: pl.DataFrame | pl.LazyFrame, lengths: Sequence[int]) -> pl.LazyFrame:
    """Sum over attention layers of the tokens each layer attends to at ``length``:
    ``sum_g layers_g * min(length, window_g)`` (state/linear layers excluded). Used for the attention
    FLOPs of prefill (``2*n_q*d*S*attn_tokens(S)``) and decode (``4*n_q*d*attn_tokens(s_mean)``).
    Columns: model_id, length, attn_layer_tokens (Float64)."""
    lens = pl.LazyFrame({"length": list(lengths)}, schema={"length": pl.Int64})
    kind = pl.col("kind")
    span = (
        pl.when(kind.is_in(WINDOWED_KINDS) & pl.col("window").fill_null(0).gt(0))
        .then(pl.min_horizontal(pl.col("length"), pl.col("window")))
        .otherwise(pl.col("length"))
    )
    return (
        kv_groups.lazy()
        .join(lens, how="cross")
        .with_columns(pl.when(kind == "state").then(0).otherwise(pl.col("layers") * span).cast(pl.Float64).alias("attn_layer_tokens"))
        .group_by("model_id", "length")
        .agg(pl.col("attn_layer_tokens").sum())
    )
