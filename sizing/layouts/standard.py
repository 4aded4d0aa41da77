"""Standard (MHA/GQA/MQA) decoders: llama, mistral/mixtral, qwen2/3 (+moe, +vl), gemma 1-3, olmo2,
phi3, minimax_m2, glm4_moe, gpt_oss, llama4, step3p7, internlm2, mimo, deepseek (v1), granite.

They share one layer shape (q/k/v/o, optional q/k norms, a dense gated MLP or a router + experts
block, RMSNorms) and differ only in the switches of an ``_Std`` row, each mirroring its transformers
(or remote-code) modeling file.
"""

from __future__ import annotations

from dataclasses import dataclass

from sizing.hf_config import HFConfig
from sizing.layouts.base import LayerCache, Layout, attention_kind, kv_cache
from sizing.layouts.blocks import attention, decoder_dims, is_moe_layer, moe_block, norms, qk_norms
from sizing.layouts.families import family
from sizing.params import ATTN, MLP, NORM, Accounting, embeddings, gated_mlp


@dataclass(frozen=True)
class _Std:
    qkv_bias: str | None = None  # config flag enabling q/k/v bias, or "always"
    qkv_bias_default: bool = False  # value of the qkv_bias flag when the config omits it
    o_bias: str | None = None  # config flag enabling o_proj bias, or "always"
    mlp_bias: str | None = None
    qk_norm: str | None = None  # "head" (per head_dim) or "full" (over all heads)
    qk_norm_flag: str | None = None  # config flag that must be true for qk_norm
    norms: int = 2
    tie_default: bool = False
    shared: str | None = None  # config field giving the shared-expert width
    shared_gate: bool = False
    router_bias_param: bool = False
    router_bias_buffer: str | None = None  # config flag (or "always") for an e_score_correction_bias buffer
    sinks: bool = False
    head_gate: bool = False  # step3p7 g_proj: one gate per head
    dense_inter: str = "intermediate_size"
    mtp: bool = False


_STD: dict[str, _Std] = {
    "llama": _Std(qkv_bias="attention_bias", o_bias="attention_bias", mlp_bias="mlp_bias"),
    "mistral": _Std(qkv_bias="attention_bias", o_bias="attention_bias"),
    "mixtral": _Std(),
    "qwen2": _Std(qkv_bias="always"),
    "mimo": _Std(qkv_bias="always", mtp=True),
    "qwen3": _Std(qkv_bias="attention_bias", o_bias="attention_bias", qk_norm="head"),
    "qwen3_moe": _Std(qkv_bias="attention_bias", o_bias="attention_bias", qk_norm="head"),
    "qwen3_vl_text": _Std(qkv_bias="attention_bias", o_bias="attention_bias", qk_norm="head"),
    "qwen3_vl_moe_text": _Std(qkv_bias="attention_bias", o_bias="attention_bias", qk_norm="head"),
    "qwen2_moe": _Std(qkv_bias="qkv_bias", qkv_bias_default=True, shared="shared_expert_intermediate_size",
                      shared_gate=True),
    "gemma": _Std(tie_default=True),
    "gemma2": _Std(norms=4, tie_default=True),
    "gemma3_text": _Std(norms=4, qk_norm="head", tie_default=True),
    "olmo2": _Std(qk_norm="full"),
    "phi3": _Std(),
    "internlm2": _Std(qkv_bias="bias", o_bias="bias"),
    "minimax_m2": _Std(qk_norm="full", qk_norm_flag="use_qk_norm", router_bias_buffer="use_routing_bias"),
    "glm4_moe": _Std(qkv_bias="attention_bias", qk_norm="head", qk_norm_flag="use_qk_norm",
                     shared="n_shared_experts", router_bias_buffer="always"),
    "gpt_oss": _Std(qkv_bias="always", o_bias="always", router_bias_param=True, sinks=True),
    "llama4_text": _Std(shared="intermediate_size", dense_inter="intermediate_size_mlp"),
    # DeepSeek-MoE v1 (remote code modeling_deepseek.py): Llama attention, first_k_dense_replace dense
    # layers, shared experts of width n_shared x moe_intermediate_size, softmax router without bias.
    "deepseek": _Std(qkv_bias="attention_bias", o_bias="attention_bias", shared="n_shared_experts"),
    "step3p7": _Std(qk_norm="head", head_gate=True, shared="share_expert_dim",
                    router_bias_buffer="use_moe_router_bias"),
    # IBM Granite / Granite-MoE: Llama layers; embedding/residual/attention/logits multipliers scale
    # activations and add no parameters. Granite-MoE: every layer is a router + gated experts
    # (block_sparse_moe), no shared expert.
    "granite": _Std(qkv_bias="attention_bias", o_bias="attention_bias", mlp_bias="mlp_bias"),
    "granitemoe": _Std(qkv_bias="attention_bias", o_bias="attention_bias"),
}
#: Wrappers and renamed releases laid out as another row: llama4 / qwen3_vl(_moe) are the multimodal
#: wrappers whose decoder is the ``*_text`` model; codellama is Llama.
_STD_ALIASES = {"llama4": "llama4_text", "qwen3_vl": "qwen3_vl_text", "qwen3_vl_moe": "qwen3_vl_moe_text",
                "codellama": "llama"}

