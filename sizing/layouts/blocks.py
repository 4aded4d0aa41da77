"""The blocks decoder layers are made of, written once for every family: attention projections
(split q/k/v/o, fused qkv, DeepSeek MLA), per-head or full-width q/k norms, router-plus-experts MoE
blocks, named norm lists, and the rule placing MoE layers. Each call appends tensors to an
``Accounting`` under the module names of the family's transformers modeling file, in its order."""

from __future__ import annotations

from collections.abc import Iterable

from sizing.hf_config import HFConfig
from sizing.params import ATTN, BUFFER, ROUTER, SHARED, Accounting, gated_mlp, routed_experts


def decoder_dims(cfg: HFConfig) -> tuple[int, int, int, int, int, int]:
    """(hidden, layers, heads, kv_heads, head_dim, vocab) of a decoder config, read in this order so
    the first missing field is the one reported."""
    return (cfg.int("hidden_size"), cfg.int("num_hidden_layers"), cfg.int("num_attention_heads"),
            cfg.num_kv_heads(), cfg.head_dim(), cfg.int("vocab_size"))


def attention(acc: Accounting, prefix: str, hidden: int, q_dim: int, kv_dim: int, *, q_gate: bool = False,
              qkv_bias: bool = False, o_bias: bool = False, v: bool = True, o_name: str = "o_proj") -> None:
    """Split q/k/v/o projections: ``q_dim`` = heads x head_dim, ``kv_dim`` = KV heads x head_dim.

    ``q_gate``: q_proj also emits a per-channel output gate (Qwen3.5/Next ``attn_output_gate``), so
    its width doubles while o_proj still reads ``q_dim``. ``v=False``: K doubles as V (Gemma-4
    ``attention_k_eq_v`` on full layers), no v_proj. ``o_name``: ``dense`` (Phi), ``out_proj`` (GPT-J).
    """
    acc.linear(f"{prefix}.q_proj", hidden, q_dim * (2 if q_gate else 1), ATTN, qkv_bias)
    acc.linear(f"{prefix}.k_proj", hidden, kv_dim, ATTN, qkv_bias)
    if v:
        acc.linear(f"{prefix}.v_proj", hidden, kv_dim, ATTN, qkv_bias)
    acc.linear(f"{prefix}.{o_name}", q_dim, hidden, ATTN, o_bias)


def fused_attention(acc: Accounting, prefix: str, hidden: int, qkv_out: int, o_in: int, *, qkv: str = "query_key_value",
                    o: str = "dense", qkv_bias: bool = False, o_bias: bool = False) -> None:
    """One fused q/k/v projection of width ``qkv_out`` then the output projection (``o_in`` -> hidden):
    GPT-2 ``c_attn``/``c_proj``, GPT-NeoX/Falcon/ChatGLM ``query_key_value``/``dense``, DBRX ``Wqkv``."""
    acc.linear(f"{prefix}.{qkv}", hidden, qkv_out, ATTN, qkv_bias)
    acc.linear(f"{prefix}.{o}", o_in, hidden, ATTN, o_bias)


def qk_norms(acc: Accounting, prefix: str, q_size: int, k_size: int, *, names: tuple[str, str] = ("q_norm", "k_norm"),
             bias: bool = False) -> None:
    """Query/key norms: per head (size head_dim, shared by the heads: Qwen3, Gemma-3/4) or over all
    heads (heads x head_dim: OLMo-2, MiniMax-M2, Cohere)."""
    acc.norm(f"{prefix}.{names[0]}", q_size, bias=bias)
    acc.norm(f"{prefix}.{names[1]}", k_size, bias=bias)


