"""Memory budget and fit (sizing.memory via sizing.grid.fit_matrix).

Worked values restate the vLLM budget of sizing/constants.py (VLLMMemory: util 0.92, activation
LlamaForCausalLM 1.89 GiB, non-torch 0.27/2.10 GiB, CUDA graphs 1.04 GiB -- llm-d-planner v0.19 and
llm-d-benchmark measurements quoted in shared/research/sizing_anchors.md 2.4).
"""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest
from test_kv_per_gpu import dense_spec, gpu_frame, hand_frames, llama_8b

from sizing.constants import FIT_CLASSES, GIB, VLLM_MEMORY
from sizing.grid import fit_matrix
from sizing.memory import fit_class_expr
from sizing.model_spec import specs_to_frames


@pytest.fixture(scope="module")
def fm() -> pl.DataFrame:
    models, groups = hand_frames()
    return fit_matrix(models, groups, gpu_frame(), kv_dtype=("bf16", "fp8"))


def _row(fm, **keys):
    out = fm.filter(*[pl.col(k) == v for k, v in keys.items()])
    assert out.height == 1, keys
    return out.row(0, named=True)


def test_llama8b_h100_tp1_worked_budget(fm):
    r = _row(fm, model_id="meta-llama/Llama-3.1-8B", gpu_id="h100-sxm", precision="bf16", gpu_count=1,
             context_length=32768, kv_dtype="bf16")
    usable = 80e9 * (79.19 / 80) * 0.92  # 72.85 GB: CUDA sees 79.19 of 80 GiB (VLLMMemory.cuda_visible_fraction)
    weights = 2 * 8_030_261_248  # 16.06 GB (measured 14.99 GiB = 16.10 GB, sizing_anchors 2.4)
    overhead = (1.89 + 0.27 + 1.04) * GIB
    pool = usable - weights - overhead  # 53.36 GB
    kv = 32768 * 131_072  # 4.29 GB per sequence
    assert r["usable_gb"] == pytest.approx(usable / 1e9)
    assert r["weights_gb_per_gpu"] == pytest.approx(weights / 1e9)
    assert r["overhead_gb"] == pytest.approx(overhead / 1e9)
    # published apart (VLLMMemory): Llama activation peak 1.89 GiB, non-torch 0.27 GiB at TP1, CUDA graphs 1.04 GiB
    assert (r["activation_gb"], r["non_torch_gb"], r["cuda_graph_gb"]) == pytest.approx(
        (1.89 * GIB / 1e9, 0.27 * GIB / 1e9, 1.04 * GIB / 1e9)
    )
    assert r["kv_pool_gb"] == pytest.approx(pool / 1e9)
    assert r["kv_gb_per_seq"] == pytest.approx(kv / 1e9)
    assert r["max_concurrent_seqs"] == int(pool // kv) == 12
    assert r["headroom_gb"] == pytest.approx((pool - kv) / 1e9)
    assert r["fits"] and r["fit_class"] == "moderate"


def test_70b_fp8_needs_two_h100():
    # llm-d-planner accuracy report (sizing_anchors 2.4): Llama-3.3-70B-FP8 at TP1 on H100 leaves a
    # negative KV pool (no fit); TP2 fits with ~32 GiB of KV per GPU.
    models, groups = hand_frames()
    fm = fit_matrix(models, groups, gpu_frame(), precisions=("fp8",), gpu_counts=(1, 2), contexts=(4096,))
    tp1 = _row(fm, model_id="meta-llama/Llama-3.1-70B", gpu_id="h100-sxm", gpu_count=1)
    tp2 = _row(fm, model_id="meta-llama/Llama-3.1-70B", gpu_id="h100-sxm", gpu_count=2)
    assert not tp1["fits"] and tp1["kv_pool_gb"] < 0 and tp1["max_concurrent_seqs"] == 0 and tp1["fit_class"] == "no_fit"
    assert tp2["fits"] and 25 < tp2["kv_pool_gb"] / (GIB / 1e9) < 40


def test_tp16_replicates_kv_heads_inside_one_nvl72_domain():
    # 405B has 8 KV heads (config num_key_value_heads): TP16 replicates them, so each GPU holds as
    # much KV per sequence as at TP8. Only a 72-GPU NVLink domain (GB200 NVL72) runs TP16.
    models, groups = hand_frames()
    gpus = gpu_frame().with_columns(scale_up_domain_gpus=pl.lit(72), scale_out_gbps=pl.lit(50.0))
    fm = fit_matrix(models, groups, gpus, precisions=("bf16",), contexts=(4096,))
    r8 = _row(fm, model_id="meta-llama/Llama-3.1-405B", gpu_id="b200", gpu_count=8)
    r16 = _row(fm, model_id="meta-llama/Llama-3.1-405B", gpu_id="b200", gpu_count=16)
    assert (r16["tensor_parallel"], r16["pipeline_parallel"]) == (16, 1)
    assert r16["tp_valid"] and r16["kv_gb_per_seq"] == pytest.approx(r8["kv_gb_per_seq"])
    assert r16["weights_gb_per_gpu"] == pytest.approx(r8["weights_gb_per_gpu"] / 2)


def test_sixteen_gpus_on_an_8_gpu_baseboard_are_tp8_pp2(fm):
    # gpu_frame's B200 sits on an 8-GPU HGX baseboard (DGX B200): 16 GPUs = TP8 x PP2, each stage
    # holding half the layers, so half the KV per sequence and half the weights per GPU.
    r8 = _row(fm, model_id="meta-llama/Llama-3.1-405B", gpu_id="b200", precision="bf16", gpu_count=8, context_length=4096, kv_dtype="bf16")
    r16 = _row(fm, model_id="meta-llama/Llama-3.1-405B", gpu_id="b200", precision="bf16", gpu_count=16, context_length=4096, kv_dtype="bf16")
    assert (r16["tensor_parallel"], r16["pipeline_parallel"]) == (8, 2) and r16["tp_valid"]
    assert r16["kv_gb_per_seq"] == pytest.approx(r8["kv_gb_per_seq"] / 2)
    assert r16["weights_gb_per_gpu"] == pytest.approx(r8["weights_gb_per_gpu"] / 2)


def test_mla_kv_not_divided_by_tp(fm):
    r = _row(fm, model_id="deepseek-ai/DeepSeek-V3", gpu_id="b200", precision="fp8", gpu_count=8, context_length=4096, kv_dtype="bf16")
    assert r["kv_gb_per_seq"] == pytest.approx(4096 * 70_272 / 1e9)


def test_tp_validity_heads_kv_and_vocab():
    # 40 heads / 40 KV heads (MHA) and Qwen3's vocab 151,936: TP5 divides the heads but not the
    # vocabulary (151936 % 5 = 1) -> invalid (vocab-parallel embedding; llm-d-planner report).
    mha = dense_spec("test/mha40", layers=4, hidden=5120, heads=40, kv_heads=40, head_dim=128, intermediate=1024,
                     vocab=151936, max_context=32768)
    gqa = dense_spec("test/gqa-40-8", layers=4, hidden=5120, heads=40, kv_heads=8, head_dim=128, intermediate=1024,
                     vocab=151936, max_context=32768)
    models, groups = specs_to_frames([mha, gqa])
    fm = fit_matrix(models, groups, gpu_frame(), precisions=("bf16",), gpu_counts=(1, 2, 4, 5, 8, 16), contexts=(4096,))
    layout = {
        (r["model_id"], r["gpu_count"]): (r["tensor_parallel"], r["pipeline_parallel"])
        for r in fm.filter(pl.col("gpu_id") == "b200").iter_rows(named=True)
    }
    assert layout[("test/mha40", 5)] == (1, 5)  # TP5 splits the heads but not the vocab: PP5 instead
    assert layout[("test/mha40", 8)] == (8, 1)
    assert layout[("test/mha40", 16)] == (8, 2)  # 40 % 16 heads, and 16 > the 8-GPU baseboard
    assert layout[("test/gqa-40-8", 4)] == (4, 1)
    assert layout[("test/gqa-40-8", 5)] == (1, 5)  # 8 KV heads neither divisible by nor dividing 5
    # a layout that cannot start stays in the matrix and never fits: 16 consumer cards need two hosts
    # and a consumer card has no scale-out fabric
    consumer = gpu_frame().with_columns(
        scale_up_domain_gpus=pl.lit(8), scale_out_gbps=pl.when(pl.col("gpu_id") == "consumer-24g").then(None).otherwise(50.0)
    )
    fm = fit_matrix(models, groups, consumer, precisions=("bf16",), gpu_counts=(8, 16), contexts=(4096,))
    invalid = fm.filter(~pl.col("tp_valid"))
    assert set(invalid["gpu_id"]) == {"consumer-24g"} and set(invalid["gpu_count"]) == {16}
    assert not invalid["fits"].any() and (invalid["max_concurrent_seqs"] == 0).all()
    assert invalid["layout_reason"].str.contains("no scale-out fabric").all()


def test_more_gpus_never_fit_less(fm):
    valid = fm.filter(pl.col("tp_valid"))
    keys = ["model_id", "gpu_id", "precision", "context_length", "kv_dtype"]
    checked = (
        valid.sort("gpu_count")
        .with_columns(prev_fits=pl.col("fits").shift(1).over(keys))
        .filter(pl.col("prev_fits").fill_null(False) & ~pl.col("fits"))
    )
    assert checked.height == 0, checked
    # Llama-3.1-70B bf16 on H100 flips at TP4: 72.85 GB usable per GPU (test_llama8b_h100_tp1_worked_budget)
    # against 2 x 70.55e9 = 141.1 GB of weights, or 70.55 GB per GPU at TP2 plus 5.40 GB overhead
    # (activation 1.89 + non-torch 2.10 + CUDA graphs 1.04 GiB, VLLMMemory); 35.28 + 5.40 GB at TP4.
    llama70 = valid.filter(model_id="meta-llama/Llama-3.1-70B", gpu_id="h100-sxm", precision="bf16",
                           context_length=4096, kv_dtype="bf16")
    assert dict(llama70.select("gpu_count", "fits").iter_rows()) == {1: False, 2: False, 4: True, 8: True, 16: True}


def test_fp8_never_needs_more_memory_than_bf16(fm):
    wide = fm.pivot(on="precision", index=["model_id", "gpu_id", "gpu_count", "context_length", "kv_dtype"],
                    values="max_concurrent_seqs")
    assert (wide["fp8"] >= wide["bf16"]).all()
    w = fm.pivot(on="precision", index=["model_id", "gpu_id", "gpu_count", "context_length", "kv_dtype"],
                 values="weights_gb_per_gpu")
    assert (w["fp8"] <= w["bf16"]).all()


def test_longer_context_never_more_concurrency(fm):
    keys = ["model_id", "gpu_id", "precision", "gpu_count", "kv_dtype"]
    bad = (
        fm.sort("context_length")
        .with_columns(prev=pl.col("max_concurrent_seqs").shift(1).over(keys))
        .filter(pl.col("max_concurrent_seqs") > pl.col("prev"))
    )
    assert bad.height == 0


def test_fp8_kv_roughly_doubles_concurrency(fm):
    wide = fm.filter(pl.col("model_id") == "meta-llama/Llama-3.1-8B", pl.col("fits")).pivot(
        on="kv_dtype", index=["gpu_id", "precision", "gpu_count", "context_length"], values="max_concurrent_seqs"
    ).filter(pl.col("bf16") >= 8)
    ratio = wide["fp8"] / wide["bf16"]
    assert wide.height > 0 and ratio.min() >= 1.9 and ratio.max() <= 2.2


def test_context_rows_above_max_context_dropped():
    short = dataclasses.replace(llama_8b(), model_id="test/short-ctx", max_context=2048)
    mid = dataclasses.replace(llama_8b(), model_id="test/mid-ctx", max_context=32768)
    models, groups = specs_to_frames([short, mid])
    fm = fit_matrix(models, groups, gpu_frame(), precisions=("bf16",), gpu_counts=(1,))
    ctx = fm.group_by("model_id").agg(pl.col("context_length").unique().sort())
    got = dict(zip(ctx["model_id"], ctx["context_length"].to_list(), strict=True))
    assert got["test/short-ctx"] == [2048]  # below every grid context: one row at its max
    assert got["test/mid-ctx"] == [4096, 32768]


def test_unsupported_models_excluded():
    bad = dataclasses.replace(llama_8b(), model_id="test/unsupported", supported=False, reason="x")
    models, groups = specs_to_frames([llama_8b(), bad])
    fm = fit_matrix(models, groups, gpu_frame())
    assert set(fm["model_id"]) == {"meta-llama/Llama-3.1-8B"}
    # precisions x gpus x counts x contexts
    assert fm.height == 5 * 4 * 5 * 3


@pytest.mark.parametrize(("conc", "label"), [(0, "no_fit"), (1, "very_tight"), (2, "tight"), (3, "tight"), (4, "moderate"),
                                             (15, "moderate"), (16, "good"), (63, "good"), (64, "excellent")])
def test_fit_class_thresholds(conc, label):
    assert FIT_CLASSES.excellent == 64
    out = pl.DataFrame({"c": [conc]}).select(fit_class_expr(pl.col("c"))).item()
    assert out == label


def test_budget_constants_documented_version():
    assert VLLM_MEMORY.gpu_memory_utilization == 0.92 and "0.22" in VLLM_MEMORY.version
