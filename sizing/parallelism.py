"""The parallel layout an engine would actually start for ``gpu_count`` GPUs of one type.

One home for every rule that decides whether a (model, GPU, count) is deployable:

**Model-side tensor-parallel constraints** (``tp_constraints_expr``), the checks vLLM makes at load
time (a layout failing any of them does not start):

- ``t | num_attention_heads`` (``vllm/config``: "Total number of attention heads must be divisible
  by tensor parallel size");
- ``t | num_kv_heads`` or ``num_kv_heads | t`` (KV heads are replicated when t exceeds them);
- ``t | vocab_size`` (vocab-parallel embedding shards the vocabulary evenly; llm-d-planner's rule);
- Mamba2 mixers: ``t | ssm_num_heads`` and (``t | ssm_n_groups`` or ``ssm_n_groups == 1``)
  (``vllm/model_executor/layers/mamba/mamba_mixer2.py``: "Tensor parallel world size must divide num
  heads", "If tensor parallel world size does not divide num_groups, then num_groups must equal 1");
- linear attention (Gated DeltaNet, Qwen3-Next / Qwen3.5): ``t | linear_attn_key_heads`` and
  ``t | linear_attn_value_heads`` (vLLM ``qwen3_next.py`` shards both head sets by TP).

Zero / unknown counts do not constrain.

**Expert parallelism.** MoE models are served with expert parallelism across the tensor-parallel
group (``--enable-expert-parallel``; TensorRT-LLM and SGLang do the same at scale) when the experts
split evenly (``t | num_experts``): ``expert_parallel = t``. Otherwise experts stay tensor-sharded
(vLLM's default), ``expert_parallel = 1``. Either way the layout starts; EP only changes speed.

**Topology.** A tensor-parallel group never leaves one scale-up domain: the GPUs one NVLink /
NVSwitch / xGMI / Gaudi-RoCE fabric joins (HGX/OAM baseboard: 8; GB200/GB300 NVL72: 72), or for a
PCIe card the GPUs of one host (``gpus.scale_up_domain_gpus``). The layout is the largest valid
``t`` that divides ``gpu_count`` and fits one domain; the rest is pipeline parallel,
``p = gpu_count / t``. When the group spans more than one domain (``domains > 1``) the pipeline stages
talk over the scale-out fabric (InfiniBand / RoCE NICs, ``gpus.scale_out_gbps``): a GPU without one
(consumer and workstation cards) cannot be used beyond one host, and the row is not deployable.

Columns added: ``tensor_parallel``, ``pipeline_parallel``, ``expert_parallel``, ``domains``,
``tp_valid`` (the layout starts: every model constraint holds at ``tensor_parallel`` and the
multi-domain case has a scale-out fabric) and ``layout_reason`` (why not, or null).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from sizing.constants import DEFAULT_TOPOLOGY

#: Model columns the constraints read (absent columns count as 0 = unconstrained).
CONSTRAINT_COLUMNS: tuple[str, ...] = (
    "num_attention_heads",
    "num_kv_heads",
    "vocab_size",
    "ssm_num_heads",
    "ssm_n_groups",
    "linear_attn_key_heads",
    "linear_attn_value_heads",
    "num_experts",
)
#: GPU columns the topology rules read.
TOPOLOGY_COLUMNS: tuple[str, ...] = (
    "scale_up_fabric",
    "form_factor",
    "scale_up_domain_gpus",
    "scale_up_gbps",
    "fast_link_group_gpus",
    "pcie_gbps",
    "scale_out_gbps",
)


def _count(name: str) -> pl.Expr:
    return pl.col(name).fill_null(0).cast(pl.Int64)


def _divides(tp: pl.Expr, name: str) -> pl.Expr:
    n = _count(name)
    return (n == 0) | (n % tp == 0)


def tp_constraints_expr(tp: pl.Expr) -> pl.Expr:
    """True where tensor-parallel degree ``tp`` satisfies every model-side constraint (module doc)."""
    nkv = _count("num_kv_heads")
    groups = _count("ssm_n_groups")
    return (
        _divides(tp, "num_attention_heads")
        & ((nkv == 0) | (nkv % tp == 0) | (tp % pl.max_horizontal(nkv, pl.lit(1)) == 0))
        & _divides(tp, "vocab_size")
        & _divides(tp, "ssm_num_heads")
        & ((groups <= 1) | (groups % tp == 0))
        & _divides(tp, "linear_attn_key_heads")
        & _divides(tp, "linear_attn_value_heads")
    )


def with_constraint_columns(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Add any missing constraint column as 0 (library callers with older model frames)."""
    names = lf.collect_schema().names()
    return lf.with_columns(pl.lit(0, pl.Int64).alias(c) for c in CONSTRAINT_COLUMNS if c not in names)


