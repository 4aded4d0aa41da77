"""Pre-Llama / non-Llama decoders whose layers differ from the standard shape in fusion, biases,
norms and MLP form, one builder each, mirroring its transformers (or remote-code) modeling file:

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
- chatglm (ChatGLM2/3, remote code): see ``chatglm``; checked against the published total.
- dbrx: fused Wqkv (h + 2 * kv_n_heads * head_dim), out_proj, norm_1 / norm_2 LayerNorms without
  bias, router, E gated experts (w1, v1, w2) of ffn_config.ffn_hidden_size, untied.

Every layer caches full K/V; ``head_dim`` is the config's (or hidden / heads) unless a family
derives its own.
"""

from __future__ import annotations

from sizing.hf_config import HFConfig, MissingField
from sizing.layouts.base import Layout, attention_kind, kv_cache
from sizing.layouts.blocks import attention, fused_attention, moe_block, norms, qk_norms
from sizing.layouts.families import family
from sizing.params import EMBED, LM_HEAD, MLP, Accounting, gated_mlp


def _dims(cfg: HFConfig) -> tuple[int, int, int, int, int]:
    """(hidden, layers, heads, vocab, head_dim), read in this order by every classic family."""
    return (cfg.int("hidden_size"), cfg.int("num_hidden_layers"), cfg.int("num_attention_heads"),
            cfg.int("vocab_size"), cfg.head_dim())


def _layout(acc: Accounting, mt: str, layers: int, hidden: int, heads: int, kv_heads: int, hd: int, vocab: int, *,
            experts: int = 0, k: int = 0, moe_layers: int = 0, expert_width: int = 0) -> Layout:
    caches = [kv_cache(kv_heads, hd) for _ in range(layers)]
    acc.num_experts, acc.experts_per_token, acc.num_moe_layers = experts, k, moe_layers
    return Layout(acc, caches, family(mt), layers, hidden, heads, kv_heads, hd, vocab, attention_kind(heads, kv_heads),
                  moe_intermediate_size=expert_width if moe_layers else 0)


def _gqa_kv(cfg: HFConfig, heads: int) -> int:
    value = cfg.text.get("num_key_value_heads")
    return heads if value is None else int(value)


def gpt2(cfg: HFConfig, mt: str) -> Layout:
    hidden, layers, heads, vocab, hd = _dims(cfg)
    inter = cfg.int("n_inner", 0) or 4 * hidden
    acc = Accounting()
    acc.add("wte.weight", vocab * hidden, EMBED)
    acc.add("wpe.weight", cfg.int("n_positions", 1024) * hidden, EMBED)
    for i in range(layers):
        p = f"h.{i}"
        acc.norm(f"{p}.ln_1", hidden, bias=True)
        fused_attention(acc, f"{p}.attn", hidden, 3 * hidden, hidden, qkv="c_attn", o="c_proj", qkv_bias=True,
                        o_bias=True)
        acc.norm(f"{p}.ln_2", hidden, bias=True)
        acc.linear(f"{p}.mlp.c_fc", hidden, inter, MLP, True)
        acc.linear(f"{p}.mlp.c_proj", inter, hidden, MLP, True)
    acc.norm("ln_f", hidden, bias=True)
    if not cfg.tie_word_embeddings(True):
        acc.add("lm_head.weight", vocab * hidden, LM_HEAD)
    return _layout(acc, mt, layers, hidden, heads, heads, hd, vocab)


def gptj(cfg: HFConfig, mt: str) -> Layout:
    hidden, layers, heads, vocab, hd = _dims(cfg)
    inter = cfg.int("n_inner", 0) or 4 * hidden
    acc = Accounting()
    acc.add("wte.weight", vocab * hidden, EMBED)
    for i in range(layers):
        p = f"h.{i}"
        acc.norm(f"{p}.ln_1", hidden, bias=True)
        attention(acc, f"{p}.attn", hidden, hidden, hidden, o_name="out_proj")
        acc.linear(f"{p}.mlp.fc_in", hidden, inter, MLP, True)
        acc.linear(f"{p}.mlp.fc_out", inter, hidden, MLP, True)
    acc.norm("ln_f", hidden, bias=True)
    if not cfg.tie_word_embeddings(False):
        acc.linear("lm_head", hidden, vocab, LM_HEAD, True)
    return _layout(acc, mt, layers, hidden, heads, heads, hd, vocab)


