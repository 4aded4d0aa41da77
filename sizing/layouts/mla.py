"""MLA decoders: DeepSeek-V2/V3/V3.2, Kimi-K2/K2.5 (DeepSeek-V3 layers) and GLM-5 (DSA).

transformers DeepseekV3ForCausalLM: multi-head latent attention in every layer, ``first_k_dense_replace``
dense layers then MoE layers (router, routed experts, ``n_shared_experts`` shared experts), and the
DeepSeek-V3.2 / GLM-5 DSA lightning indexer beside the attention. The cache per token is one latent
of ``kv_lora_rank + qk_rope_head_dim`` elements per layer, whatever the head count.
"""

from __future__ import annotations

from sizing.hf_config import HFConfig
from sizing.layouts.base import LayerCache, Layout
from sizing.layouts.blocks import is_moe_layer, mla_attention, moe_block, norms
from sizing.layouts.families import family
from sizing.params import ATTN, BUFFER, MLP, Accounting, embeddings, gated_mlp

#: Decoders with a DSA indexer whatever their config says (``index_topk`` marks any other).
_DSA = ("deepseek_v32", "glm_moe_dsa")


def mla(cfg: HFConfig, mt: str) -> Layout:
    hidden = cfg.int("hidden_size")
    layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    vocab = cfg.int("vocab_size")
    q_lora = cfg.get("q_lora_rank")
    kv_lora = cfg.int("kv_lora_rank")
    nope = cfg.int("qk_nope_head_dim")
    rope = cfg.int("qk_rope_head_dim")
    v_dim = cfg.int("v_head_dim")
    bias = cfg.flag("attention_bias")
    tied = cfg.tie_word_embeddings(False)
    num_experts = cfg.int("num_experts", 0)
    k = cfg.int("experts_per_token", 0)
    moe_inter = cfg.int("moe_intermediate_size", 0)
    n_shared = cfg.int("n_shared_experts", 0)
    indexer = mt in _DSA or cfg.get("index_topk") is not None
    score_bias = cfg.get("topk_method") == "noaux_tc" or mt == "glm_moe_dsa"
    acc = Accounting()
    embeddings(acc, vocab, hidden, tied)
    moe_layers = 0
    per_layer = 0
    for i in range(layers):
        start = len(acc.tensors)
        p = f"layers.{i}"
        mla_attention(acc, f"{p}.self_attn", hidden, heads, q_lora=q_lora, kv_lora=kv_lora, nope=nope, rope=rope,
                      v_dim=v_dim, bias=bias)
        if indexer and _runs_indexer(cfg, i):
            _indexer(acc, f"{p}.self_attn.indexer", cfg, hidden, q_lora)
        if is_moe_layer(cfg, i, mt):
            moe_layers += 1
            moe_block(acc, f"{p}.mlp", hidden, moe_inter, num_experts, score_bias=score_bias,
                      shared=n_shared * moe_inter)
        else:
            gated_mlp(acc, f"{p}.mlp", hidden, cfg.int("intermediate_size"), MLP)
        norms(acc, p, hidden, ("input_layernorm", "post_attention_layernorm"))
        if i == layers - 1:
            per_layer = sum(t.numel for t in acc.tensors[start:] if t.role != BUFFER)
    acc.norm("norm", hidden)
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = num_experts, k, moe_layers
    acc.num_shared_experts = n_shared if moe_layers else 0
    # DeepSeek MTP module (DeepSeek-V3 report sec. 2.2; the checkpoint's model.layers.61): a full
    # decoder layer (the last, MoE one) plus enorm, hnorm, eh_proj (2h -> h) and shared_head.norm;
    # embedding and head are shared with the main model.
    acc.mtp = cfg.int("num_nextn_predict_layers", 0) * (per_layer + 3 * hidden + 2 * hidden * hidden)
    caches = [LayerCache("mla", 1, kv_lora + rope) for _ in range(layers)]
    extra = []
    if indexer:
        # DSA lightning indexer: one index_head_dim key per token per layer, cached for every token
        # (vLLM's DeepseekV32IndexerCache keeps it beside the MLA latent), so it grows like KV.
        # GLM-5.2 "shared" indexer layers reuse the previous layer's top-k and cache no keys.
        extra = [LayerCache("full", 1, cfg.int("index_head_dim")) for i in range(layers) if _runs_indexer(cfg, i)]
    return Layout(acc, caches, family(mt), layers, hidden, heads, 1, nope + rope, vocab, "mla",
                  extra_caches=extra, moe_intermediate_size=moe_inter if moe_layers else 0)


def _indexer(acc: Accounting, prefix: str, cfg: HFConfig, hidden: int, q_lora: int | None) -> None:
    """DSA lightning indexer: ``index_n_heads`` query heads of ``index_head_dim`` read from the
    query latent (the hidden state without q_lora), one shared key with a biased LayerNorm, and
    per-head weights."""
    ih, idim = cfg.int("index_n_heads"), cfg.int("index_head_dim")
    acc.linear(f"{prefix}.wq_b", q_lora or hidden, ih * idim, ATTN)
    acc.linear(f"{prefix}.wk", hidden, idim, ATTN)
    acc.norm(f"{prefix}.k_norm", idim, bias=True)
    acc.linear(f"{prefix}.weights_proj", hidden, ih, ATTN)


def _runs_indexer(cfg: HFConfig, i: int) -> bool:
    types = cfg.get("indexer_types")
    return not (isinstance(types, list) and i < len(types) and types[i] == "shared")


def kimi_k2(cfg: HFConfig, mt: str) -> Layout:
    """Kimi-K2 ships ``architectures: ["DeepseekV3ForCausalLM"]`` with DeepSeek-V3 config fields
    under its own model_type (the oracle builds it as deepseek_v3): laid out as DeepSeek-V3. The
    Kimi-K2.5 wrapper nests that decoder in ``text_config``."""
    return mla(cfg, "deepseek_v3" if mt == "kimi_k2" else mt)
