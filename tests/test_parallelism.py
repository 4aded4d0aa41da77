"""Deployable layouts (sizing.parallelism) and checkpoint-aware recommendations (sizing.checkpoints),
on the real bundled configs and the cited topology seed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest
from test_kv_per_gpu import gpu_frame, hand_frames

from sizing.architecture import describe
from sizing.checkpoints import checkpoint_base_key_expr, checkpoint_columns
from sizing.grid import fit_matrix, recommendations
from sizing.model_spec import specs_to_frames
from sizing.parallelism import tp_candidates, tp_link_gbps_expr, with_topology_columns

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT_HF = REPO / "pipelines" / "snapshot" / "hf"
TOPOLOGY_SEED = REPO / "dbt_project" / "seeds" / "gpu_topology.csv"
CATALOG_SEED = REPO / "dbt_project" / "seeds" / "gpu_catalog.csv"


def _spec(directory: str, model_id: str):
    config = json.loads((SNAPSHOT_HF / directory / "config.json").read_text())
    quant_path = SNAPSHOT_HF / directory / "hf_quant_config.json"
    quant = json.loads(quant_path.read_text()) if quant_path.exists() else None
    spec = describe(config, model_id=model_id, quant_config=quant)
    assert spec.supported, spec.reason
    return spec


def _topology() -> dict[str, dict[str, str]]:
    return {row["gpu_id"]: row for row in csv.DictReader(TOPOLOGY_SEED.open())}


def _seed_gpu(gpu_id: str, **specs) -> dict:
    """A gpus row with the seed's topology for ``gpu_id`` and the given datasheet specs."""
    t = _topology()[gpu_id]
    num = lambda v: float(v) if v else None  # noqa: E731
    return dict(
        gpu_id=gpu_id, name=gpu_id, memory_gb=specs.pop("memory_gb"), memory_bandwidth_gbps=specs.pop("bw"),
        bf16_tflops=specs.pop("bf16"), fp8_tflops=specs.pop("fp8", None), int8_tops=None, fp4_tflops=specs.pop("fp4", None),
        interconnect_gbps=None, hourly_usd=specs.pop("hourly", None), scale_up_fabric=t["scale_up_fabric"],
        form_factor=t["form_factor"], scale_up_domain_gpus=int(t["scale_up_domain_gpus"]),
        scale_up_gbps=num(t["scale_up_gbps"]), fast_link_group_gpus=int(t["fast_link_group_gpus"]) if t["fast_link_group_gpus"] else None,
        pcie_gbps=num(t["pcie_gbps"]), scale_out_gbps=num(t["scale_out_gbps"]),
    )


def _gpus(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), infer_schema_length=None)


def test_topology_seed_covers_every_catalog_gpu_with_a_source():
    catalog = {row["gpu_id"] for row in csv.DictReader(CATALOG_SEED.open())}
    topology = _topology()
    assert set(topology) == catalog
    assert all(row["source_document"] for row in topology.values())
    # the datacenter parts that had no scale-up figure before: AMD xGMI (CDNA 3 white paper: 7 links
    # x 128 GB/s bidirectional = 448 GB/s one way) and Intel Gaudi (Gaudi docs: 21 x 200 GbE = 525 GB/s)
    assert float(topology["amd-mi300x-192gb"]["scale_up_gbps"]) == 448.0
    assert float(topology["intel-gaudi3-128gb"]["scale_up_gbps"]) == 525.0
    assert topology["nvidia-gb200-186gb"]["scale_up_domain_gpus"] == "72"  # NVL72 rack
    assert not topology["nvidia-rtx-5090-32gb"]["scale_out_gbps"]  # consumer card: no datacenter NIC