def gpt_neox(cfg: HFConfig, mt: str) -> Layout:
    hidden, layers, heads, vocab, hd = _dims(cfg)
    bias = cfg.flag("attention_bias", True)
    inter = cfg.int("intermediate_size")
    acc = Accounting()
    acc.add("embed_in.weight", vocab * hidden, EMBED)
    for i in range(layers):
        p = f"layers.{i}"
        norms(acc, p, hidden, ("input_layernorm", "post_attention_layernorm"), bias=True)
        fused_attention(acc, f"{p}.attention", hidden, 3 * hidden, hidden, qkv_bias=bias, o_bias=bias)
        acc.linear(f"{p}.mlp.dense_h_to_4h", hidden, inter, MLP, True)
        acc.linear(f"{p}.mlp.dense_4h_to_h", inter, hidden, MLP, True)
    acc.norm("final_layer_norm", hidden, bias=True)
    if not cfg.tie_word_embeddings(False):
        acc.add("embed_out.weight", vocab * hidden, LM_HEAD)
    return _layout(acc, mt, layers, hidden, heads, heads, hd, vocab)


def falcon(cfg: HFConfig, mt: str) -> Layout:
    hidden, layers, heads, vocab, _ = _dims(cfg)
    hd = hidden // heads
    kv_heads = heads
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
    n_norms = 1 if (cfg.flag("parallel_attn", True) and n_ln != 2) else 2
    acc = Accounting()
    acc.add("word_embeddings.weight", vocab * hidden, EMBED)
    for i in range(layers):
        p = f"h.{i}"
        fused_attention(acc, f"{p}.self_attention", hidden, (2 * kv_heads + heads) * hd, hidden, qkv_bias=bias,
                        o_bias=bias)
        acc.linear(f"{p}.mlp.dense_h_to_4h", hidden, inter, MLP, bias)
        acc.linear(f"{p}.mlp.dense_4h_to_h", inter, hidden, MLP, bias)
        norms(acc, p, hidden, (f"ln{n}" for n in range(n_norms)), bias=True)
    acc.norm("ln_f", hidden, bias=True)
    if not cfg.tie_word_embeddings(True):
        acc.add("lm_head.weight", vocab * hidden, LM_HEAD)
    return _layout(acc, mt, layers, hidden, heads, kv_heads, hd, vocab)


def phi(cfg: HFConfig, mt: str) -> Layout:
    hidden, layers, heads, vocab, hd = _dims(cfg)
    kv_heads = _gqa_kv(cfg, heads)
    # phi-msft leaves n_inner null, which its modeling code reads as 4 x n_embd.
    msft_default = cfg.model_type == "phi-msft" and cfg.get("intermediate_size") is None
    inter = 4 * hidden if msft_default else cfg.int("intermediate_size")
    acc = Accounting()
    acc.add("embed_tokens.weight", vocab * hidden, EMBED)
    for i in range(layers):
        p = f"layers.{i}"
        attention(acc, f"{p}.self_attn", hidden, heads * hd, kv_heads * hd, qkv_bias=True, o_bias=True, o_name="dense")
        if cfg.flag("qk_layernorm"):
            qk_norms(acc, f"{p}.self_attn", hidden // heads, hidden // heads, names=("q_layernorm", "k_layernorm"),
                     bias=True)
        acc.linear(f"{p}.mlp.fc1", hidden, inter, MLP, True)
        acc.linear(f"{p}.mlp.fc2", inter, hidden, MLP, True)
        acc.norm(f"{p}.input_layernorm", hidden, bias=True)
    acc.norm("final_layernorm", hidden, bias=True)
    if not cfg.tie_word_embeddings(False):
        acc.linear("lm_head", hidden, vocab, LM_HEAD, True)
    return _layout(acc, "phi", layers, hidden, heads, kv_heads, hd, vocab)


def _llama_like(cfg: HFConfig, mt: str) -> Layout:
    """starcoder2, cohere and olmo: Llama's q/k/v/o (all biased alike) with their own MLP and norms."""
    hidden, layers, heads, vocab, hd = _dims(cfg)
    kv_heads = _gqa_kv(cfg, heads)
    inter = cfg.int("intermediate_size")
    bias = cfg.flag("use_bias", True) if mt == "starcoder2" else cfg.flag("attention_bias")
    acc = Accounting()
    acc.add("embed_tokens.weight", vocab * hidden, EMBED)
    for i in range(layers):
        p = f"layers.{i}"
        attention(acc, f"{p}.self_attn", hidden, heads * hd, kv_heads * hd, qkv_bias=bias, o_bias=bias)
        if mt == "starcoder2":
            acc.linear(f"{p}.mlp.c_fc", hidden, inter, MLP, bias)
            acc.linear(f"{p}.mlp.c_proj", inter, hidden, MLP, bias)
            norms(acc, p, hidden, ("input_layernorm", "post_attention_layernorm"), bias=True)
        else:
            gated_mlp(acc, f"{p}.mlp", hidden, inter, MLP)
        if mt == "cohere":
            acc.norm(f"{p}.input_layernorm", hidden)
            if cfg.flag("use_qk_norm"):
                qk_norms(acc, f"{p}.self_attn", heads * hd, kv_heads * hd)
    if mt != "olmo":
        acc.norm("norm", hidden, bias=(mt == "starcoder2"))
    if not cfg.tie_word_embeddings(mt != "olmo"):
        acc.add("lm_head.weight", vocab * hidden, LM_HEAD)
    return _layout(acc, mt, layers, hidden, heads, kv_heads, hd, vocab)


