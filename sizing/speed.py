"""Decode / prefill rooflines as Polars expressions (one row = one configuration x batch size).

A replica of ``n = gpu_count`` GPUs runs ``t = tensor_parallel`` x ``p = pipeline_parallel`` ranks
(``sizing.parallelism``). ``B`` concurrent sequences are split into ``p`` micro-batches of
``b = B/p`` that flow through the stages (vLLM's virtual engines); mean context
``s_mean = input_len + output_len/2``. Per GPU, per stage step at micro-batch ``b``:

- weights read: dense ``W/n``; MoE ``(W - X)/n + X/n * E_eff(b)/E`` with routed-expert bytes
  ``X`` and ``E_eff(b) = E * (1 - (1 - k/E)^b)`` distinct experts touched per MoE layer
  (uniform routing; sizing_anchors 2.6).
- KV read: ``b * kv_bytes_per_seq(s_mean) / p`` (per GPU at TP ``t``, from ``sizing.kv``; each stage
  holds ``1/p`` of the layers).
- FLOPs: ``(2 * P_active * b + 4 * n_q * d * b * sum_layers min(s_mean, window)) / n``.
- ``stage(b) = max(bytes/(BW*MBU), FLOPs/(peak*MFU_decode)) + (L/p)*layer + b*seq + comm(b, L/p)``,
  comm for t > 1: ``2 L/p`` all-reduces of ``b*h*2`` bytes, ring ``2(t-1)/t * msg / (link*eff) +
  latency``; the link is the GPU's scale-up fabric (``sizing.parallelism.tp_link_gbps_expr``:
  NVLink/xGMI/Gaudi, PCIe beyond a bridge), which a tensor-parallel group never leaves.
- ``ITL(B) = p * stage(B/p) + step + (p-1) * hop(b)``: a token crosses every stage; a hop sends the
  micro-batch's hidden states (``b*h*2`` bytes) over the scale-out NIC (``scale_out_gbps``) when the
  replica spans scale-up domains, else over the scale-up link, plus ``pipeline_hop_latency_s``.
  With ``p = 1`` this is the single-stage roofline.
- MoE models use ``MFU x moe_mfu_scale`` (decode and prefill; grouped expert GEMMs are less efficient).
- MoE with ``DecodeEfficiency.moe_attention_dp`` (how TensorRT-LLM serves MoE: attention data parallel
  + expert parallel): each of the ``n`` GPUs runs attention at TP1 for ``B/n`` sequences, so the KV
  read per GPU is ``B/n * kv_bytes_per_seq_tp1(s_mean)`` and the non-expert weights ``W - X`` are
  replicated (read whole on every GPU); the routed experts are split ``X/n`` as before. The
  all-reduce term is kept as the stand-in for the two EP all-to-alls per layer. Capacity follows:
  each rank holds the KV of its own sequences at TP1 in a pool that also carries the replicated
  non-expert weights, and schedules its own ``max_num_seqs`` (``attention_dp_expr``; rows where one
  request does not fit a rank stay tensor parallel). The published fit matrix keeps the vLLM TP
  budget.
- class calibration (``sizing.constants.SPEED_CLASSES``): every row has a speed class
  ``generation:precision:dense|moe`` (``speed_class_expr``; generation from the GPU's ``gpu_id`` /
  ``name``, e.g. H100 -> hopper, B200 -> blackwell); its fitted ``mbu_scale`` multiplies MBU and its
  ``mfu_scale`` multiplies decode and prefill MFU, looked up with one ``replace_strict`` (no row
  loop). INT8 / INT4 rows run the FP8 / FP4 constants of their generation
  (``CALIBRATION_PRECISION_PROXY``) but stay ``extrapolated``; classes with no entry use the global
  constants (scale 1) and are ``extrapolated``.
  Efficiency sets built without ``class_scales`` (e.g. the idealised set of the tests) apply none.
- peak by precision: fp8 -> fp8_tflops, int8 -> int8_tops, fp4 -> fp4_tflops, int4/bf16 -> bf16;
  a null peak (no hardware dtype) falls back to bf16_tflops (weight-only kernels).
- prefill of one request of S tokens: ``FLOPs = 2*P_active*S + 2*n_q*d*S*sum_layers min(S, window)``
  (causal attention; SWA layers capped); ``TTFT = max(FLOPs/(n*peak*MFU_prefill), W/n/(BW*MBU)) +
  fixed + comm(S)``.
- output tokens/s of the replica at batch B, for a given input/output mix, in continuous-batching
  steady state: every request needs ``output_len`` decode steps and its prefill compute, so
  ``tok/s = B * out / (out * ITL(B) + B * FLOPs_prefill(in)/(n*peak*MFU_prefill))``.

Constants: ``sizing.constants.DECODE`` / ``PREFILL`` (calibrated, see benchmarks/calibrate.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from sizing.constants import (
    CALIBRATION,
    CALIBRATION_PRECISION_PROXY,
    DECODE,
    GB,
    PEAK_COLUMN_BY_PRECISION,
    PREFILL,
    SPEED_CLASSES,
    DecodeEfficiency,
    PrefillEfficiency,
    SpeedClass,
)
from sizing.parallelism import tp_link_gbps_expr

#: GPU generation by a regex over ``lower(gpu_id + " " + name)``, first match wins. Datacenter
#: Blackwell (B100/B200/B300, GB200/GB300: sm_100) and client Blackwell (RTX 50xx, RTX PRO 6000
#: Blackwell, GB10: sm_120/121, GDDR7 or LPDDR) are different classes: measurements on one say
#: nothing about the other. Same for Hopper (H100/H200/H800/H20/GH200).
GPU_GENERATIONS: tuple[tuple[str, str], ...] = (
    ("blackwell_client", r"rtx[ -]?50\d0|rtx[ -]?pro[ -]?6000|blackwell[ -]workstation|gb10\b|dgx[ -]spark"),
    ("blackwell", r"\b(gb200|gb300|b100|b200|b300)\b|blackwell"),
    ("hopper", r"\b(gh200|h100|h200|h800|h20)\b|hopper"),
    ("ada", r"\b(l4|l40|l40s|l20)\b|rtx[ -]?40\d0|\bada\b"),
    ("ampere", r"\b(a10|a10g|a16|a30|a40|a100|a800)\b|rtx[ -]?30\d0|rtx[ -]?a\d000"),
    ("turing", r"\b(t4)\b|rtx[ -]?20\d0"),
    ("cdna4", r"\bmi35\dx?\b"),
    ("cdna3", r"\bmi3[02]\dx?\b"),
    ("cdna2", r"\bmi2\d\dx?\b"),
    ("gaudi", r"gaudi"),
)


def gpu_generation_expr() -> pl.Expr:
    """GPU generation (``GPU_GENERATIONS``) from ``gpu_id`` and ``name`` (when present); ``other`` when none matches."""
    text = pl.concat_str(
        [pl.col("gpu_id").cast(pl.Utf8).fill_null(""), pl.col("name").cast(pl.Utf8).fill_null("")], separator=" "
    ).str.to_lowercase()
    expr = pl.when(pl.lit(False)).then(pl.lit(None, pl.Utf8))
    for generation, pattern in GPU_GENERATIONS:
        expr = expr.when(text.str.contains(pattern)).then(pl.lit(generation))
    return expr.otherwise(pl.lit("other"))


def speed_class_expr(generation: pl.Expr | None = None, *, proxy: bool = False) -> pl.Expr:
    """``generation:precision:dense|moe``, the key of ``sizing.constants.SPEED_CLASSES``; with
    ``proxy`` the precision is the one whose constants the row runs (``CALIBRATION_PRECISION_PROXY``)."""
    generation = gpu_generation_expr() if generation is None else generation
    kind = pl.when(pl.col("is_moe").fill_null(False)).then(pl.lit("moe")).otherwise(pl.lit("dense"))
    precision = pl.col("precision").cast(pl.Utf8)
    if proxy:
        precision = precision.replace(dict(CALIBRATION_PRECISION_PROXY))
    return pl.concat_str([generation, precision, kind], separator=":")


def _class_lookup(table: Mapping[str, SpeedClass], attr: str) -> pl.Expr:
    mapping = {key: float(getattr(value, attr)) for key, value in table.items()}
    key = speed_class_expr(pl.col("gpu_generation"), proxy=True)
    return key.replace_strict(mapping, default=1.0, return_dtype=pl.Float64)


def class_scale_columns(d: DecodeEfficiency = DECODE, p: PrefillEfficiency = PREFILL) -> dict[str, pl.Expr]:
    """The class multipliers of a configuration row (``SPEED_CLASSES`` via its speed class), computed
    once per configuration (on a frame with ``gpu_generation``, ``precision``, ``is_moe``) before the
    batch-size cross join; the rooflines read these columns when ``class_scales`` is set."""
    return {
        "_scale_decode_mbu": _class_lookup(d.class_scales, "mbu_scale") if d.class_scales else pl.lit(1.0),
        "_scale_decode_mfu": _class_lookup(d.class_scales, "mfu_scale") if d.class_scales else pl.lit(1.0),
        "_scale_prefill_mfu": _class_lookup(p.class_scales, "mfu_scale") if p.class_scales else pl.lit(1.0),
    }


def _class_scale(table: Mapping[str, SpeedClass], column: str) -> pl.Expr:
    return pl.col(column) if table else pl.lit(1.0)


def speed_basis_columns(
    classes: Mapping[str, SpeedClass] = SPEED_CLASSES, generation: pl.Expr | None = None
) -> dict[str, pl.Expr]:
    """``speed_class``, ``speed_basis`` and ``speed_error_band`` for a frame with gpu_id/name/precision/is_moe.

    ``speed_basis`` is ``calibrated`` when the row's class has fitted constants (measurements of that
    GPU generation x precision x dense/MoE), else ``extrapolated``. ``speed_error_band`` is the
    held-out p90 of ``max(est/meas, meas/est)``: the class's own when the class has at least
    ``CALIBRATION.min_held_out_for_class_band`` held-out rows, else the p90 over all held-out rows
    (``CALIBRATION.held_out_p90``) -- always the latter for extrapolated rows, whose true error is
    unmeasured and may be larger."""
    key = speed_class_expr(generation)
    calibrated = key.is_in(list(classes))
    bands = {
        k: float(v.held_out_p90)
        for k, v in classes.items()
        if v.held_out_p90 is not None and v.held_out_rows >= CALIBRATION.min_held_out_for_class_band
    }
    overall = CALIBRATION.held_out_p90
    band = key.replace_strict(bands, default=overall, return_dtype=pl.Float64) if bands else pl.lit(overall, pl.Float64)
    return {
        "speed_class": key,
        "speed_basis": pl.when(calibrated).then(pl.lit("calibrated")).otherwise(pl.lit("extrapolated")),
        "speed_error_band": band,
    }


def _moe_scale(scale: float) -> pl.Expr:
    return pl.when(pl.col("is_moe").fill_null(False)).then(pl.lit(scale)).otherwise(pl.lit(1.0))


def peak_flops_expr() -> pl.Expr:
    """Dense tensor peak (FLOP/s) per GPU for the row's ``precision``, bf16 fallback when null."""
    bf16 = pl.col("bf16_tflops")
    expr = pl.when(pl.col("precision") == "bf16").then(bf16)
    for precision, column in PEAK_COLUMN_BY_PRECISION.items():
        if precision == "bf16":
            continue
        expr = expr.when(pl.col("precision") == precision).then(pl.coalesce(pl.col(column), bf16))
    return expr.otherwise(bf16) * 1e12


