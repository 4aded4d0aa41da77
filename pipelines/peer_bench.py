"""The peer in `make bench`: llm-analysis 0.2.2 timed on a sample of the cells our grid sizes.

A *cell* is what issue 12 measured the peer on: (model, GPU, GPU count, context). Our grid
(``sizing.grid.fit_matrix``) has one cell per supported model x GPU x ``gpu_count`` x context, where a
model's contexts are the grid contexts up to its ``max_context`` (or its ``max_context`` alone when
below them all), and answers it for every precision and KV dtype at once; ``our_cells`` counts them,
so ``our seconds / our_cells`` is our time per cell.

``llm_analysis_cells`` draws a reproducible sample of those same cells (``random.Random(seed)``) and
runs ``LLMAnalysis(...).inference(...)`` on each, timed with ``time.perf_counter``: bf16 weights and
activations (``DtypeConfig()``, ``w16a16e16``), bf16 KV cache, batch 1, a prompt of ``context -
WORKLOAD.output_len`` tokens then ``WORKLOAD.output_len`` generated (prompt + output = the cell's
context, the KV our fit matrix holds). The parallel layout is the one our grid starts for that GPU
count (``sizing.parallelism``: tensor parallel inside one scale-up domain, the rest pipeline
parallel, expert parallel when the experts split), and the intra-node bandwidth the per-GPU link our
engine gives that tensor-parallel group (``tp_link_gbps_expr``). Configs are built before the clock
starts: the time is llm-analysis's own (constructor + ``inference``).

Mapping our rows to llm-analysis (``peer_model_config``, ``peer_gpu_config``):

- model: ``num_layers``, ``num_attention_heads``, ``num_kv_heads``, ``hidden_size``, ``vocab_size``,
  ``max_context``, ``model_type``; MoE: ``num_experts``, ``experts_per_token`` and the routed
  expert's width ``moe_intermediate_size``. A dense model's FFN width is not a column: it is derived
  from the parameter accounting (``ffn_width``): the quantizable linear weights per layer
  (``params_total - params_unquantized``, over ``num_layers``) minus the attention projections
  (``2 x hidden x head_dim x (heads + kv_heads)``), over ``3 x hidden`` (gated MLP: gate, up, down)
  or ``2 x hidden`` for the plain-MLP families of ``sizing/layouts/classic.py``; a width that does
  not come out whole is not derivable and the model is skipped.
- not mappable (skipped, counted per reason): MLA latent attention and hybrid models (linear
  attention / SSM state layers), which llm-analysis's MHA/GQA layer cannot represent; heads not a
  multiple of KV heads (its ``ModelConfig`` asserts it); an FFN width that cannot be derived; a GPU
  without a bf16 TFLOPS, memory or bandwidth figure.
- mapped with a loss (counted per note on the timed cells): a sliding window runs as full
  attention, ``heads x head_dim != hidden`` (llm-analysis sizes q/o by ``hidden``), shared experts and
  dense layers of MoE models dropped (every layer is E experts of one width there), a gated MLP
  counted as two matrices (llm-analysis's MLP has no gate), vision tower and MTP layers not counted.
- GPU: memory in GiB (``memory_gib``; llm-analysis multiplies by 1024^3), HBM GB/s, dense bf16
  TFLOPS as ``peak_fp16_TFLOPS``, dense ``int8_tops`` as ``peak_i8_TFLOPS`` (null: its default,
  2 x fp16), scale-out GB/s as inter-node bandwidth, llm-analysis's own 8 us minimum message latency.

A cell llm-analysis answers "does not fit" (it asserts the weights, or KV + activations, exceed the
GPU) is an answer like our ``fits = false`` and is timed; any other exception is counted under
``skipped`` and not timed. Pure of Dagster. llm-analysis comes from the optional ``bench`` extra
plus ``pip install --no-deps llm-analysis==0.2.2`` (pyproject.toml says why).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata

import polars as pl

from sizing.constants import DEFAULT_CONTEXTS, DEFAULT_GPU_COUNTS, WORKLOAD
from sizing.parallelism import add_layout_columns, tp_link_gbps_expr, with_topology_columns

PEER_PACKAGE = "llm-analysis"
PEER_VERSION = "0.2.2"
INSTALL_HINT = (
    f".venv/bin/pip install -e '.[bench]' && .venv/bin/pip install --no-deps {PEER_PACKAGE}=={PEER_VERSION}"
)
#: llm-analysis logs through a logger literally named "__name__" (llm_analysis/logger.py)
_PEER_LOGGER = "__name__"
#: llm-analysis's minimum intra-node message latency, the same in every GPU config it ships (s)
MIN_MESSAGE_LATENCY_S = 8e-06
#: families whose MLP is two matrices (up, down), not gated: sizing/layouts/classic.py
PLAIN_MLP_MODEL_TYPES = frozenset({"gpt2", "gptj", "gpt_neox", "falcon", "phi", "phi-msft", "starcoder2"})
_GIB = 2**30


class PeerMissing(RuntimeError):
    """llm-analysis is not installed in this environment."""


class Unmappable(ValueError):
    """A model or GPU row that llm-analysis's configs cannot represent; the message is the reason."""


