"""Bits per weight of real formats and checkpoint bytes as stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sizing.architecture import describe
from sizing.precision import BITS_PER_WEIGHT

CONFIGS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hf_configs"


def spec_of(model_dir: str):
    folder = CONFIGS / model_dir
    quant = folder / "hf_quant_config.json"
    return describe(json.loads((folder / "config.json").read_text()), model_id=model_dir,
                    quant_config=json.loads(quant.read_text()) if quant.exists() else None)


@pytest.mark.parametrize(
    ("fmt", "bits"),
    [
        ("fp8_block", 8.001953125),  # + one fp32 scale per 128x128 block
        ("nvfp4", 4.5),  # + one E4M3 scale per 16 values
        ("mxfp4", 4.25),  # + one E8M0 scale per 32 values
        ("gptq_int4", 4.15625),  # + fp16 scale and 4-bit zero per 128-group
        ("int8", 8.0),
        ("bf16", 16.0),
    ],
)
def test_bits_per_weight(fmt, bits):
    assert BITS_PER_WEIGHT[fmt] == pytest.approx(bits)


def test_bf16_weights_are_two_bytes_per_param():
    spec = spec_of("meta-llama__Meta-Llama-3.1-8B")
    assert spec.weights_bytes["bf16"] == 2 * 8_030_261_248
    assert spec.weights_bytes_checkpoint == spec.weights_bytes["bf16"]
    assert (spec.checkpoint_format, spec.checkpoint_precision) == ("bf16", "bf16")


def test_what_if_keeps_embeddings_and_norms_at_16_bits():
    spec = spec_of("meta-llama__Meta-Llama-3.1-8B")
    quantizable = spec.params_total - spec.params_unquantized
    assert spec.weights_bytes["fp4"] == round(quantizable * 4.5 / 8) + spec.params_unquantized * 2
    assert spec.weights_bytes["bf16"] > spec.weights_bytes["fp8"] > spec.weights_bytes["fp4"] > spec.weights_bytes["int4"]


def test_deepseek_v3_fp8_block_checkpoint():
    spec = spec_of("deepseek-ai__DeepSeek-V3")
    assert spec.checkpoint_format == "fp8_block" and spec.checkpoint_precision == "fp8"
    # HF repo: ~689 GB including the 14B MTP module; the main model alone is ~673 GB.
    assert 665e9 < spec.weights_bytes_checkpoint < 680e9


def test_nvfp4_checkpoint_keeps_excluded_attention_in_bf16():
    spec = spec_of("nvidia__DeepSeek-V3-0324-NVFP4")
    assert spec.checkpoint_format == "nvfp4" and spec.checkpoint_precision == "fp4"
    # Attention (exclude_modules "model.layers.N.self_attn*") stays BF16, so the checkpoint is
    # larger than the all-NVFP4 what-if.
    assert spec.weights_bytes_checkpoint > spec.weights_bytes["fp4"]
    assert spec.weights_bytes_checkpoint < spec.weights_bytes["fp8"]


def test_gpt_oss_mxfp4_experts_only():
    spec = spec_of("openai__gpt-oss-120b")
    assert spec.checkpoint_format == "mxfp4"
    # modules_to_not_convert: self_attn, router, embeddings, lm_head -> only experts at 4.25 bits.
    experts = spec.params_routed_experts
    expected = round(experts * 4.25 / 8) + (spec.params_total - experts) * 2
    assert spec.weights_bytes_checkpoint == expected  # ~65.2 GB; the HF repo holds ~65 GB


def test_kimi_k25_int4_group32():
    spec = spec_of("moonshotai__Kimi-K2.5")
    assert spec.checkpoint_format == "int4_g32" and spec.checkpoint_precision == "int4"


def test_mixed_precision_modelopt():
    spec = spec_of("nvidia__Qwen3.6-27B-NVFP4")
    assert spec.checkpoint_format == "mixed:fp8+nvfp4" and spec.checkpoint_precision == "fp4"
    assert spec.weights_bytes["fp4"] < spec.weights_bytes_checkpoint < spec.weights_bytes["fp8"]
