"""Decode / prefill rooflines as Polars expressions (one row = one configuration x batch size).

Per GPU of a TP group of ``t`` GPUs, batch ``B`` concurrent sequences, mean context
``s_mean = input_len + output_len/2``:

- weights read per step: dense ``W/t``; MoE ``(W - X)/t + X/t * E_eff(B)/E`` with routed-expert bytes
  ``X`` and ``E_eff(B) = E * (1 - (1 - k/E)^B)`` distinct experts touched per MoE layer
  (uniform routing; sizing_anchors 2.6).
- KV read per step: ``B * kv_bytes_per_seq(s_mean)`` (per GPU, from ``sizing.kv``).
- FLOPs per step: ``(2 * P_active * B + 4 * n_q * d * B * sum_layers min(s_mean, window)) / t``.
- ``ITL(B) = max(bytes/(BW*MBU), FLOPs/(peak*MFU_decode)) + step + L*layer + B*seq + comm``, comm for t > 1:
  ``2 L`` all-reduces of ``B*h*2`` bytes, ring ``2(t-1)/t * msg / (link*eff) + latency``; link is the
  GPU's intra-node interconnect (PCIe fallback if null), InfiniBand beyond one node (t > 8).
- MoE models use ``MFU x moe_mfu_scale`` (decode and prefill; grouped expert GEMMs are less efficient).
- peak by precision: fp8 -> fp8_tflops, int8 -> int8_tops, fp4 -> fp4_tflops, int4/bf16 -> bf16;
  a null peak (no hardware dtype) falls back to bf16_tflops (weight-only kernels).
- prefill of one request of S tokens: ``FLOPs = 2*P_active*S + 2*n_q*d*S*sum_layers min(S, window)``
  (causal attention; SWA layers capped); ``TTFT = max(FLOPs/(t*peak*MFU_prefill), W/t/(BW*MBU)) +
  fixed + comm(S)``.
- output tokens/s of the replica at batch B, for a given input/output mix, in continuous-batching
  steady state: every request needs ``output_len`` decode steps and its prefill compute, so
  ``tok/s = B * out / (out * ITL(B) + B * FLOPs_prefill(in)/(t*peak*MFU_prefill))``.

Constants: ``sizing.constants.DECODE`` / ``PREFILL`` (calibrated, see benchmarks/calibrate.py).
"""

from __future__ import annotations

import polars as pl

from sizing.constants import DECODE, GB, PEAK_COLUMN_BY_PRECISION, PREFILL, DecodeEfficiency, PrefillEfficiency


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


def weights_read_per_gpu_expr(batch: pl.Expr) -> pl.Expr:
    tp = pl.col("gpu_count")
    w = pl.col("weights_bytes").cast(pl.Float64)
    x = pl.when(pl.col("is_moe").fill_null(False)).then(expert_bytes_expr()).otherwise(pl.lit(0.0))
    return ((w - x) + x * expert_fraction_expr(batch)) / tp


def link_bytes_per_s_expr(d: DecodeEfficiency = DECODE) -> pl.Expr:
    intra = pl.coalesce(pl.col("interconnect_gbps"), pl.lit(d.pcie_fallback_gbps))
    link = pl.when(pl.col("gpu_count") > d.gpus_per_node).then(pl.lit(d.inter_node_gbps)).otherwise(intra)
    return link * GB * d.comm_efficiency


def allreduce_time_expr(tokens: pl.Expr, d: DecodeEfficiency = DECODE) -> pl.Expr:
    """Time of the 2 all-reduces per layer for ``tokens`` rows of hidden state (bf16), whole model."""
    tp = pl.col("gpu_count").cast(pl.Float64)
    msg = tokens.cast(pl.Float64) * pl.col("hidden_size") * 2.0
    per = 2.0 * (tp - 1.0) / tp * msg / link_bytes_per_s_expr(d) + d.allreduce_latency_s
    return pl.when(tp > 1).then(2.0 * pl.col("num_layers") * per).otherwise(pl.lit(0.0))


def decode_itl_s_expr(
    batch: pl.Expr, kv_mean_bytes: pl.Expr, attn_tokens_mean: pl.Expr, d: DecodeEfficiency = DECODE
) -> pl.Expr:
    """Inter-token latency (s) of one decode step at batch ``batch``."""
    tp = pl.col("gpu_count").cast(pl.Float64)
    b = batch.cast(pl.Float64)
    bytes_ = weights_read_per_gpu_expr(batch) + b * kv_mean_bytes
    flops = (
        2.0 * pl.col("params_active") * b
        + 4.0 * pl.col("num_attention_heads") * pl.col("head_dim") * b * attn_tokens_mean
    ) / tp
    t_mem = bytes_ / (pl.col("memory_bandwidth_gbps") * GB * d.mbu)
    t_comp = flops / (peak_flops_expr() * d.mfu_decode * _moe_scale(d.moe_mfu_scale))
    return (
        pl.max_horizontal(t_mem, t_comp)
        + d.step_overhead_s
        + pl.col("num_layers") * d.layer_overhead_s
        + b * d.seq_overhead_s
        + allreduce_time_expr(batch, d)
    )


def prefill_flops_expr(seq_len: pl.Expr, attn_tokens: pl.Expr) -> pl.Expr:
    """FLOPs to prefill one request of ``seq_len`` tokens (whole model, all GPUs)."""
    s = seq_len.cast(pl.Float64)
    return 2.0 * pl.col("params_active") * s + 2.0 * pl.col("num_attention_heads") * pl.col("head_dim") * s * attn_tokens


def prefill_compute_s_expr(seq_len: pl.Expr, attn_tokens: pl.Expr, p: PrefillEfficiency = PREFILL) -> pl.Expr:
    mfu = p.mfu_prefill * _moe_scale(p.moe_mfu_scale)
    return prefill_flops_expr(seq_len, attn_tokens) / (pl.col("gpu_count") * peak_flops_expr() * mfu)


def ttft_s_expr(
    seq_len: pl.Expr, attn_tokens: pl.Expr, p: PrefillEfficiency = PREFILL, d: DecodeEfficiency = DECODE
) -> pl.Expr:
    """Time to first token for one request of ``seq_len`` on an idle replica (no queueing)."""
    weights_once = pl.col("weights_bytes") / pl.col("gpu_count") / (pl.col("memory_bandwidth_gbps") * GB * d.mbu)
    return (
        pl.max_horizontal(prefill_compute_s_expr(seq_len, attn_tokens, p), weights_once)
        + p.fixed_overhead_s
        + allreduce_time_expr(seq_len, d)
    )


def output_tok_s_expr(
    batch: pl.Expr, itl_s: pl.Expr, prefill_compute_s: pl.Expr, output_len: pl.Expr
) -> pl.Expr:
    """Output tokens/s of the replica at steady state, prefill compute of each request included."""
    b = batch.cast(pl.Float64)
    out = output_len.cast(pl.Float64)
    return b * out / (out * itl_s + b * prefill_compute_s)
