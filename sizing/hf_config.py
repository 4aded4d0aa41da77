"""Reading Hugging Face ``config.json`` conventions into one flat view of the language model.

HF configs spell the same fact many ways: multimodal wrappers nest the decoder under
``text_config`` / ``language_config`` / ``llm_config``; older families use GPT-2 names (``n_layer``,
``n_embd``, ``n_head``); per-layer attention kinds come as ``layer_types``, a
``sliding_window_pattern`` or an ``hybrid_override_pattern``. ``HFConfig`` resolves these once so
the accounting modules ask for a fact by its canonical name.
"""

from __future__ import annotations

from typing import Any

_NESTED_TEXT_KEYS = ("text_config", "language_config", "llm_config")

ALIASES: dict[str, tuple[str, ...]] = {
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model", "model_dim", "dim"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "num_key_value_heads": ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "multi_query_group_num", "num_kv_heads"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_hidden_size", "ffn_dim"),
    "vocab_size": ("vocab_size", "padded_vocab_size", "n_vocab"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions", "seq_length", "max_seq_len", "max_sequence_length"),
    "num_experts": ("num_experts", "n_routed_experts", "num_local_experts", "moe_num_experts"),
    "experts_per_token": ("num_experts_per_tok", "num_experts_per_token", "top_k_experts", "moe_top_k", "moe_k"),
}


class MissingField(KeyError):
    """A field the accounting needs is absent: the spec becomes ``supported=False``."""


class HFConfig:
    """A config dict with the decoder's fields resolved (nested text config first, then top level)."""

    def __init__(self, raw: dict[str, Any]):
        self.raw = raw if isinstance(raw, dict) else {}
        text = None
        for key in _NESTED_TEXT_KEYS:
            if isinstance(self.raw.get(key), dict):
                text = self.raw[key]
                break
        self.text: dict[str, Any] = text if text is not None else self.raw
        self.is_nested = text is not None
        self.model_type: str | None = _str_or_none(self.raw.get("model_type"))
        self.text_model_type: str | None = _str_or_none(self.text.get("model_type")) if self.is_nested else self.model_type
        archs = self.raw.get("architectures") or self.text.get("architectures") or []
        self.architecture: str | None = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None

    def has(self, name: str) -> bool:
        return self.get(name) is not None

    def get(self, name: str, default: Any = None) -> Any:
        """Canonical lookup: aliases in order, the nested text config before the wrapper."""
        for key in ALIASES.get(name, (name,)):
            for source in (self.text, self.raw):
                value = source.get(key)
                if value is not None:
                    return value
        return default

    def int(self, name: str, default: int | None = None) -> int:
        value = self.get(name)
        if value is None:
            if default is None:
                raise MissingField(name)
            return default
        # A JSON integer only: a float (1e308, 4096.0), a boolean or a string is not a count.
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MissingField(f"{name} (not a non-negative integer: {_short_repr(value)})")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        return default if value is None else bool(value)

    def tie_word_embeddings(self, default: bool = False) -> bool:
        """Tying is read on the wrapper for multimodal models (transformers ties at the top level)."""
        for source in ((self.raw, self.text) if self.is_nested else (self.text,)):
            if source.get("tie_word_embeddings") is not None:
                return bool(source["tie_word_embeddings"])
        return default

    def head_dim(self) -> int:
        """Explicit ``head_dim`` when given (Gemma, Qwen3, Mistral...), else hidden / heads."""
        explicit = self.get("head_dim")
        if isinstance(explicit, int) and explicit > 0:
            return explicit
        heads = self.int("num_attention_heads")
        if heads == 0:
            raise MissingField("num_attention_heads")
        return self.int("hidden_size") // heads

    def num_kv_heads(self) -> int:
        heads = self.int("num_attention_heads")
        value = self.get("num_key_value_heads")
        return heads if value is None else int(value)

    def layer_types(self, num_layers: int) -> list[str]:
        """Per-layer attention kind: ``full_attention``, ``sliding_attention``, ``chunked_attention``,
        ``linear_attention``... from ``layer_types`` or the older pattern fields."""
        types = self.get("layer_types")
        if isinstance(types, list) and len(types) >= num_layers:
            return [str(t) for t in types[:num_layers]]
        pattern = self.get("sliding_window_pattern")
        window = self.get("sliding_window")
        if isinstance(pattern, int) and pattern > 0 and window:
            return ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(num_layers)]
        if self.text_model_type in ("gemma2", "cohere2") and window:
            # transformers Gemma2Config default: even layers slide, odd layers are global.
            return ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(num_layers)]
        return ["full_attention"] * num_layers


def _short_repr(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**21:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value) if not isinstance(value, (dict, list)) else f"{type(value).__name__} of {len(value)} entries"
    return text if len(text) <= 60 else text[:59] + "…"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
