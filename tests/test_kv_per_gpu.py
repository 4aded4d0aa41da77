"""KV bytes per sequence per GPU (sizing.kv), scalar and vectorised.

Also hosts the hand-built ModelSpecs the other sizing tests import (``hand_specs``): values worked
from each model's config.json in shared/data/hf_configs (parameter formula of
sizing_anchors.md 2.1; e.g. Llama-3.1-8B 8,030,261,248 params). They stand in for
``sizing.architecture.describe`` so these tests do not depend on it.
"""

from __future__ import annotations

import polars as pl
import pytest

from sizing.kv import kv_bytes_per_seq, kv_bytes_per_token, kv_per_gpu_frame
from sizing.model_spec import KVGroup, ModelSpec, specs_to_frames

# --------------------------------------------------------------------------------------------------
# Hand-built specs
# --------------------------------------------------------------------------------------------------

BITS = {"bf16": 16.0, "fp8": 8.0, "int8": 8.0, "int4": 4.25, "fp4": 4.5}  # sizing_anchors 2.2


def _weights(params: int, unquantized: int) -> dict[str, int]:
    q = params - unquantized
    return {p: int(q * bits / 8 + 2 * unquantized) for p, bits in BITS.items()}


def dense_spec(
    model_id: str,
    *,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    intermediate: int,
    vocab: int,
    max_context: int,
    tied: bool = False,
    architecture: str = "LlamaForCausalLM",
    kv_groups: tuple[KVGroup, ...] | None = None,
) -> ModelSpec:
    """Gated-MLP GQA decoder; parameter count per sizing_anchors 2.1 (no biases)."""
    attn = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
    per_layer = attn + 3 * hidden * intermediate + 2 * hidden
    emb = vocab * hidden * (1 if tied else 2)
    params = layers * per_layer + emb + hidden
    groups = kv_groups or (KVGroup("full", layers, kv_heads, 2 * head_dim),)
    return ModelSpec(
        model_id=model_id,
        supported=True,
        architecture=architecture,
        params_total=params,
        params_active=params,
        params_embedding=emb,
        params_unquantized=emb + (2 * layers + 1) * hidden,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        max_context=max_context,
        attention_kind="gqa",
        kv_bytes_per_token_bf16=kv_bytes_per_token(groups),
        kv_groups=groups,
        checkpoint_precision="bf16",
        weights_bytes=_weights(params, emb + (2 * layers + 1) * hidden),
        weights_bytes_checkpoint=2 * params,
    )


def llama_8b() -> ModelSpec:  # meta-llama__Meta-Llama-3.1-8B/config.json
    return dense_spec("meta-llama/Llama-3.1-8B", layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128,
                      intermediate=14336, vocab=128256, max_context=131072)


def llama_70b() -> ModelSpec:  # meta-llama__Meta-Llama-3.1-70B/config.json
    return dense_spec("meta-llama/Llama-3.1-70B", layers=80, hidden=8192, heads=64, kv_heads=8, head_dim=128,
                      intermediate=28672, vocab=128256, max_context=131072)


def llama_405b() -> ModelSpec:  # meta-llama__Meta-Llama-3.1-405B/config.json
    return dense_spec("meta-llama/Llama-3.1-405B", layers=126, hidden=16384, heads=128, kv_heads=8, head_dim=128,
                      intermediate=53248, vocab=128256, max_context=131072)


def mixtral() -> ModelSpec:
    """mistralai__Mixtral-8x7B-v0.1/config.json: 32 layers, 8 experts top-2, I=14336 (sizing_anchors 2.1:
    46.70 B total / 12.88 B active)."""
    h, L, inter, E, k, V = 4096, 32, 14336, 8, 2, 32000
    attn = h * 32 * 128 * 2 + 2 * h * 8 * 128
    expert = 3 * h * inter
    routed = L * E * expert
    non_expert = L * (attn + h * E + 2 * h) + 2 * V * h + h
    total, active = non_expert + routed, non_expert + L * k * expert
    groups = (KVGroup("full", L, 8, 256),)
    unq = 2 * V * h + (2 * L + 1) * h + L * h * E
    return ModelSpec(
        model_id="mistralai/Mixtral-8x7B-v0.1", supported=True, architecture="MixtralForCausalLM",
        params_total=total, params_active=active, params_embedding=2 * V * h, params_routed_experts=routed,
        params_unquantized=unq, num_layers=L, hidden_size=h, num_attention_heads=32, num_kv_heads=8, head_dim=128,
        vocab_size=V, max_context=32768, attention_kind="gqa", is_moe=True, num_experts=E, experts_per_token=k,
        num_moe_layers=L, kv_bytes_per_token_bf16=kv_bytes_per_token(groups), kv_groups=groups,
        checkpoint_precision="bf16", weights_bytes=_weights(total, unq), weights_bytes_checkpoint=2 * total,
    )


