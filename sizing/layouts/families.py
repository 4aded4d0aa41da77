"""Which family a model_type belongs to (``ModelSpec.family``), and the model_types declined on
purpose with the reason (``describe`` reports it as "unsupported model_type ...: <reason>")."""

from __future__ import annotations

FAMILIES: dict[str, str] = {
    "llama": "llama", "llama4": "llama", "llama4_text": "llama", "codellama": "llama",
    "mistral": "mistral", "mixtral": "mistral", "ministral": "mistral",
    "qwen2": "qwen", "qwen2_moe": "qwen", "qwen3": "qwen", "qwen3_moe": "qwen", "qwen3_vl": "qwen",
    "qwen3_vl_text": "qwen", "qwen3_vl_moe": "qwen", "qwen3_vl_moe_text": "qwen", "qwen3_5": "qwen",
    "qwen3_5_text": "qwen", "qwen3_5_moe": "qwen", "qwen3_5_moe_text": "qwen", "qwen3_next": "qwen",
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3_text": "gemma", "gemma4": "gemma",
    "gemma4_text": "gemma",
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


def family(model_type: str) -> str:
    """The family name, or the model_type itself for one outside ``FAMILIES``."""
    return FAMILIES.get(model_type, model_type)