def test_nemotron_h_never_runs_tp16_because_of_mamba2_groups():
    # Nemotron-3-Super config: n_groups 8, mamba_num_heads 128, 32 heads, 2 KV heads. vLLM's
    # MambaMixer2 needs TP | n_groups (or n_groups == 1): TP16 does not start even inside a 72-GPU domain.
    spec = _spec("nvidia__NVIDIA-Nemotron-3-Super-120B-A12B-FP8", "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8")
    assert (spec.ssm_n_groups, spec.ssm_num_heads) == (8, 128)
    models, groups = specs_to_frames([spec])
    gb200 = _seed_gpu("nvidia-gb200-186gb", memory_gb=199.7, bw=8000.0, bf16=2500.0, fp8=5000.0, fp4=10000.0)
    fm = fit_matrix(models, groups, _gpus(gb200), precisions=("fp8",), gpu_counts=(8, 16), contexts=(4096,))
    r16 = fm.filter(pl.col("gpu_count") == 16).row(0, named=True)
    assert (r16["tensor_parallel"], r16["pipeline_parallel"]) == (8, 2)
    assert r16["tp_valid"] and r16["fits"]


def test_consumer_cards_never_span_two_hosts():
    # RTX 5090 (seed: PCIe host of 8, no scale-out fabric). 405B at FP4 needs 16 of them: not deployable.
    models, groups = hand_frames()
    rtx = _seed_gpu("nvidia-rtx-5090-32gb", memory_gb=34.36, bw=1792.0, bf16=419.0, fp8=838.0, fp4=1676.0, hourly=0.4)
    h100 = _seed_gpu("nvidia-h100-sxm-80gb", memory_gb=85.9, bw=3350.0, bf16=989.0, fp8=1979.0, hourly=1.8)
    fm = fit_matrix(models, groups, _gpus(rtx, h100), precisions=("fp4", "fp8"), contexts=(4096,))
    sixteen = fm.filter(pl.col("gpu_count") == 16)
    consumer = sixteen.filter(pl.col("gpu_id") == "nvidia-rtx-5090-32gb")
    assert not consumer["tp_valid"].any() and not consumer["fits"].any()
    assert consumer["layout_reason"].str.contains("2 scale-up domains of 8").all()
    # an HGX H100 (ConnectX-7 per GPU) runs 16 GPUs as TP8 within each baseboard x PP2 over InfiniBand
    hgx = sixteen.filter(pl.col("gpu_id") == "nvidia-h100-sxm-80gb")
    assert hgx["tp_valid"].all() and (hgx["tensor_parallel"] == 8).all() and (hgx["pipeline_parallel"] == 2).all()
    recs = recommendations(fm, models, groups, _gpus(rtx, h100))
    assert recs.filter((pl.col("gpu_id") == "nvidia-rtx-5090-32gb") & (pl.col("gpu_count") > 8)).height == 0


def test_tp_link_rates_follow_the_fabric():
    gpus = _gpus(
        _seed_gpu("nvidia-h100-nvl-94gb", memory_gb=100.9, bw=3940.0, bf16=835.5),  # NVLink bridge pairs
        _seed_gpu("amd-mi300x-192gb", memory_gb=206.2, bw=5300.0, bf16=1300.0),  # xGMI full mesh of 8
        _seed_gpu("nvidia-h100-sxm-80gb", memory_gb=85.9, bw=3350.0, bf16=989.0),  # NVSwitch
    )
    frame = (
        with_topology_columns(gpus.lazy())
        .join(pl.LazyFrame({"tensor_parallel": [2, 4, 8]}), how="cross")
        .with_columns(link=tp_link_gbps_expr())
        .collect()
    )
    link = {(r["gpu_id"], r["tensor_parallel"]): r["link"] for r in frame.iter_rows(named=True)}
    assert link[("nvidia-h100-nvl-94gb", 2)] == 300.0  # H100 NVL bridge 600 GB/s bidirectional
    assert link[("nvidia-h100-nvl-94gb", 4)] == 64.0  # beyond the pair: PCIe Gen5 x16
    assert link[("amd-mi300x-192gb", 2)] == pytest.approx(448.0 / 7)  # one of seven xGMI links
    assert link[("amd-mi300x-192gb", 8)] == pytest.approx(448.0)
    assert link[("nvidia-h100-sxm-80gb", 2)] == link[("nvidia-h100-sxm-80gb", 8)] == 450.0


