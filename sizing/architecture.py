"""Façade: ``describe(config)`` turns one HF config.json (plus an optional hf_quant_config.json
and, in live mode, the Hub's per-dtype safetensors parameter counts) into a ``ModelSpec``:
parameters, KV per token, weights per precision and as stored, and the checkpoint's precision with
the evidence it was detected from (``sizing.quantization.detect_checkpoint``).

Pure: no I/O, no Dagster. It never raises, whatever the input: a config outside the plausible
bounds (``sizing.validation``: checked before any arithmetic), an architecture it cannot account
exactly, a config missing a field the accounting needs, or any error of the accounting itself gives
``supported=False`` with the reason. (Time and memory are bounded per model by running it in a
worker process: ``sizing.isolation``.)
"""

from __future__ import annotations

from typing import Any

from sizing.hf_config import HFConfig, MissingField
from sizing.kv import kv_bytes_per_token, kv_groups
from sizing.layouts import FAMILIES, Layout, Unsupported, build
from sizing.model_spec import ModelSpec
from sizing.params import EMBED, EXPERTS, LM_HEAD, UNQUANTIZED_ROLES
from sizing.precision import weights_bytes_per_precision
from sizing.quantization import checkpoint_bytes, detect_checkpoint
from sizing.validation import check_spec, clip_reason, validate_config

#: Longest model_type / architecture kept on an unsupported row (real ones are < 50 characters).
_MAX_NAME_CHARS = 200


def describe(
    config: dict,
    *,
    model_id: str,
    quant_config: dict | None = None,
    safetensors_dtypes: dict[str, int] | None = None,
) -> ModelSpec:
    """Describe one model from its config. See ``ModelSpec`` for field meanings.

    ``quant_config`` is the repo's hf_quant_config.json; ``safetensors_dtypes`` the Hub model info's
    ``safetensors.parameters`` (dtype -> stored elements), when known (live mode).
    """
    if not isinstance(config, dict):
        return ModelSpec(model_id=model_id, supported=False, reason="config is not a JSON object")
    try:
        cfg = HFConfig(config)
        base = dict(model_id=model_id, model_type=_name(cfg.model_type), architecture=_name(cfg.architecture),
                    family=FAMILIES.get(cfg.text_model_type or "", FAMILIES.get(cfg.model_type or "")))
    except Exception as exc:  # noqa: BLE001 -- a config must never crash sizing
        return ModelSpec(model_id=model_id, supported=False, reason=_error_reason("malformed config", exc))
    problem = validate_config(config)
    if problem:
        return ModelSpec(supported=False, reason=clip_reason(f"config rejected: {problem}"), **base)
    try:
        layout = build(cfg)
        spec = _spec(cfg, layout, quant_config, safetensors_dtypes, base)
    except MissingField as exc:
        return ModelSpec(supported=False, reason=clip_reason(f"missing {exc.args[0]}"), **base)
    except Unsupported as exc:
        return ModelSpec(supported=False, reason=clip_reason(str(exc)), **base)
    except (RecursionError, MemoryError) as exc:
        return ModelSpec(supported=False, reason=_error_reason("config too large to size", exc), **base)
    except Exception as exc:  # noqa: BLE001 -- TypeError, ValueError, OverflowError... and any bug
        return ModelSpec(supported=False, reason=_error_reason("malformed config", exc), **base)
    problem = check_spec(spec)
    if problem:
        return ModelSpec(supported=False, reason=clip_reason(f"config rejected: {problem}"), **base)
    return spec


def _name(value: str | None) -> str | None:
    return value[:_MAX_NAME_CHARS] if isinstance(value, str) else None


def _error_reason(prefix: str, exc: BaseException) -> str:
    try:
        detail = str(exc)
    except Exception:  # noqa: BLE001 -- e.g. an int too long to print
        detail = "(unprintable)"
    return clip_reason(f"{prefix}: {type(exc).__name__}: {detail}")


def _spec(cfg: HFConfig, layout: Layout, quant_config: dict | None, safetensors_dtypes: dict | None,
          base: dict[str, Any]) -> ModelSpec:
    acc = layout.acc
    groups = kv_groups(layout.caches + layout.extra_caches)
    qc = cfg.raw.get("quantization_config") or cfg.text.get("quantization_config")
    checkpoint = detect_checkpoint(
        model_id=base["model_id"],
        quantization_config=qc if isinstance(qc, dict) else None,
        hf_quant_config=quant_config,
        safetensors_dtypes=safetensors_dtypes,
        config_dtype=cfg.get("torch_dtype") or cfg.get("dtype"),
        # What every quantized checkpoint keeps at 16 bits (see precision_from_safetensors).
        set_aside=acc.sum_roles(UNQUANTIZED_ROLES) + acc.vision,
    )
    return ModelSpec(
        supported=True,
        params_total=acc.total,
        params_active=acc.active,
        params_mtp=acc.mtp,
        params_vision=acc.vision,
        params_embedding=acc.sum_roles({EMBED, LM_HEAD}),
        params_routed_experts=acc.sum_roles({EXPERTS}),
        params_unquantized=acc.sum_roles(UNQUANTIZED_ROLES),
        num_layers=layout.num_layers,
        hidden_size=layout.hidden,
        num_attention_heads=layout.heads,
        num_kv_heads=layout.kv_heads,
        head_dim=layout.head_dim,
        vocab_size=layout.vocab,
        max_context=_max_context(cfg),
        attention_kind=layout.attention_kind,
        is_moe=acc.num_moe_layers > 0,
        num_experts=acc.num_experts if acc.num_moe_layers else 0,
        experts_per_token=acc.experts_per_token if acc.num_moe_layers else 0,
        num_shared_experts=acc.num_shared_experts,
        num_moe_layers=acc.num_moe_layers,
        moe_intermediate_size=layout.moe_intermediate_size,
        ssm_num_heads=layout.ssm_num_heads,
        ssm_n_groups=layout.ssm_n_groups,
        linear_attn_key_heads=layout.linear_attn_key_heads,
        linear_attn_value_heads=layout.linear_attn_value_heads,
        sliding_window=layout.sliding_window,
        kv_bytes_per_token_bf16=kv_bytes_per_token(groups),
        kv_groups=groups,
        checkpoint_format=checkpoint.fmt,
        checkpoint_precision=checkpoint.precision,
        checkpoint_precision_source=checkpoint.source,
        checkpoint_precision_conflict=checkpoint.conflict,
        weights_bytes=weights_bytes_per_precision(acc),
        weights_bytes_checkpoint=checkpoint_bytes(acc, checkpoint.scheme, checkpoint.dense_fmt),
        **base,
    )


def _max_context(cfg: HFConfig) -> int:
    """``max_position_embeddings`` (or its GPT-2 / ChatGLM aliases ``n_positions`` / ``seq_length``)."""
    value = cfg.get("max_position_embeddings")
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0
