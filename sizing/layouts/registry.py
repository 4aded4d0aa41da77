"""From a config's model_type to the builder that lays it out: adding a family is one module (or one
``_Std`` row) plus one line here.

``build`` looks the decoder's model_type up (the nested text config's when there is one), except
for wrappers in ``WRAPPERS``, whose own model_type decides; model_types declined on purpose
(``UNSUPPORTED``) and unknown ones raise ``Unsupported`` with the reason.
"""

from __future__ import annotations

from sizing.hf_config import HFConfig
from sizing.layouts import classic
from sizing.layouts.base import Builder, Layout, Unsupported
from sizing.layouts.families import UNSUPPORTED
from sizing.layouts.gemma import gemma4
from sizing.layouts.hybrid import jamba, nemotron_h, qwen_hybrid
from sizing.layouts.mla import kimi_k2, mla
from sizing.layouts.standard import MODEL_TYPES as STANDARD_TYPES
from sizing.layouts.standard import standard
from sizing.layouts.vision import vision_params

REGISTRY: dict[str, Builder] = {
    **dict.fromkeys(STANDARD_TYPES, standard),
    "deepseek_v2": mla, "deepseek_v3": mla, "deepseek_v32": mla, "glm_moe_dsa": mla,
    "kimi_k2": kimi_k2, "kimi_k25": kimi_k2,
    "qwen3_5": qwen_hybrid, "qwen3_5_text": qwen_hybrid, "qwen3_5_moe": qwen_hybrid, "qwen3_5_moe_text": qwen_hybrid,
    "qwen3_next": qwen_hybrid,
    "nemotron_h": nemotron_h,
    "jamba": jamba,
    "gemma4": gemma4, "gemma4_text": gemma4,
    "gpt2": classic.gpt2, "gptj": classic.gptj, "gpt_neox": classic.gpt_neox, "falcon": classic.falcon,
    "phi": classic.phi, "phi-msft": classic.phi_msft, "starcoder2": classic.starcoder2, "cohere": classic.cohere,
    "olmo": classic.olmo, "chatglm": classic.chatglm, "dbrx": classic.dbrx,
}

#: Multimodal wrappers laid out by their own entry whatever model_type their text config carries
#: (Kimi-K2.5 nests a DeepSeek-V3-shaped decoder).
WRAPPERS = frozenset({"kimi_k2", "kimi_k25"})


def build(cfg: HFConfig) -> Layout:
    """Dispatch on the decoder's model_type (the nested text config's when present)."""
    top = cfg.model_type or ""
    mt = cfg.text_model_type or top
    for name in (top, mt):
        if name in UNSUPPORTED:
            raise Unsupported(f"unsupported model_type '{name}': {UNSUPPORTED[name]}")
    builder = REGISTRY.get(top) if top in WRAPPERS else REGISTRY.get(mt)
    if builder is None:
        raise Unsupported(f"unsupported model_type '{mt or None}': no parameter accounting for this architecture")
    if not (mt == "nemotron_h" and isinstance(cfg.get("layers_block_type"), list)):
        cfg.int("num_hidden_layers")
    layout = builder(cfg, mt)
    layout.acc.vision = vision_params(cfg)
    return layout