#: The model_types ``standard`` lays out.
MODEL_TYPES: tuple[str, ...] = (*_STD, *_STD_ALIASES)


def _flag(cfg: HFConfig, name: str | None, default: bool = False) -> bool:
    if name is None:
        return False
    if name == "always":
        return True
    return cfg.flag(name, default)


def _shared_width(cfg: HFConfig, opt: _Std) -> tuple[int, int]:
    """(number of shared experts, total shared width)."""
    if opt.shared is None:
        return 0, 0
    if opt.shared == "n_shared_experts":
        n = cfg.int("n_shared_experts", 0)
        return n, n * cfg.int("moe_intermediate_size")
    width = cfg.int(opt.shared, 0)
    if opt.shared == "share_expert_dim":
        n = cfg.int("n_shared_experts", 1)
        return n, width * n
    return (1 if width else 0), width


def standard(cfg: HFConfig, mt: str) -> Layout:
    opt = _STD[_STD_ALIASES.get(mt, mt)]
    hidden, layers, heads, kv_heads, hd, vocab = decoder_dims(cfg)
    tied = cfg.tie_word_embeddings(opt.tie_default)
    if cfg.model_type == "mistral3" and cfg.raw.get("tie_word_embeddings") is None:
        # transformers 5.x ties on the wrapper, whose Mistral3Config default is True: a
        # text_config "tie_word_embeddings": false alone does not untie (oracle-checked).
        tied = True
    acc = Accounting()
    embeddings(acc, vocab, hidden, tied)
    num_experts = cfg.int("num_experts", 0)
    k = cfg.int("experts_per_token", 0) if num_experts else 0
    moe_inter = cfg.int("moe_intermediate_size", 0) or cfg.int("intermediate_size", 0)
    n_shared, shared_width = _shared_width(cfg, opt)
    qkv_bias, o_bias = _flag(cfg, opt.qkv_bias, opt.qkv_bias_default), _flag(cfg, opt.o_bias)
    mlp_bias = _flag(cfg, opt.mlp_bias)
    qk_norm = opt.qk_norm if (opt.qk_norm_flag is None or cfg.flag(opt.qk_norm_flag)) else None
    types = cfg.layer_types(layers)
    window = cfg.get("sliding_window")
    chunk = cfg.get("attention_chunk_size")
    caches: list[LayerCache] = []
    moe_layers = 0
    for i in range(layers):
        p = f"layers.{i}"
        attention(acc, f"{p}.self_attn", hidden, heads * hd, kv_heads * hd, qkv_bias=qkv_bias, o_bias=o_bias)
        if qk_norm == "head":
            qk_norms(acc, f"{p}.self_attn", hd, hd)
        elif qk_norm == "full":
            qk_norms(acc, f"{p}.self_attn", heads * hd, kv_heads * hd)
        if opt.head_gate:
            acc.linear(f"{p}.self_attn.g_proj", hidden, heads, ATTN)
        if opt.sinks:
            acc.add(f"{p}.self_attn.sinks", heads, NORM)
        if is_moe_layer(cfg, i, mt):
            moe_layers += 1
            moe_block(acc, f"{p}.mlp", hidden, moe_inter, num_experts, router_bias=opt.router_bias_param,
                      score_bias=_flag(cfg, opt.router_bias_buffer), expert_bias=opt.router_bias_param,
                      shared=shared_width, shared_gate=opt.shared_gate)
        else:
            gated_mlp(acc, f"{p}.mlp", hidden, cfg.int(opt.dense_inter), MLP, bias=mlp_bias)
        norms(acc, p, hidden, (f"norm{n}" for n in range(opt.norms)))
        caches.append(_layer_cache(types[i], kv_heads, hd, window, chunk))
    acc.norm("norm", hidden)
    if mt in ("llama4", "llama4_text"):
        caches = _llama4_chunked(cfg, caches, layers, kv_heads, hd, chunk)
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = num_experts, k, moe_layers
    acc.num_shared_experts = n_shared if moe_layers else 0
    if opt.mtp:
        acc.mtp = _mimo_mtp(cfg, hidden, heads, kv_heads, hd)
    return Layout(acc, caches, family(mt), layers, hidden, heads, kv_heads, hd, vocab, attention_kind(heads, kv_heads),
                  int(window) if window and any(c.kind == "sliding" for c in caches) else None,
                  moe_intermediate_size=moe_inter if moe_layers else 0)