def expert_bytes_expr() -> pl.Expr:
    """Routed-expert bytes at the row's precision: expert params x bytes per quantizable param,
    where ``bytes/param = (W - 2*U) / (P_total - U)`` (U = params kept at 16 bits). Clipped to W."""
    w = pl.col("weights_bytes").cast(pl.Float64)
    u = pl.col("params_unquantized").fill_null(0).cast(pl.Float64)
    p = pl.col("params_total").cast(pl.Float64)
    per_param = ((w - 2 * u) / pl.max_horizontal(p - u, pl.lit(1.0))).clip(0.25, 4.0)
    x = pl.col("params_routed_experts").fill_null(0).cast(pl.Float64) * per_param
    return pl.min_horizontal(x, w)


def expert_fraction_expr(batch: pl.Expr) -> pl.Expr:
    """E_eff(B)/E = 1 - (1 - k/E)^B; 1 for dense models."""
    e = pl.col("num_experts").fill_null(0).cast(pl.Float64)
    k = pl.col("experts_per_token").fill_null(0).cast(pl.Float64)
    moe = pl.col("is_moe").fill_null(False) & (e > 0) & (k > 0)
    frac = 1.0 - (1.0 - (k / pl.max_horizontal(e, pl.lit(1.0))).clip(0.0, 1.0)).pow(batch.cast(pl.Float64))
    return pl.when(moe).then(frac).otherwise(pl.lit(1.0))


