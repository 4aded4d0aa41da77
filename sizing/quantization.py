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
from typing import Any

from sizing.params import BUFFER, EXPERTS, QUANTIZABLE_ROLES, Accounting
from sizing.precision import BITS_PER_WEIGHT, BUFFER_BYTES, FORMAT_PRECISION, UNQUANTIZED_BYTES

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
            # A module entry covers its children, as exclude entries do: ModelOpt lists fused MoE
            # experts once ("layers.0.mlp.experts") for every expert's projections.
            for n in names:
                parts = n.split(".")
                for end in range(len(parts), 0, -1):
                    found = self._per_module.get(".".join(parts[:end]))
                    if found is not None:
                        return found
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
    excluded modules and 16-bit roles at 2 bytes, buffers at fp32. An unquantized checkpoint
    (``scheme`` None) stores every tensor at ``dense_fmt`` (an fp32 checkpoint's embeddings too)."""
    bits_total = 0.0
    for t in acc.tensors:
        if t.role == BUFFER:
            bits_total += t.numel * BUFFER_BYTES * 8
        elif scheme is None:
            bits_total += t.numel * BITS_PER_WEIGHT[dense_fmt]
        elif t.role not in QUANTIZABLE_ROLES:
            bits_total += t.numel * UNQUANTIZED_BYTES * 8
        else:
            fmt = scheme.format_of(_module_of(t.name, t.role == EXPERTS))
            bits_total += t.numel * BITS_PER_WEIGHT[fmt]
    return round(bits_total / 8)


# --------------------------------------------------------------------------------------------
# Checkpoint precision: which precision the repo's weights are stored at, from which evidence
# --------------------------------------------------------------------------------------------
#
# Detection order (the first source that says something wins; ``checkpoint_precision_source``
# names it):
#
# 1. ``quantization_config`` in config.json (or the nested text config), read by ``read_scheme``;
# 2. ``hf_quant_config.json`` (NVIDIA ModelOpt's own record);
# 3. ``safetensors_dtypes``: the Hub's per-dtype parameter counts of the repo's safetensors files
#    (model info ``safetensors.parameters``, live mode only), see ``precision_from_safetensors``;
# 4. ``repo_name``: a quantization token in the repo name, see ``precision_from_repo_name``;
# 5. ``config_dtype``: ``torch_dtype`` / ``dtype`` (bf16 / fp16 / fp32 = the weights as stored,
#    precision bf16), or ``default`` (bf16) when the config names no dtype either.
#
# An unrecognised ``quant_method`` (bitsandbytes, hqq, torchao, ...) is not evidence: detection
# falls through to the next source.
#
# Consistency (``checkpoint_precision_conflict``): every source that claims a precision is compared
# with every other; the config dtype claims nothing (FP8 checkpoints keep "torch_dtype": "bfloat16").
# Two claims contradict when they share no precision: a scheme claims the precisions it stores
# quantizable weights at (a ModelOpt MIXED_PRECISION scheme every one of its formats), the repo
# name its token's, and the safetensors dtypes every precision holding at least
# ``SAFETENSORS_SUBSTANTIAL_SHARE`` of the parameters outside the always-16-bit set, so
# quantization scales (NVFP4's FP8 block scales are 1/16 of its values, GPTQ's FP16 scales 1/128)
# and excluded modules never read as a contradiction, but a "quantized" repo whose weights are BF16
# does.

PRECISION_SOURCES: tuple[str, ...] = (
    "quantization_config", "hf_quant_config", "safetensors_dtypes", "repo_name", "config_dtype", "default",
)

# Hub safetensors dtype -> (precision class, logical values per stored element). The Hub counts
# stored elements per dtype, so packed formats are scaled back to logical parameters:
# - U8 packs two FP4 (E2M1) values per byte: NVFP4 (ModelOpt, compressed-tensors
#   nvfp4-pack-quantized) and MXFP4 (gpt-oss, whose E8M0 block scales are U8 too: 1 per 32 values);
# - I32 packs eight 4-bit integers: GPTQ / AWQ ``qweight`` and ``qzeros``, compressed-tensors
#   ``pack-quantized`` ``weight_packed`` (GPTQ ``g_idx`` is I32 too but one per input row);
# - F4 (safetensors >= 0.6) holds one FP4 value per element;
# - BF16 / F16 / F32 / F64 are unquantized storage (precision class bf16).
# Other dtypes (I64, BOOL, F8_E8M0 scales...) are buffers, indices or scales and are not counted.
SAFETENSORS_DTYPES: dict[str, tuple[str, int]] = {
    "BF16": ("bf16", 1), "F16": ("bf16", 1), "F32": ("bf16", 1), "F64": ("bf16", 1),
    "F8_E4M3": ("fp8", 1), "F8_E5M2": ("fp8", 1), "F8_E4M3FN": ("fp8", 1), "F8_E4M3FNUZ": ("fp8", 1),
    "F8_E5M2FNUZ": ("fp8", 1),
    "I8": ("int8", 1),
    "U8": ("fp4", 2),
    "F4": ("fp4", 1),
    "I32": ("int4", 8),
}
_WIDE_FORMAT = {"BF16": "bf16", "F16": "fp16", "F32": "fp32", "F64": "fp32"}
SAFETENSORS_SUBSTANTIAL_SHARE = 0.25

# Repo-name tokens (case-insensitive, whole tokens between - _ . or spaces), in priority order
# (``W8A8-FP8`` is FP8; ``GPTQ-Int8`` is INT8), with the format each stands for. Tokens naming a
# precision but not its storage layout take the conservative what-if format of that precision
# (``sizing.precision.WHAT_IF_FORMAT``: FP8 -> fp8_block, 128x128 block scales, the DeepSeek / Qwen /
# GLM convention and 0.02 % above per-tensor FP8; FP4 -> nvfp4, 4.5 bits vs MXFP4's 4.25; INT4 ->
# GPTQ group 128), so weights_bytes_checkpoint equals the what-if weights at that precision.
REPO_NAME_TOKENS: tuple[tuple[str, str, str], ...] = (
    ("NVFP4", "fp4", "nvfp4"),
    ("MXFP4", "fp4", "mxfp4"),
    ("FP4", "fp4", "nvfp4"),
    ("FP8", "fp8", "fp8_block"),
    ("INT8", "int8", "int8"),
    ("W8A16", "int8", "int8"),
    ("INT4", "int4", "gptq_int4"),
    ("W4A16", "int4", "gptq_int4"),
    ("W8A8", "int8", "int8"),
    ("AWQ", "int4", "awq_int4"),
    ("GPTQ", "int4", "gptq_int4"),
)

_NARROWEST_FIRST = ("fp4", "int4", "int8", "fp8", "bf16")


def scheme_format(scheme: QuantScheme) -> str:
    """The scheme's format name: its format, or ``mixed:a+b`` for per-module schemes."""
    if scheme.per_module:
        return "mixed:" + "+".join(sorted(set(scheme.per_module.values())))
    return scheme.fmt


def scheme_precisions(scheme: QuantScheme) -> frozenset[str]:
    """Precision classes the scheme stores quantizable weights at (all formats of a mixed scheme,
    16-bit modules left out unless nothing else is quantized)."""
    formats = set(scheme.per_module.values()) if scheme.per_module else {scheme.fmt}
    precisions = {FORMAT_PRECISION[f] for f in formats if f in FORMAT_PRECISION}
    quantized = precisions - {"bf16"}
    return frozenset(quantized or precisions)


def scheme_precision(scheme: QuantScheme) -> str:
    """One precision for the scheme: a mixed checkpoint is named by its narrowest format, the one
    that shapes the bytes."""
    precisions = scheme_precisions(scheme)
    return next(p for p in _NARROWEST_FIRST if p in precisions)


@dataclass(frozen=True)
class SafetensorsVerdict:
    """What the Hub's per-dtype counts say: logical parameters per precision class."""

    precision: str  # the class holding the most parameters (after the 16-bit set-aside)
    fmt: str
    logical: dict[str, int]  # precision -> logical parameters (bf16 after the set-aside)
    substantial: frozenset[str]

    def shares(self) -> str:
        total = sum(self.logical.values()) or 1
        return ", ".join(f"{p} {100 * n / total:.1f}%" for p, n in sorted(self.logical.items(), key=lambda kv: -kv[1]) if n)


def precision_from_safetensors(dtypes: dict[str, Any] | None, set_aside: int = 0) -> SafetensorsVerdict | None:
    """Decide the checkpoint precision from the Hub's ``safetensors.parameters`` (dtype -> stored
    elements), e.g. ``{"BF16": 1_327_529_472, "F8_E4M3": 6_979_321_856, "F32": 224}``.

    Stored elements are converted to logical parameters (``SAFETENSORS_DTYPES``: U8 x 2 as packed
    FP4, I32 x 8 as packed INT4). ``set_aside`` parameters (what every quantized checkpoint keeps at
    16 bits: embeddings, LM head, norms, biases, routers, SSM state tensors, the vision tower) are
    taken off the 16-bit count first, so a small model with a large vocabulary quantized to FP8 is
    not called BF16 for its embeddings. The precision is the class holding the most of what
    remains. Format: bf16/fp16/fp32 for 16-bit storage (the dominant 16/32-bit dtype), fp8_block for
    FP8 (the conservative choice: block and per-tensor scales look alike in dtype counts), int8,
    gptq_int4 for packed INT4, nvfp4 when FP8 (E4M3) block scales sit beside packed FP4, else mxfp4.
    None when no dtype is recognised.
    """
    if not isinstance(dtypes, dict):
        return None
    logical: dict[str, int] = {}
    wide: dict[str, int] = {}
    for dtype, count in dtypes.items():
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            continue
        key = str(dtype).upper()
        known = SAFETENSORS_DTYPES.get(key)
        if known is None:
            continue
        precision, per_element = known
        logical[precision] = logical.get(precision, 0) + count * per_element
        if key in _WIDE_FORMAT:
            wide[key] = wide.get(key, 0) + count
    if not logical:
        return None
    if "bf16" in logical:
        logical["bf16"] = max(0, logical["bf16"] - max(0, set_aside))
    total = sum(logical.values())
    if total <= 0:
        # Nothing beyond what stays 16-bit anyway: a 16-bit checkpoint.
        logical = {"bf16": sum(wide.values())}
        total = logical["bf16"]
    precision = max(_NARROWEST_FIRST, key=lambda p: (logical.get(p, 0), -_NARROWEST_FIRST.index(p)))
    substantial = frozenset({precision, *(p for p, n in logical.items() if n >= SAFETENSORS_SUBSTANTIAL_SHARE * total)})
    if precision == "bf16":
        fmt = _WIDE_FORMAT[max(wide, key=wide.get)] if wide else "bf16"
    elif precision == "fp8":
        fmt = "fp8_block"
    elif precision == "int4":
        fmt = "gptq_int4"
    elif precision == "fp4":
        has_e4m3 = any(str(k).upper() in ("F8_E4M3", "F8_E4M3FN") for k in dtypes)
        fmt = "nvfp4" if has_e4m3 else "mxfp4"
    else:
        fmt = precision
    return SafetensorsVerdict(precision, fmt, {p: n for p, n in logical.items() if n}, substantial)


_TOKEN_SPLIT = re.compile(r"[-_.\s]+")


def precision_from_repo_name(model_id: str) -> tuple[str, str, str] | None:
    """(precision, format, token) from a quantization token in the repo name, or None.

    Only the name part counts (``owner/name``, or the snapshot's ``owner__name`` directory form).
    """
    name = model_id.rsplit("/", 1)[-1]
    if "/" not in model_id and "__" in name:
        name = name.split("__", 1)[1]
    tokens = {t.upper() for t in _TOKEN_SPLIT.split(name) if t}
    for token, precision, fmt in REPO_NAME_TOKENS:
        if token in tokens:
            if precision == "int4" and "AWQ" in tokens:
                fmt = "awq_int4"
            return precision, fmt, token
    return None


@dataclass(frozen=True)
class CheckpointDetection:
    """The checkpoint's precision, storage format, the evidence used and any contradiction."""

    precision: str
    fmt: str
    source: str
    scheme: QuantScheme | None  # how to price the stored bytes (None = unquantized at dense_fmt)
    dense_fmt: str  # 16/32-bit storage format of unquantized checkpoints
    conflict: str | None = None


def detect_checkpoint(
    *,
    model_id: str,
    quantization_config: dict | None,
    hf_quant_config: dict | None,
    safetensors_dtypes: dict[str, Any] | None,
    config_dtype: str | None,
    set_aside: int = 0,
) -> CheckpointDetection:
    """Detect the checkpoint precision in the documented order and record contradictions."""
    qc_scheme = read_scheme(quantization_config, None) if isinstance(quantization_config, dict) else None
    hq_scheme = read_scheme(None, hf_quant_config) if isinstance(hf_quant_config, dict) else None
    st = precision_from_safetensors(safetensors_dtypes, set_aside)
    name = precision_from_repo_name(model_id)

    claims: list[tuple[str, frozenset[str], str]] = []  # (source, precisions, how it reads)
    if qc_scheme is not None:
        claims.append(("quantization_config", scheme_precisions(qc_scheme), scheme_format(qc_scheme)))
    if hq_scheme is not None:
        claims.append(("hf_quant_config", scheme_precisions(hq_scheme), scheme_format(hq_scheme)))
    if st is not None:
        claims.append(("safetensors_dtypes", st.substantial, st.shares()))
    if name is not None:
        claims.append(("repo_name", frozenset({name[0]}), f"token {name[2]}"))
    conflicts = [
        f"{a} says {'/'.join(sorted(pa))} ({ra}) but {b} says {'/'.join(sorted(pb))} ({rb})"
        for i, (a, pa, ra) in enumerate(claims)
        for b, pb, rb in claims[i + 1:]
        if not pa & pb
    ]
    conflict = "; ".join(conflicts) or None

    dtype = _DENSE_DTYPE.get(str(config_dtype)) if config_dtype else None
    dense_fmt = dtype or "bf16"
    if qc_scheme is not None or hq_scheme is not None:
        if qc_scheme is not None and hq_scheme is not None and scheme_precisions(qc_scheme) & scheme_precisions(hq_scheme):
            # Both agree: ModelOpt's hf_quant_config.json carries the finer detail (read_scheme).
            scheme = read_scheme(quantization_config, hf_quant_config)
        else:
            scheme = qc_scheme if qc_scheme is not None else hq_scheme
        assert scheme is not None
        source = "quantization_config" if qc_scheme is not None else "hf_quant_config"
        fmt = scheme_format(scheme)
        precision = FORMAT_PRECISION.get(fmt) or scheme_precision(scheme)
        return CheckpointDetection(precision, fmt, source, scheme, dense_fmt, conflict)
    if st is not None:
        if st.precision == "bf16":
            return CheckpointDetection("bf16", st.fmt, "safetensors_dtypes", None, st.fmt, conflict)
        return CheckpointDetection(st.precision, st.fmt, "safetensors_dtypes", QuantScheme(st.fmt), dense_fmt, conflict)
    if name is not None:
        precision, fmt, _token = name
        return CheckpointDetection(precision, fmt, "repo_name", QuantScheme(fmt), dense_fmt, conflict)
    source = "config_dtype" if dtype else "default"
    return CheckpointDetection("bf16", dense_fmt, source, None, dense_fmt, conflict)


_DENSE_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "half": "fp16", "float": "fp32"}