def test_moe_uses_expert_parallel_only_when_experts_split_evenly():
    # Qwen3-30B-A3B-FP8: 128 experts (config num_experts) -> EP = TP at 1..16
    spec = _spec("Qwen__Qwen3-30B-A3B-FP8", "Qwen/Qwen3-30B-A3B-FP8")
    models, groups = specs_to_frames([spec])
    fm = fit_matrix(models, groups, gpu_frame(), precisions=("fp8",), contexts=(4096,))
    assert (fm["expert_parallel"] == fm["tensor_parallel"]).all()
    assert tp_candidates((1, 2, 4, 8, 16)) == (16, 8, 4, 2, 1)


def test_checkpoint_base_key_links_quantized_siblings_only_with_the_same_architecture():
    ids = pl.Series(["nvidia/Llama-3.1-70B-Instruct-FP8", "meta-llama/Llama-3.1-70B-Instruct",
                     "Qwen/Qwen3-32B-FP8-Static-PerTensor", "nvidia/Qwen3-235B-A22B-NVFP4"])
    keys = pl.select(checkpoint_base_key_expr(pl.lit(ids))).to_series().to_list()
    assert keys == ["llama-3.1-70b-instruct", "llama-3.1-70b-instruct", "qwen3-32b", "qwen3-235b-a22b"]
    bf16 = _spec("Qwen__Qwen3-235B-A22B", "Qwen/Qwen3-235B-A22B")
    fp4 = _spec("nvidia__Qwen3-235B-A22B-NVFP4", "nvidia/Qwen3-235B-A22B-NVFP4")
    other = _spec("Qwen__Qwen3-32B", "Qwen/Qwen3-32B")
    models, _ = specs_to_frames([bf16, fp4, other])
    precisions = pl.LazyFrame({"precision": ["bf16", "fp8", "int4", "fp4"]})
    got = {(r["model_id"], r["precision"]): r for r in checkpoint_columns(models, precisions).collect().iter_rows(named=True)}
    # the BF16 repo: FP8 online (deployable as is); FP4 from NVIDIA's NVFP4 repo (hf_quant_config: NVFP4)
    assert got[("Qwen/Qwen3-235B-A22B", "fp8")]["needs_other_checkpoint"] is False
    assert got[("Qwen/Qwen3-235B-A22B", "fp4")]["checkpoint_model_id"] == "nvidia/Qwen3-235B-A22B-NVFP4"
    assert got[("Qwen/Qwen3-235B-A22B", "int4")]["checkpoint_model_id"] is None
    # the NVFP4 repo has only FP4 weights; BF16/FP8 come from the BF16 repo
    assert got[("nvidia/Qwen3-235B-A22B-NVFP4", "fp4")]["needs_other_checkpoint"] is False
    assert got[("nvidia/Qwen3-235B-A22B-NVFP4", "fp8")]["checkpoint_model_id"] == "Qwen/Qwen3-235B-A22B"
    # a different model never links, even at the same precision
    assert got[("Qwen/Qwen3-32B", "fp4")]["checkpoint_model_id"] is None


def test_quantized_repo_rank1_runs_its_own_weights_and_ties_prefer_fp8_over_int8():
    # nvidia/Llama-3.1-70B-Instruct-FP8 (config quantization_config: fp8): every recommendation at
    # another precision needs weights this repo does not ship; rank 1 must be FP8.
    spec = _spec("nvidia__Llama-3.1-70B-Instruct-FP8", "nvidia/Llama-3.1-70B-Instruct-FP8")
    assert spec.checkpoint_precision == "fp8"
    models, groups = specs_to_frames([spec])
    gpus = gpu_frame().with_columns(hourly_usd=pl.lit(2.0))
    fm = fit_matrix(models, groups, gpus, contexts=(4096,))
    recs = recommendations(fm, models, groups, gpus)
    first = recs.filter(pl.col("rank") == 1).row(0, named=True)
    assert first["precision"] == "fp8" and not first["needs_other_checkpoint"]
    assert recs.filter(pl.col("precision") != "fp8")["needs_other_checkpoint"].all()
    # Hopper: INT8 and FP8 weights differ by scale bytes only, and H100's dense INT8 TOPS equal its
    # FP8 TFLOPS (1,979, NVIDIA H100 datasheet): a < 1 % cost gap is a tie that FP8 wins
    h100 = recs.filter(pl.col("gpu_id") == "h100-sxm")
    assert h100.height == 1 and h100["precision"][0] == "fp8"