def _layer_cache(layer_type: str, kv_heads: int, hd: int, window, chunk) -> LayerCache:
    """``layer_types`` entry to cache: sliding and chunked layers only when their window is set."""
    if layer_type == "sliding_attention" and window:
        return kv_cache(kv_heads, hd, "sliding", int(window))
    if layer_type == "chunked_attention" and chunk:
        return kv_cache(kv_heads, hd, "chunked", int(chunk))
    return kv_cache(kv_heads, hd)


def _llama4_chunked(cfg: HFConfig, caches: list[LayerCache], layers: int, kv_heads: int, hd: int,
                    chunk) -> list[LayerCache]:
    """Llama-4: RoPE layers (``no_rope_layers[i] == 1``, default every layer but each
    ``no_rope_layer_interval``-th) use chunked local attention of ``attention_chunk_size``."""
    rope_layers = cfg.get("no_rope_layers")
    if not isinstance(rope_layers, list):
        interval = cfg.int("no_rope_layer_interval", 4)
        rope_layers = [int((i + 1) % interval != 0) for i in range(layers)]
    if not (chunk and len(rope_layers) >= layers):
        return caches
    return [kv_cache(kv_heads, hd, "chunked", int(chunk)) if rope_layers[i] else c for i, c in enumerate(caches)]


def _mimo_mtp(cfg: HFConfig, hidden: int, heads: int, kv_heads: int, hd: int) -> int:
    """MiMo MTP layers (XiaomiMiMo modeling_mimo.MiMoMTPLayers), each: token_layernorm,
    hidden_layernorm, input_proj (2h -> h, no bias), a Qwen2 decoder layer (qkv bias), final_layernorm."""
    n = cfg.int("num_nextn_predict_layers", 0)
    inter = cfg.int("intermediate_size")
    mtp = Accounting()
    norms(mtp, "mtp", hidden, ("token_layernorm", "hidden_layernorm", "final_layernorm"))
    mtp.linear("mtp.input_proj", 2 * hidden, hidden, ATTN)
    attention(mtp, "mtp.self_attn", hidden, heads * hd, kv_heads * hd, qkv_bias=True)
    gated_mlp(mtp, "mtp.mlp", hidden, inter, MLP)
    norms(mtp, "mtp", hidden, ("input_layernorm", "post_attention_layernorm"))
    return n * mtp.total
