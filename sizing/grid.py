"""The vectorised model x GPU x precision x GPU-count x context fit matrix, and recommendations.

Everything is Polars expressions and joins over whole frames: no Python loop per cell.

``fit_matrix`` -- memory only (``sizing.kv`` + ``sizing.memory``). One row per supported model x GPU x
precision (with non-zero weight bytes) x gpu_count x context x KV dtype. ``gpu_count`` GPUs run the
layout an engine would start (``sizing.parallelism``): the largest valid tensor-parallel degree inside
one scale-up domain, the rest pipeline parallel across the GPU's scale-out fabric; ``tp_valid`` is
false (and ``layout_reason`` says why) when no such layout exists. Context rows above a model's
``max_context`` are dropped; a model whose ``max_context`` is below every grid context gets one row
at its ``max_context`` instead (so short-context models still appear).

``evaluate_configs`` -- speed + cost for fitting rows (``sizing.speed``, ``sizing.cost``) at a request
mix ``input_len``/``output_len``: the workload concurrency is ``floor(KV pool / kv(input+output))``
capped by vLLM's ``max_num_seqs``; batch sizes 1, 2, 4, ... up to that cap (plus the cap itself) are
evaluated and the batch with the highest output tok/s whose ITL meets the SLO is kept. Every row
carries ``speed_basis`` (``calibrated`` when its GPU generation x precision x dense/MoE class has
fitted constants in ``sizing.constants.SPEED_CLASSES``, else ``extrapolated``) and
``speed_error_band``: the held-out p90 of ``max(est/meas, meas/est)`` of its class, or of all
held-out rows (``CALIBRATION.held_out_p90``) for extrapolated rows and classes with too few
held-out rows (``sizing.speed.speed_basis_columns``).

``recommendations`` -- ranking, explicit and reproducible from published columns. Rows are compared
on one metric, lower is better: ``cost_per_mtok_usd`` when priced, else GPU-seconds per token
(``gpu_count / decode_tok_s``).
  1. for a quantized repo (``checkpoint_precision`` not bf16), rows deployable from this repo as is
     (``needs_other_checkpoint`` false, ``sizing.checkpoints``) first: its rank 1 runs its own weights;
  2. priced rows (hourly price known) before unpriced ones;
  3. rows meeting the ITL SLO (``itl_ms <= itl_slo_ms`` at the chosen batch) first;
  4. the metric, where values within 1 % are ties (``RANKING.tie_band``: bands of 1 % measured from
     the best row of the comparison), broken by: deployable as is, then higher precision
     (bf16 > fp8 > int8 > fp4 > int4, ``RANKING.precision_preference``), then fewer GPUs, then the
     exact metric, ``gpu_id``, ``precision``.
  The same rules pick one row per GPU model (its best count/precision), then order the GPUs;
  ``rank`` 1..top_n per model; ``score = 100 * min(cost_per_mtok_usd of SLO-meeting priced rows) /
  cost_per_mtok_usd`` for SLO-meeting priced rows (100 = best), null otherwise. The context used is
  the smallest grid context that holds ``input_len + output_len`` (else the largest available).

``rank_and_speeds`` -- ``(recommendations, model_gpu_speed)`` from one evaluation: the evaluated frame
(fitting rows at the chosen context, ``evaluate_configs``, checkpoint columns) is collected once and
both are derived from it. ``model_gpu_speed`` keeps, per model x GPU x precision, the row with the
fewest GPUs: ``decode_tok_s`` the highest output tok/s over every batch (no SLO), ``decode_tok_s_slo``
the highest whose ITL meets the SLO (null when none does), ``itl_ms`` and the costs at the batch the
recommendations use (SLO-bound, else the highest-throughput one).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from sizing.checkpoints import checkpoint_columns
from sizing.constants import (
    COST,
    DECODE,
    DEFAULT_CONTEXTS,
    DEFAULT_GPU_COUNTS,
    GB,
    PREFILL,
    RANKING,
    WORKLOAD,
    DecodeEfficiency,
    PrefillEfficiency,
    Ranking,
)
from sizing.cost import api_prices, cost_columns
from sizing.kv import attention_tokens_frame, kv_per_gpu_frame
from sizing.memory import add_memory_columns, max_num_seqs_expr
from sizing.model_spec import PRECISIONS
from sizing.parallelism import (
    CONSTRAINT_COLUMNS,
    TOPOLOGY_COLUMNS,
    add_layout_columns,
    tp_candidates,
    with_constraint_columns,
    with_topology_columns,
)
from sizing.speed import (
    attention_dp_expr,
    attention_dp_kv_pool_bytes_expr,
    class_scale_columns,
    decode_itl_s_expr,
    gpu_generation_expr,
    output_tok_s_expr,
    prefill_compute_s_expr,
    speed_basis_columns,
    ttft_s_expr,
)
from sizing.speed_table import SPEED_COLUMNS, speed_table

#: Polars engine for the grid's collects. Measured on 250 synthetic models x 43 GPUs (2 cores,
#: Polars 2.1): recommendations 1.0 s in memory, 1.3 s streaming (the default), same rows; the grid
#: is sized in chunks (sizing.catalogue), so one chunk's frames fit in memory.
COLLECT_ENGINE = "in-memory"

FIT_COLUMNS = [
    "model_id",
    "gpu_id",
    "precision",
    "gpu_count",
    "context_length",
    "kv_dtype",
    "weights_gb_per_gpu",
    "kv_gb_per_seq",
    "overhead_gb",
    "activation_gb",
    "non_torch_gb",
    "cuda_graph_gb",
    "usable_gb",
    "kv_pool_gb",
    "headroom_gb",
    "max_concurrent_seqs",
    "fit_class",
    "tensor_parallel",
    "pipeline_parallel",
    "expert_parallel",
    "tp_valid",
    "layout_reason",
    "fits",
]

CONFIG_KEYS = ["model_id", "gpu_id", "precision", "gpu_count", "context_length", "kv_dtype"]

_MODEL_MEMORY_COLUMNS = [
    "model_id",
    "architecture",
    "is_moe",
    "params_vision",
    "num_attention_heads",
    "num_kv_heads",
    "vocab_size",
    "max_context",
    "num_layers",
    *(c for c in CONSTRAINT_COLUMNS if c not in ("num_attention_heads", "num_kv_heads", "vocab_size")),
]
_MODEL_SPEED_COLUMNS = [
    "model_id",
    "is_moe",
    "params_total",
    "params_active",
    "params_unquantized",
    "params_routed_experts",
    "num_experts",
    "experts_per_token",
    "num_layers",
    "hidden_size",
    "num_attention_heads",
    "head_dim",
]
_GPU_COLUMNS = [
    "gpu_id",
    "name",
    "memory_gb",
    "memory_bandwidth_gbps",
    "bf16_tflops",
    "fp8_tflops",
    "int8_tops",
    "fp4_tflops",
    "interconnect_gbps",
    "hourly_usd",
]
_GPU_FLOAT_COLUMNS = [c for c in _GPU_COLUMNS if c not in ("gpu_id", "name")]


def _as_tuple(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _gpus_lazy(gpus: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    lf = gpus.lazy()
    names = lf.collect_schema().names()
    missing = [c for c in _GPU_FLOAT_COLUMNS if c not in names]
    lf = lf.with_columns(pl.lit(None, pl.Float64).alias(c) for c in missing).with_columns(
        pl.col(c).cast(pl.Float64) for c in _GPU_FLOAT_COLUMNS
    )
    return (
        with_topology_columns(lf)
        .with_columns(gpu_generation=gpu_generation_expr())
        .select("gpu_id", "name", "gpu_generation", *_GPU_FLOAT_COLUMNS, *TOPOLOGY_COLUMNS)
    )


def _models_lazy(models: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return with_constraint_columns(models.lazy())


def _per_stage(per_gpu_at_tp: pl.Expr) -> pl.Expr:
    """Bytes a GPU holds when the layers are split over ``pipeline_parallel`` stages (rounded up)."""
    pp = pl.col("pipeline_parallel").cast(pl.Int64)
    return (-((-per_gpu_at_tp) // pp)).cast(pl.Int64)


def fit_matrix_lazy(
    models: pl.DataFrame | pl.LazyFrame,
    kv_groups: pl.DataFrame | pl.LazyFrame,
    gpus: pl.DataFrame | pl.LazyFrame,
    *,
    precisions: Sequence[str] = PRECISIONS,
    gpu_counts: Sequence[int] = DEFAULT_GPU_COUNTS,
    contexts: Sequence[int] = DEFAULT_CONTEXTS,
    kv_dtype: str | Sequence[str] = "bf16",
) -> pl.LazyFrame:
    kv_dtypes = _as_tuple(kv_dtype)
    supported = _models_lazy(models).filter(pl.col("supported"))
    weight_cols = [f"weights_bytes_{p}" for p in precisions]
    weights = (
        supported.select("model_id", *weight_cols)
        .unpivot(on=weight_cols, index="model_id", variable_name="precision", value_name="weights_bytes")
        .with_columns(pl.col("precision").str.strip_prefix("weights_bytes_"))
        .filter(pl.col("weights_bytes").fill_null(0) > 0)
    )
    # Contexts per model: grid contexts <= max_context, or the model's max_context if below them all.
    min_ctx = min(contexts)
    ctx = pl.LazyFrame({"context_length": list(contexts)}, schema={"context_length": pl.Int64})
    model_ctx = pl.concat(
        [
            supported.select("model_id", "max_context")
            .join(ctx, how="cross")
            .filter((pl.col("max_context").fill_null(0) <= 0) | (pl.col("context_length") <= pl.col("max_context"))),
            supported.filter(pl.col("max_context").is_between(1, min_ctx - 1)).select(
                "model_id", "max_context", pl.col("max_context").alias("context_length")
            ),
        ]
    ).select("model_id", "context_length")
    extra_ctx = (
        models.lazy()
        .filter(pl.col("supported") & pl.col("max_context").is_between(1, min_ctx - 1))
        .select("max_context")
        .unique()
        .collect(engine=COLLECT_ENGINE)
        .to_series()
        .to_list()
    )
    kv = kv_per_gpu_frame(
        kv_groups.lazy().join(supported.select("model_id"), on="model_id", how="semi"),
        gpu_counts=tp_candidates(gpu_counts),
        contexts=sorted(set(contexts) | set(extra_ctx)),
        kv_dtypes=kv_dtypes,
    ).rename({"gpu_count": "tensor_parallel"})
    counts = pl.LazyFrame({"gpu_count": list(gpu_counts)}, schema={"gpu_count": pl.Int64})
    dtypes = pl.LazyFrame({"kv_dtype": list(kv_dtypes)}, schema={"kv_dtype": pl.Utf8})
    layouts = add_layout_columns(
        supported.select(_MODEL_MEMORY_COLUMNS)
        .join(_gpus_lazy(gpus).select("gpu_id", "name", "memory_gb", *TOPOLOGY_COLUMNS), how="cross")
        .join(counts, how="cross"),
        gpu_counts,
    )
    frame = (
        layouts.join(weights, on="model_id")
        .join(model_ctx, on="model_id")
        .join(dtypes, how="cross")
        .join(kv, on=["model_id", "tensor_parallel", "context_length", "kv_dtype"], how="left")
        .with_columns(kv_bytes_per_seq=_per_stage(pl.col("kv_bytes_per_seq")))
    )
    return add_memory_columns(frame).select(FIT_COLUMNS)


def fit_matrix(
    models: pl.DataFrame | pl.LazyFrame,
    kv_groups: pl.DataFrame | pl.LazyFrame,
    gpus: pl.DataFrame | pl.LazyFrame,
    *,
    precisions: Sequence[str] = PRECISIONS,
    gpu_counts: Sequence[int] = DEFAULT_GPU_COUNTS,
    contexts: Sequence[int] = DEFAULT_CONTEXTS,
    kv_dtype: str | Sequence[str] = "bf16",
) -> pl.DataFrame:
    """Memory fit of every supported model on every GPU / precision / count / context (see module doc)."""
    return fit_matrix_lazy(
        models, kv_groups, gpus, precisions=precisions, gpu_counts=gpu_counts, contexts=contexts, kv_dtype=kv_dtype
    ).collect(engine=COLLECT_ENGINE)


def evaluate_configs(
    fit_rows: pl.DataFrame | pl.LazyFrame,
    models: pl.DataFrame | pl.LazyFrame,
    kv_groups: pl.DataFrame | pl.LazyFrame,
    gpus: pl.DataFrame | pl.LazyFrame,
    prices: pl.DataFrame | pl.LazyFrame | None = None,
    *,
    input_len: int = WORKLOAD.input_len,
    output_len: int = WORKLOAD.output_len,
    itl_slo_ms: float | None = WORKLOAD.itl_slo_ms,
    utilisation: float = COST.default_utilisation,
    batch_sizes: Sequence[int] = WORKLOAD.batch_sizes,
    max_num_seqs: int | None = None,
    decode: DecodeEfficiency = DECODE,
    prefill: PrefillEfficiency = PREFILL,
) -> pl.LazyFrame:
    """Speed and cost of every fitting row of a fit matrix, at its best batch (see module doc).

    ``max_num_seqs`` overrides vLLM's per-GPU default cap (e.g. for engines with larger batches);
    ``decode``/``prefill`` override the efficiency constants (benchmarks/calibrate.py fits them)."""
    rows = fit_rows.lazy().filter(pl.col("fits"))
    seq_total = input_len + output_len
    s_mean = input_len + output_len // 2
    schema = rows.collect_schema()
    if "context_length" not in schema.names():
        raise ValueError("fit_rows must come from fit_matrix")
    present = rows.select("tensor_parallel", "kv_dtype").unique().collect(engine=COLLECT_ENGINE)
    kv = (
        kv_per_gpu_frame(
            kv_groups.lazy().join(rows.select("model_id").unique(), on="model_id", how="semi"),
            gpu_counts=sorted(set(present["tensor_parallel"].unique().to_list()) | {1}),
            contexts=sorted({seq_total, s_mean}),
            kv_dtypes=sorted(present["kv_dtype"].unique().to_list()) or ["bf16"],
        )
        .rename({"gpu_count": "tensor_parallel"})
        .collect(engine=COLLECT_ENGINE)
        .lazy()
    )
    kv_work = kv.filter(pl.col("context_length") == seq_total).select(
        "model_id", "tensor_parallel", "kv_dtype", pl.col("kv_bytes_per_seq").alias("kv_work_bytes")
    )
    kv_mean = kv.filter(pl.col("context_length") == s_mean).select(
        "model_id", "tensor_parallel", "kv_dtype", pl.col("kv_bytes_per_seq").alias("kv_mean_bytes")
    )
    # a sequence's KV at TP1: the attention-DP capacity and decode term of MoE rows (sizing.speed)
    kv_mean_tp1 = kv_mean.filter(pl.col("tensor_parallel") == 1).select(
        "model_id", "kv_dtype", pl.col("kv_mean_bytes").alias("kv_mean_bytes_tp1")
    )
    kv_work_tp1 = kv_work.filter(pl.col("tensor_parallel") == 1).select(
        "model_id", "kv_dtype", pl.col("kv_work_bytes").alias("kv_work_bytes_tp1")
    )
    attn = attention_tokens_frame(kv_groups, sorted({s_mean, input_len})).collect(engine=COLLECT_ENGINE).lazy()
    attn_mean = attn.filter(pl.col("length") == s_mean).select("model_id", pl.col("attn_layer_tokens").alias("attn_mean"))
    attn_in = attn.filter(pl.col("length") == input_len).select("model_id", pl.col("attn_layer_tokens").alias("attn_in"))

    cap = pl.lit(max_num_seqs) if max_num_seqs is not None else max_num_seqs_expr()
    base = (
        rows.join(models.lazy().select(_MODEL_SPEED_COLUMNS), on="model_id")
        .join(_gpus_lazy(gpus), on="gpu_id")
        .join(kv_work, on=["model_id", "tensor_parallel", "kv_dtype"], how="left")
        .join(kv_mean, on=["model_id", "tensor_parallel", "kv_dtype"], how="left")
        .join(kv_mean_tp1, on=["model_id", "kv_dtype"], how="left")
        .join(kv_work_tp1, on=["model_id", "kv_dtype"], how="left")
        .join(attn_mean, on="model_id", how="left")
        .join(attn_in, on="model_id", how="left")
        .with_columns(
            pl.col("attn_mean").fill_null(0.0),
            pl.col("attn_in").fill_null(0.0),
            kv_work_bytes=_per_stage(pl.col("kv_work_bytes")),
            domains=(pl.col("gpu_count") + pl.col("scale_up_domain_gpus") - 1) // pl.col("scale_up_domain_gpus"),
            weights_bytes=pl.col("weights_gb_per_gpu") * GB * pl.col("gpu_count"),
            input_len=pl.lit(input_len, pl.Int64),
            output_len=pl.lit(output_len, pl.Int64),
            workload_exceeds_context=pl.lit(seq_total) > pl.col("context_length"),
        )
        .with_columns(attention_dp=attention_dp_expr(decode), **class_scale_columns(decode, prefill))
        .with_columns(
            max_concurrent_seqs_workload=pl.when(pl.col("attention_dp"))
            .then((attention_dp_kv_pool_bytes_expr() / pl.col("kv_work_bytes_tp1")).floor() * pl.col("gpu_count"))
            .otherwise((pl.col("kv_pool_gb") * GB / pl.col("kv_work_bytes")).floor())
            .cast(pl.Int64),
            # every attention data-parallel rank schedules its own max_num_seqs
            _cap=pl.when(pl.col("attention_dp")).then(cap * pl.col("gpu_count")).otherwise(cap),
        )
        .with_columns(
            batch_limit=pl.max_horizontal(pl.min_horizontal(pl.col("max_concurrent_seqs_workload"), "_cap"), pl.lit(1)).cast(
                pl.Int64
            ),
            prefill_compute_s=prefill_compute_s_expr(pl.lit(input_len), pl.col("attn_in"), prefill),
        )
    )
    batches = pl.LazyFrame({"_cand": list(batch_sizes)}, schema={"_cand": pl.Int64})
    itl = decode_itl_s_expr(
        pl.col("batch_size"), pl.col("kv_mean_bytes"), pl.col("attn_mean"), decode, pl.col("kv_mean_bytes_tp1")
    )
    tok_s = output_tok_s_expr(pl.col("batch_size"), pl.col("itl_s"), pl.col("prefill_compute_s"), pl.lit(output_len))
    # The batch search works on a narrow frame keyed by a row number per configuration: only the
    # columns the ITL and throughput expressions read are crossed with the batch sizes (the wide
    # configuration rows with their strings are joined back once, to the chosen batch).
    # numbered once, collected: a lazy plan read by two branches may run twice, in another row order
    base = base.with_row_index("_cfg").collect(engine=COLLECT_ENGINE).lazy()
    batch_inputs = sorted(
        (set(itl.meta.root_names()) | set(tok_s.meta.root_names()) | {"batch_limit"}) - {"batch_size", "itl_s"}
    )
    # batch sizes min(candidate, batch_limit), each once: the candidates below the limit, and the
    # limit itself where a candidate reaches it
    narrow = base.select("_cfg", *batch_inputs)
    cand = (
        pl.concat([
            narrow.join(batches, how="cross").filter(pl.col("_cand") < pl.col("batch_limit"))
            .rename({"_cand": "batch_size"}),
            narrow.filter(pl.col("batch_limit") <= max(batch_sizes)).with_columns(batch_size=pl.col("batch_limit")),
        ], how="diagonal")
        .with_columns(itl_s=itl)
        .with_columns(decode_tok_s=tok_s, itl_ms=pl.col("itl_s") * 1e3)
        .with_columns(meets_itl_slo=pl.lit(True) if itl_slo_ms is None else (pl.col("itl_ms") <= itl_slo_ms))
        .select("_cfg", "batch_size", "itl_s", "decode_tok_s", "itl_ms", "meets_itl_slo")
        .collect(engine=COLLECT_ENGINE)  # read three times below; a lazy plan would compute it each time
        .lazy()
    )
    batch1 = cand.filter(pl.col("batch_size") == 1).select(
        "_cfg", pl.col("decode_tok_s").alias("decode_tok_s_batch1"), pl.col("itl_ms").alias("itl_ms_batch1")
    )
    chosen_batch = (
        # the highest throughput over every batch, SLO or not (model_gpu_speed's decode_tok_s)
        cand.with_columns(decode_tok_s_max=pl.col("decode_tok_s").max().over("_cfg"))
        .sort(["_cfg", "meets_itl_slo", "decode_tok_s", "batch_size"], descending=[False, True, True, False])
        .unique(subset=["_cfg"], keep="first", maintain_order=True)
        .join(batch1, on="_cfg", how="left")
        .collect(engine=COLLECT_ENGINE)
        .lazy()
    )
    best = (
        base.join(chosen_batch, on="_cfg")
        .drop("_cfg")
        .join(api_prices(prices, input_len, output_len), on="model_id", how="left")
        .with_columns(ttft_ms=ttft_s_expr(pl.lit(input_len), pl.col("attn_in"), prefill, decode) * 1e3)
        .with_columns(cost_columns(pl.col("decode_tok_s"), utilisation))
        .with_columns(itl_slo_ms=pl.lit(itl_slo_ms, pl.Float64))
        .with_columns(**speed_basis_columns(decode.class_scales, pl.col("gpu_generation")))
    )
    return best.drop("itl_s", "prefill_compute_s", "attn_mean", "attn_in", "batch_limit", "_cap", "domains", "kv_mean_bytes_tp1", "kv_work_bytes_tp1",
        "_scale_decode_mbu", "_scale_decode_mfu", "_scale_prefill_mfu")


RECOMMENDATION_COLUMNS = [
    "model_id",
    "rank",
    "gpu_id",
    "gpu_count",
    "tensor_parallel",
    "pipeline_parallel",
    "expert_parallel",
    "attention_dp",
    "precision",
    "checkpoint_precision",
    "needs_other_checkpoint",
    "checkpoint_model_id",
    "kv_dtype",
    "context_length",
    "batch_size",
    "decode_tok_s",
    "decode_tok_s_batch1",
    "itl_ms",
    "ttft_ms",
    "speed_basis",
    "speed_error_band",
    "cost_per_month_usd",
    "cost_per_mtok_usd",
    "cost_per_mtok_usd_at_utilisation",
    "utilisation",
    "cheapest_api_output_usd_per_mtok",
    "api_usd_per_mtok_at_mix",
    "breakeven_mtok_per_month",
    "capacity_mtok_per_month",
    "input_len",
    "output_len",
    "itl_slo_ms",
    "meets_itl_slo",
    "fit_class",
    "max_concurrent_seqs",
    "score",
]


def _tie_band(metric: pl.Expr, over: list[str], band: float) -> pl.Expr:
    """Band of ``band`` (1 %) widths measured from the partition's best (lowest) metric: rows in the
    same band are ties."""
    best = metric.min().over(over)
    return ((metric / best).log() / pl.lit(1.0 + band).log() + 1e-9).floor().cast(pl.Int64)


def _chosen_and_evaluated(
    fit_matrix: pl.DataFrame | pl.LazyFrame,
    models: pl.DataFrame | pl.LazyFrame,
    kv_groups: pl.DataFrame | pl.LazyFrame,
    gpus: pl.DataFrame | pl.LazyFrame,
    prices: pl.DataFrame | pl.LazyFrame | None,
    *,
    input_len: int,
    output_len: int,
    itl_slo_ms: float | None,
    utilisation: float,
) -> pl.LazyFrame:
    """Every fitting configuration at its chosen context, evaluated (``evaluate_configs``) and joined
    with its checkpoint columns: the one frame both the ranking and the speed table read."""
    seq_total = input_len + output_len
    fits = fit_matrix.lazy().filter(pl.col("fits"))
    group = ["model_id", "gpu_id", "precision", "gpu_count", "kv_dtype"]
    # smallest context holding the request, else the largest available
    chosen = (
        fits.with_columns(_short=pl.col("context_length") < seq_total)
        .with_columns(_ctx_key=pl.when(pl.col("_short")).then(-pl.col("context_length")).otherwise(pl.col("context_length")))
        .sort(["_short", "_ctx_key"])
        .unique(subset=group, keep="first", maintain_order=True)
        .drop("_short", "_ctx_key")
    )
    evaluated = evaluate_configs(
        chosen,
        models,
        kv_groups,
        gpus,
        prices,
        input_len=input_len,
        output_len=output_len,
        itl_slo_ms=itl_slo_ms,
        utilisation=utilisation,
    )
    precisions = evaluated.select("precision").unique()
    checkpoints = checkpoint_columns(models.lazy().filter(pl.col("supported")), precisions)
    return evaluated.join(checkpoints, on=["model_id", "precision"], how="left")


def _ranked(evaluated: pl.LazyFrame, *, top_n: int, ranking: Ranking) -> pl.LazyFrame:
    """The ranking of the module doc over an evaluated frame (``_chosen_and_evaluated``)."""
    preference = {p: i for i, p in enumerate(ranking.precision_preference)}
    priced = pl.col("cost_per_mtok_usd").is_not_null()
    # lower is better: $/M tokens when priced, else GPU-seconds per token
    metric = pl.when(priced).then(pl.col("cost_per_mtok_usd")).otherwise(pl.col("gpu_count") / pl.col("decode_tok_s"))
    classes = ["model_id", "_other_weights_last", "_priced", "meets_itl_slo"]
    order = ["_band", "needs_other_checkpoint", "_precision_rank", "gpu_count", "_metric", "gpu_id", "precision"]
    return (
        evaluated.with_columns(
            _priced=priced,
            _metric=metric,
            _precision_rank=pl.col("precision").replace_strict(preference, default=len(preference), return_dtype=pl.Int64),
            # a quantized repo's answer is its own checkpoint first (the repo a reader looked up)
            _other_weights_last=pl.col("needs_other_checkpoint") & (pl.col("checkpoint_precision") != "bf16"),
        )
        # best configuration per GPU, ties broken by the rules in the module doc
        .with_columns(_band=_tie_band(pl.col("_metric"), [*classes, "gpu_id"], ranking.tie_band))
        .sort([*classes, *order], descending=[False, False, True, True] + [False] * len(order), nulls_last=True)
        .unique(subset=["model_id", "gpu_id"], keep="first", maintain_order=True)
        # then GPUs against each other, same rules
        .with_columns(_band=_tie_band(pl.col("_metric"), classes, ranking.tie_band))
        .sort([*classes, *order], descending=[False, False, True, True] + [False] * len(order), nulls_last=True)
        .with_columns(rank=(pl.col("model_id").cum_count().over("model_id")).cast(pl.Int64))
        .with_columns(
            _best=pl.col("cost_per_mtok_usd").filter(pl.col("_priced") & pl.col("meets_itl_slo")).min().over("model_id")
        )
        .with_columns(
            score=pl.when(pl.col("_priced") & pl.col("meets_itl_slo")).then(100.0 * pl.col("_best") / pl.col("cost_per_mtok_usd"))
        )
        .filter(pl.col("rank") <= top_n)
        .select(RECOMMENDATION_COLUMNS)
        .sort(["model_id", "rank"])
    )


def recommendations(
    fit_matrix: pl.DataFrame | pl.LazyFrame,
    models: pl.DataFrame | pl.LazyFrame,
    kv_groups: pl.DataFrame | pl.LazyFrame,
    gpus: pl.DataFrame | pl.LazyFrame,
    prices: pl.DataFrame | pl.LazyFrame | None = None,
    *,
    input_len: int = WORKLOAD.input_len,
    output_len: int = WORKLOAD.output_len,
    top_n: int = 5,
    itl_slo_ms: float | None = WORKLOAD.itl_slo_ms,
    utilisation: float = COST.default_utilisation,
    ranking: Ranking = RANKING,
) -> pl.DataFrame:
    """Top ``top_n`` GPU configurations per model, ranked as in the module doc."""
    evaluated = _chosen_and_evaluated(
        fit_matrix, models, kv_groups, gpus, prices,
        input_len=input_len, output_len=output_len, itl_slo_ms=itl_slo_ms, utilisation=utilisation,
    )
    return _ranked(evaluated, top_n=top_n, ranking=ranking).collect(engine=COLLECT_ENGINE)


def rank_and_speeds(
    fit_matrix: pl.DataFrame | pl.LazyFrame,
    models: pl.DataFrame | pl.LazyFrame,
    kv_groups: pl.DataFrame | pl.LazyFrame,
    gpus: pl.DataFrame | pl.LazyFrame,
    prices: pl.DataFrame | pl.LazyFrame | None = None,
    *,
    input_len: int = WORKLOAD.input_len,
    output_len: int = WORKLOAD.output_len,
    top_n: int = 5,
    itl_slo_ms: float | None = WORKLOAD.itl_slo_ms,
    utilisation: float = COST.default_utilisation,
    ranking: Ranking = RANKING,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(recommendations, model_gpu_speed)`` from one evaluation of the grid: the evaluated frame is
    collected once and both are derived from it (``recommendations`` equals ``recommendations(...)``
    row for row; the speed table is described in ``sizing.speed_table.speed_table``)."""
    # only the columns the two read are materialised (the rest is pruned from the plan)
    needed = list(dict.fromkeys([*RECOMMENDATION_COLUMNS, *SPEED_COLUMNS, "decode_tok_s_max"]))
    evaluated = (
        _chosen_and_evaluated(
            fit_matrix, models, kv_groups, gpus, prices,
            input_len=input_len, output_len=output_len, itl_slo_ms=itl_slo_ms, utilisation=utilisation,
        )
        .select([c for c in needed if c not in ("rank", "score", "decode_tok_s_slo")])
        .collect(engine=COLLECT_ENGINE)
    )
    ranked = _ranked(evaluated.lazy(), top_n=top_n, ranking=ranking).collect(engine=COLLECT_ENGINE)
    speeds = speed_table(evaluated.lazy()).sort(["model_id", "gpu_id", "precision"]).collect(engine=COLLECT_ENGINE)
    return ranked, speeds
