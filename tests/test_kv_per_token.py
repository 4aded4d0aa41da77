"""KV bytes per token (one sequence, TP=1, BF16) and KV groups, worked by hand from config fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sizing.architecture import describe

CONFIGS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hf_configs"


def spec_of(model_dir: str):
    return describe(json.loads((CONFIGS / model_dir / "config.json").read_text()), model_id=model_dir)


@pytest.mark.parametrize(
    ("model_dir", "expected"),
    [
        # 32 layers x 8 KV heads x head_dim 128 x 2 (K,V) x 2 B
        ("meta-llama__Meta-Llama-3.1-8B", 32 * 8 * 128 * 2 * 2),  # 131,072
        # 80 x 8 x 128 x 2 x 2
        ("meta-llama__Meta-Llama-3.1-70B", 80 * 8 * 128 * 2 * 2),  # 327,680
        # 126 x 8 x 128 x 2 x 2
        ("meta-llama__Meta-Llama-3.1-405B", 126 * 8 * 128 * 2 * 2),  # 516,096
        # MLA: 61 layers x (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 B
        ("deepseek-ai__DeepSeek-V3", 61 * 576 * 2),  # 70,272
        # gemma-2-9b: 42 layers alternate sliding (4096) / global: 21 global x 8 KV x head_dim 256 x 2 x 2
        ("google__gemma-2-9b-it", 21 * 8 * 256 * 2 * 2),  # 172,032
        # gpt-oss-120b layer_types: 18 full of 36 (others slide over 128) x 8 KV x 64 x 2 x 2
        ("openai__gpt-oss-120b", 18 * 8 * 64 * 2 * 2),  # 36,864
        # Qwen3.5-35B-A3B: full_attention every 4th of 40 layers = 10 x 2 KV x head_dim 256 x 2 x 2
        ("Qwen__Qwen3.5-35B-A3B", 10 * 2 * 256 * 2 * 2),  # 20,480
        # Nemotron-3-Nano: 6 '*' blocks in hybrid_override_pattern x 2 KV x 128 x 2 x 2
        ("nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", 6 * 2 * 128 * 2 * 2),  # 6,144
        # Gemma-4-26B: 5 full layers, num_global_key_value_heads 2 x global_head_dim 512, K == V
        # (attention_k_eq_v) so one 512 vector per head: 5 x 2 x 512 x 2 B
        ("google__gemma-4-26B-A4B", 5 * 2 * 512 * 2),  # 10,240
        # GLM-5.2: MLA 78 x 576 x 2 + DSA indexer key (index_head_dim 128) on the 21 layers whose
        # indexer_types is "full" ("shared" layers reuse the previous top-k and cache nothing).
        ("zai-org__GLM-5.2", 78 * 576 * 2 + 21 * 128 * 2),
    ],
)
def test_kv_bytes_per_token(model_dir, expected):
    assert spec_of(model_dir).kv_bytes_per_token_bf16 == expected


def test_sliding_layers_are_capped_groups():
    groups = {g.kind: g for g in spec_of("google__gemma-2-9b-it").kv_groups}
    assert groups["sliding"].layers == 21 and groups["sliding"].window == 4096
    assert groups["full"].layers == 21


def test_gemma3_sliding_pattern():
    spec = spec_of("google__gemma-3-1b-it")  # 26 layers, sliding_window_pattern 6, window 512
    groups = {g.kind: g for g in spec.kv_groups}
    assert groups["full"].layers == 4 and groups["sliding"].layers == 22 and groups["sliding"].window == 512
    assert spec.kv_bytes_per_token_bf16 == 4 * 1 * 256 * 2 * 2


def test_llama4_chunked_local_layers():
    spec = spec_of("meta-llama__Llama-4-Maverick-17B-128E-Instruct")
    groups = {g.kind: g for g in spec.kv_groups}
    # transformers Llama4 default no_rope_layer_interval 4: every 4th layer is global NoPE.
    assert groups["full"].layers == 12 and groups["chunked"].layers == 36 and groups["chunked"].window == 8192
    assert spec.kv_bytes_per_token_bf16 == 12 * 8 * 128 * 2 * 2


def test_hybrid_state_groups():
    spec = spec_of("Qwen__Qwen3.5-35B-A3B")
    state = next(g for g in spec.kv_groups if g.kind == "state")
    # 30 gated-DeltaNet layers. conv state: (2 x 16 x 128 + 32 x 128) channels x (kernel 4 - 1)
    # x 2 B = 49,152; recurrent state: 32 value heads x 128 x 128 x 4 B (mamba_ssm_dtype float32).
    assert state.layers == 30
    assert state.state_bytes_per_layer == 8192 * 3 * 2 + 32 * 128 * 128 * 4
    nemo = next(g for g in spec_of("nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16").kv_groups if g.kind == "state")
    # 23 Mamba-2 layers: conv (64 x 64 + 2 x 8 x 128) x 3 x 2 B + SSM 64 heads x 64 x 128 x 4 B.
    assert nemo.layers == 23
    assert nemo.state_bytes_per_layer == 6144 * 3 * 2 + 64 * 64 * 128 * 4


def test_attention_kind_family_context():
    v3 = spec_of("deepseek-ai__DeepSeek-V3")
    assert (v3.attention_kind, v3.family, v3.max_context) == ("mla", "deepseek", 163_840)
    llama = spec_of("meta-llama__Meta-Llama-3.1-8B")
    assert (llama.attention_kind, llama.family, llama.head_dim) == ("gqa", "llama", 128)
    assert spec_of("Qwen__Qwen3.5-35B-A3B").attention_kind == "hybrid"
    assert spec_of("Qwen__Qwen3-8B").head_dim == 128  # explicit head_dim field


EXTRA = Path(__file__).resolve().parent / "fixtures" / "extra_configs"


def extra_spec(name: str):
    return describe(json.loads((EXTRA / f"{name}.json").read_text()), model_id=name)


@pytest.mark.parametrize(
    ("name", "expected", "kind"),
    [
        # Falcon-7B multi_query: 32 layers x 1 KV head x head_dim 64 (4544 / 71) x 2 (K,V) x 2 B
        ("falcon-7b", 32 * 1 * 64 * 2 * 2, "mqa"),  # 8,192
        # Falcon-40B new_decoder_architecture: 60 x num_kv_heads 8 x 64 x 2 x 2
        ("falcon-40b", 60 * 8 * 64 * 2 * 2, "gqa"),  # 122,880
        # Pythia-6.9B MHA: 32 x 32 x 128 x 2 x 2
        ("pythia-6.9b", 32 * 32 * 128 * 2 * 2, "mha"),  # 524,288
        # GPT-2: 12 x 12 x 64 x 2 x 2
        ("gpt2", 12 * 12 * 64 * 2 * 2, "mha"),  # 36,864
        # StarCoder2-15B: 40 x 4 x 128 x 2 x 2 (sliding_window without layer_types: all full, as
        # for Mistral-v0.1)
        ("starcoder2-15b", 40 * 4 * 128 * 2 * 2, "gqa"),  # 81,920
        # Command-R v01 MHA: 40 x 64 x 128 x 2 x 2
        ("c4ai-command-r-v01", 40 * 64 * 128 * 2 * 2, "mha"),  # 1,310,720
        # DBRX: 40 x kv_n_heads 8 x 128 x 2 x 2
        ("dbrx-instruct", 40 * 8 * 128 * 2 * 2, "gqa"),  # 163,840
        # Jamba-v0.1: attention on layers 4, 12, 20, 28 only: 4 x 8 x 128 x 2 x 2
        ("jamba-v0.1", 4 * 8 * 128 * 2 * 2, "hybrid"),  # 16,384
        # Qwen3-Next-80B-A3B: full attention every 4th of 48 layers: 12 x 2 x 256 x 2 x 2
        ("qwen3-next-80b-a3b", 12 * 2 * 256 * 2 * 2, "hybrid"),  # 24,576
    ],
)
def test_extra_family_kv_bytes_per_token(name, expected, kind):
    spec = extra_spec(name)
    assert spec.kv_bytes_per_token_bf16 == expected
    assert spec.attention_kind == kind


def test_jamba_state_group():
    groups = {g.kind: g for g in extra_spec("jamba-v0.1").kv_groups}
    # 28 Mamba-1 layers, d_inner = 2 x 4096 = 8192: conv state (d_conv 4 - 1) x 8192 x 2 B = 49,152
    # + SSM state 8192 x d_state 16 x 2 B (model dtype) = 262,144 -> 311,296 B per layer per sequence.
    assert groups["state"].layers == 28
    assert groups["state"].state_bytes_per_layer == 3 * 8192 * 2 + 8192 * 16 * 2
    assert groups["full"].layers == 4 and groups["full"].kv_heads == 8


def test_chatglm3_kv():
    # ChatGLM3-6B: 28 layers x multi_query_group_num 2 x kv_channels 128 x 2 x 2 B = 28,672.
    assert spec_of("THUDM__chatglm3-6b").kv_bytes_per_token_bf16 == 28 * 2 * 128 * 2 * 2
