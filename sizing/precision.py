"""Bits per weight of real storage formats, scales included, and weight bytes per precision.

Derivations (weights only; activation scales are per-tensor scalars and negligible):

- ``bf16`` / ``fp16``: 16.
- ``fp8`` (per-tensor, ModelOpt FP8, or per-channel as in compressed-tensors FP8 W8A8): 8 bits per
  weight plus one fp32 scale per tensor or per output row: 8 + 32/in_features, i.e. 8.004 at
  in_features = 7168 and 8.0 to three decimals from 32k up; priced as 8.0.
- ``fp8_block`` (DeepSeek / Qwen / GLM "weight_block_size": [128, 128]): one fp32 scale per
  128x128 block: 8 + 32/16384 = 8.001953125.
- ``int8`` (W8A8 per-channel, SmoothQuant/compressed-tensors): 8 + 16/in_features, priced as 8.0.
- ``int4`` GPTQ / AWQ with group_size 128: 4-bit weights packed in int32, one fp16 scale per
  (group, output column) = 16/128 = 0.125, one 4-bit zero point per (group, column) packed in int32
  (``qzeros``) = 4/128 = 0.03125: 4.15625. (GPTQ's ``g_idx`` adds 32/out_features, negligible.)
  Symmetric int4 without zeros (compressed-tensors ``pack-quantized``, e.g. Kimi-K2 group 32 with a
  bf16 scale) is 4 + 16/group_size: 4.5 at group 32.
- ``mxfp4`` (OCP MX): E2M1 values in blocks of 32 sharing one E8M0 (8-bit) scale: 4 + 8/32 = 4.25.
- ``nvfp4``: E2M1 values in blocks of 16 sharing one FP8 E4M3 scale: 4 + 8/16 = 4.5, plus one fp32
  global scale per tensor (negligible).

Quantized checkpoints keep embeddings, LM head, norms, biases and routers at 16 bits, so what-if
sizes quantize only the linear weights of attention, MLPs, experts and SSM projections.
"""

from __future__ import annotations

from sizing.params import BUFFER, QUANTIZABLE_ROLES, Accounting

BITS_PER_WEIGHT: dict[str, float] = {
    "bf16": 16.0,
    "fp16": 16.0,
    "fp32": 32.0,
    "fp8": 8.0,
    "fp8_block": 8.0 + 32.0 / (128 * 128),
    "int8": 8.0,
    "gptq_int4": 4.0 + 16.0 / 128 + 4.0 / 128,
    "awq_int4": 4.0 + 16.0 / 128 + 4.0 / 128,
    "int4_g32": 4.0 + 16.0 / 32,
    "mxfp4": 4.0 + 8.0 / 32,
    "nvfp4": 4.0 + 8.0 / 16,
}

# The format each what-if precision stands for: the most common real checkpoint format of it.
WHAT_IF_FORMAT: dict[str, str] = {
    "bf16": "bf16",
    "fp8": "fp8_block",
    "int8": "int8",
    "int4": "gptq_int4",
    "fp4": "nvfp4",
}

FORMAT_PRECISION: dict[str, str] = {
    "bf16": "bf16", "fp16": "bf16", "fp32": "bf16", "fp8": "fp8", "fp8_block": "fp8", "int8": "int8",
    "gptq_int4": "int4", "awq_int4": "int4", "int4_g32": "int4", "mxfp4": "fp4", "nvfp4": "fp4",
}

UNQUANTIZED_BYTES = 2
BUFFER_BYTES = 4


def weights_bytes(acc: Accounting, fmt: str) -> int:
    """Bytes of the language model if every quantizable linear weight were stored as ``fmt``."""
    bits = BITS_PER_WEIGHT[fmt]
    quantizable = acc.sum_roles(QUANTIZABLE_ROLES)
    buffers = acc.sum_roles({BUFFER})
    rest = acc.total - quantizable
    return round(quantizable * bits / 8) + rest * UNQUANTIZED_BYTES + buffers * BUFFER_BYTES


def weights_bytes_per_precision(acc: Accounting) -> dict[str, int]:
    return {precision: weights_bytes(acc, fmt) for precision, fmt in WHAT_IF_FORMAT.items()}