def _tp() -> pl.Expr:
    return pl.col("tensor_parallel").cast(pl.Float64)


def _pp() -> pl.Expr:
    return pl.col("pipeline_parallel").cast(pl.Float64)


def _n() -> pl.Expr:
    return pl.col("gpu_count").cast(pl.Float64)


def weights_read_per_gpu_expr(micro_batch: pl.Expr) -> pl.Expr:
    w = pl.col("weights_bytes").cast(pl.Float64)
    x = pl.when(pl.col("is_moe").fill_null(False)).then(expert_bytes_expr()).otherwise(pl.lit(0.0))
    return ((w - x) + x * expert_fraction_expr(micro_batch)) / _n()


def scale_up_bytes_per_s_expr(d: DecodeEfficiency = DECODE) -> pl.Expr:
    return tp_link_gbps_expr() * GB * d.comm_efficiency


def allreduce_time_expr(tokens: pl.Expr, d: DecodeEfficiency = DECODE) -> pl.Expr:
    """Time of the 2 all-reduces per layer for ``tokens`` rows of hidden state (bf16), over the layers
    of one pipeline stage."""
    tp = _tp()
    msg = tokens.cast(pl.Float64) * pl.col("hidden_size") * 2.0
    per = 2.0 * (tp - 1.0) / tp * msg / scale_up_bytes_per_s_expr(d) + d.allreduce_latency_s
    return pl.when(tp > 1).then(2.0 * pl.col("num_layers") / _pp() * per).otherwise(pl.lit(0.0))