def with_topology_columns(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Fill GPU topology for frames that lack it (``DEFAULT_TOPOLOGY``: an 8-GPU node on
    InfiniBand, the DGX/HGX convention). Published gpus always carry their own, from the seed."""
    names = lf.collect_schema().names()
    interconnect = pl.col("interconnect_gbps") if "interconnect_gbps" in names else pl.lit(None, pl.Float64)
    defaults = {
        "scale_up_fabric": pl.lit(None, pl.Utf8),
        "form_factor": pl.lit(None, pl.Utf8),
        "scale_up_domain_gpus": pl.lit(DEFAULT_TOPOLOGY.scale_up_domain_gpus, pl.Int64),
        "scale_up_gbps": pl.coalesce(interconnect.cast(pl.Float64), pl.lit(DEFAULT_TOPOLOGY.pcie_gbps)),
        "fast_link_group_gpus": pl.lit(None, pl.Int64),
        "pcie_gbps": pl.lit(DEFAULT_TOPOLOGY.pcie_gbps, pl.Float64),
        "scale_out_gbps": pl.lit(DEFAULT_TOPOLOGY.scale_out_gbps, pl.Float64),
    }
    return lf.with_columns(expr.alias(name) for name, expr in defaults.items() if name not in names).with_columns(
        pl.col("scale_up_fabric").cast(pl.Utf8),
        pl.col("form_factor").cast(pl.Utf8),
        pl.col("scale_up_domain_gpus").cast(pl.Int64),
        pl.col("scale_up_gbps").cast(pl.Float64),
        pl.col("fast_link_group_gpus").cast(pl.Int64),
        pl.col("pcie_gbps").cast(pl.Float64),
        pl.col("scale_out_gbps").cast(pl.Float64),
    )


def tp_link_gbps_expr() -> pl.Expr:
    """Per-GPU bandwidth (GB/s, one direction) a tensor-parallel all-reduce of ``tensor_parallel`` ranks
    gets: the bridge rate inside a bridged group, PCIe beyond it; on an AMD OAM xGMI full mesh
    (7 point-to-point links per GPU, no switch) only the ``t - 1`` links to the group's peers carry
    traffic, so ``scale_up_gbps x (t-1)/(domain-1)`` (AMD ROCm MI300 workload-optimisation guide: TP2
    uses one of seven links); otherwise the scale-up figure."""
    tp = pl.col("tensor_parallel").cast(pl.Float64)
    domain = pl.col("scale_up_domain_gpus").cast(pl.Float64)
    pcie = pl.coalesce(pl.col("pcie_gbps"), pl.lit(DEFAULT_TOPOLOGY.pcie_gbps))
    scale_up = pl.coalesce(pl.col("scale_up_gbps"), pcie)
    return (
        pl.when(pl.col("fast_link_group_gpus").is_not_null() & (tp > pl.col("fast_link_group_gpus")))
        .then(pcie)
        .when((pl.col("scale_up_fabric") == "xgmi") & (pl.col("form_factor") == "oam") & (domain > 1))
        .then(scale_up * (tp - 1.0) / (domain - 1.0))
        .otherwise(scale_up)
    )


def tp_candidates(gpu_counts: Sequence[int]) -> tuple[int, ...]:
    """Every tensor-parallel degree a layout of the given counts may use (their divisors), descending."""
    return tuple(sorted({d for n in gpu_counts for d in range(1, n + 1) if n % d == 0}, reverse=True))


def layout_columns(gpu_counts: Sequence[int]) -> list[pl.Expr]:
    """Expressions (in order: apply with successive ``with_columns``) over a frame with model
    constraint columns, topology columns and ``gpu_count``. See the module doc."""
    n = pl.col("gpu_count").cast(pl.Int64)
    domain = pl.col("scale_up_domain_gpus").fill_null(1).clip(lower_bound=1)
    tp = pl.lit(1, pl.Int64)
    for t in sorted(tp_candidates(gpu_counts)):
        ok = (n % t == 0) & (pl.lit(t) <= domain) & tp_constraints_expr(pl.lit(t, pl.Int64))
        tp = pl.when(ok).then(pl.lit(t, pl.Int64)).otherwise(tp)
    return [
        tp.alias("tensor_parallel"),
        (n // pl.col("tensor_parallel")).alias("pipeline_parallel"),
        ((n + domain - 1) // domain).cast(pl.Int64).alias("domains"),
    ]


def layout_validity_columns() -> list[pl.Expr]:
    """``expert_parallel``, ``tp_valid`` and ``layout_reason`` from the layout columns."""
    tp = pl.col("tensor_parallel")
    experts = _count("num_experts")
    no_scale_out = (pl.col("domains") > 1) & pl.col("scale_out_gbps").is_null()
    stages_exceed_layers = pl.col("pipeline_parallel") > pl.col("num_layers").fill_null(0).clip(lower_bound=1)
    reason = (
        pl.when(no_scale_out)
        .then(
            pl.format(
                "{} GPUs span {} scale-up domains of {} and this GPU has no scale-out fabric",
                pl.col("gpu_count"),
                pl.col("domains"),
                pl.col("scale_up_domain_gpus").fill_null(1),
            )
        )
        .when(stages_exceed_layers)
        .then(pl.format("{} pipeline stages exceed the model's {} layers", pl.col("pipeline_parallel"), pl.col("num_layers")))
    )
    return [
        pl.when((experts > 0) & (experts % tp == 0)).then(tp).otherwise(pl.lit(1, pl.Int64)).alias("expert_parallel"),
        reason.alias("layout_reason"),
    ]


def add_layout_columns(lf: pl.LazyFrame, gpu_counts: Sequence[int]) -> pl.LazyFrame:
    """Add the layout and its validity to a frame of model x GPU x ``gpu_count`` rows."""
    lf = with_topology_columns(with_constraint_columns(lf))
    first, second, third = layout_columns(gpu_counts)
    lf = lf.with_columns(first).with_columns(second, third).with_columns(layout_validity_columns())
    return lf.with_columns(tp_valid=pl.col("layout_reason").is_null())
