"""Gemma-4 (transformers Gemma4ForCausalLM / the text model of Gemma4ForConditionalGeneration).

Gemma 1-3 are standard decoders (``sizing.layouts.standard``). Gemma-4 is not: sliding and full
layers have their own head_dim (``global_head_dim``) and KV heads (``num_global_key_value_heads``),
full layers may share K as V (``attention_k_eq_v``), an optional MoE block sits beside the dense MLP
(``enable_moe_block``), and the last ``num_kv_shared_layers`` layers reuse earlier layers' KV.
"""

from __future__ import annotations

from sizing.hf_config import HFConfig
from sizing.layouts.base import LayerCache, Layout, Unsupported, attention_kind
from sizing.layouts.blocks import attention, norms, qk_norms
from sizing.params import MLP, ROUTER, Accounting, embeddings, gated_mlp, routed_experts

_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")
_MOE_NORMS = ("post_feedforward_layernorm_1", "post_feedforward_layernorm_2", "pre_feedforward_layernorm_2")


def gemma4(cfg: HFConfig, mt: str) -> Layout:
    if cfg.int("hidden_size_per_layer_input", 0):
        raise Unsupported("per-layer input embeddings (hidden_size_per_layer_input) not accounted")
    if cfg.flag("use_double_wide_mlp"):
        raise Unsupported("use_double_wide_mlp not accounted")
    hidden = cfg.int("hidden_size")
    layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.num_kv_heads()
    hd = cfg.head_dim()
    g_hd = cfg.int("global_head_dim", hd)
    g_kv = cfg.int("num_global_key_value_heads", kv_heads)
    k_eq_v = cfg.flag("attention_k_eq_v")
    vocab = cfg.int("vocab_size")
    tied = cfg.tie_word_embeddings(True)
    window = cfg.int("sliding_window")
    types = cfg.layer_types(layers)
    moe = cfg.flag("enable_moe_block")
    experts = cfg.int("num_experts", 0) if moe else 0
    k = cfg.int("experts_per_token", 0) if moe else 0
    shared_kv = cfg.int("num_kv_shared_layers", 0)
    acc = Accounting()
    embeddings(acc, vocab, hidden, tied)
    caches = []
    for i in range(layers):
        p = f"layers.{i}"
        full = types[i] == "full_attention"
        d, nkv = (g_hd, g_kv) if full else (hd, kv_heads)
        a = f"{p}.self_attn"
        attention(acc, a, hidden, heads * d, nkv * d, v=not (full and k_eq_v))
        qk_norms(acc, a, d, d)
        gated_mlp(acc, f"{p}.mlp", hidden, cfg.int("intermediate_size"), MLP)
        norms(acc, p, hidden, _NORMS)
        if moe:
            # Gemma4TextRouter: a projection, a per-channel scale and a per-expert scale.
            acc.linear(f"{p}.router.proj", hidden, experts, ROUTER)
            acc.add(f"{p}.router.scale", hidden, ROUTER)
            acc.add(f"{p}.router.per_expert_scale", experts, ROUTER)
            routed_experts(acc, p, hidden, cfg.int("moe_intermediate_size"), experts)
            norms(acc, p, hidden, _MOE_NORMS)
        if i >= layers - shared_kv:
            # KV-shared layers read the cache of the last non-shared layer of the same type.
            caches.append(LayerCache("none"))
        elif full:
            caches.append(LayerCache("full", nkv, d * (1 if k_eq_v else 2)))
        else:
            caches.append(LayerCache("sliding", nkv, 2 * d, window))
    acc.norm("norm", hidden)
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = experts, k, layers if moe else 0
    return Layout(acc, caches, "gemma", layers, hidden, heads, kv_heads, hd, vocab, attention_kind(heads, kv_heads),
                  window, moe_intermediate_size=cfg.int("moe_intermediate_size") if moe else 0)