def pipeline_hop_time_expr(micro_batch: pl.Expr, d: DecodeEfficiency = DECODE) -> pl.Expr:
    """All ``p - 1`` stage-to-stage sends of one micro-batch's hidden states (bf16)."""
    msg = micro_batch.cast(pl.Float64) * pl.col("hidden_size") * 2.0
    link = pl.when(pl.col("domains") > 1).then(pl.col("scale_out_gbps")).otherwise(pl.col("scale_up_gbps"))
    per = msg / (link * GB * d.comm_efficiency) + d.pipeline_hop_latency_s
    return pl.when(_pp() > 1).then((_pp() - 1.0) * per).otherwise(pl.lit(0.0))


def attention_dp_kv_pool_bytes_expr() -> pl.Expr:
    """KV pool per GPU under attention DP + EP: the non-expert weights are replicated on every rank,
    the routed experts split ``X/n`` (vs ``W/n`` under tensor parallel)."""
    w = pl.col("weights_bytes").cast(pl.Float64)
    x = expert_bytes_expr()
    return pl.col("usable_gb") * GB - ((w - x) + x / _n()) - pl.col("overhead_gb") * GB


def attention_dp_expr(d: DecodeEfficiency = DECODE) -> pl.Expr:
    """True on rows served with attention DP + expert parallel (``d.moe_attention_dp``): MoE, more
    than one GPU, no pipeline stages, and one request of the workload fits each rank's KV pool with
    the attention weights replicated (``kv_work_bytes_tp1``: a sequence's KV at TP1)."""
    if not d.moe_attention_dp:
        return pl.lit(False)
    return (
        pl.col("is_moe").fill_null(False)
        & (_pp() == 1)
        & (_n() > 1)
        & (attention_dp_kv_pool_bytes_expr() >= pl.col("kv_work_bytes_tp1"))
    ).fill_null(False)