@contextmanager
def _quiet() -> Iterator[None]:
    """llm-analysis warns at import (no transformers) and on every call (kv cache below the pivot)."""
    logger = logging.getLogger(_PEER_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _peer():
    """The llm-analysis module pair, or a ``PeerMissing`` saying how to install it."""
    try:
        with _quiet():
            from llm_analysis import analysis, config
    except ImportError as error:
        raise PeerMissing(
            f"{PEER_PACKAGE} is not installed (needed for the peer comparison of `fitatlas bench`, "
            f"the optional 'bench' extra): {INSTALL_HINT}  [{error}]"
        ) from None
    return analysis, config


def peer_name() -> str:
    try:
        return f"{PEER_PACKAGE} {metadata.version(PEER_PACKAGE)}"
    except metadata.PackageNotFoundError:
        return f"{PEER_PACKAGE} (version unknown)"


# --- mapping ---------------------------------------------------------------------------------


def _int(row: Mapping, key: str) -> int:
    value = row.get(key)
    return int(value) if value is not None else 0


def _skip_reason(row: Mapping) -> str | None:
    """Why llm-analysis cannot represent this model row, or None."""
    kind = row.get("attention_kind")
    if kind == "mla":
        return "model: MLA latent attention (llm-analysis models MHA/GQA only)"
    if kind == "hybrid" or _int(row, "ssm_num_heads") or _int(row, "linear_attn_key_heads"):
        return "model: hybrid linear-attention / SSM layers (llm-analysis models attention layers only)"
    heads, kv = _int(row, "num_attention_heads"), _int(row, "num_kv_heads")
    if heads <= 0 or kv <= 0 or heads % kv:
        return "model: attention heads not a multiple of KV heads"
    if row.get("is_moe") and (_int(row, "moe_intermediate_size") <= 0 or _int(row, "num_experts") <= 1):
        return "model: MoE without a routed expert width"
    return None


def ffn_width(row: Mapping) -> int:
    """A dense model's FFN (intermediate) width from its parameter accounting (module doc); MoE: the
    routed expert's width. Raises ``Unmappable`` when it does not come out whole."""
    if row.get("is_moe"):
        return _int(row, "moe_intermediate_size")
    layers, hidden = _int(row, "num_layers"), _int(row, "hidden_size")
    heads, kv, head_dim = _int(row, "num_attention_heads"), _int(row, "num_kv_heads"), _int(row, "head_dim")
    linear = _int(row, "params_total") - _int(row, "params_unquantized")
    if layers <= 0 or hidden <= 0 or linear <= 0 or linear % layers:
        raise Unmappable("model: FFN width not derivable from the parameter accounting")
    mlp = linear // layers - 2 * hidden * head_dim * (heads + kv)
    matrices = 2 if row.get("model_type") in PLAIN_MLP_MODEL_TYPES else 3
    if mlp <= 0 or mlp % (matrices * hidden):
        raise Unmappable("model: FFN width not derivable from the parameter accounting")
    return mlp // (matrices * hidden)


def peer_model_config(row: Mapping):
    """llm-analysis ``ModelConfig`` of one row of our models frame (``specs_to_frames``); raises
    ``Unmappable`` with the reason when it cannot be represented."""
    _, config = _peer()
    reason = _skip_reason(row)
    if reason:
        raise Unmappable(reason)
    hidden, ffn = _int(row, "hidden_size"), ffn_width(row)
    moe = bool(row.get("is_moe"))
    return config.ModelConfig(
        name=row["model_id"],
        num_layers=_int(row, "num_layers"),
        n_head=_int(row, "num_attention_heads"),
        num_key_value_heads=_int(row, "num_kv_heads"),
        hidden_dim=hidden,
        vocab_size=_int(row, "vocab_size"),
        max_seq_len=_int(row, "max_context") or None,
        ffn_embed_dim=ffn,
        expansion_ratio=ffn / hidden,  # given, so ModelConfig does not assert ffn % hidden == 0
        model_type=row.get("model_type"),
        moe_num_experts=_int(row, "num_experts") if moe else 1,
        moe_top_k=_int(row, "experts_per_token") if moe else 1,
    )


def approximations(row: Mapping) -> list[str]:
    """What the mapping of this (mappable) model row loses (module doc)."""
    notes = []
    if row.get("sliding_window"):
        notes.append("sliding window run as full attention")
    if _int(row, "num_attention_heads") * _int(row, "head_dim") != _int(row, "hidden_size"):
        notes.append("heads x head_dim != hidden (llm-analysis sizes q/o by hidden)")
    if row.get("is_moe") and _int(row, "num_shared_experts"):
        notes.append("MoE shared experts dropped")
    if row.get("is_moe") and _int(row, "num_moe_layers") < _int(row, "num_layers"):
        notes.append("MoE dense layers run as expert layers")
    if row.get("model_type") not in PLAIN_MLP_MODEL_TYPES:
        notes.append("gated MLP counted as two matrices (llm-analysis has no gate)")
    if _int(row, "params_vision") or _int(row, "params_mtp"):
        notes.append("vision tower / MTP layers not counted")
    return notes


def _gpu_skip_reason(row: Mapping) -> str | None:
    for key, what in (("bf16_tflops", "bf16 TFLOPS"), ("memory_bandwidth_gbps", "memory bandwidth"),
                      ("memory_gb", "memory")):
        value = row.get(key)
        if value is None or not value > 0:
            return f"gpu: no {what}"
    return None


def peer_gpu_config(row: Mapping, intra_node_gbps: float | None = None):
    """llm-analysis ``GPUConfig`` of one row of the gpus table; ``intra_node_gbps``: the per-GPU link
    of the cell's tensor-parallel group (default: the GPU's scale-up, else interconnect, figure)."""
    _, config = _peer()
    reason = _gpu_skip_reason(row)
    if reason:
        raise Unmappable(reason)
    gib = row.get("memory_gib") or row["memory_gb"] * 1e9 / _GIB
    link = intra_node_gbps or row.get("scale_up_gbps") or row.get("interconnect_gbps") or row.get("pcie_gbps")
    extra = {"inter_node_bandwidth_in_GB_per_sec": row["scale_out_gbps"]} if row.get("scale_out_gbps") else {}
    return config.GPUConfig(
        name=row["gpu_id"],
        mem_per_GPU_in_GB=float(gib),
        hbm_bandwidth_in_GB_per_sec=float(row["memory_bandwidth_gbps"]),
        intra_node_bandwidth_in_GB_per_sec=float(link or 32.0),
        intra_node_min_message_latency=MIN_MESSAGE_LATENCY_S,
        peak_fp16_TFLOPS=float(row["bf16_tflops"]),
        peak_i8_TFLOPS=float(row["int8_tops"]) if row.get("int8_tops") else None,
        **extra,
    )


# --- cells -----------------------------------------------------------------------------------


def _model_contexts(models: pl.DataFrame, contexts: Sequence[int]) -> pl.DataFrame:
    """(model_id, context_length) pairs of the supported models, as ``fit_matrix`` makes them: grid
    contexts up to ``max_context`` (all of them when it is unknown), or ``max_context`` alone when it
    is below every grid context; models with no weights at any precision have no cells."""
    weights = [c for c in models.columns if c.startswith("weights_bytes_") and c != "weights_bytes_checkpoint"]
    supported = models.filter(pl.col("supported"))
    if weights:
        supported = supported.filter(pl.any_horizontal(pl.col(c).fill_null(0) > 0 for c in weights))
    ctx = pl.DataFrame({"context_length": sorted(contexts)}, schema={"context_length": pl.Int64})
    top = supported.select("model_id", pl.col("max_context").fill_null(0))
    return pl.concat([
        top.join(ctx, how="cross").filter((pl.col("max_context") <= 0) | (pl.col("context_length") <= pl.col("max_context"))),
        top.filter(pl.col("max_context").is_between(1, min(contexts) - 1)).with_columns(context_length=pl.col("max_context")),
    ]).select("model_id", "context_length").sort("model_id", "context_length")


def our_cells(models: pl.DataFrame, gpus: pl.DataFrame, gpu_counts: Sequence[int] = DEFAULT_GPU_COUNTS,
              contexts: Sequence[int] = DEFAULT_CONTEXTS) -> int:
    """(model, GPU, GPU count, context) cells our grid sizes for these frames (each for every
    precision and KV dtype): the denominator of our time per cell."""
    return _model_contexts(models, contexts).height * gpus.height * len(gpu_counts)


def _sample_cells(models: pl.DataFrame, gpus: pl.DataFrame, gpu_counts: Sequence[int], contexts: Sequence[int],
                  sample: int, seed: int) -> tuple[pl.DataFrame, Counter]:
    """``sample`` mappable cells drawn uniformly without replacement, and the cells of the whole grid
    that are not mappable, per reason (those are never drawn)."""
    pairs = _model_contexts(models, contexts)
    model_rows = {r["model_id"]: r for r in models.filter(pl.col("supported")).iter_rows(named=True)}
    model_reason = {}
    for model_id, row in model_rows.items():
        reason = _skip_reason(row)
        if reason is None:
            try:
                ffn_width(row)
            except Unmappable as error:
                reason = str(error)
        model_reason[model_id] = reason
    gpu_reason = {r["gpu_id"]: _gpu_skip_reason(r) for r in gpus.iter_rows(named=True)}
    ok_gpus = sorted(g for g, reason in gpu_reason.items() if reason is None)
    skipped: Counter = Counter()
    ok_pairs = []
    for model_id, context in pairs.iter_rows():
        if model_reason[model_id]:
            skipped[model_reason[model_id]] += gpus.height * len(gpu_counts)
        else:
            ok_pairs.append((model_id, context))
            for reason in gpu_reason.values():
                if reason:
                    skipped[reason] += len(gpu_counts)
    combos = [(g, n) for g in ok_gpus for n in gpu_counts]
    population = len(ok_pairs) * len(combos)
    picks = sorted(random.Random(seed).sample(range(population), min(sample, population)))
    rows = [(*ok_pairs[i // len(combos)], *combos[i % len(combos)]) for i in picks]
    cells = pl.DataFrame(rows, schema={"model_id": pl.Utf8, "context_length": pl.Int64, "gpu_id": pl.Utf8,
                                       "gpu_count": pl.Int64}, orient="row")
    return cells, skipped


def sample_cells(models: pl.DataFrame, gpus: pl.DataFrame, *, sample: int, seed: int = 0,
                 gpu_counts: Sequence[int] = DEFAULT_GPU_COUNTS,
                 contexts: Sequence[int] = DEFAULT_CONTEXTS) -> pl.DataFrame:
    """The cells ``llm_analysis_cells`` runs, with the layout our grid starts for each:
    model_id, context_length, gpu_id, gpu_count, tensor_parallel, pipeline_parallel, expert_parallel,
    tp_link_gbps. The same frames, sample and seed give the same cells."""
    cells, _ = _sample_cells(models, gpus, gpu_counts, contexts, sample, seed)
    return _with_layout(cells, models, gpus, gpu_counts)


def _with_layout(cells: pl.DataFrame, models: pl.DataFrame, gpus: pl.DataFrame, gpu_counts: Sequence[int]) -> pl.DataFrame:
    model_cols = [c for c in ("model_id", "num_layers", "num_attention_heads", "num_kv_heads", "vocab_size",
                              "ssm_num_heads", "ssm_n_groups", "linear_attn_key_heads", "linear_attn_value_heads",
                              "num_experts") if c in models.columns]
    gpu_lazy = with_topology_columns(gpus.lazy())
    topology = [c for c in gpu_lazy.collect_schema().names()
                if c in ("gpu_id", "scale_up_fabric", "form_factor", "scale_up_domain_gpus", "scale_up_gbps",
                         "fast_link_group_gpus", "pcie_gbps", "scale_out_gbps")]
    frame = (
        cells.lazy()
        .join(models.lazy().select(model_cols), on="model_id", how="left")
        .join(gpu_lazy.select(topology), on="gpu_id", how="left")
    )
    return (
        add_layout_columns(frame, gpu_counts)
        .with_columns(tp_link_gbps=tp_link_gbps_expr())
        .select("model_id", "context_length", "gpu_id", "gpu_count", "tensor_parallel", "pipeline_parallel",
                "expert_parallel", "tp_link_gbps")
        .sort("model_id", "context_length", "gpu_id", "gpu_count")  # joins do not keep row order
        .collect()
    )


def llm_analysis_cells(models: pl.DataFrame, gpus: pl.DataFrame, *, sample: int, seed: int = 0,
                       gpu_counts: Sequence[int] = DEFAULT_GPU_COUNTS,
                       contexts: Sequence[int] = DEFAULT_CONTEXTS) -> dict:
    """Run llm-analysis on ``sample`` of our grid's cells (module doc), timed. Returns ``peer``,
    ``cells`` (timed), ``fits`` / ``did_not_fit`` (llm-analysis's answers), ``seconds``,
    ``ms_per_cell``, ``skipped`` (grid cells not mappable or that the peer raised on, per reason),
    ``approximated`` (timed cells per mapping loss), ``population`` (mappable grid cells sampled from),
    ``sample``, ``seed``. Raises ``PeerMissing`` when llm-analysis is not installed."""
    analysis, config = _peer()
    if sample < 1:
        raise ValueError(f"sample {sample}: must be at least 1")
    drawn, skipped = _sample_cells(models, gpus, gpu_counts, contexts, sample, seed)
    cells = _with_layout(drawn, models, gpus, gpu_counts)
    model_rows = {r["model_id"]: r for r in models.filter(pl.col("model_id").is_in(cells["model_id"].unique().implode()))
                  .iter_rows(named=True)}
    gpu_rows = {r["gpu_id"]: r for r in gpus.iter_rows(named=True)}
    model_configs = {m: peer_model_config(row) for m, row in model_rows.items()}
    notes = {m: approximations(row) for m, row in model_rows.items()}
    dtype = config.DtypeConfig()  # w16a16e16: bf16 weights and activations
    work = []
    for cell in cells.iter_rows(named=True):
        gpu = peer_gpu_config(gpu_rows[cell["gpu_id"]], cell["tp_link_gbps"])
        layout = config.ParallelismConfig(tp_size=cell["tensor_parallel"], pp_size=cell["pipeline_parallel"],
                                          ep_size=cell["expert_parallel"])
        generate = min(WORKLOAD.output_len, max(1, cell["context_length"] // 2))
        work.append((cell["model_id"], gpu, layout, cell["context_length"] - generate, generate))

    seconds, fits, did_not_fit = 0.0, 0, 0
    approximated: Counter = Counter()
    with _quiet():
        for model_id, gpu, layout, prompt, generate in work:
            started = time.perf_counter()
            try:
                analysis.LLMAnalysis(model_configs[model_id], gpu, dtype, layout).inference(
                    batch_size_per_gpu=1, seq_len=prompt, num_tokens_to_generate=generate,
                    kv_cache_dtype_bytes=2)
                elapsed, fitted = time.perf_counter() - started, True
            except AssertionError as error:
                elapsed = time.perf_counter() - started
                if "too large" not in str(error):
                    skipped[f"peer raised: {str(error)[:80]}"] += 1
                    continue
                fitted = False
            except Exception as error:  # noqa: BLE001 -- a peer bug on one cell must not end the bench
                skipped[f"peer raised {type(error).__name__}"] += 1
                continue
            seconds += elapsed
            fits += fitted
            did_not_fit += not fitted
            approximated.update(notes[model_id])
    timed = fits + did_not_fit
    return {
        "peer": peer_name(),
        "cells": timed,
        "fits": fits,
        "did_not_fit": did_not_fit,
        "seconds": round(seconds, 4),
        "ms_per_cell": round(1000 * seconds / timed, 4) if timed else None,
        "skipped": dict(sorted(skipped.items())),
        "approximated": dict(sorted(approximated.items())),
        "population": _population(models, gpus, gpu_counts, contexts, skipped),
        "sample": sample,
        "seed": seed,
    }


def _population(models, gpus, gpu_counts, contexts, skipped: Counter) -> int:
    """Mappable grid cells: all of ours minus those skipped as not mappable."""
    unmappable = sum(n for reason, n in skipped.items() if not reason.startswith("peer raised"))
    return our_cells(models, gpus, gpu_counts, contexts) - unmappable


def per_cell_ratio(our_seconds: float, our_cell_count: int, peer: Mapping) -> dict:
    """Our ms per cell, the peer's, and how many times faster per cell we are (peer / ours)."""
    ours = 1000 * our_seconds / our_cell_count if our_cell_count > 0 else None
    theirs = peer.get("ms_per_cell")
    return {
        "our_ms_per_cell": round(ours, 6) if ours is not None else None,
        "peer_ms_per_cell": theirs,
        "peer_over_ours": round(theirs / ours, 1) if ours and theirs else None,
    }
