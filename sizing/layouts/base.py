"""What every family builder returns: a ``Layout`` (parameter ``Accounting`` plus one ``LayerCache``
per decoder layer, from which ``sizing.kv`` derives KV groups), the ``Unsupported`` refusal, and the
one attention-kind rule all builders share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sizing.hf_config import HFConfig
from sizing.params import Accounting


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


#: A family builder: the config and the decoder's model_type (the registry key it was found under,
#: or the canonical name a renaming entry passes on) to its ``Layout``.
Builder = Callable[[HFConfig, str], Layout]


def attention_kind(heads: int, kv_heads: int) -> str:
    """MHA when every query head has its own K/V head, MQA when one K/V head serves several query
    heads (Shazeer 2019, "Fast Transformer Decoding"), GQA for the groups in between (Ainslie et
    al. 2023).

    One query head with one K/V head is MHA: nothing is shared (transformers'
    ``num_key_value_groups`` = heads // kv_heads = 1, so ``repeat_kv`` is the identity) and its KV
    cache is exactly MHA's. The rule once disagreed here: gemma4's builder called it MQA, the others
    MHA. Counts that fit none of the three (no K/V heads, more K/V heads than query heads: no real
    model) stay "gqa", as every copy of the rule had them.
    """
    if kv_heads == heads:
        return "mha"
    return "mqa" if kv_heads == 1 else "gqa"


def kv_cache(kv_heads: int, head_dim: int, kind: str = "full", window: int | None = None) -> LayerCache:
    """A layer caching K and V (``head_dim`` each) for ``kv_heads`` heads."""
    return LayerCache(kind, kv_heads, 2 * head_dim, window)