def deepseek_v3() -> ModelSpec:
    """deepseek-ai__DeepSeek-V3/config.json: 61 layers, MLA kv_lora_rank 512 + rope 64 = 576 cached
    elements/token/layer; 256 routed experts top-8 + 1 shared, moe_intermediate 2048, first 3 dense.
    Totals from sizing_anchors 2.1 (671.03 B / 37.55 B, MTP excluded), rounded."""
    routed = 58 * 256 * 3 * 7168 * 2048
    total, active = 671_030_000_000, 37_550_000_000
    groups = (KVGroup("mla", 61, 1, 576),)
    unq = 2 * 129280 * 7168
    return ModelSpec(
        model_id="deepseek-ai/DeepSeek-V3", supported=True, architecture="DeepseekV3ForCausalLM",
        params_total=total, params_active=active, params_embedding=unq, params_routed_experts=routed,
        params_unquantized=unq, num_layers=61, hidden_size=7168, num_attention_heads=128, num_kv_heads=128,
        head_dim=192, vocab_size=129280, max_context=163840, attention_kind="mla", is_moe=True, num_experts=256,
        experts_per_token=8, num_shared_experts=1, num_moe_layers=58, kv_bytes_per_token_bf16=70272,
        kv_groups=groups, checkpoint_format="fp8_block", checkpoint_precision="fp8",
        weights_bytes=_weights(total, unq), weights_bytes_checkpoint=_weights(total, unq)["fp8"],
    )


def gpt_oss_like() -> ModelSpec:
    """Sliding/full hybrid shaped like openai__gpt-oss-120b/config.json: 36 layers alternating
    sliding (window 128) and full attention, 8 KV heads of 64 (full layers 18 x 2,048 B/token,
    sizing_anchors 6.2). Dense stand-in for the MLP (only KV matters here)."""
    groups = (KVGroup("full", 18, 8, 128), KVGroup("sliding", 18, 8, 128, window=128))
    return dense_spec("test/swa-hybrid", layers=36, hidden=2880, heads=64, kv_heads=8, head_dim=64,
                      intermediate=2880, vocab=201088, max_context=131072, kv_groups=groups,
                      architecture="GptOssForCausalLM")


def linear_hybrid() -> ModelSpec:
    """Qwen3-Next-like hybrid: 12 full-attention layers (2 KV heads x 256) + 36 linear-attention
    layers with a constant 1 MiB state each (made-up size; only the accounting rule is tested)."""
    groups = (KVGroup("full", 12, 2, 512), KVGroup("state", 36, state_bytes_per_layer=1 << 20))
    return dense_spec("test/linear-hybrid", layers=48, hidden=2048, heads=16, kv_heads=2, head_dim=256,
                      intermediate=5120, vocab=151936, max_context=262144, kv_groups=groups,
                      architecture="Qwen3NextForCausalLM")


def hand_specs() -> list[ModelSpec]:
    return [llama_8b(), llama_70b(), llama_405b(), mixtral(), deepseek_v3(), gpt_oss_like(), linear_hybrid()]


def hand_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    return specs_to_frames(hand_specs())


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_params_match_published_counts():
    # sizing_anchors 2.1: 8,030,261,248 and 70,553,706,496 (= safetensors count quoted by llm-d-planner)
    assert llama_8b().params_total == 8_030_261_248
    assert llama_70b().params_total == 70_553_706_496
    assert round(llama_405b().params_total / 1e9, 2) == 405.85
    m = mixtral()
    assert round(m.params_total / 1e9, 2) == 46.70 and round(m.params_active / 1e9, 2) == 12.88


@pytest.mark.parametrize(
    ("spec", "per_token"),
    [
        (llama_8b(), 131_072),  # 32 x 8 x 128 x 2 x 2 (sizing_anchors 2.3)
        (llama_70b(), 327_680),  # 80 x 8 x 128 x 2 x 2
        (llama_405b(), 516_096),  # 126 x 8 x 128 x 2 x 2 (reference page, shared/reference/README.md)
        (deepseek_v3(), 70_272),  # 61 x 576 x 2 (vLLM MLAAttentionSpec; sizing_anchors 2.3)
    ],
)
def test_bytes_per_token_tp1_bf16(spec, per_token):
    assert kv_bytes_per_token(spec.kv_groups) == per_token
    # one 16-token block = 16 tokens' worth
    assert kv_bytes_per_seq(spec.kv_groups, 16) == 16 * per_token


def test_block_rounding_to_16_tokens():
    g = llama_8b().kv_groups
    assert kv_bytes_per_seq(g, 1) == 16 * 131_072
    assert kv_bytes_per_seq(g, 17) == 32 * 131_072
    assert kv_bytes_per_seq(g, 4096) == 4096 * 131_072


def test_tp_splits_kv_heads_then_replicates():
    g = llama_70b().kv_groups  # 8 KV heads
    full = kv_bytes_per_seq(g, 4096)
    assert kv_bytes_per_seq(g, 4096, tp=2) == full // 2
    assert kv_bytes_per_seq(g, 4096, tp=8) == full // 8
    # TP16 > 8 heads: each rank keeps one replicated head per layer -> same as TP8
    assert kv_bytes_per_seq(g, 4096, tp=16) == full // 8


