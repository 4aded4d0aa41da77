"""Per-family decoder layouts: which tensors each layer holds and how each layer caches.

Each builder mirrors the transformers modeling file of its family (module names, fused or split
projections, biases, norms, MoE placement) and returns a ``Layout``: the parameter ``Accounting``
plus one ``LayerCache`` per decoder layer, from which ``sizing.kv`` derives KV groups. A family that
cannot be accounted exactly raises ``Unsupported`` with the reason: never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sizing.hf_config import HFConfig, MissingField
from sizing.params import (
    ATTN, BUFFER, EMBED, LM_HEAD, MIXER, MLP, NORM, ROUTER, SHARED, STATE, Accounting, embeddings, gated_mlp,
    routed_experts,
)


class Unsupported(ValueError):
    """The architecture is known but cannot be accounted exactly from its config."""


@dataclass(frozen=True)
class LayerCache:
    """How one decoder layer caches: ``kind`` is full/sliding/chunked/mla/state/none."""

    kind: str
    kv_heads: int = 0
    elems_per_token_per_head: int = 0
    window: int | None = None
    state_bytes: int = 0


@dataclass
class Layout:
    acc: Accounting
    caches: list[LayerCache]
    family: str
    num_layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    attention_kind: str
    sliding_window: int | None = None
    extra_caches: list[LayerCache] = field(default_factory=list)
    # Tensor-parallel constraint dimensions (0 = the model has no such layer); see ModelSpec.
    moe_intermediate_size: int = 0
    ssm_num_heads: int = 0
    ssm_n_groups: int = 0
    linear_attn_key_heads: int = 0
    linear_attn_value_heads: int = 0


FAMILIES: dict[str, str] = {
    "llama": "llama", "llama4": "llama", "llama4_text": "llama", "codellama": "llama",
    "mistral": "mistral", "mixtral": "mistral", "ministral": "mistral",
    "qwen2": "qwen", "qwen2_moe": "qwen", "qwen3": "qwen", "qwen3_moe": "qwen", "qwen3_vl": "qwen",
    "qwen3_vl_text": "qwen", "qwen3_vl_moe": "qwen", "qwen3_vl_moe_text": "qwen", "qwen3_5": "qwen",
    "qwen3_5_text": "qwen", "qwen3_5_moe": "qwen", "qwen3_5_moe_text": "qwen", "qwen3_next": "qwen",
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3_text": "gemma", "gemma4": "gemma", "gemma4_text": "gemma",
    "phi": "phi", "phi3": "phi", "phi-msft": "phi",
    "olmo": "olmo", "olmo2": "olmo", "internlm2": "internlm", "chatglm": "glm", "glm": "glm", "glm4": "glm",
    "glm4_moe": "glm", "glm_moe_dsa": "glm", "mimo": "mimo",
    "deepseek": "deepseek", "deepseek_v2": "deepseek", "deepseek_v3": "deepseek", "deepseek_v32": "deepseek",
    "deepseek_v4": "deepseek", "deepseek_ref": "deepseek",
    "kimi_k2": "kimi", "kimi_k25": "kimi", "kimi_k3": "kimi", "kimi_linear": "kimi",
    "minimax_m2": "minimax", "minimax_m3": "minimax", "nemotron_h": "nemotron", "nemotron-nas": "nemotron",
    "gpt_oss": "gpt-oss", "step3p7": "step", "gpt2": "gpt2", "gptj": "gpt-j", "gpt_neox": "gpt-neox",
    "falcon": "falcon", "starcoder2": "starcoder", "cohere": "cohere", "granite": "granite",
    "granitemoe": "granite", "dbrx": "dbrx", "jamba": "jamba", "mistral3": "mistral",
}

UNSUPPORTED: dict[str, str] = {
    "deepseek_v4": "hyper-connections (hc_mult), per-layer KV compressors and hash-routed layers are not "
    "accounted yet",
    "deepseek_ref": "DeepSeek reference-implementation config (no transformers class; V4 layout not accounted yet)",
    "kimi_k3": "Kimi-Linear KDA layers with output-gated MLA, latent MoE norms and attention residual blocks "
    "have no transformers class to check against",
    "kimi_linear": "KDA linear-attention accounting not implemented",
    "minimax_m3": "sparse-attention indexer and gemma-style norms have no transformers class to check against",
    "nemotron-nas": "DeciLM per-layer block_configs (variable FFN multipliers, no-op attention) not accounted yet",
}


def _kv_full(cfg: HFConfig, kv_heads: int, head_dim: int, kind: str = "full", window: int | None = None) -> LayerCache:
    return LayerCache(kind, kv_heads, 2 * head_dim, window)


def _is_moe_layer(cfg: HFConfig, i: int, mt: str) -> bool:
    experts = cfg.get("num_experts") or 0
    if not experts:
        return False
    if mt in ("qwen2_moe", "qwen3_moe", "qwen3_vl_moe", "qwen3_vl_moe_text", "qwen3_5_moe", "qwen3_5_moe_text", "qwen3_next"):
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


# --------------------------------------------------------------------------------------------
# Standard (MHA/GQA/MQA) decoders: llama, mistral/mixtral, qwen2/3(+moe, +vl), gemma 1-3, olmo2,
# phi3, minimax_m2, glm4_moe, gpt_oss, llama4, step3p7, internlm2, mimo.
# --------------------------------------------------------------------------------------------

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
    output_gate: str | None = None
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
    "qwen2_moe": _Std(qkv_bias="qkv_bias", qkv_bias_default=True, shared="shared_expert_intermediate_size", shared_gate=True),
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
    "step3p7": _Std(qk_norm="head", head_gate=True, shared="share_expert_dim", router_bias_buffer="use_moe_router_bias"),
    # IBM Granite / Granite-MoE: Llama layers; embedding/residual/attention/logits multipliers scale
    # activations and add no parameters. Granite-MoE: every layer is a router + gated experts
    # (block_sparse_moe), no shared expert.
    "granite": _Std(qkv_bias="attention_bias", o_bias="attention_bias", mlp_bias="mlp_bias"),
    "granitemoe": _Std(qkv_bias="attention_bias", o_bias="attention_bias"),
}
_STD_ALIASES = {"llama4": "llama4_text", "qwen3_vl": "qwen3_vl_text", "qwen3_vl_moe": "qwen3_vl_moe_text",
                "codellama": "llama"}


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
    hidden = cfg.int("hidden_size")
    layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.num_kv_heads()
    hd = cfg.head_dim()
    vocab = cfg.int("vocab_size")
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
        q_out = heads * hd * (2 if opt.output_gate and cfg.flag(opt.output_gate) else 1)
        acc.linear(f"{p}.self_attn.q_proj", hidden, q_out, ATTN, qkv_bias)
        acc.linear(f"{p}.self_attn.k_proj", hidden, kv_heads * hd, ATTN, qkv_bias)
        acc.linear(f"{p}.self_attn.v_proj", hidden, kv_heads * hd, ATTN, qkv_bias)
        acc.linear(f"{p}.self_attn.o_proj", heads * hd, hidden, ATTN, o_bias)
        if qk_norm == "head":
            acc.norm(f"{p}.self_attn.q_norm", hd)
            acc.norm(f"{p}.self_attn.k_norm", hd)
        elif qk_norm == "full":
            acc.norm(f"{p}.self_attn.q_norm", heads * hd)
            acc.norm(f"{p}.self_attn.k_norm", kv_heads * hd)
        if opt.head_gate:
            acc.linear(f"{p}.self_attn.g_proj", hidden, heads, ATTN)
        if opt.sinks:
            acc.add(f"{p}.self_attn.sinks", heads, NORM)
        if _is_moe_layer(cfg, i, mt):
            moe_layers += 1
            acc.linear(f"{p}.mlp.gate", hidden, num_experts, ROUTER, opt.router_bias_param)
            if _flag(cfg, opt.router_bias_buffer):
                acc.add(f"{p}.mlp.gate.e_score_correction_bias", num_experts, BUFFER)
            routed_experts(acc, f"{p}.mlp", hidden, moe_inter, num_experts, bias=opt.router_bias_param)
            if shared_width:
                gated_mlp(acc, f"{p}.mlp.shared_experts", hidden, shared_width, SHARED)
                if opt.shared_gate:
                    acc.linear(f"{p}.mlp.shared_expert_gate", hidden, 1, ROUTER)
        else:
            gated_mlp(acc, f"{p}.mlp", hidden, cfg.int(opt.dense_inter), MLP, bias=mlp_bias)
        for n in range(opt.norms):
            acc.norm(f"{p}.norm{n}", hidden)
        kind = types[i]
        if kind == "sliding_attention" and window:
            caches.append(_kv_full(cfg, kv_heads, hd, "sliding", int(window)))
        elif kind == "chunked_attention" and chunk:
            caches.append(_kv_full(cfg, kv_heads, hd, "chunked", int(chunk)))
        else:
            caches.append(_kv_full(cfg, kv_heads, hd))
    acc.norm("norm", hidden)
    if mt in ("llama4", "llama4_text"):
        chunk_layers = cfg.get("no_rope_layers")
        if not isinstance(chunk_layers, list):
            interval = cfg.int("no_rope_layer_interval", 4)
            chunk_layers = [int((i + 1) % interval != 0) for i in range(layers)]
        if chunk and len(chunk_layers) >= layers:
            # Llama-4: RoPE layers (no_rope_layers[i] == 1) use chunked local attention.
            caches = [_kv_full(cfg, kv_heads, hd, "chunked", int(chunk)) if chunk_layers[i] else c
                      for i, c in enumerate(caches)]
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = num_experts, k, moe_layers
    acc.num_shared_experts = n_shared if moe_layers else 0
    if opt.mtp:
        acc.mtp = _mimo_mtp(cfg, hidden, heads, kv_heads, hd)
    kind = "mha" if kv_heads == heads else ("mqa" if kv_heads == 1 else "gqa")
    return Layout(acc, caches, FAMILIES.get(mt, mt), layers, hidden, heads, kv_heads, hd, vocab, kind,
                  int(window) if window and any(c.kind == "sliding" for c in caches) else None,
                  moe_intermediate_size=moe_inter if moe_layers else 0)


def _mimo_mtp(cfg: HFConfig, hidden: int, heads: int, kv_heads: int, hd: int) -> int:
    """MiMo MTP layer (XiaomiMiMo modeling_mimo.MiMoMTPLayers): token_layernorm, hidden_layernorm,
    input_proj (2h -> h, no bias), a Qwen2 decoder layer (qkv bias), final_layernorm."""
    n = cfg.int("num_nextn_predict_layers", 0)
    inter = cfg.int("intermediate_size")
    attn = hidden * heads * hd + heads * hd + 2 * (hidden * kv_heads * hd + kv_heads * hd) + heads * hd * hidden
    layer = attn + 3 * hidden * inter + 2 * hidden
    return n * (3 * hidden + 2 * hidden * hidden + layer)


# --------------------------------------------------------------------------------------------
# MLA decoders (DeepSeek-V2/V3/V3.2, Kimi-K2/K2.5, GLM-5 DSA)
# --------------------------------------------------------------------------------------------

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
    indexer = mt in ("deepseek_v32", "glm_moe_dsa") or cfg.get("index_topk") is not None
    acc = Accounting()
    embeddings(acc, vocab, hidden, tied)
    moe_layers = 0
    per_layer = 0
    for i in range(layers):
        start = len(acc.tensors)
        p = f"layers.{i}"
        a = f"{p}.self_attn"
        if q_lora:
            acc.linear(f"{a}.q_a_proj", hidden, q_lora, ATTN, bias)
            acc.norm(f"{a}.q_a_layernorm", q_lora)
            acc.linear(f"{a}.q_b_proj", q_lora, heads * (nope + rope), ATTN)
        else:
            acc.linear(f"{a}.q_proj", hidden, heads * (nope + rope), ATTN)
        acc.linear(f"{a}.kv_a_proj_with_mqa", hidden, kv_lora + rope, ATTN, bias)
        acc.norm(f"{a}.kv_a_layernorm", kv_lora)
        acc.linear(f"{a}.kv_b_proj", kv_lora, heads * (nope + v_dim), ATTN)
        acc.linear(f"{a}.o_proj", heads * v_dim, hidden, ATTN, bias)
        if indexer and _runs_indexer(cfg, i):
            ih, idim = cfg.int("index_n_heads"), cfg.int("index_head_dim")
            acc.linear(f"{a}.indexer.wq_b", q_lora or hidden, ih * idim, ATTN)
            acc.linear(f"{a}.indexer.wk", hidden, idim, ATTN)
            acc.norm(f"{a}.indexer.k_norm", idim, bias=True)
            acc.linear(f"{a}.indexer.weights_proj", hidden, ih, ATTN)
        if _is_moe_layer(cfg, i, mt):
            moe_layers += 1
            acc.linear(f"{p}.mlp.gate", hidden, num_experts, ROUTER)
            if cfg.get("topk_method") == "noaux_tc" or mt == "glm_moe_dsa":
                acc.add(f"{p}.mlp.gate.e_score_correction_bias", num_experts, BUFFER)
            routed_experts(acc, f"{p}.mlp", hidden, moe_inter, num_experts)
            if n_shared:
                gated_mlp(acc, f"{p}.mlp.shared_experts", hidden, n_shared * moe_inter, SHARED)
        else:
            gated_mlp(acc, f"{p}.mlp", hidden, cfg.int("intermediate_size"), MLP)
        acc.norm(f"{p}.input_layernorm", hidden)
        acc.norm(f"{p}.post_attention_layernorm", hidden)
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
    return Layout(acc, caches, FAMILIES.get(mt, mt), layers, hidden, heads, 1, nope + rope, vocab, "mla",
                  extra_caches=extra, moe_intermediate_size=moe_inter if moe_layers else 0)


def _runs_indexer(cfg: HFConfig, i: int) -> bool:
    types = cfg.get("indexer_types")
    return not (isinstance(types, list) and i < len(types) and types[i] == "shared")


# --------------------------------------------------------------------------------------------
# Qwen3.5 / Qwen3.6 / Qwen3-Next hybrids: gated-DeltaNet linear attention + gated full attention
# --------------------------------------------------------------------------------------------

def qwen_hybrid(cfg: HFConfig, mt: str) -> Layout:
    hidden = cfg.int("hidden_size")
    layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.num_kv_heads()
    hd = cfg.head_dim()
    vocab = cfg.int("vocab_size")
    tied = cfg.tie_word_embeddings(False)
    nk, nv = cfg.int("linear_num_key_heads"), cfg.int("linear_num_value_heads")
    dk, dv = cfg.int("linear_key_head_dim"), cfg.int("linear_value_head_dim")
    conv_k = cfg.int("linear_conv_kernel_dim", 4)
    key_dim, value_dim = nk * dk, nv * dv
    conv_dim = 2 * key_dim + value_dim
    types = cfg.layer_types(layers)
    if not cfg.has("layer_types"):
        interval = cfg.int("full_attention_interval", 4)
        types = ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(layers)]
    num_experts = cfg.int("num_experts", 0)
    k = cfg.int("experts_per_token", 0) if num_experts else 0
    acc = Accounting()
    embeddings(acc, vocab, hidden, tied)
    # The engine keeps the recurrent state at mamba_ssm_dtype (fp32 in the shipped configs) and the
    # conv state at the model dtype (bf16), as vLLM's MambaStateDtypeCalculator does.
    ssm_bytes = 4 if str(cfg.get("mamba_ssm_dtype", "float32")) in ("float32", "fp32") else 2
    state = conv_dim * (conv_k - 1) * 2 + nv * dk * dv * ssm_bytes
    caches, moe_layers = [], 0
    for i in range(layers):
        p = f"layers.{i}"
        if types[i] == "linear_attention":
            a = f"{p}.linear_attn"
            if mt == "qwen3_next":
                acc.linear(f"{a}.in_proj_qkvz", hidden, 2 * key_dim + 2 * value_dim, MIXER)
                acc.linear(f"{a}.in_proj_ba", hidden, 2 * nv, MIXER)
            else:
                acc.linear(f"{a}.in_proj_qkv", hidden, conv_dim, MIXER)
                acc.linear(f"{a}.in_proj_z", hidden, value_dim, MIXER)
                acc.linear(f"{a}.in_proj_b", hidden, nv, MIXER)
                acc.linear(f"{a}.in_proj_a", hidden, nv, MIXER)
            acc.add(f"{a}.conv1d.weight", conv_dim * conv_k, STATE)
            acc.add(f"{a}.dt_bias", nv, STATE)
            acc.add(f"{a}.A_log", nv, STATE)
            acc.norm(f"{a}.norm", dv)
            acc.linear(f"{a}.out_proj", value_dim, hidden, MIXER)
            caches.append(LayerCache("state", nv, state_bytes=state))
        else:
            a = f"{p}.self_attn"
            gate = 2 if cfg.flag("attn_output_gate", True) else 1
            acc.linear(f"{a}.q_proj", hidden, heads * hd * gate, ATTN)
            acc.linear(f"{a}.k_proj", hidden, kv_heads * hd, ATTN)
            acc.linear(f"{a}.v_proj", hidden, kv_heads * hd, ATTN)
            acc.linear(f"{a}.o_proj", heads * hd, hidden, ATTN)
            acc.norm(f"{a}.q_norm", hd)
            acc.norm(f"{a}.k_norm", hd)
            caches.append(_kv_full(cfg, kv_heads, hd))
        if _is_moe_layer(cfg, i, mt):
            moe_layers += 1
            inter = cfg.int("moe_intermediate_size")
            acc.linear(f"{p}.mlp.gate", hidden, num_experts, ROUTER)
            routed_experts(acc, f"{p}.mlp", hidden, inter, num_experts)
            shared = cfg.int("shared_expert_intermediate_size", 0)
            if shared:
                gated_mlp(acc, f"{p}.mlp.shared_expert", hidden, shared, SHARED)
                acc.linear(f"{p}.mlp.shared_expert_gate", hidden, 1, ROUTER)
        else:
            gated_mlp(acc, f"{p}.mlp", hidden, cfg.int("intermediate_size"), MLP)
        acc.norm(f"{p}.input_layernorm", hidden)
        acc.norm(f"{p}.post_attention_layernorm", hidden)
    acc.norm("norm", hidden)
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = num_experts, k, moe_layers
    acc.num_shared_experts = 1 if moe_layers and cfg.int("shared_expert_intermediate_size", 0) else 0
    acc.mtp = _qwen_mtp(cfg, acc, hidden, heads, kv_heads, hd, num_experts)
    linear = any(t == "linear_attention" for t in types[:layers])
    return Layout(acc, caches, "qwen", layers, hidden, heads, kv_heads, hd, vocab, "hybrid",
                  moe_intermediate_size=cfg.int("moe_intermediate_size") if moe_layers else 0,
                  linear_attn_key_heads=nk if linear else 0, linear_attn_value_heads=nv if linear else 0)


def _qwen_mtp(cfg: HFConfig, acc: Accounting, hidden: int, heads: int, kv_heads: int, hd: int, experts: int) -> int:
    """Qwen3.5/Next MTP (vLLM qwen3_next_mtp.py): fc (2h -> h), pre_fc_norm_embedding,
    pre_fc_norm_hidden, ``mtp_num_hidden_layers`` full-attention decoder layers, final norm;
    embedding and LM head shared unless ``mtp_use_dedicated_embeddings``."""
    n = cfg.int("mtp_num_hidden_layers", 0)
    if not n:
        return 0
    gate = 2 if cfg.flag("attn_output_gate", True) else 1
    attn = hidden * heads * hd * gate + 2 * hidden * kv_heads * hd + heads * hd * hidden + 2 * hd
    if experts:
        shared = cfg.int("shared_expert_intermediate_size", 0)
        ffn = hidden * experts + 3 * experts * hidden * cfg.int("moe_intermediate_size")
        ffn += 3 * hidden * shared + (hidden if shared else 0)
    else:
        ffn = 3 * hidden * cfg.int("intermediate_size")
    layer = attn + ffn + 2 * hidden
    extra = cfg.int("vocab_size") * hidden if cfg.flag("mtp_use_dedicated_embeddings") else 0
    return n * layer + 2 * hidden * hidden + 3 * hidden + extra


# --------------------------------------------------------------------------------------------
# Nemotron-H: Mamba-2 + attention + (latent) MoE blocks, one mixer per block
# --------------------------------------------------------------------------------------------

_NEMOTRON_CODES = {"M": "mamba", "*": "attention", "E": "moe", "-": "mlp"}


def nemotron_h(cfg: HFConfig, mt: str) -> Layout:
    pattern = cfg.get("layers_block_type")
    if not isinstance(pattern, list):
        code = cfg.get("hybrid_override_pattern")
        if not isinstance(code, str):
            raise MissingField("hybrid_override_pattern")
        pattern = [_NEMOTRON_CODES[c] for c in code]
    layers = len(pattern)
    hidden = cfg.int("hidden_size")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.num_kv_heads()
    hd = cfg.head_dim()
    vocab = cfg.int("vocab_size")
    tied = cfg.tie_word_embeddings(False)
    m_heads, m_hd = cfg.int("mamba_num_heads"), cfg.int("mamba_head_dim")
    groups, d_state, conv_k = cfg.int("n_groups"), cfg.int("ssm_state_size"), cfg.int("conv_kernel")
    d_inner = m_heads * m_hd
    conv_dim = d_inner + 2 * groups * d_state
    proj_bias = cfg.flag("mamba_proj_bias")
    experts = cfg.int("num_experts", 0)
    k = cfg.int("experts_per_token", 0) if experts else 0
    latent = cfg.get("moe_latent_size")
    acc = Accounting()
    embeddings(acc, vocab, hidden, tied, embed_name="embeddings")
    # vLLM keeps the Mamba SSM state at mamba_ssm_cache_dtype (float32 here) and conv state at bf16.
    ssm_bytes = 4 if str(cfg.get("mamba_ssm_cache_dtype", "float32")) in ("float32", "fp32") else 2
    state = conv_dim * (conv_k - 1) * 2 + m_heads * m_hd * d_state * ssm_bytes
    caches, moe_layers = [], 0
    for i, kind in enumerate(pattern):
        p = f"layers.{i}.mixer"
        acc.norm(f"layers.{i}.norm", hidden)
        if kind == "mamba":
            acc.linear(f"{p}.in_proj", hidden, 2 * d_inner + 2 * groups * d_state + m_heads, MIXER, proj_bias)
            acc.add(f"{p}.conv1d.weight", conv_dim * conv_k, STATE)
            if cfg.flag("use_conv_bias", True):
                acc.add(f"{p}.conv1d.bias", conv_dim, STATE)
            for name in ("dt_bias", "A_log", "D"):
                acc.add(f"{p}.{name}", m_heads, STATE)
            acc.norm(f"{p}.norm", d_inner)
            acc.linear(f"{p}.out_proj", d_inner, hidden, MIXER, proj_bias)
            caches.append(LayerCache("state", m_heads, state_bytes=state))
        elif kind == "attention":
            bias = cfg.flag("attention_bias")
            acc.linear(f"{p}.q_proj", hidden, heads * hd, ATTN, bias)
            acc.linear(f"{p}.k_proj", hidden, kv_heads * hd, ATTN, bias)
            acc.linear(f"{p}.v_proj", hidden, kv_heads * hd, ATTN, bias)
            acc.linear(f"{p}.o_proj", heads * hd, hidden, ATTN, bias)
            caches.append(_kv_full(cfg, kv_heads, hd))
        elif kind == "moe":
            moe_layers += 1
            width = latent or hidden
            acc.linear(f"{p}.gate", hidden, experts, ROUTER)
            acc.add(f"{p}.gate.e_score_correction_bias", experts, BUFFER)
            routed_experts(acc, p, width, cfg.int("moe_intermediate_size"), experts, gated=False)
            shared = cfg.int("moe_shared_expert_intermediate_size", 0) * max(cfg.int("n_shared_experts", 1), 1)
            gated_mlp(acc, f"{p}.shared_experts", hidden, shared, SHARED, gated=False)
            if latent:
                acc.linear(f"{p}.fc1_latent_proj", hidden, latent, SHARED)
                acc.linear(f"{p}.fc2_latent_proj", latent, hidden, SHARED)
            caches.append(LayerCache("none"))
        elif kind == "mlp":
            gated_mlp(acc, p, hidden, cfg.int("intermediate_size"), MLP, gated=False, bias=cfg.flag("mlp_bias"))
            caches.append(LayerCache("none"))
        else:
            raise Unsupported(f"nemotron_h block type {kind!r}")
    acc.norm("norm_f", hidden)
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = experts, k, moe_layers
    acc.num_shared_experts = cfg.int("n_shared_experts", 1) if moe_layers else 0
    mamba = "mamba" in pattern
    return Layout(acc, caches, "nemotron", layers, hidden, heads, kv_heads, hd, vocab, "hybrid",
                  moe_intermediate_size=cfg.int("moe_intermediate_size") if moe_layers else 0,
                  ssm_num_heads=m_heads if mamba else 0, ssm_n_groups=groups if mamba else 0)


# --------------------------------------------------------------------------------------------
# Gemma-4: sliding/full layers with their own head_dim and KV heads, K=V sharing on full layers,
# optional MoE block beside the dense MLP, KV shared across the last layers
# --------------------------------------------------------------------------------------------

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
        acc.linear(f"{a}.q_proj", hidden, heads * d, ATTN)
        acc.linear(f"{a}.k_proj", hidden, nkv * d, ATTN)
        if not (full and k_eq_v):
            acc.linear(f"{a}.v_proj", hidden, nkv * d, ATTN)
        acc.linear(f"{a}.o_proj", heads * d, hidden, ATTN)
        acc.norm(f"{a}.q_norm", d)
        acc.norm(f"{a}.k_norm", d)
        gated_mlp(acc, f"{p}.mlp", hidden, cfg.int("intermediate_size"), MLP)
        for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"):
            acc.norm(f"{p}.{n}", hidden)
        if moe:
            acc.linear(f"{p}.router.proj", hidden, experts, ROUTER)
            acc.add(f"{p}.router.scale", hidden, ROUTER)
            acc.add(f"{p}.router.per_expert_scale", experts, ROUTER)
            routed_experts(acc, p, hidden, cfg.int("moe_intermediate_size"), experts)
            for n in ("post_feedforward_layernorm_1", "post_feedforward_layernorm_2", "pre_feedforward_layernorm_2"):
                acc.norm(f"{p}.{n}", hidden)
        if i >= layers - shared_kv:
            # KV-shared layers read the cache of the last non-shared layer of the same type.
            caches.append(LayerCache("none"))
        elif full:
            caches.append(LayerCache("full", nkv, d * (1 if k_eq_v else 2)))
        else:
            caches.append(LayerCache("sliding", nkv, 2 * d, window))
    acc.norm("norm", hidden)
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = experts, k, layers if moe else 0
    return Layout(acc, caches, "gemma", layers, hidden, heads, kv_heads, hd, vocab,
                  "mqa" if kv_heads == 1 else ("mha" if kv_heads == heads else "gqa"), window,
                  moe_intermediate_size=cfg.int("moe_intermediate_size") if moe else 0)


# --------------------------------------------------------------------------------------------
# Pre-Llama / non-Llama dense and MoE decoders, each mirroring its transformers modeling file:
# gpt2, gptj, gpt_neox, falcon, phi (phi-1/1.5/2), starcoder2, cohere, olmo (OLMo-1), dbrx.
# --------------------------------------------------------------------------------------------

def _attn_kind(heads: int, kv_heads: int) -> str:
    return "mha" if kv_heads == heads else ("mqa" if kv_heads == 1 else "gqa")


def _gqa_kv(cfg: HFConfig, heads: int) -> int:
    value = cfg.text.get("num_key_value_heads")
    return heads if value is None else int(value)


_CLASSIC = ("gpt2", "gptj", "gpt_neox", "falcon", "phi", "starcoder2", "cohere", "olmo", "dbrx", "chatglm")


def classic(cfg: HFConfig, mt: str) -> Layout:
    """One builder for the families whose layers differ only in fusion, biases, norms and MLP shape.

    - gpt2 (GPT2LMHeadModel): wte + wpe (n_positions), Conv1D c_attn (3h, bias) / c_proj (bias),
      ln_1 / ln_2 LayerNorm with bias, MLP c_fc/c_proj of n_inner (default 4h) with bias, ln_f, tied.
    - gptj: wte only (rotary), q/k/v/out_proj without bias, fc_in/fc_out with bias, one ln_1
      (parallel attention + MLP), ln_f, untied lm_head *with* bias.
    - gpt_neox (Pythia, NeoX-20B): fused query_key_value (3h) and dense with ``attention_bias``
      (default true), dense_h_to_4h / dense_4h_to_h with bias, input + post_attention LayerNorms
      (both exist whatever ``use_parallel_residual``), final_layer_norm, untied embed_out.
    - falcon: fused query_key_value of (2 * kv + heads) * head_dim where kv = num_kv_heads with
      ``new_decoder_architecture``, 1 with ``multi_query``, else heads; linears biased by ``bias``;
      norms: input + post_attention unless ``parallel_attn``; with it, ln_attn + ln_mlp when
      num_ln_in_parallel_attn == 2 (its default under new_decoder_architecture), else one; tied default.
    - phi: q/k/v/dense with bias, optional per-head q/k LayerNorm (``qk_layernorm``), fc1/fc2 with
      bias, one input LayerNorm, final_layernorm with bias, lm_head with bias.
    - starcoder2: q/k/v/o and c_fc/c_proj biased by ``use_bias``, LayerNorms with bias, tied default.
    - cohere (Command-R): gated MLP, one input LayerNorm *without* bias (parallel block), final norm,
      optional per-head q_norm/k_norm (heads x head_dim weights), tied default.
    - olmo (OLMo-1): Llama layers with non-parametric LayerNorms: no norm parameters at all.
    - chatglm (ChatGLM2/3, remote code): see the branch; checked against the published total.
    - dbrx: fused Wqkv (h + 2 * kv_n_heads * head_dim), out_proj, norm_1 / norm_2 LayerNorms without
      bias, router, E gated experts (w1, v1, w2) of ffn_config.ffn_hidden_size, untied.
    """
    hidden = cfg.int("hidden_size")
    layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    vocab = cfg.int("vocab_size")
    hd = cfg.head_dim()
    acc = Accounting()
    caches: list[LayerCache] = []
    kv_heads = heads
    experts = k = moe_layers = expert_width = 0
    if mt == "gpt2":
        inter = cfg.int("n_inner", 0) or 4 * hidden
        acc.add("wte.weight", vocab * hidden, EMBED)
        acc.add("wpe.weight", cfg.int("n_positions", 1024) * hidden, EMBED)
        for i in range(layers):
            p = f"h.{i}"
            acc.norm(f"{p}.ln_1", hidden, bias=True)
            acc.linear(f"{p}.attn.c_attn", hidden, 3 * hidden, ATTN, True)
            acc.linear(f"{p}.attn.c_proj", hidden, hidden, ATTN, True)
            acc.norm(f"{p}.ln_2", hidden, bias=True)
            acc.linear(f"{p}.mlp.c_fc", hidden, inter, MLP, True)
            acc.linear(f"{p}.mlp.c_proj", inter, hidden, MLP, True)
        acc.norm("ln_f", hidden, bias=True)
        if not cfg.tie_word_embeddings(True):
            acc.add("lm_head.weight", vocab * hidden, LM_HEAD)
    elif mt == "gptj":
        inter = cfg.int("n_inner", 0) or 4 * hidden
        acc.add("wte.weight", vocab * hidden, EMBED)
        for i in range(layers):
            p = f"h.{i}"
            acc.norm(f"{p}.ln_1", hidden, bias=True)
            for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
                acc.linear(f"{p}.attn.{n}", hidden, hidden, ATTN)
            acc.linear(f"{p}.mlp.fc_in", hidden, inter, MLP, True)
            acc.linear(f"{p}.mlp.fc_out", inter, hidden, MLP, True)
        acc.norm("ln_f", hidden, bias=True)
        if not cfg.tie_word_embeddings(False):
            acc.linear("lm_head", hidden, vocab, LM_HEAD, True)
    elif mt == "gpt_neox":
        bias = cfg.flag("attention_bias", True)
        inter = cfg.int("intermediate_size")
        acc.add("embed_in.weight", vocab * hidden, EMBED)
        for i in range(layers):
            p = f"layers.{i}"
            acc.norm(f"{p}.input_layernorm", hidden, bias=True)
            acc.norm(f"{p}.post_attention_layernorm", hidden, bias=True)
            acc.linear(f"{p}.attention.query_key_value", hidden, 3 * hidden, ATTN, bias)
            acc.linear(f"{p}.attention.dense", hidden, hidden, ATTN, bias)
            acc.linear(f"{p}.mlp.dense_h_to_4h", hidden, inter, MLP, True)
            acc.linear(f"{p}.mlp.dense_4h_to_h", inter, hidden, MLP, True)
        acc.norm("final_layer_norm", hidden, bias=True)
        if not cfg.tie_word_embeddings(False):
            acc.add("embed_out.weight", vocab * hidden, LM_HEAD)
    elif mt == "falcon":
        hd = hidden // heads
        new_arch = cfg.flag("new_decoder_architecture")
        if new_arch:
            kv_heads = cfg.int("num_kv_heads", heads)
        elif cfg.flag("multi_query", True):
            kv_heads = 1
        bias = cfg.flag("bias")
        inter = cfg.int("ffn_hidden_size", 0) or 4 * hidden
        n_ln = cfg.get("num_ln_in_parallel_attn")
        if n_ln is None and new_arch:
            n_ln = 2
        norms = 1 if (cfg.flag("parallel_attn", True) and n_ln != 2) else 2
        acc.add("word_embeddings.weight", vocab * hidden, EMBED)
        for i in range(layers):
            p = f"h.{i}"
            acc.linear(f"{p}.self_attention.query_key_value", hidden, (2 * kv_heads + heads) * hd, ATTN, bias)
            acc.linear(f"{p}.self_attention.dense", hidden, hidden, ATTN, bias)
            acc.linear(f"{p}.mlp.dense_h_to_4h", hidden, inter, MLP, bias)
            acc.linear(f"{p}.mlp.dense_4h_to_h", inter, hidden, MLP, bias)
            for n in range(norms):
                acc.norm(f"{p}.ln{n}", hidden, bias=True)
        acc.norm("ln_f", hidden, bias=True)
        if not cfg.tie_word_embeddings(True):
            acc.add("lm_head.weight", vocab * hidden, LM_HEAD)
    elif mt == "phi":
        kv_heads = _gqa_kv(cfg, heads)
        # phi-msft leaves n_inner null, which its modeling code reads as 4 x n_embd.
        inter = 4 * hidden if cfg.model_type == "phi-msft" and cfg.get("intermediate_size") is None else cfg.int("intermediate_size")
        acc.add("embed_tokens.weight", vocab * hidden, EMBED)
        for i in range(layers):
            p = f"layers.{i}"
            acc.linear(f"{p}.self_attn.q_proj", hidden, heads * hd, ATTN, True)
            acc.linear(f"{p}.self_attn.k_proj", hidden, kv_heads * hd, ATTN, True)
            acc.linear(f"{p}.self_attn.v_proj", hidden, kv_heads * hd, ATTN, True)
            acc.linear(f"{p}.self_attn.dense", heads * hd, hidden, ATTN, True)
            if cfg.flag("qk_layernorm"):
                acc.norm(f"{p}.self_attn.q_layernorm", hidden // heads, bias=True)
                acc.norm(f"{p}.self_attn.k_layernorm", hidden // heads, bias=True)
            acc.linear(f"{p}.mlp.fc1", hidden, inter, MLP, True)
            acc.linear(f"{p}.mlp.fc2", inter, hidden, MLP, True)
            acc.norm(f"{p}.input_layernorm", hidden, bias=True)
        acc.norm("final_layernorm", hidden, bias=True)
        if not cfg.tie_word_embeddings(False):
            acc.linear("lm_head", hidden, vocab, LM_HEAD, True)
    elif mt in ("starcoder2", "cohere", "olmo"):
        kv_heads = _gqa_kv(cfg, heads)
        inter = cfg.int("intermediate_size")
        bias = cfg.flag("use_bias", True) if mt == "starcoder2" else cfg.flag("attention_bias")
        acc.add("embed_tokens.weight", vocab * hidden, EMBED)
        for i in range(layers):
            p = f"layers.{i}"
            acc.linear(f"{p}.self_attn.q_proj", hidden, heads * hd, ATTN, bias)
            acc.linear(f"{p}.self_attn.k_proj", hidden, kv_heads * hd, ATTN, bias)
            acc.linear(f"{p}.self_attn.v_proj", hidden, kv_heads * hd, ATTN, bias)
            acc.linear(f"{p}.self_attn.o_proj", heads * hd, hidden, ATTN, bias)
            if mt == "starcoder2":
                acc.linear(f"{p}.mlp.c_fc", hidden, inter, MLP, bias)
                acc.linear(f"{p}.mlp.c_proj", inter, hidden, MLP, bias)
                acc.norm(f"{p}.input_layernorm", hidden, bias=True)
                acc.norm(f"{p}.post_attention_layernorm", hidden, bias=True)
            else:
                gated_mlp(acc, f"{p}.mlp", hidden, inter, MLP)
            if mt == "cohere":
                acc.norm(f"{p}.input_layernorm", hidden)
                if cfg.flag("use_qk_norm"):
                    acc.norm(f"{p}.self_attn.q_norm", heads * hd)
                    acc.norm(f"{p}.self_attn.k_norm", kv_heads * hd)
        if mt != "olmo":
            acc.norm("norm", hidden, bias=(mt == "starcoder2"))
        if not cfg.tie_word_embeddings(mt != "olmo"):
            acc.add("lm_head.weight", vocab * hidden, LM_HEAD)
    elif mt == "chatglm":
        # ChatGLM2/3 remote code (THUDM modeling_chatglm.py): word_embeddings, per layer a fused
        # query_key_value of heads*kv_channels + 2*groups*kv_channels (bias = add_qkv_bias), dense
        # (bias = add_bias_linear), SwiGLU dense_h_to_4h (2 x ffn_hidden_size) / dense_4h_to_h,
        # input + post_attention RMSNorm (LayerNorm with bias when rmsnorm is false), final_layernorm
        # when post_layer_norm, untied output_layer. Checked against ChatGLM3-6B's published
        # 6,243,584,000 parameters (no transformers class exists to run on the meta device).
        hd = cfg.int("kv_channels")
        kv_heads = cfg.int("multi_query_group_num") if cfg.flag("multi_query_attention") else heads
        inter = cfg.int("ffn_hidden_size")
        qkv_bias, bias = cfg.flag("add_qkv_bias"), cfg.flag("add_bias_linear")
        ln_bias = not cfg.flag("rmsnorm", True)
        acc.add("embedding.word_embeddings.weight", vocab * hidden, EMBED)
        for i in range(layers):
            p = f"encoder.layers.{i}"
            acc.norm(f"{p}.input_layernorm", hidden, bias=ln_bias)
            acc.linear(f"{p}.self_attention.query_key_value", hidden, (heads + 2 * kv_heads) * hd, ATTN, qkv_bias)
            acc.linear(f"{p}.self_attention.dense", heads * hd, hidden, ATTN, bias)
            acc.norm(f"{p}.post_attention_layernorm", hidden, bias=ln_bias)
            acc.linear(f"{p}.mlp.dense_h_to_4h", hidden, 2 * inter, MLP, bias)
            acc.linear(f"{p}.mlp.dense_4h_to_h", inter, hidden, MLP, bias)
        if cfg.flag("post_layer_norm", True):
            acc.norm("encoder.final_layernorm", hidden, bias=ln_bias)
        if not cfg.tie_word_embeddings(False):
            acc.add("output_layer.weight", vocab * hidden, LM_HEAD)
    elif mt == "dbrx":
        attn_cfg, ffn_cfg = cfg.get("attn_config") or {}, cfg.get("ffn_config") or {}
        if not isinstance(attn_cfg, dict) or not isinstance(ffn_cfg, dict):
            raise MissingField("attn_config / ffn_config")
        kv_heads = int(attn_cfg.get("kv_n_heads", 1))
        inter = int(ffn_cfg.get("ffn_hidden_size", 3584))
        experts, k = int(ffn_cfg.get("moe_num_experts", 4)), int(ffn_cfg.get("moe_top_k", 1))
        expert_width = inter
        acc.add("wte.weight", vocab * hidden, EMBED)
        for i in range(layers):
            p = f"blocks.{i}"
            acc.norm(f"{p}.norm_attn_norm.norm_1", hidden)
            acc.linear(f"{p}.norm_attn_norm.attn.Wqkv", hidden, hidden + 2 * kv_heads * hd, ATTN)
            acc.linear(f"{p}.norm_attn_norm.attn.out_proj", hidden, hidden, ATTN)
            acc.norm(f"{p}.norm_attn_norm.norm_2", hidden)
            acc.linear(f"{p}.ffn.router.layer", hidden, experts, ROUTER)
            routed_experts(acc, f"{p}.ffn", hidden, inter, experts)
        moe_layers = layers
        acc.norm("norm_f", hidden)
        if not cfg.tie_word_embeddings(False):
            acc.add("lm_head.weight", vocab * hidden, LM_HEAD)
    else:  # pragma: no cover - dispatch guarantees mt
        raise Unsupported(f"no classic layout for {mt!r}")
    caches = [_kv_full(cfg, kv_heads, hd) for _ in range(layers)]
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = experts, k, moe_layers
    return Layout(acc, caches, FAMILIES.get(mt, mt), layers, hidden, heads, kv_heads, hd, vocab,
                  _attn_kind(heads, kv_heads), moe_intermediate_size=expert_width if moe_layers else 0)


# --------------------------------------------------------------------------------------------
# Jamba: Mamba-1 + attention layers, MoE on every ``expert_layer_period``-th layer
# --------------------------------------------------------------------------------------------

def jamba(cfg: HFConfig, mt: str) -> Layout:
    """transformers JambaForCausalLM. Layer i is attention when i % attn_layer_period ==
    attn_layer_offset (else Mamba-1) and MoE when i % expert_layer_period == expert_layer_offset
    and num_experts > 1 (else a dense gated MLP). Mamba-1 mixer, d_inner = mamba_expand * hidden,
    dt_rank = mamba_dt_rank ("auto" = ceil(hidden / 16)): in_proj (h -> 2 d_inner, mamba_proj_bias),
    conv1d (d_inner x d_conv, + bias when mamba_conv_bias), x_proj (d_inner -> dt_rank + 2 d_state),
    dt_proj (dt_rank -> d_inner, bias), A_log (d_inner x d_state), D (d_inner), out_proj, and RMS
    dt/b/c layernorms. Norms: input_layernorm + pre_ff_layernorm per layer, final_layernorm.

    State per Mamba layer as vLLM's MambaSpec holds it (mamba1 shapes): conv state
    (d_conv - 1) x d_inner plus SSM state d_inner x d_state, both at the model dtype (vLLM's
    mamba_ssm_cache_dtype "auto"; Jamba configs carry no SSM dtype field) = 2 B each.
    Jamba-v0.1 (hidden 4096, d_inner 8192, d_conv 4, d_state 16, 32 layers, attention every 8th
    from 4, 8 KV heads x 128): 28 Mamba layers x (3 x 8192 + 8192 x 16) x 2 B = 28 x 311,296 B per
    sequence; KV 4 attention layers x 8 x 128 x 2 (K,V) x 2 B = 16,384 B/token.
    """
    hidden = cfg.int("hidden_size")
    layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.num_kv_heads()
    hd = hidden // heads
    vocab = cfg.int("vocab_size")
    inter = cfg.int("intermediate_size")
    experts = cfg.int("num_experts", 16)
    k = cfg.int("experts_per_token", 2)
    a_period, a_offset = cfg.int("attn_layer_period", 8), cfg.int("attn_layer_offset", 4)
    e_period, e_offset = cfg.int("expert_layer_period", 2), cfg.int("expert_layer_offset", 1)
    d_inner = cfg.int("mamba_expand", 2) * hidden
    d_state, d_conv = cfg.int("mamba_d_state", 16), cfg.int("mamba_d_conv", 4)
    rank = cfg.get("mamba_dt_rank", "auto")
    dt_rank = -(-hidden // 16) if rank in (None, "auto") else int(rank)
    proj_bias = cfg.flag("mamba_proj_bias")
    acc = Accounting()
    embeddings(acc, vocab, hidden, cfg.tie_word_embeddings(False))
    state = (d_conv - 1) * d_inner * 2 + d_inner * d_state * 2
    caches, moe_layers = [], 0
    for i in range(layers):
        p = f"layers.{i}"
        if i % a_period == a_offset:
            for n, d_out in (("q_proj", heads * hd), ("k_proj", kv_heads * hd), ("v_proj", kv_heads * hd)):
                acc.linear(f"{p}.self_attn.{n}", hidden, d_out, ATTN)
            acc.linear(f"{p}.self_attn.o_proj", heads * hd, hidden, ATTN)
            caches.append(_kv_full(cfg, kv_heads, hd))
        else:
            m = f"{p}.mamba"
            acc.linear(f"{m}.in_proj", hidden, 2 * d_inner, MIXER, proj_bias)
            acc.add(f"{m}.conv1d.weight", d_inner * d_conv, STATE)
            if cfg.flag("mamba_conv_bias", True):
                acc.add(f"{m}.conv1d.bias", d_inner, STATE)
            acc.linear(f"{m}.x_proj", d_inner, dt_rank + 2 * d_state, MIXER)
            acc.linear(f"{m}.dt_proj", dt_rank, d_inner, MIXER, True)
            acc.add(f"{m}.A_log", d_inner * d_state, STATE)
            acc.add(f"{m}.D", d_inner, STATE)
            acc.linear(f"{m}.out_proj", d_inner, hidden, MIXER, proj_bias)
            acc.norm(f"{m}.dt_layernorm", dt_rank)
            acc.norm(f"{m}.b_layernorm", d_state)
            acc.norm(f"{m}.c_layernorm", d_state)
            caches.append(LayerCache("state", d_inner, state_bytes=state))
        if experts > 1 and i % e_period == e_offset:
            moe_layers += 1
            acc.linear(f"{p}.feed_forward.router", hidden, experts, ROUTER)
            routed_experts(acc, f"{p}.feed_forward", hidden, inter, experts)
        else:
            gated_mlp(acc, f"{p}.feed_forward", hidden, inter, MLP)
        acc.norm(f"{p}.input_layernorm", hidden)
        acc.norm(f"{p}.pre_ff_layernorm", hidden)
    acc.norm("final_layernorm", hidden)
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = experts, k, moe_layers
    # Mamba-1 mixers have no SSM heads or groups: ssm_num_heads / ssm_n_groups stay 0. Their TP
    # constraint (d_inner = mamba_expand x hidden divisible by TP) is out of scope here.
    return Layout(acc, caches, "jamba", layers, hidden, heads, kv_heads, hd, vocab, "hybrid",
                  moe_intermediate_size=inter if moe_layers else 0)


# --------------------------------------------------------------------------------------------
# Vision / audio towers (reported apart as ModelSpec.params_vision)
# --------------------------------------------------------------------------------------------

def _sub(cfg: HFConfig, key: str) -> dict:
    value = cfg.raw.get(key)
    return value if isinstance(value, dict) else {}


def _v(conf: dict, key: str, default):
    value = conf.get(key)
    return default if value is None else value


def vision_params(cfg: HFConfig) -> int:
    """Parameters of the vision (and audio) towers plus their projectors into the language model,
    as the transformers ConditionalGeneration class builds them from ``vision_config`` (transformers'
    own config defaults fill absent fields, as ``from_pretrained`` does). 0 for text-only models
    and, explicitly, where the tower cannot be counted exactly from the config:

    - ``step3p7``: Step-3.7-Flash ships a flat config with no vision fields; transformers would build
      a default tower that the checkpoint may not match (the oracle's count is of that default).
    - ``gemma4`` with a non-null ``audio_config`` (E2B/E4B, unsupported anyway for their per-layer
      inputs): the audio conformer is not accounted, so no partial number is reported.
    - any other multimodal wrapper (e.g. ``mistral3`` Pixtral): not accounted yet, 0.

    Layouts (transformers 5.x modeling files):

    - qwen3_vl / qwen3_vl_moe / qwen3_5 / qwen3_5_moe: Conv3d patch embed (3 x temporal_patch x
      patch^2 x h + bias), learned pos_embed (num_position_embeddings x h), ``depth`` blocks of two
      LayerNorms with bias, fused qkv + proj with bias and an fc1/fc2 MLP with bias; a merger
      (LayerNorm(h), fc1 (h m^2 -> h m^2), fc2 (-> out_hidden_size), biased) and, Qwen3-VL only, one
      more merger per ``deepstack_visual_indexes`` entry (default [8, 16, 24]) whose norm is over
      h m^2.
    - llama4: unfold patch linear (3 p^2 -> h), class embedding, (image/p)^2 + 1 positions, pre/post
      LayerNorms, layers of biased q/k/v/o + fc1/fc2 and two LayerNorms, pixel-shuffle adapter
      (intermediate -> projector_input, projector_output^2, no bias), projector (vision_output_dim ->
      text hidden, no bias).
    - gemma4: patch input_proj (3 p^2 -> h), 2 x position_embedding_size x h table, layers of q/k/v/o
      (no bias), per-head q/k RMSNorm, gated MLP, four RMSNorms; embed_vision projection h -> text h.
    - kimi_k25 (MoonViT): Conv2d patch embed with bias, pos_emb_height x pos_emb_width x h table,
      layers of biased q/k/v/proj + fc1/fc2 and two LayerNorms, final LayerNorm; mm_projector:
      LayerNorm(projection width), in_proj (h m^2 square) and out_proj (-> text hidden), biased.
    """
    top = cfg.model_type or ""
    vc = _sub(cfg, "vision_config")
    text_hidden = cfg.int("hidden_size")
    if top in ("qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe"):
        h, depth = int(_v(vc, "hidden_size", 1152)), int(_v(vc, "depth", 27))
        inter, patch = int(_v(vc, "intermediate_size", 4304)), int(_v(vc, "patch_size", 16))
        tp, ch = int(_v(vc, "temporal_patch_size", 2)), int(_v(vc, "in_channels", 3))
        merge, out = int(_v(vc, "spatial_merge_size", 2)), int(_v(vc, "out_hidden_size", 3584))
        positions = int(_v(vc, "num_position_embeddings", 2304))
        total = ch * tp * patch * patch * h + h + positions * h
        total += depth * (4 * h + 3 * h * h + 3 * h + h * h + h + 2 * h * inter + inter + h)
        m = h * merge * merge
        merger = m * m + m + out * m + out
        total += 2 * h + merger
        if top.startswith("qwen3_vl"):
            deepstack = vc.get("deepstack_visual_indexes")
            n = len(deepstack) if isinstance(deepstack, list) else 3
            total += n * (2 * m + merger)
        return total
    if top == "llama4":
        h, layers = int(_v(vc, "hidden_size", 768)), int(_v(vc, "num_hidden_layers", 34))
        inter, patch = int(_v(vc, "intermediate_size", 5632)), int(_v(vc, "patch_size", 14))
        image, ch = int(_v(vc, "image_size", 448)), int(_v(vc, "num_channels", 3))
        p_in, p_out = int(_v(vc, "projector_input_dim", 4096)), int(_v(vc, "projector_output_dim", 4096))
        v_out = int(_v(vc, "vision_output_dim", 7680))
        total = ch * patch * patch * h + h + ((image // patch) ** 2 + 1) * h + 4 * h
        total += layers * (4 * (h * h + h) + 2 * h * inter + inter + h + 4 * h)
        total += inter * p_in + p_out * p_out
        bias = bool(_v(vc, "multi_modal_projector_bias", False))
        return total + v_out * text_hidden + (text_hidden if bias else 0)
    if top == "gemma4":
        if cfg.raw.get("audio_config") is not None:
            return 0
        if not vc:
            return 0
        h, layers = int(_v(vc, "hidden_size", 768)), int(_v(vc, "num_hidden_layers", 16))
        inter, patch = int(_v(vc, "intermediate_size", 3072)), int(_v(vc, "patch_size", 16))
        heads, kv = int(_v(vc, "num_attention_heads", 12)), int(_v(vc, "num_key_value_heads", 12))
        hd = int(_v(vc, "head_dim", 64))
        total = 3 * patch * patch * h + 2 * int(_v(vc, "position_embedding_size", 10240)) * h
        total += layers * (2 * h * heads * hd + 2 * h * kv * hd + 2 * hd + 3 * h * inter + 4 * h)
        return total + h * text_hidden
    if top == "kimi_k25":
        h = int(_v(vc, "hidden_size", _v(vc, "vt_hidden_size", 1152)))
        layers = int(_v(vc, "num_hidden_layers", _v(vc, "vt_num_hidden_layers", 27)))
        inter = int(_v(vc, "intermediate_size", _v(vc, "vt_intermediate_size", 4304)))
        patch = int(_v(vc, "patch_size", 14))
        ph = int(_v(vc, "pos_emb_height", _v(vc, "init_pos_emb_height", 64)))
        pw = int(_v(vc, "pos_emb_width", _v(vc, "init_pos_emb_width", 64)))
        mk = _v(vc, "merge_kernel_size", [2, 2])
        proj_norm = int(_v(cfg.raw, "projection_hidden_size", _v(vc, "mm_hidden_size", 1152)))
        total = 3 * patch * patch * h + h + ph * pw * h
        total += layers * (4 * (h * h + h) + 2 * h * inter + inter + h + 4 * h) + 2 * h
        m = h * int(mk[0]) * int(mk[1])
        return total + 2 * proj_norm + m * m + m + m * text_hidden + text_hidden
    return 0


def build(cfg: HFConfig) -> Layout:
    """Dispatch on the decoder's model_type (the nested text config's when present)."""
    top = cfg.model_type or ""
    mt = cfg.text_model_type or top
    for name in (top, mt):
        if name in UNSUPPORTED:
            raise Unsupported(f"unsupported model_type '{name}': {UNSUPPORTED[name]}")
    if top in ("kimi_k2", "kimi_k25") or mt in ("kimi_k2", "deepseek_v2", "deepseek_v3", "deepseek_v32", "glm_moe_dsa"):
        builder, mt = mla, (mt if mt != "kimi_k2" else "deepseek_v3")
    elif mt in ("qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text", "qwen3_next"):
        builder = qwen_hybrid
    elif mt == "nemotron_h":
        builder = nemotron_h
    elif mt in ("gemma4", "gemma4_text"):
        builder = gemma4
    elif mt in _STD or mt in _STD_ALIASES:
        builder = standard
    elif mt in _CLASSIC:
        builder = classic
    elif mt == "phi-msft":
        # microsoft/phi-2's original remote-code config (MixFormer): the same modules as
        # transformers' PhiForCausalLM under older names (Wqkv = q/k/v with bias, out_proj = dense,
        # lm.ln + lm.linear with bias = final_layernorm + lm_head), so it is accounted as `phi`.
        builder, mt = classic, "phi"
    elif mt == "jamba":
        builder = jamba
    else:
        raise Unsupported(f"unsupported model_type '{mt or None}': no parameter accounting for this architecture")
    if not (mt == "nemotron_h" and isinstance(cfg.get("layers_block_type"), list)):
        cfg.int("num_hidden_layers")
    layout = builder(cfg, mt)
    layout.acc.vision = vision_params(cfg)
    return layout
