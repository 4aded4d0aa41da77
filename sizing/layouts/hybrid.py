"""Hybrid decoders mixing attention with linear-attention / SSM layers, whose caches are a constant
per-sequence state (``LayerCache("state")``) beside the growing KV of their attention layers:

- Qwen3.5 / Qwen3.6 / Qwen3-Next: gated-DeltaNet linear attention + gated full attention;
- Nemotron-H: Mamba-2 + attention + (latent) MoE blocks, one mixer per block;
- Jamba: Mamba-1 + attention layers, MoE on every ``expert_layer_period``-th layer.
"""

from __future__ import annotations

from sizing.hf_config import HFConfig, MissingField
from sizing.layouts.base import LayerCache, Layout, Unsupported, kv_cache
from sizing.layouts.blocks import attention, decoder_dims, is_moe_layer, moe_block, norms, qk_norms
from sizing.params import MIXER, MLP, SHARED, STATE, Accounting, embeddings, gated_mlp

_QWEN_HYBRID_NORMS = ("input_layernorm", "post_attention_layernorm")


def qwen_hybrid(cfg: HFConfig, mt: str) -> Layout:
    hidden, layers, heads, kv_heads, hd, vocab = decoder_dims(cfg)
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
            _qwen_gated_attention(acc, f"{p}.self_attn", cfg, hidden, heads, kv_heads, hd)
            caches.append(kv_cache(kv_heads, hd))
        if is_moe_layer(cfg, i, mt):
            moe_layers += 1
            _qwen_moe(acc, f"{p}.mlp", cfg, hidden, num_experts)
        else:
            gated_mlp(acc, f"{p}.mlp", hidden, cfg.int("intermediate_size"), MLP)
        norms(acc, p, hidden, _QWEN_HYBRID_NORMS)
    acc.norm("norm", hidden)
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = num_experts, k, moe_layers
    acc.num_shared_experts = 1 if moe_layers and cfg.int("shared_expert_intermediate_size", 0) else 0
    acc.mtp = _qwen_mtp(cfg, hidden, heads, kv_heads, hd, num_experts)
    linear = any(t == "linear_attention" for t in types[:layers])
    return Layout(acc, caches, "qwen", layers, hidden, heads, kv_heads, hd, vocab, "hybrid",
                  moe_intermediate_size=cfg.int("moe_intermediate_size") if moe_layers else 0,
                  linear_attn_key_heads=nk if linear else 0, linear_attn_value_heads=nv if linear else 0)


def _qwen_gated_attention(acc: Accounting, prefix: str, cfg: HFConfig, hidden: int, heads: int, kv_heads: int,
                          hd: int) -> None:
    """Full-attention layer: q_proj doubled by the output gate (``attn_output_gate``, default on) and
    per-head q/k RMSNorms, no biases."""
    attention(acc, prefix, hidden, heads * hd, kv_heads * hd, q_gate=cfg.flag("attn_output_gate", True))
    qk_norms(acc, prefix, hd, hd)


def _qwen_moe(acc: Accounting, prefix: str, cfg: HFConfig, hidden: int, experts: int) -> None:
    """Router, routed experts of ``moe_intermediate_size`` and one gated ``shared_expert`` of
    ``shared_expert_intermediate_size`` (when non-zero)."""
    inter = cfg.int("moe_intermediate_size")
    moe_block(acc, prefix, hidden, inter, experts, shared=cfg.int("shared_expert_intermediate_size", 0),
              shared_name="shared_expert", shared_gate=True)


def _qwen_mtp(cfg: HFConfig, hidden: int, heads: int, kv_heads: int, hd: int, experts: int) -> int:
    """Qwen3.5/Next MTP (vLLM qwen3_next_mtp.py): fc (2h -> h), pre_fc_norm_embedding,
    pre_fc_norm_hidden, ``mtp_num_hidden_layers`` full-attention decoder layers (MoE when the model
    is), final norm; embedding and LM head shared unless ``mtp_use_dedicated_embeddings``."""
    n = cfg.int("mtp_num_hidden_layers", 0)
    if not n:
        return 0
    layer = Accounting()
    _qwen_gated_attention(layer, "self_attn", cfg, hidden, heads, kv_heads, hd)
    if experts:
        _qwen_moe(layer, "mlp", cfg, hidden, experts)
    else:
        gated_mlp(layer, "mlp", hidden, cfg.int("intermediate_size"), MLP)
    norms(layer, "", hidden, _QWEN_HYBRID_NORMS)
    head = Accounting()
    head.linear("fc", 2 * hidden, hidden, MIXER)
    norms(head, "", hidden, ("pre_fc_norm_embedding", "pre_fc_norm_hidden", "norm"))
    extra = cfg.int("vocab_size") * hidden if cfg.flag("mtp_use_dedicated_embeddings") else 0
    return n * layer.total + head.total + extra


_NEMOTRON_CODES = {"M": "mamba", "*": "attention", "E": "moe", "-": "mlp"}


def nemotron_h(cfg: HFConfig, mt: str) -> Layout:
    """transformers NemotronHForCausalLM: one mixer per block (``layers_block_type``, or the older
    ``hybrid_override_pattern`` codes M/*/E/-), each behind its own RMSNorm. Mamba-2 mixers; attention
    without positional encoding; MoE blocks of non-gated (ReLU^2) experts with a sigmoid router and
    correction bias, shared experts, and optional latent projections (``moe_latent_size``) that
    experts read and write through; plain MLP blocks."""
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
            attention(acc, p, hidden, heads * hd, kv_heads * hd, qkv_bias=bias, o_bias=bias)
            caches.append(kv_cache(kv_heads, hd))
        elif kind == "moe":
            moe_layers += 1
            inter = cfg.int("moe_intermediate_size")
            shared = cfg.int("moe_shared_expert_intermediate_size", 0) * max(cfg.int("n_shared_experts", 1), 1)
            moe_block(acc, p, hidden, inter, experts, score_bias=True, gated=False,
                      expert_hidden=latent or hidden, shared=shared, shared_gated=False)
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
            attention(acc, f"{p}.self_attn", hidden, heads * hd, kv_heads * hd)
            caches.append(kv_cache(kv_heads, hd))
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
            norms(acc, m, dt_rank, ("dt_layernorm",))
            norms(acc, m, d_state, ("b_layernorm", "c_layernorm"))
            caches.append(LayerCache("state", d_inner, state_bytes=state))
        if experts > 1 and i % e_period == e_offset:
            moe_layers += 1
            moe_block(acc, f"{p}.feed_forward", hidden, inter, experts, router="router")
        else:
            gated_mlp(acc, f"{p}.feed_forward", hidden, inter, MLP)
        norms(acc, p, hidden, ("input_layernorm", "pre_ff_layernorm"))
    acc.norm("final_layernorm", hidden)
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = experts, k, moe_layers
    # Mamba-1 mixers have no SSM heads or groups: ssm_num_heads / ssm_n_groups stay 0. Their TP
    # constraint (d_inner = mamba_expand x hidden divisible by TP) is out of scope here.
    return Layout(acc, caches, "jamba", layers, hidden, heads, kv_heads, hd, vocab, "hybrid",
                  moe_intermediate_size=inter if moe_layers else 0)
