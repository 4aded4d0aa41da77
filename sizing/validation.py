"""Bounds on untrusted configs, checked before any sizing arithmetic runs.

A ``config.json`` comes from whoever publishes a repo. Before ``sizing.architecture.describe``
multiplies its numbers together, ``validate_config`` checks every field the accounting reads:

- integer fields (layers, hidden size, heads, KV heads, head dims, intermediate sizes, experts,
  experts per token, vocab, context, windows, ...) are JSON integers -- not floats such as
  ``1e308``, not booleans, not strings -- inside the plausible range of their kind
  (``sizing.constants.CONFIG_BOUNDS``, each with its reason), wherever they appear: top level, the
  nested text config and ``vision_config``;
- per-layer pattern fields (``layer_types``, ``hybrid_override_pattern``...) have at most one entry
  per layer of the layer bound;
- the document nests at most ``CONFIG_LIMITS.max_json_depth`` levels.

``check_spec`` bounds what the accounting derived (total parameters, int64 columns), since products
of in-bound fields can still be absurd. ``load_config_json`` is the landing side: size and depth
caps on the bytes, and a parser that turns ``RecursionError`` / digit-limit errors into a reason.

Every check returns a reason naming the field, its value and the bound, or raises
``ConfigRejected`` with one; none of them raises anything else, whatever the input.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from sizing.constants import (
    CONFIG_BOUNDS,
    CONFIG_FIELD_KINDS,
    CONFIG_LAYER_PATTERN_FIELDS,
    CONFIG_LIMITS,
    CONFIG_MAX_LIST_ENTRIES,
    ConfigBound,
)

#: Sections of a config whose fields are checked (the wrapper is ``""``).
NESTED_SECTIONS = ("text_config", "language_config", "llm_config", "vision_config")
_EXPERT_FIELDS = ("num_experts", "n_routed_experts", "num_local_experts", "moe_num_experts")
_TOP_K_FIELDS = ("num_experts_per_tok", "num_experts_per_token", "top_k_experts", "moe_top_k", "moe_k",
                 "experts_per_token")
INT64_MAX = 2**63 - 1
MAX_REASON_CHARS = 500


class ConfigRejected(ValueError):
    """A config refused before sizing; ``reason`` says which field, what value and which bound.

    ``kind``: ``malformed`` (not JSON at all), ``too_large`` (over the byte cap), ``too_deep`` (over
    the nesting cap) or ``unreadable`` (not UTF-8, a number past Python's digit limit)."""

    def __init__(self, reason: str, kind: str = "unreadable"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


# --- landing: bytes -> JSON ---------------------------------------------------------------------


def load_config_json(
    content: bytes | str,
    *,
    what: str = "config.json",
    max_bytes: int = CONFIG_LIMITS.max_config_bytes,
    max_depth: int = CONFIG_LIMITS.max_json_depth,
) -> Any:
    """Parse one config file under the landing caps; raise ``ConfigRejected`` with the reason.

    Checks the size before decoding, parses with Python's json (whose C scanner raises
    ``RecursionError`` on very deep input rather than overflowing the stack: caught here), then
    measures the nesting of the result without recursion.
    """
    size = len(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    if size > max_bytes:
        raise ConfigRejected(f"{what} is {size:,} bytes, over the {max_bytes:,}-byte cap for configs", "too_large")
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ConfigRejected(f"{what} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    document = parse_json_text(content, what=what)
    check_json_depth(document, what=what, max_depth=max_depth)
    return document


def parse_json_text(text: str, *, what: str = "JSON") -> Any:
    """``json.loads`` whose every failure is a ``ConfigRejected``: malformed JSON, nesting past the
    parser's recursion limit, an integer past Python's digit limit."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigRejected(f"{what}: malformed JSON: {error.msg} at line {error.lineno}", "malformed") from None
    except RecursionError:
        raise ConfigRejected(
            f"{what}: JSON nested deeper than the parser's recursion limit "
            f"(configs may nest at most {CONFIG_LIMITS.max_json_depth} levels)",
            "too_deep",
        ) from None
    except (ValueError, MemoryError) as error:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise ConfigRejected(f"{what}: unreadable JSON: {_clip(str(error), 200)}") from None


def json_depth(value: Any, *, stop_after: int | None = None) -> int:
    """Nesting depth of a JSON value (scalars 0, ``[]`` 1, ``[[1]]`` 2), without recursion.

    Stops as soon as the depth exceeds ``stop_after`` (and returns that depth)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if stop_after is not None and deepest > stop_after:
                return deepest
        stack.extend((child, depth) for child in children if isinstance(child, (dict, list, tuple)))
    return deepest


def check_json_depth(document: Any, *, what: str = "config.json",
                     max_depth: int = CONFIG_LIMITS.max_json_depth) -> None:
    if json_depth(document, stop_after=max_depth) > max_depth:
        raise ConfigRejected(
            f"{what} nests more than {max_depth} levels of objects/arrays "
            f"(real configs nest at most 7; the cap is {max_depth})",
            "too_deep",
        )


# --- before sizing: field bounds ----------------------------------------------------------------


def validate_config(config: Any) -> str | None:
    """The first bound the config breaks, as a reason, or None when every checked field is in bounds.

    Never raises: a failure of the check itself is reported as a reason too."""
    try:
        return _validate(config)
    except Exception as error:  # noqa: BLE001 -- the validator must not be the crash it prevents
        return f"config could not be checked: {type(error).__name__}: {_clip(str(error), 200)}"


def _validate(config: Any) -> str | None:
    if not isinstance(config, dict):
        return f"config is {_type_name(config)}, not a JSON object"
    if json_depth(config, stop_after=CONFIG_LIMITS.max_json_depth) > CONFIG_LIMITS.max_json_depth:
        return f"config nests more than {CONFIG_LIMITS.max_json_depth} levels of objects/arrays"
    sections: list[tuple[str, dict]] = [("", config)]
    sections += [(key, config[key]) for key in NESTED_SECTIONS if isinstance(config.get(key), dict)]
    for prefix, section in sections:
        for key, value in section.items():
            if not isinstance(key, str):
                continue
            where = f"{prefix}.{key}" if prefix else key
            kind = CONFIG_FIELD_KINDS.get(key)
            if kind is not None:
                problem = _check_field(where, value, kind)
                if problem:
                    return problem
            elif key in CONFIG_LAYER_PATTERN_FIELDS and isinstance(value, (list, str)):
                if len(value) > CONFIG_MAX_LIST_ENTRIES:
                    return (f"{where} has {len(value):,} entries, over the {CONFIG_MAX_LIST_ENTRIES:,} a per-layer "
                            f"pattern may have (one per layer; {CONFIG_BOUNDS['layers'].why})")
        problem = _check_top_k(prefix, section)
        if problem:
            return problem
    return None


def _check_field(where: str, value: Any, kind: str) -> str | None:
    if value is None:
        return None
    bound = CONFIG_BOUNDS[kind]
    if isinstance(value, list):
        if len(value) > CONFIG_MAX_LIST_ENTRIES:
            return f"{where} is a list of {len(value):,} entries, over the {CONFIG_MAX_LIST_ENTRIES:,} per-layer maximum"
        for position, item in enumerate(value):
            problem = _check_int(f"{where}[{position}]", item, bound)
            if problem:
                return problem
        return None
    return _check_int(where, value, bound)


def _check_int(where: str, value: Any, bound: ConfigBound) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return (f"{where} = {_show(value)} is {_type_name(value)}, not an integer "
                f"(must be an integer in [{bound.low:,}, {bound.high:,}])")
    if not bound.low <= value <= bound.high:
        return (f"{where} = {_show(value)} is outside the plausible range [{bound.low:,}, {bound.high:,}] "
                f"({bound.why})")
    return None


def _check_top_k(prefix: str, section: dict) -> str | None:
    experts = next((section[k] for k in _EXPERT_FIELDS if isinstance(section.get(k), int)), None)
    for key in _TOP_K_FIELDS:
        top_k = section.get(key)
        if isinstance(top_k, int) and isinstance(experts, int) and experts > 0 and top_k > experts:
            where = f"{prefix}.{key}" if prefix else key
            return f"{where} = {top_k:,} is more than the {experts:,} experts of the model"
    return None


# --- after sizing: derived values ---------------------------------------------------------------


def check_spec(spec: Any) -> str | None:
    """A reason when a derived number of a ``ModelSpec`` is implausible or does not fit int64."""
    try:
        if spec.params_total > CONFIG_LIMITS.max_params_total:
            return (f"the config describes {_show(spec.params_total)} parameters, over the plausible "
                    f"{CONFIG_LIMITS.max_params_total:.0e} (the largest published models have 1-2e12)")
        for f in fields(spec):
            value = getattr(spec, f.name)
            if f.name == "weights_bytes":
                values = [(f"weights_bytes[{k}]", v) for k, v in value.items()]
            elif f.name == "kv_groups":
                values = [(f"kv_groups[{i}].{g.name}", getattr(group, g.name))
                          for i, group in enumerate(value) for g in fields(group)]
            else:
                values = [(f.name, value)]
            for name, v in values:
                if isinstance(v, int) and not isinstance(v, bool) and not -INT64_MAX <= v <= INT64_MAX:
                    return f"derived {name} = {_show(v)} does not fit a 64-bit integer"
    except Exception as error:  # noqa: BLE001
        return f"derived values could not be checked: {type(error).__name__}: {_clip(str(error), 200)}"
    return None


# --- helpers ------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    names = {str: "a string", float: "a float", bool: "a boolean", list: "a list", dict: "an object",
             type(None): "null", int: "an integer"}
    return names.get(type(value), f"a {type(value).__name__}")


def _show(value: Any) -> str:
    """A short, always-printable rendering (huge ints and long strings abbreviated)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) < 10**21:
            return f"{value:,}"
        digits = int(abs(value).bit_length() * 0.30103) + 1  # str() of a huge int is slow or refused
        return f"{'-' if value < 0 else ''}~10^{digits - 1} (a {digits:,}-digit integer)"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return f"{_type_name(value)} of {len(value)} entries"
    return _clip(repr(value), 60)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_reason(reason: str) -> str:
    return _clip(reason, MAX_REASON_CHARS)
