"""Per-family decoder layouts: which tensors each layer holds and how each layer caches.

Each builder mirrors the transformers modeling file of its family (module names, fused or split
projections, biases, norms, MoE placement) and returns a ``Layout``: the parameter ``Accounting``
plus one ``LayerCache`` per decoder layer, from which ``sizing.kv`` derives KV groups. A family that
cannot be accounted exactly raises ``Unsupported`` with the reason: never a guess.

Modules: ``base`` (Layout, LayerCache, the attention-kind rule), ``blocks`` (attention, MLA, MoE and
norm builders every family shares), one module per family group (``standard``, ``mla``,
``hybrid``, ``gemma``, ``classic``), ``vision`` (towers reported apart), ``families`` (family names
and declined model_types) and ``registry`` (model_type -> builder, ``build``).
"""

from sizing.layouts.base import Builder, LayerCache, Layout, Unsupported, attention_kind
from sizing.layouts.families import FAMILIES, UNSUPPORTED
from sizing.layouts.gemma import gemma4
from sizing.layouts.hybrid import jamba, nemotron_h, qwen_hybrid
from sizing.layouts.mla import mla
from sizing.layouts.registry import REGISTRY, build
from sizing.layouts.standard import standard
from sizing.layouts.vision import vision_params

__all__ = [
    "FAMILIES", "REGISTRY", "UNSUPPORTED", "Builder", "LayerCache", "Layout", "Unsupported", "attention_kind", "build",
    "gemma4", "jamba", "mla", "nemotron_h", "qwen_hybrid", "standard", "vision_params",
]