def mla_attention(acc: Accounting, prefix: str, hidden: int, heads: int, *, q_lora: int, kv_lora: int, nope: int,
                  rope: int, v_dim: int, bias: bool) -> None:
    """DeepSeek-V2/V3 multi-head latent attention (transformers DeepseekV3Attention): queries through
    a low-rank q_a/q_b pair when ``q_lora_rank`` is set (else one q_proj), keys and values from one
    ``kv_lora_rank`` latent plus a shared ``qk_rope_head_dim`` key (kv_a_proj_with_mqa), expanded per
    head by kv_b_proj; ``attention_bias`` biases only the projections that read the hidden state."""
    if q_lora:
        acc.linear(f"{prefix}.q_a_proj", hidden, q_lora, ATTN, bias)
        acc.norm(f"{prefix}.q_a_layernorm", q_lora)
        acc.linear(f"{prefix}.q_b_proj", q_lora, heads * (nope + rope), ATTN)
    else:
        acc.linear(f"{prefix}.q_proj", hidden, heads * (nope + rope), ATTN)
    acc.linear(f"{prefix}.kv_a_proj_with_mqa", hidden, kv_lora + rope, ATTN, bias)
    acc.norm(f"{prefix}.kv_a_layernorm", kv_lora)
    acc.linear(f"{prefix}.kv_b_proj", kv_lora, heads * (nope + v_dim), ATTN)
    acc.linear(f"{prefix}.o_proj", heads * v_dim, hidden, ATTN, bias)


def moe_block(acc: Accounting, prefix: str, hidden: int, inter: int, experts: int, *, router: str = "gate",
              router_bias: bool = False, score_bias: bool = False, expert_bias: bool = False, gated: bool = True,
              expert_hidden: int | None = None, shared: int = 0, shared_name: str = "shared_experts",
              shared_gated: bool = True, shared_gate: bool = False) -> None:
    """Router, routed experts and optional shared expert(s) of total width ``shared``.

    ``score_bias``: the router's ``e_score_correction_bias`` (DeepSeek-V3 noaux_tc and its heirs), a
    buffer in transformers: priced in checkpoint bytes, not a parameter. ``expert_hidden``: the
    width experts read and write when it is not the model's (Nemotron-H latent MoE).
    ``shared_gate``: the scalar sigmoid gate on the shared expert (Qwen2-MoE, Qwen3.5/Next).
    """
    acc.linear(f"{prefix}.{router}", hidden, experts, ROUTER, router_bias)
    if score_bias:
        acc.add(f"{prefix}.{router}.e_score_correction_bias", experts, BUFFER)
    routed_experts(acc, prefix, expert_hidden or hidden, inter, experts, gated=gated, bias=expert_bias)
    if shared:
        gated_mlp(acc, f"{prefix}.{shared_name}", hidden, shared, SHARED, gated=shared_gated)
        if shared_gate:
            acc.linear(f"{prefix}.shared_expert_gate", hidden, 1, ROUTER)


def norms(acc: Accounting, prefix: str, size: int, names: Iterable[str], *, bias: bool = False) -> None:
    for name in names:
        acc.norm(f"{prefix}.{name}", size, bias=bias)


_QWEN_STEP_MOE = frozenset({"qwen2_moe", "qwen3_moe", "qwen3_vl_moe", "qwen3_vl_moe_text", "qwen3_5_moe",
                            "qwen3_5_moe_text", "qwen3_next"})


def is_moe_layer(cfg: HFConfig, i: int, mt: str) -> bool:
    """Whether decoder layer ``i`` holds routed experts, by the field each family places them with:
    Qwen-MoE ``mlp_only_layers`` + ``decoder_sparse_step``; Llama-4 ``moe_layers`` or
    ``interleave_moe_layer_step``; then ``mlp_layer_types`` ("sparse"), a per-layer
    ``moe_layer_freq`` list, or DeepSeek's ``first_k_dense_replace`` dense layers followed by every
    ``moe_layer_freq``-th. No experts configured: never."""
    experts = cfg.get("num_experts") or 0
    if not experts:
        return False
    if mt in _QWEN_STEP_MOE:
        if i in (cfg.get("mlp_only_layers") or []):
            return False
        step = cfg.get("decoder_sparse_step") or 1
        return (i + 1) % step == 0
    if mt in ("llama4", "llama4_text"):
        layers = cfg.get("moe_layers")
        if isinstance(layers, list):
            return i in layers
        step = cfg.get("interleave_moe_layer_step") or 1
        return (i + 1) % step == 0
    mlp_types = cfg.get("mlp_layer_types")
    if isinstance(mlp_types, list) and i < len(mlp_types):
        return mlp_types[i] == "sparse"
    freq = cfg.get("moe_layer_freq")
    if isinstance(freq, list):
        return bool(freq[i]) if i < len(freq) else False
    first_dense = cfg.get("first_k_dense_replace") or 0
    if i < first_dense:
        return False
    return i % (freq or 1) == 0