def decode_itl_s_expr(
    batch: pl.Expr,
    kv_mean_bytes: pl.Expr,
    attn_tokens_mean: pl.Expr,
    d: DecodeEfficiency = DECODE,
    kv_mean_bytes_tp1: pl.Expr | None = None,
) -> pl.Expr:
    """Inter-token latency (s) of one decode step at ``batch`` concurrent sequences (all stages).

    ``kv_mean_bytes_tp1`` (a sequence's KV at TP1) enables the attention-DP term on rows whose
    ``attention_dp`` column is true (``attention_dp_expr``, module doc); without it every row is
    modelled as tensor parallel."""
    pp = _pp()
    b = batch.cast(pl.Float64) / pp
    bytes_tp = weights_read_per_gpu_expr(b) + b * kv_mean_bytes / pp
    if kv_mean_bytes_tp1 is not None and d.moe_attention_dp:
        w = pl.col("weights_bytes").cast(pl.Float64)
        x = expert_bytes_expr()
        bytes_dp = (w - x) + x * expert_fraction_expr(b) / _n() + b / _n() * kv_mean_bytes_tp1
        bytes_ = pl.when(pl.col("attention_dp")).then(bytes_dp).otherwise(bytes_tp)
    else:
        bytes_ = bytes_tp
    flops = (
        2.0 * pl.col("params_active") * b
        + 4.0 * pl.col("num_attention_heads") * pl.col("head_dim") * b * attn_tokens_mean
    ) / _n()
    t_mem = bytes_ / (pl.col("memory_bandwidth_gbps") * GB * d.mbu * _class_scale(d.class_scales, "_scale_decode_mbu"))
    mfu = d.mfu_decode * _moe_scale(d.moe_mfu_scale) * _class_scale(d.class_scales, "_scale_decode_mfu")
    t_comp = flops / (peak_flops_expr() * mfu)
    stage = (
        pl.max_horizontal(t_mem, t_comp)
        + pl.col("num_layers") / pp * d.layer_overhead_s
        + b * d.seq_overhead_s
        + allreduce_time_expr(b, d)
    )
    return pp * stage + d.step_overhead_s + pipeline_hop_time_expr(b, d)


def prefill_flops_expr(seq_len: pl.Expr, attn_tokens: pl.Expr) -> pl.Expr:
    """FLOPs to prefill one request of ``seq_len`` tokens (whole model, all GPUs)."""
    s = seq_len.cast(pl.Float64)
    return 2.0 * pl.col("params_active") * s + 2.0 * pl.col("num_attention_heads") * pl.col("head_dim") * s * attn_tokens


def prefill_compute_s_expr(seq_len: pl.Expr, attn_tokens: pl.Expr, p: PrefillEfficiency = PREFILL) -> pl.Expr:
    mfu = p.mfu_prefill * _moe_scale(p.moe_mfu_scale) * _class_scale(p.class_scales, "_scale_prefill_mfu")
    return prefill_flops_expr(seq_len, attn_tokens) / (_n() * peak_flops_expr() * mfu)


def ttft_s_expr(
    seq_len: pl.Expr, attn_tokens: pl.Expr, p: PrefillEfficiency = PREFILL, d: DecodeEfficiency = DECODE
) -> pl.Expr:
    """Time to first token for one request of ``seq_len`` on an idle replica (no queueing)."""
    mbu = d.mbu * _class_scale(d.class_scales, "_scale_decode_mbu")
    weights_once = pl.col("weights_bytes") / _n() / (pl.col("memory_bandwidth_gbps") * GB * mbu)
    return (
        pl.max_horizontal(prefill_compute_s_expr(seq_len, attn_tokens, p), weights_once)
        + p.fixed_overhead_s
        + _pp() * allreduce_time_expr(seq_len, d)
        + pipeline_hop_time_expr(seq_len, d)
    )


def output_tok_s_expr(
    batch: pl.Expr, itl_s: pl.Expr, prefill_compute_s: pl.Expr, output_len: pl.Expr
) -> pl.Expr:
    """Output tokens/s of the replica at steady state, prefill compute of each request included."""
    b = batch.cast(pl.Float64)
    out = output_len.cast(pl.Float64)
    return b * out / (out * itl_s + b * prefill_compute_s)