starcoder2 = cohere = olmo = _llama_like


def chatglm(cfg: HFConfig, mt: str) -> Layout:
    """ChatGLM2/3 remote code (THUDM modeling_chatglm.py): word_embeddings, per layer a fused
    query_key_value of heads*kv_channels + 2*groups*kv_channels (bias = add_qkv_bias), dense
    (bias = add_bias_linear), SwiGLU dense_h_to_4h (2 x ffn_hidden_size) / dense_4h_to_h,
    input + post_attention RMSNorm (LayerNorm with bias when rmsnorm is false), final_layernorm
    when post_layer_norm, untied output_layer. Checked against ChatGLM3-6B's published
    6,243,584,000 parameters (no transformers class exists to run on the meta device)."""
    hidden, layers, heads, vocab, _ = _dims(cfg)
    hd = cfg.int("kv_channels")
    kv_heads = cfg.int("multi_query_group_num") if cfg.flag("multi_query_attention") else heads
    inter = cfg.int("ffn_hidden_size")
    qkv_bias, bias = cfg.flag("add_qkv_bias"), cfg.flag("add_bias_linear")
    ln_bias = not cfg.flag("rmsnorm", True)
    acc = Accounting()
    acc.add("embedding.word_embeddings.weight", vocab * hidden, EMBED)
    for i in range(layers):
        p = f"encoder.layers.{i}"
        acc.norm(f"{p}.input_layernorm", hidden, bias=ln_bias)
        fused_attention(acc, f"{p}.self_attention", hidden, (heads + 2 * kv_heads) * hd, heads * hd,
                        qkv_bias=qkv_bias, o_bias=bias)
        acc.norm(f"{p}.post_attention_layernorm", hidden, bias=ln_bias)
        acc.linear(f"{p}.mlp.dense_h_to_4h", hidden, 2 * inter, MLP, bias)
        acc.linear(f"{p}.mlp.dense_4h_to_h", inter, hidden, MLP, bias)
    if cfg.flag("post_layer_norm", True):
        acc.norm("encoder.final_layernorm", hidden, bias=ln_bias)
    if not cfg.tie_word_embeddings(False):
        acc.add("output_layer.weight", vocab * hidden, LM_HEAD)
    return _layout(acc, mt, layers, hidden, heads, kv_heads, hd, vocab)


def dbrx(cfg: HFConfig, mt: str) -> Layout:
    hidden, layers, heads, vocab, hd = _dims(cfg)
    attn_cfg, ffn_cfg = cfg.get("attn_config") or {}, cfg.get("ffn_config") or {}
    if not isinstance(attn_cfg, dict) or not isinstance(ffn_cfg, dict):
        raise MissingField("attn_config / ffn_config")
    kv_heads = int(attn_cfg.get("kv_n_heads", 1))
    inter = int(ffn_cfg.get("ffn_hidden_size", 3584))
    experts, k = int(ffn_cfg.get("moe_num_experts", 4)), int(ffn_cfg.get("moe_top_k", 1))
    acc = Accounting()
    acc.add("wte.weight", vocab * hidden, EMBED)
    for i in range(layers):
        p = f"blocks.{i}"
        acc.norm(f"{p}.norm_attn_norm.norm_1", hidden)
        fused_attention(acc, f"{p}.norm_attn_norm.attn", hidden, hidden + 2 * kv_heads * hd, hidden, qkv="Wqkv",
                        o="out_proj")
        acc.norm(f"{p}.norm_attn_norm.norm_2", hidden)
        moe_block(acc, f"{p}.ffn", hidden, inter, experts, router="router.layer")
    acc.norm("norm_f", hidden)
    if not cfg.tie_word_embeddings(False):
        acc.add("lm_head.weight", vocab * hidden, LM_HEAD)
    return _layout(acc, mt, layers, hidden, heads, kv_heads, hd, vocab, experts=experts, k=k, moe_layers=layers,
                   expert_width=inter)


def phi_msft(cfg: HFConfig, mt: str) -> Layout:
    """microsoft/phi-2's original remote-code config (MixFormer): the same modules as transformers'
    PhiForCausalLM under older names (Wqkv = q/k/v with bias, out_proj = dense, lm.ln + lm.linear
    with bias = final_layernorm + lm_head), so it is accounted as ``phi``."""
    return phi(cfg, "phi")
