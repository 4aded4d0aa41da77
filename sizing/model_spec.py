"""What the sizing engine knows about one model, derived from its config.json alone.

`ModelSpec` is the contract between architecture accounting (`sizing.architecture`) and the
memory / speed / cost model (`sizing.grid`): everything downstream reads these fields and nothing
else of the config. Units: parameters are counts, bytes are bytes, contexts are tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import polars as pl

PRECISIONS: tuple[str, ...] = ("bf16", "fp8", "int8", "int4", "fp4")

KVKind = Literal["full", "sliding", "chunked", "mla", "state"]


@dataclass(frozen=True)
class KVGroup:
    """A set of decoder layers that cache the same way.

    - ``full``: K and V for every token (MHA/GQA/MQA); grows with context.
    - ``sliding`` / ``chunked``: like ``full`` but holds at most ``window`` tokens per sequence.
    - ``mla``: one compressed latent per token (DeepSeek-style); ``kv_heads`` is 1 and the latent is
      replicated on every tensor-parallel rank.
    - ``state``: linear-attention / SSM layers: a constant per-sequence state of
      ``state_bytes_per_layer`` bytes (in the state's own dtype), independent of context and of the
      KV-cache dtype, sharded across tensor-parallel ranks.

    ``elems_per_token_per_head`` is the number of cached elements per token per KV head summed over
    K and V (2 x head_dim for standard attention; kv_lora_rank + qk_rope_head_dim for MLA).
    """

    kind: KVKind
    layers: int
    kv_heads: int = 0
    elems_per_token_per_head: int = 0
    window: int | None = None
    state_bytes_per_layer: int = 0


@dataclass(frozen=True)
class ModelSpec:
    """Architecture facts and derived sizes for one model.

    An unsupported or malformed config gives ``supported=False`` with a ``reason`` naming the field
    or construct, and zeros elsewhere: never a plausible guess.
    """

    model_id: str
    supported: bool
    reason: str | None = None
    family: str | None = None
    model_type: str | None = None
    architecture: str | None = None
    # Parameter counts. params_total / params_active cover the language model that serves tokens:
    # multi-token-prediction (MTP) layers and vision/audio towers are counted separately.
    params_total: int = 0
    params_active: int = 0
    params_mtp: int = 0
    params_vision: int = 0
    params_embedding: int = 0  # input embedding + untied LM head
    params_routed_experts: int = 0  # all routed-expert weights (MoE); 0 for dense models
    params_unquantized: int = 0  # kept at 16 bits in quantized checkpoints: embeddings, LM head, norms, biases, routers
    num_layers: int = 0
    hidden_size: int = 0
    num_attention_heads: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    vocab_size: int = 0
    max_context: int = 0
    attention_kind: str | None = None  # mha / gqa / mqa / mla / hybrid
    is_moe: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    num_shared_experts: int = 0
    num_moe_layers: int = 0
    # Tensor-parallel constraints read from the config (0 = not applicable: the model has no such
    # layer). Engines shard these head / group / width dimensions across tensor-parallel ranks.
    moe_intermediate_size: int = 0  # width of one routed expert's FFN (0 for dense models)
    # Mamba-2 mixers (Nemotron-H mamba_num_heads / n_groups). Jamba's Mamba-1 mixers have no heads
    # or groups (0); their intermediate-size (d_inner) TP constraint is out of scope here.
    ssm_num_heads: int = 0
    ssm_n_groups: int = 0
    # Gated-DeltaNet linear attention (Qwen3-Next / Qwen3.5 / Qwen3.6 linear_num_key_heads /
    # linear_num_value_heads). MiniMax lightning attention (model_type "minimax") is not supported
    # by the accounting, so no model carries it.
    linear_attn_key_heads: int = 0
    linear_attn_value_heads: int = 0
    sliding_window: int | None = None
    kv_bytes_per_token_bf16: int = 0  # one sequence, TP=1, bytes per extra token at long context
    kv_groups: tuple[KVGroup, ...] = field(default_factory=tuple)
    # Weights: what-if bytes per precision (sizing.precision) and the checkpoint as stored.
    checkpoint_format: str | None = None  # e.g. bf16, fp8, fp8_block, nvfp4, mxfp4, gptq_int4, awq_int4
    checkpoint_precision: str | None = None  # one of PRECISIONS
    # Which evidence decided checkpoint_precision (sizing.quantization.PRECISION_SOURCES, in
    # detection order): quantization_config, hf_quant_config, safetensors_dtypes, repo_name,
    # config_dtype, default.
    checkpoint_precision_source: str | None = None
    # Null when every source that claims a precision agrees; else which sources disagree and what
    # each says (a checkpoint precision that contradicts the repo's files).
    checkpoint_precision_conflict: str | None = None
    weights_bytes: dict[str, int] = field(default_factory=dict)  # precision -> bytes
    weights_bytes_checkpoint: int = 0


MODEL_COLUMNS: dict[str, pl.DataType] = {
    "model_id": pl.Utf8,
    "supported": pl.Boolean,
    "reason": pl.Utf8,
    "family": pl.Utf8,
    "model_type": pl.Utf8,
    "architecture": pl.Utf8,
    "params_total": pl.Int64,
    "params_active": pl.Int64,
    "params_mtp": pl.Int64,
    "params_vision": pl.Int64,
    "params_embedding": pl.Int64,
    "params_routed_experts": pl.Int64,
    "params_unquantized": pl.Int64,
    "num_layers": pl.Int64,
    "hidden_size": pl.Int64,
    "num_attention_heads": pl.Int64,
    "num_kv_heads": pl.Int64,
    "head_dim": pl.Int64,
    "vocab_size": pl.Int64,
    "max_context": pl.Int64,
    "attention_kind": pl.Utf8,
    "is_moe": pl.Boolean,
    "num_experts": pl.Int64,
    "experts_per_token": pl.Int64,
    "num_shared_experts": pl.Int64,
    "num_moe_layers": pl.Int64,
    "moe_intermediate_size": pl.Int64,
    "ssm_num_heads": pl.Int64,
    "ssm_n_groups": pl.Int64,
    "linear_attn_key_heads": pl.Int64,
    "linear_attn_value_heads": pl.Int64,
    "sliding_window": pl.Int64,
    "kv_bytes_per_token_bf16": pl.Int64,
    "checkpoint_format": pl.Utf8,
    "checkpoint_precision": pl.Utf8,
    "checkpoint_precision_source": pl.Utf8,
    "checkpoint_precision_conflict": pl.Utf8,
    **{f"weights_bytes_{p}": pl.Int64 for p in PRECISIONS},
    "weights_bytes_checkpoint": pl.Int64,
}

KV_GROUP_COLUMNS: dict[str, pl.DataType] = {
    "model_id": pl.Utf8,
    "kind": pl.Utf8,
    "layers": pl.Int64,
    "kv_heads": pl.Int64,
    "elems_per_token_per_head": pl.Int64,
    "window": pl.Int64,
    "state_bytes_per_layer": pl.Int64,
}


def specs_to_frames(specs: list[ModelSpec]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Flatten specs into the two frames the vectorised grid reads: models and their KV groups."""
    model_rows = []
    group_rows = []
    for spec in specs:
        row = asdict(spec)
        row.pop("kv_groups")
        weights = row.pop("weights_bytes")
        for precision in PRECISIONS:
            row[f"weights_bytes_{precision}"] = weights.get(precision, 0)
        model_rows.append(row)
        group_rows.extend({"model_id": spec.model_id, **asdict(group)} for group in spec.kv_groups)
    return (
        pl.DataFrame(model_rows, schema=MODEL_COLUMNS) if model_rows else pl.DataFrame(schema=MODEL_COLUMNS),
        pl.DataFrame(group_rows, schema=KV_GROUP_COLUMNS) if group_rows else pl.DataFrame(schema=KV_GROUP_COLUMNS),
    )
