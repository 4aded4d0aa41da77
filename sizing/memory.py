"""Per-GPU memory budget and fit, faithful to vLLM V1 (see ``sizing.constants.VLLMMemory``).

For one replica of ``n = gpu_count`` GPUs laid out as ``t`` tensor-parallel x ``p`` pipeline-parallel
ranks (``sizing.parallelism``), per GPU:

    usable   = physical_bytes x cuda_visible_fraction x gpu_memory_utilization
                                                                    (vLLM caps TOTAL memory use)
    weights  = weights_bytes(precision) / n                         (linear layers sharded by TP,
                                                                     layers split across PP stages)
    overhead = activation_peak(arch) + non_torch(n) + cuda_graph    (GiB constants, sizing.constants)
    KV pool  = usable - weights - overhead
    fits at context s  <=>  tp_valid and KV pool >= kv_bytes_per_seq(s)   (vLLM refuses to start
                                                                            otherwise)
    max_concurrent_seqs = floor(KV pool / kv_bytes_per_seq(s))     (uncapped; speed caps it at
                                                                     max_num_seqs)

``kv_bytes_per_seq`` is the per-GPU KV at tensor-parallel degree ``t`` divided over the ``p`` stages.
``tp_valid`` (the layout starts on a real engine) comes from ``sizing.parallelism``; invalid rows
stay in the fit matrix with ``fits = False``.

Physical memory is the gpus frame's ``memory_gb`` (1e9 bytes, the datasheet capacity), scaled by the share
CUDA actually reports (``cuda_visible_fraction``).
"""

from __future__ import annotations

import polars as pl

from sizing.constants import FIT_CLASSES, GB, GIB, VLLM_MEMORY, VLLMMemory


def activation_gib_expr(mem: VLLMMemory = VLLM_MEMORY) -> pl.Expr:
    """Activation peak per GPU (GiB) by architecture class, with dense / MoE / multimodal fallbacks."""
    fallback = (
        pl.when(pl.col("params_vision").fill_null(0) > 0)
        .then(pl.lit(mem.activation_gib_multimodal))
        .when(pl.col("is_moe").fill_null(False))
        .then(pl.lit(mem.activation_gib_moe))
        .otherwise(pl.lit(mem.activation_gib_dense))
    )
    known = pl.col("architecture").replace_strict(
        dict(mem.activation_gib_by_architecture), default=None, return_dtype=pl.Float64
    )
    return pl.coalesce(known, fallback)


def non_torch_gib_expr(tp: pl.Expr, mem: VLLMMemory = VLLM_MEMORY) -> pl.Expr:
    return pl.when(tp > 1).then(pl.lit(mem.non_torch_gib_tp_multi)).otherwise(pl.lit(mem.non_torch_gib_tp1))


def overhead_bytes_expr(tp: pl.Expr, mem: VLLMMemory = VLLM_MEMORY) -> pl.Expr:
    return (activation_gib_expr(mem) + non_torch_gib_expr(tp, mem) + mem.cuda_graph_gib) * GIB


def max_num_seqs_expr(mem: VLLMMemory = VLLM_MEMORY) -> pl.Expr:
    """vLLM's default ``--max-num-seqs`` for the GPU (1024 on >= 70 GiB non-A100 GPUs, else 256)."""
    large = (pl.col("memory_gb") * GB >= mem.large_gpu_gib * GIB) & ~pl.col("name").fill_null("").str.contains("A100")
    return pl.when(large).then(pl.lit(mem.max_num_seqs_large)).otherwise(pl.lit(mem.max_num_seqs_small))


def fit_class_expr(concurrency: pl.Expr) -> pl.Expr:
    c = FIT_CLASSES
    labels = c.labels
    return (
        pl.when(concurrency >= c.excellent)
        .then(pl.lit(labels[5]))
        .when(concurrency >= c.good)
        .then(pl.lit(labels[4]))
        .when(concurrency >= c.moderate)
        .then(pl.lit(labels[3]))
        .when(concurrency >= c.tight)
        .then(pl.lit(labels[2]))
        .when(concurrency >= c.very_tight)
        .then(pl.lit(labels[1]))
        .otherwise(pl.lit(labels[0]))
    )


def add_memory_columns(lf: pl.LazyFrame, mem: VLLMMemory = VLLM_MEMORY) -> pl.LazyFrame:
    """Add the budget columns to a frame with model columns, gpu columns, ``gpu_count``, ``tp_valid``
    (``sizing.parallelism``), ``weights_bytes`` (at the row's precision) and ``kv_bytes_per_seq`` (per
    GPU at the row's context and layout).

    Adds: weights_gb_per_gpu, kv_gb_per_seq, overhead_gb (= activation_gb + non_torch_gb +
    cuda_graph_gb, each published apart: the activation peak, vLLM's non-torch memory -- CUDA
    context, cuBLAS workspaces and NCCL communication buffers -- and the CUDA-graph pool), usable_gb,
    kv_pool_gb, headroom_gb, max_concurrent_seqs, fits, fit_class.
    """
    tp = pl.col("gpu_count")
    usable = pl.col("memory_gb") * GB * mem.cuda_visible_fraction * mem.gpu_memory_utilization
    weights = pl.col("weights_bytes") / tp
    overhead = overhead_bytes_expr(tp, mem)
    kv = pl.col("kv_bytes_per_seq")
    lf = lf.with_columns(
        weights_gb_per_gpu=weights / GB,
        kv_gb_per_seq=kv / GB,
        overhead_gb=overhead / GB,
        activation_gb=activation_gib_expr(mem) * GIB / GB,
        non_torch_gb=non_torch_gib_expr(tp, mem) * GIB / GB,
        cuda_graph_gb=pl.lit(mem.cuda_graph_gib * GIB / GB),
        usable_gb=usable / GB,
        kv_pool_gb=(usable - weights - overhead) / GB,
    )
    fits = pl.col("tp_valid") & kv.is_not_null() & (kv > 0) & (pl.col("kv_pool_gb") * GB >= kv)
    lf = lf.with_columns(fits=fits.fill_null(False))
    conc = pl.when(pl.col("fits")).then((pl.col("kv_pool_gb") * GB / kv).floor().cast(pl.Int64)).otherwise(pl.lit(0, pl.Int64))
    return lf.with_columns(
        headroom_gb=(pl.col("kv_pool_gb") - pl.col("kv_gb_per_seq")),
        max_concurrent_seqs=conc,
        fit_class=fit_class_expr(conc),
    )
