"""A synthetic catalogue for scale benchmarks: N configs whose architectures are all distinct.

Each synthetic config is a real config.json (the bundled snapshot's) with its layers, widths, heads,
experts and context perturbed, so every one is a plausible, different model that ``describe`` sizes
exactly like a real one. Distinctness is by construction: model ``i`` of a base gets a round
``k = i // len(bases)``, and its FFN width (for MoE models the routed expert's; the vocabulary for a
config with no width field) grows by ``WIDTH_STEP * (k + 1)``, a different parameter count for every
``k``; layers, KV heads, experts and
context change with ``k`` too, each relative to the base's, so bases that differ stay different.
Bases should be distinct signatures themselves; a catalogue is then the worst case for dedup (a test
holds that no two models share a signature).
A perturbation a base's layout cannot take (a per-layer list pinned to the layer count, heads that
stop dividing) falls back to the width and context ones alone.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

#: FFN width added per round (a multiple of 64: every engine's kernels take it)
WIDTH_STEP = 64
#: a synthetic model's context is its base's divided by one of these (relative, so two bases that
#: differ only in context still differ after it)
CONTEXT_DIVISORS = (1, 2, 4)
#: the FFN width fields of the architectures sizing.layouts accounts, MoE expert width first
_WIDTH_KEYS = ("moe_intermediate_size", "intermediate_size", "ffn_hidden_size", "n_inner", "ffn_dim")
_VOCAB_KEYS = ("vocab_size", "padded_vocab_size")
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
_EXPERT_KEYS = ("num_experts", "n_routed_experts", "num_local_experts")
_TOPK_KEYS = ("num_experts_per_tok", "num_experts_per_token", "moe_topk", "top_k")


@dataclass(frozen=True)
class BaseConfig:
    model_id: str
    config: dict
    quant_config: dict | None = None


def _text(config: dict) -> dict:
    inner = config.get("text_config")
    return inner if isinstance(inner, dict) else config


def _first_key(section: dict, keys: Sequence[str]) -> str | None:
    return next((k for k in keys if isinstance(section.get(k), int) and not isinstance(section.get(k), bool)), None)


def perturb(config: dict, k: int, *, structural: bool = True) -> dict:
    """The round-``k`` variant of ``config`` (a new dict; the input is not changed)."""
    out = copy.deepcopy(config)
    text = _text(out)
    width_key = next((key for key in _WIDTH_KEYS if isinstance(text.get(key), int) and text[key] > 0), None)
    if width_key:
        text[width_key] += WIDTH_STEP * (k + 1)
    else:  # a config with no FFN width field (GPT-2 style 4 x hidden): the vocabulary grows instead
        vocab_key = next((key for key in _VOCAB_KEYS if isinstance(text.get(key), int) and text[key] > 0), None)
        if vocab_key:
            text[vocab_key] += WIDTH_STEP * (k + 1)
    base_context = text.get("max_position_embeddings")
    if isinstance(base_context, int) and base_context >= 8192:
        text["max_position_embeddings"] = base_context // CONTEXT_DIVISORS[k % len(CONTEXT_DIVISORS)]
    if not structural:
        return out
    if (layer_key := _first_key(text, _LAYER_KEYS)) and not any(
        isinstance(v, list) and len(v) == text[layer_key] for v in text.values()
    ):
        text[layer_key] = max(1, text[layer_key] + (k % 5) - 2)
    kv_heads = text.get("num_key_value_heads")
    if isinstance(kv_heads, int) and kv_heads % 2 == 0 and k % 2 == 1:
        text["num_key_value_heads"] = kv_heads // 2  # still divides the attention heads
    if (expert_key := _first_key(text, _EXPERT_KEYS)) and text[expert_key] > 1:
        top_k = next((text[t] for t in _TOPK_KEYS if isinstance(text.get(t), int)), 1)
        text[expert_key] = max(top_k, text[expert_key] + 8 * (k % 3))
    return out


def synthetic_name(base: BaseConfig, k: int) -> str:
    return f"synthetic/{base.model_id.split('/')[-1]}-v{k}"


def synthetic_catalogue(bases: Sequence[BaseConfig], n: int) -> Iterator[BaseConfig]:
    """``n`` configs, cycling over ``bases``: model ``i`` is ``perturb(bases[i % B], i // B)`` named
    ``synthetic/<base repo name>-v<k>``. Each comes with ``perturb(..., structural=False)`` as its
    fallback in ``fallback`` (see ``describe_synthetic``)."""
    for i in range(n):
        base = bases[i % len(bases)]
        k = i // len(bases)
        yield BaseConfig(synthetic_name(base, k), perturb(base.config, k), base.quant_config)


def fallback(base: BaseConfig, k: int) -> BaseConfig:
    """The width-and-context-only variant, for a base whose layout rejects the structural one."""
    return BaseConfig(synthetic_name(base, k), perturb(base.config, k, structural=False), base.quant_config)
