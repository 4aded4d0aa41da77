"""The peer comparison of `make bench` (pipelines/peer_bench.py): our rows mapped to llm-analysis
0.2.2's configs, the cells it runs drawn reproducibly from the cells our grid sizes, and the timing
report's shape. Runs only where llm-analysis is installed (the `bench` extra plus
`pip install --no-deps llm-analysis==0.2.2`); no timed assertions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest

from pipelines import peer_bench
from sizing.architecture import describe
from sizing.grid import fit_matrix
from sizing.model_spec import specs_to_frames

HF = Path(__file__).resolve().parents[1] / "pipelines" / "snapshot" / "hf"
LLAMA_8B = "meta-llama/Meta-Llama-3.1-8B"

# The published gpus row of nvidia-h100-sxm-80gb (mart `gpus`; columns the mapping reads).
H100 = {
    "gpu_id": "nvidia-h100-sxm-80gb", "name": "H100 SXM", "memory_gb": 85.899, "memory_gib": 80.0, "memory_bandwidth_gbps": 3350.0,
    "bf16_tflops": 989.0, "fp8_tflops": 1978.0, "int8_tops": 1978.0, "fp4_tflops": None, "interconnect_gbps": 450.0,
    "scale_up_fabric": "nvlink_switch", "form_factor": "sxm", "scale_up_domain_gpus": 8, "scale_up_gbps": 450.0,
    "fast_link_group_gpus": None, "pcie_gbps": None, "scale_out_gbps": 50.0,
}
# A card with no bf16 TFLOPS figure (the published nvidia-t4-16gb row): not mappable.
T4 = {
    "gpu_id": "nvidia-t4-16gb", "name": "T4", "memory_gb": 17.18, "memory_gib": 16.0, "memory_bandwidth_gbps": 320.0,
    "bf16_tflops": None, "fp8_tflops": None, "int8_tops": None, "fp4_tflops": None, "interconnect_gbps": None,
    "scale_up_fabric": "pcie", "form_factor": "pcie", "scale_up_domain_gpus": 4, "scale_up_gbps": 16.0,
    "fast_link_group_gpus": None, "pcie_gbps": 16.0, "scale_out_gbps": None,
}
GPU_SCHEMA = {"gpu_id": pl.Utf8, "name": pl.Utf8, "memory_gb": pl.Float64, "memory_gib": pl.Float64, "memory_bandwidth_gbps": pl.Float64,
              "bf16_tflops": pl.Float64, "fp8_tflops": pl.Float64, "int8_tops": pl.Float64, "fp4_tflops": pl.Float64,
              "interconnect_gbps": pl.Float64, "scale_up_fabric": pl.Utf8, "form_factor": pl.Utf8,
              "scale_up_domain_gpus": pl.Int32, "scale_up_gbps": pl.Float64, "fast_link_group_gpus": pl.Int32,
              "pcie_gbps": pl.Float64, "scale_out_gbps": pl.Float64}


def _config(model_id: str) -> dict:
    return json.loads((HF / model_id.replace("/", "__", 1) / "config.json").read_text())


def _frames(model_ids: list[str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    dirs = sorted(p.parent for p in HF.glob("*/config.json"))
    specs = []
    for d in dirs:
        model_id = d.name.replace("__", "/", 1)
        if model_ids is None or model_id in model_ids:
            quant = d / "hf_quant_config.json"
            specs.append(describe(json.loads((d / "config.json").read_text()), model_id=model_id,
                                  quant_config=json.loads(quant.read_text()) if quant.exists() else None))
    return specs_to_frames(specs)


def _gpus(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=GPU_SCHEMA)


@pytest.fixture(scope="module")
def peer():
    return pytest.importorskip("llm_analysis.config")


@pytest.fixture(scope="module")
def models() -> pl.DataFrame:
    # dense GQA, dense with head_dim x heads != hidden, MoE, MLA (not mappable), hybrid (not mappable)
    return _frames([LLAMA_8B, "Qwen/Qwen3-0.6B", "mistralai/Mixtral-8x7B-v0.1", "deepseek-ai/DeepSeek-V3",
                    "nvidia/Qwen3.6-27B-NVFP4"])[0]


def test_llama_8b_maps_to_its_config_json_fields(peer, models):
    row = models.filter(pl.col("model_id") == LLAMA_8B).row(0, named=True)
    mapped = peer_bench.peer_model_config(row)
    cfg = _config(LLAMA_8B)
    assert isinstance(mapped, peer.ModelConfig)
    # meta-llama__Meta-Llama-3.1-8B/config.json: num_hidden_layers 32, num_attention_heads 32,
    # num_key_value_heads 8, hidden_size 4096, intermediate_size 14336, vocab_size 128256,
    # max_position_embeddings 131072, model_type "llama"; dense (no experts).
    assert (mapped.num_layers, mapped.n_head, mapped.num_key_value_heads, mapped.hidden_dim) == (32, 32, 8, 4096)
    assert mapped.num_layers == cfg["num_hidden_layers"]
    assert mapped.n_head == cfg["num_attention_heads"]
    assert mapped.num_key_value_heads == cfg["num_key_value_heads"]
    assert mapped.hidden_dim == cfg["hidden_size"]
    assert mapped.ffn_embed_dim == cfg["intermediate_size"] == 14336  # derived from the parameter accounting
    assert mapped.expansion_ratio == 14336 / 4096
    assert mapped.vocab_size == cfg["vocab_size"] == 128256
    assert mapped.max_seq_len == cfg["max_position_embeddings"] == 131072
    assert mapped.model_type == cfg["model_type"]
    assert (mapped.moe_num_experts, mapped.moe_top_k) == (1, 1)


def test_h100_row_maps_to_llm_analysis_own_h100(peer):
    mapped = peer_bench.peer_gpu_config(H100)
    # llm_analysis/gpu_configs/h100-sxm-80gb.json: 80 (GiB: it multiplies by 1024**3), 3350 GB/s HBM,
    # 450 GB/s intra-node, 8e-06 s minimum message latency, 989 fp16 TFLOPS (it gives int8 1979).
    shipped = json.loads((Path(peer.__file__).parent / "gpu_configs" / "h100-sxm-80gb.json").read_text())
    for field in ("mem_per_GPU_in_GB", "hbm_bandwidth_in_GB_per_sec", "intra_node_bandwidth_in_GB_per_sec",
                  "intra_node_min_message_latency", "peak_fp16_TFLOPS"):
        assert getattr(mapped, field) == shipped[field], field
    assert mapped.peak_i8_TFLOPS == H100["int8_tops"]  # our dense INT8 figure
    assert mapped.inter_node_bandwidth_in_GB_per_sec == H100["scale_out_gbps"]
    with pytest.raises(peer_bench.Unmappable, match="bf16 TFLOPS"):
        peer_bench.peer_gpu_config(T4)


def test_derived_ffn_width_equals_every_bundled_config(peer):
    """Every bundled model the mapping accepts gets the FFN width its config.json states (MoE: the
    routed expert's); those it refuses say why."""
    frame, _ = _frames()
    mapped = refused = 0
    for row in frame.filter(pl.col("supported")).iter_rows(named=True):
        try:
            got = peer_bench.peer_model_config(row).ffn_embed_dim
        except peer_bench.Unmappable as error:
            assert str(error).startswith("model: ")
            refused += 1
            continue
        text = _config(row["model_id"])
        text = text.get("text_config") or text
        if row["is_moe"]:
            want = text.get("moe_intermediate_size") or text["intermediate_size"]
        else:
            want = text.get("intermediate_size") or text.get("ffn_hidden_size") or text.get("n_inner") or 4 * row["hidden_size"]
        assert got == want, row["model_id"]
        mapped += 1
    assert mapped > 50 and refused > 0


def test_unmappable_models_say_why(peer, models):
    reasons = {}
    for row in models.iter_rows(named=True):
        try:
            peer_bench.peer_model_config(row)
        except peer_bench.Unmappable as error:
            reasons[row["model_id"]] = str(error)
    assert set(reasons) == {"deepseek-ai/DeepSeek-V3", "nvidia/Qwen3.6-27B-NVFP4"}
    assert "MLA" in reasons["deepseek-ai/DeepSeek-V3"]
    assert "hybrid" in reasons["nvidia/Qwen3.6-27B-NVFP4"]


def test_our_cells_counts_the_fit_matrix_cells(models):
    _, groups = _frames(models["model_id"].to_list())
    gpus = _gpus(H100, T4)
    matrix = fit_matrix(models, groups, gpus, gpu_counts=(1, 2, 8), contexts=(4096, 131072))
    cells = matrix.select("model_id", "gpu_id", "gpu_count", "context_length").n_unique()
    assert peer_bench.our_cells(models, gpus, (1, 2, 8), (4096, 131072)) == cells


def test_sample_is_reproducible_for_a_seed(peer, models):
    gpus = _gpus(H100, T4)
    first = peer_bench.sample_cells(models, gpus, sample=12, seed=7)
    assert first.height == 12
    assert first.equals(peer_bench.sample_cells(models, gpus, sample=12, seed=7))
    assert not first.equals(peer_bench.sample_cells(models, gpus, sample=12, seed=8))
    # only mappable cells are drawn, each a cell of our grid with the layout our grid starts
    assert set(first["gpu_id"]) == {"nvidia-h100-sxm-80gb"}
    assert not set(first["model_id"]) & {"deepseek-ai/DeepSeek-V3", "nvidia/Qwen3.6-27B-NVFP4"}
    assert (first["tensor_parallel"] * first["pipeline_parallel"] == first["gpu_count"]).all()


def test_timing_report(peer, models):
    gpus = _gpus(H100, T4)
    report = peer_bench.llm_analysis_cells(models, gpus, sample=30, seed=1)
    assert set(report) >= {"peer", "cells", "skipped", "seconds", "ms_per_cell"}
    assert report["peer"] == "llm-analysis 0.2.2"
    assert report["cells"] == report["fits"] + report["did_not_fit"] == 30
    assert report["seconds"] > 0 and report["ms_per_cell"] > 0
    total = peer_bench.our_cells(models, gpus)
    unmappable = sum(report["skipped"].values())
    assert report["population"] == total - unmappable
    assert any(r.startswith("model: MLA") for r in report["skipped"])
    assert any(r.startswith("gpu: ") for r in report["skipped"])
    assert report == {**report, "sample": 30, "seed": 1}
    ratio = peer_bench.per_cell_ratio(2.0, 1000, report)
    assert ratio["our_ms_per_cell"] == 2.0 and ratio["peer_ms_per_cell"] == report["ms_per_cell"]


def test_missing_peer_names_the_extra_and_the_install(monkeypatch, models):
    monkeypatch.setitem(sys.modules, "llm_analysis", None)  # import fails as if not installed
    with pytest.raises(peer_bench.PeerMissing, match=r"bench.*--no-deps llm-analysis==0\.2\.2"):
        peer_bench.llm_analysis_cells(models, _gpus(H100), sample=1)