def test_mla_latent_replicated_per_rank():
    g = deepseek_v3().kv_groups
    assert kv_bytes_per_seq(g, 4096, tp=8) == kv_bytes_per_seq(g, 4096, tp=1) == 4096 * 70_272


def test_fp8_kv_halves_bytes():
    g = llama_8b().kv_groups
    assert kv_bytes_per_seq(g, 32768, kv_dtype="fp8") * 2 == kv_bytes_per_seq(g, 32768, kv_dtype="bf16")


def test_sliding_window_caps_tokens():
    g = gpt_oss_like().kv_groups
    per_tok_full = 18 * 8 * 128 * 2  # 36,864 B/token: 18 full layers x 2,048 B at bf16
    swa_cap = 18 * 8 * 128 * 2 * (128 + 16)  # window 128 + one 16-token block
    assert kv_bytes_per_token(g) == per_tok_full
    assert kv_bytes_per_seq(g, 131072) == 131072 * per_tok_full + swa_cap
    assert kv_bytes_per_seq(g, 64) == 64 * per_tok_full * 2  # below the window both groups grow


def test_state_is_constant_and_sharded():
    g = linear_hybrid().kv_groups
    state = 36 * (1 << 20)
    full_4k = 12 * 2 * 512 * 2 * 4096
    assert kv_bytes_per_seq(g, 4096) == full_4k + state
    # fp8 KV halves only the attention part; the state keeps its own dtype
    assert kv_bytes_per_seq(g, 4096, kv_dtype="fp8") == full_4k // 2 + state
    # TP2: attention heads 2 -> 1 per rank, state sharded
    assert kv_bytes_per_seq(g, 4096, tp=2) == full_4k // 2 + state // 2


def test_vectorised_matches_scalar():
    specs = hand_specs()
    _, groups = specs_to_frames(specs)
    counts, contexts, dtypes = (1, 2, 4, 8, 16), (1, 100, 4096, 32768, 131072), ("bf16", "fp8")
    got = kv_per_gpu_frame(groups, gpu_counts=counts, contexts=contexts, kv_dtypes=dtypes).collect()
    assert got.height == len(specs) * len(counts) * len(contexts) * len(dtypes)
    lookup = {(r["model_id"], r["gpu_count"], r["context_length"], r["kv_dtype"]): r["kv_bytes_per_seq"] for r in got.iter_rows(named=True)}
    for s in specs:
        for t in counts:
            for c in contexts:
                for d in dtypes:
                    assert lookup[(s.model_id, t, c, d)] == kv_bytes_per_seq(s.kv_groups, c, tp=t, kv_dtype=d), (s.model_id, t, c, d)


def gpu_frame() -> pl.DataFrame:
    """Datasheet GPUs for tests (dense tensor peaks; memory 1e9 B). H100 SXM: 80 GB, 3,350 GB/s, 989/1,979
    TFLOPS (NVIDIA H100 datasheet); B200: 180 GB, 8,000 GB/s, 2,250/4,500/9,000 (DGX B200 datasheet);
    L40S: 48 GB, 864 GB/s, 362/733 (NVIDIA L40S datasheet, dense); RTX-4090-like 24 GB consumer card
    without an fp8 figure (to exercise the bf16 fallback) and no price."""
    rows = [
        dict(gpu_id="h100-sxm", vendor="nvidia", name="H100 SXM 80GB", memory_gb=80.0, memory_bandwidth_gbps=3350.0,
             bf16_tflops=989.0, fp8_tflops=1979.0, int8_tops=1979.0, fp4_tflops=None, interconnect_gbps=450.0,
             tdp_w=700.0, hourly_usd=2.49),
        dict(gpu_id="b200", vendor="nvidia", name="B200 180GB", memory_gb=180.0, memory_bandwidth_gbps=8000.0,
             bf16_tflops=2250.0, fp8_tflops=4500.0, int8_tops=4500.0, fp4_tflops=9000.0, interconnect_gbps=900.0,
             tdp_w=1000.0, hourly_usd=5.99),
        dict(gpu_id="l40s", vendor="nvidia", name="L40S", memory_gb=48.0, memory_bandwidth_gbps=864.0,
             bf16_tflops=362.0, fp8_tflops=733.0, int8_tops=733.0, fp4_tflops=None, interconnect_gbps=None,
             tdp_w=350.0, hourly_usd=0.99),
        dict(gpu_id="consumer-24g", vendor="nvidia", name="Consumer 24GB", memory_gb=24.0, memory_bandwidth_gbps=1008.0,
             bf16_tflops=165.0, fp8_tflops=None, int8_tops=None, fp4_tflops=None, interconnect_gbps=None,
             tdp_w=450.0, hourly_usd=None),
    ]
    return pl.DataFrame(rows, schema_overrides={k: pl.Float64 for k in ("fp4_tflops", "fp8_tflops", "int8_tops", "interconnect_gbps", "hourly_usd")})
