"""Reading how a checkpoint is quantized: ``quantization_config`` (config.json) and ModelOpt's
``hf_quant_config.json``, then pricing each tensor as stored.

Supported: FP8 per-tensor/channel and 128x128 block (``quant_method: fp8``, ModelOpt ``FP8``),
NVFP4 (ModelOpt, compressed-tensors float 4-bit group 16), MXFP4 (gpt-oss, compressed-tensors
``mxfp4-pack-quantized``), GPTQ / AWQ int4, compressed-tensors int4/int8, and ModelOpt
``MIXED_PRECISION`` with per-module ``quantized_layers``. Modules left unquantized come from
``modules_to_not_convert`` / ``ignore`` / ``exclude_modules`` (fnmatch globs, or ``re:`` regexes in
compressed-tensors), matched against canonical tensor names after stripping wrapper prefixes.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from sizing.params import BUFFER, EXPERTS, QUANTIZABLE_ROLES, Accounting
from sizing.precision import BITS_PER_WEIGHT, BUFFER_BYTES, UNQUANTIZED_BYTES

_PREFIXES = ("model.language_model.", "language_model.model.", "model.model.", "language_model.", "model.", "backbone.")
_MODULE_ALIASES = ((".mlp.", (".block_sparse_moe.", ".feed_forward.", ".ffn.")), (".self_attn.", (".attn.",)))


@dataclass
class QuantScheme:
    """How a checkpoint stores its quantizable weights."""

    fmt: str
    exclude: list[str] = field(default_factory=list)
    targets: list[str] | None = None  # explicit module names quantized (compressed-tensors targets)
    per_module: dict[str, str] | None = None  # ModelOpt MIXED_PRECISION: module -> format

    def __post_init__(self) -> None:
        self._exact, self._prefixes, self._exclude_re = _compile(self.exclude)
        self._per_module = {_strip(k): v for k, v in (self.per_module or {}).items()}
        self._targets = {_strip(t) for t in self.targets} if self.targets else None

    def format_of(self, module: str) -> str:
        names = _alias_names(module)
        for n in names:
            if n in self._exact or (self._prefixes and n.startswith(self._prefixes)) or (
                    self._exclude_re is not None and self._exclude_re.fullmatch(n)):
                return "bf16"
        if self._per_module:
            for n in names:
                if n in self._per_module:
                    return self._per_module[n]
            return "bf16"
        if self._targets is not None and not any(n in self._targets for n in names):
            return "bf16"
        return self.fmt


def _strip(name: str) -> str:
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _compile(patterns: list[str]) -> tuple[set[str], tuple[str, ...], re.Pattern | None]:
    """Split exclude patterns into exact module names (a name also covers its children), plain
    prefixes (``model.layers.3.self_attn*``) and the rest as one regex: compiling hundreds of
    per-layer globs into a single regex costs tens of milliseconds per config."""
    exact: set[str] = set()
    prefixes: list[str] = []
    parts = []
    for pat in patterns:
        if not isinstance(pat, str):
            continue
        if pat.startswith("re:"):
            parts.append(f"(?:{pat[3:]})")
            continue
        stripped = _strip(pat)
        body = stripped[:-1] if stripped.endswith("*") else stripped
        if not any(ch in body for ch in "*?["):
            if stripped.endswith("*"):
                prefixes.append(body)
            else:
                exact.add(stripped)
                prefixes.append(stripped + ".")
        else:
            parts.append(fnmatch.translate(stripped)[4:-3] + r"(?:\..*)?")
    return exact, tuple(prefixes), (re.compile("|".join(parts)) if parts else None)


def _alias_names(module: str) -> list[str]:
    names = [module]
    for canon, alts in _MODULE_ALIASES:
        if canon in module:
            names.extend(module.replace(canon, alt) for alt in alts)
    return names


def _module_of(tensor_name: str, is_experts: bool) -> str:
    if is_experts:
        return tensor_name.removesuffix(".bias") + ".0.gate_proj"
    return tensor_name.rsplit(".", 1)[0] if tensor_name.endswith((".weight", ".bias")) else tensor_name


def _modelopt_format(algo: str | None, group: int | None = None) -> str | None:
    algo = (algo or "").upper()
    if "NVFP4" in algo:
        return "nvfp4"
    if "MXFP4" in algo:
        return "mxfp4"
    if algo.startswith("FP8"):
        return "fp8_block" if "BLOCK" in algo else "fp8"
    if "INT4_AWQ" in algo or algo == "W4A16_AWQ":
        return "awq_int4"
    if "INT8" in algo:
        return "int8"
    return None


def _compressed_tensors(qc: dict) -> QuantScheme | None:
    groups = qc.get("config_groups") or {}
    fmt, targets = None, None
    for group in groups.values():
        weights = (group or {}).get("weights") or {}
        bits, kind, size = weights.get("num_bits"), weights.get("type"), weights.get("group_size")
        if bits == 4 and kind == "float":
            fmt = "mxfp4" if "mxfp4" in str(group.get("format") or qc.get("format") or "") or size == 32 else "nvfp4"
        elif bits == 4 and kind == "int":
            fmt = "int4_g32" if size == 32 else "gptq_int4"
        elif bits == 8:
            fmt = "fp8" if kind == "float" else "int8"
        group_targets = group.get("targets") or ["Linear"]
        if group_targets != ["Linear"]:
            targets = group_targets
        break
    if fmt is None:
        return None
    return QuantScheme(fmt, exclude=list(qc.get("ignore") or []), targets=targets)


def read_scheme(quantization_config: dict | None, hf_quant_config: dict | None) -> QuantScheme | None:
    """The scheme the checkpoint was stored with, or None for an unquantized checkpoint.

    ``hf_quant_config.json`` (ModelOpt's own record) wins over config.json, which ModelOpt exports
    sometimes annotate with a less precise ``quant_method``.
    """
    if isinstance(hf_quant_config, dict):
        q = hf_quant_config.get("quantization", hf_quant_config)
        if isinstance(q, dict) and q.get("quant_algo"):
            exclude = list(q.get("exclude_modules") or [])
            layers = q.get("quantized_layers")
            if isinstance(layers, dict) and layers:
                per = {k: _modelopt_format((v or {}).get("quant_algo")) or "bf16" for k, v in layers.items()}
                return QuantScheme("bf16", exclude=exclude, per_module=per)
            fmt = _modelopt_format(q["quant_algo"])
            if fmt:
                return QuantScheme(fmt, exclude=exclude)
    qc = quantization_config if isinstance(quantization_config, dict) else None
    if not qc:
        return None
    method = str(qc.get("quant_method") or "").lower()
    not_convert = list(qc.get("modules_to_not_convert") or []) + list(qc.get("ignore") or [])
    if qc.get("quant_algo") == "MIXED_PRECISION" and isinstance(qc.get("quantized_layers"), dict):
        per = {k: _modelopt_format((v or {}).get("quant_algo")) or "bf16" for k, v in qc["quantized_layers"].items()}
        return QuantScheme("bf16", exclude=not_convert, per_module=per)
    if method == "fp8":
        return QuantScheme("fp8_block" if qc.get("weight_block_size") else "fp8", exclude=not_convert)
    if method == "mxfp4":
        return QuantScheme("mxfp4", exclude=not_convert)
    if method in ("gptq", "awq"):
        if qc.get("bits", 4) != 4:
            return QuantScheme("int8", exclude=not_convert) if qc.get("bits") == 8 else None
        return QuantScheme(f"{method}_int4", exclude=not_convert)
    if method == "modelopt" or qc.get("quant_algo"):
        fmt = _modelopt_format(qc.get("quant_algo"))
        if fmt:
            return QuantScheme(fmt, exclude=not_convert)
        return _compressed_tensors(qc)
    if method == "compressed-tensors":
        return _compressed_tensors(qc)
    return None


def checkpoint_bytes(acc: Accounting, scheme: QuantScheme | None, dense_fmt: str = "bf16") -> int:
    """Bytes of the language model as stored: quantized linears at their format (scales included),
    excluded modules and 16-bit roles at 2 bytes, buffers at fp32."""
    bits_total = 0.0
    for t in acc.tensors:
        if t.role == BUFFER:
            bits_total += t.numel * BUFFER_BYTES * 8
        elif t.role not in QUANTIZABLE_ROLES:
            bits_total += t.numel * UNQUANTIZED_BYTES * 8
        elif scheme is None:
            bits_total += t.numel * BITS_PER_WEIGHT[dense_fmt]
        else:
            fmt = scheme.format_of(_module_of(t.name, t.role == EXPERTS))
            bits_total += t.numel * BITS_PER_WEIGHT[fmt]
    return round(bits_total / 8)
