"""Checkpoint precision: detection order, evidence, contradictions, and the tensor-parallel fields.

Every expected value cites the config field or file it comes from (bundled snapshot:
pipelines/snapshot/hf/<owner>__<name>/). Model-info `safetensors.parameters` dicts are built from
the accounting of a real config the way the Hub counts them (stored elements per safetensors dtype)
and say which repo they mimic.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from fake_sources import FakeSources, live_mode_env

from pipelines.defs.ingest.live_source import land_live_batch, live_units, parse_model_info
from pipelines.defs.quality.suites import load_suite, validate_frame
from pipelines.resources import LiveSourcesResource, WarehouseResource
from pipelines.settings import Settings
from pipelines.warehouse import connect, read_table
from sizing.architecture import describe
from sizing.hf_config import HFConfig
from sizing.layouts import build
from sizing.model_spec import MODEL_COLUMNS, specs_to_frames
from sizing.params import BUFFER, EXPERTS, QUANTIZABLE_ROLES
from sizing.quantization import (
    PRECISION_SOURCES,
    _module_of,
    precision_from_repo_name,
    precision_from_safetensors,
    read_scheme,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "pipelines" / "snapshot" / "hf"
EXTRA = Path(__file__).resolve().parent / "fixtures" / "extra_configs"
STAGING_SQL = REPO / "dbt_project" / "models" / "staging" / "stg_hf__model_configs.sql"


def files(model_dir: str) -> tuple[dict, dict | None]:
    folder = SNAPSHOT / model_dir
    quant = folder / "hf_quant_config.json"
    return json.loads((folder / "config.json").read_text()), (json.loads(quant.read_text()) if quant.exists() else None)


def spec_of(model_id: str, **kwargs):
    config, quant = files(model_id.replace("/", "__", 1))
    return describe(config, model_id=model_id, quant_config=quant, **kwargs)


def snapshot_entries() -> list[dict]:
    return json.loads((SNAPSHOT / "models.json").read_text())["models"]


# --- detection order on real bundled configs --------------------------------------------------------


def test_quantization_config_comes_first():
    # Qwen3-30B-A3B-FP8 config.json: "quantization_config": {"quant_method": "fp8",
    # "weight_block_size": [128, 128], "fmt": "e4m3", ...}; no hf_quant_config.json; name token FP8.
    spec = spec_of("Qwen/Qwen3-30B-A3B-FP8")
    assert (spec.checkpoint_precision, spec.checkpoint_format, spec.checkpoint_precision_source) == (
        "fp8", "fp8_block", "quantization_config")
    assert spec.checkpoint_precision_conflict is None
    assert spec.weights_bytes_checkpoint == spec.weights_bytes["fp8"]


def test_hf_quant_config_when_config_json_declares_nothing():
    # nvidia/Llama-3.1-70B-Instruct-FP8: config.json has no quantization_config; hf_quant_config.json
    # {"quantization": {"quant_algo": "FP8", "exclude_modules": ["lm_head"]}} (ModelOpt per-tensor FP8).
    spec = spec_of("nvidia/Llama-3.1-70B-Instruct-FP8")
    assert (spec.checkpoint_precision, spec.checkpoint_format, spec.checkpoint_precision_source) == (
        "fp8", "fp8", "hf_quant_config")
    # nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4: no quantization_config; hf_quant_config.json
    # "quant_algo": "NVFP4" (group_size 16) with attention and some Mamba projections excluded.
    nano = spec_of("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4")
    assert (nano.checkpoint_precision, nano.checkpoint_format, nano.checkpoint_precision_source) == (
        "fp4", "nvfp4", "hf_quant_config")
    assert nano.weights_bytes["fp4"] < nano.weights_bytes_checkpoint < nano.weights_bytes["fp8"]


def test_both_configs_agree_and_the_source_is_the_first():
    # nvidia/Qwen3.5-122B-A10B-NVFP4: text_config.quantization_config {"quant_method": "modelopt",
    # "quant_algo": "NVFP4"} and hf_quant_config.json "quant_algo": "NVFP4".
    spec = spec_of("nvidia/Qwen3.5-122B-A10B-NVFP4")
    assert (spec.checkpoint_precision, spec.checkpoint_format, spec.checkpoint_precision_source) == (
        "fp4", "nvfp4", "quantization_config")
    assert spec.checkpoint_precision_conflict is None


def test_config_dtype_is_the_last_evidence():
    # meta-llama/Llama-2-7b-hf: "torch_dtype": "float16", no quantization anywhere, no name token.
    llama2 = spec_of("meta-llama/Llama-2-7b-hf")
    assert (llama2.checkpoint_precision, llama2.checkpoint_format, llama2.checkpoint_precision_source) == (
        "bf16", "fp16", "config_dtype")
    # allenai/OLMo-2-1124-7B-Instruct: "torch_dtype": "float32" -> 4 bytes per weight as stored.
    olmo = spec_of("allenai/OLMo-2-1124-7B-Instruct")
    assert (olmo.checkpoint_precision, olmo.checkpoint_format) == ("bf16", "fp32")
    assert olmo.weights_bytes_checkpoint == 4 * olmo.params_total
    # The same config without any dtype field: nothing says anything, bf16 by default.
    config, _ = files("Qwen__Qwen2.5-1.5B")
    bare = describe({k: v for k, v in config.items() if k not in ("torch_dtype", "dtype")}, model_id="Qwen/Qwen2.5-1.5B")
    assert (bare.checkpoint_precision, bare.checkpoint_format, bare.checkpoint_precision_source) == (
        "bf16", "bf16", "default")


def test_an_unreadable_quant_method_is_not_evidence():
    # A bitsandbytes quantization_config names no format FitAtlas prices: detection falls through
    # to the repo name (here none) and the config dtype.
    config, _ = files("Qwen__Qwen2.5-1.5B")
    config = {**config, "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}}
    spec = describe(config, model_id="someone/Qwen2.5-1.5B-bnb")
    assert (spec.checkpoint_precision, spec.checkpoint_precision_source) == ("bf16", "config_dtype")


# --- safetensors dtypes (Hub model info) ----------------------------------------------------------------


def llama_8b_fp8_model_info() -> dict[str, int]:
    """Mimics nvidia/Llama-3.1-8B-Instruct-FP8 (ModelOpt per-tensor FP8 of Llama-3.1-8B): the
    embeddings, LM head and norms at BF16 (1,050,673,152 + 266,240 parameters), every linear weight
    at F8_E4M3 (8,030,261,248 - 1,050,939,392), and one F32 weight_scale + one input_scale per
    linear (32 layers x 7 projections x 2)."""
    return {"BF16": 1_050_939_392, "F8_E4M3": 6_979_321_856, "F32": 448}


def test_safetensors_dtypes_come_before_the_repo_name():
    config, _ = files("meta-llama__Meta-Llama-3.1-8B")  # no quantization_config, "torch_dtype": "bfloat16"
    spec = describe(config, model_id="nvidia/Llama-3.1-8B-Instruct-FP8", safetensors_dtypes=llama_8b_fp8_model_info())
    assert (spec.checkpoint_precision, spec.checkpoint_format, spec.checkpoint_precision_source) == (
        "fp8", "fp8_block", "safetensors_dtypes")
    assert spec.checkpoint_precision_conflict is None  # the name token FP8 agrees
    assert spec.weights_bytes_checkpoint == spec.weights_bytes["fp8"]
    # The BF16 repo's model info (meta-llama/Llama-3.1-8B: {"BF16": 8,030,261,248}) says bf16.
    base = describe(config, model_id="meta-llama/Llama-3.1-8B", safetensors_dtypes={"BF16": 8_030_261_248})
    assert (base.checkpoint_precision, base.checkpoint_format, base.checkpoint_precision_source) == (
        "bf16", "bf16", "safetensors_dtypes")


def test_packed_dtypes_count_as_their_logical_values():
    # GPTQ int4 of Qwen2.5-7B (mimics Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4, "torch_dtype": "float16"):
    # qweight and qzeros are I32 holding 8 int4 each, scales F16 per 128-group, 16-bit roles F16.
    qwen = describe(files("Qwen__Qwen2.5-7B")[0], model_id="Qwen/Qwen2.5-7B")
    quantizable = qwen.params_total - qwen.params_unquantized
    gptq = {"I32": quantizable // 8 + quantizable // 1024, "F16": quantizable // 128 + qwen.params_unquantized}
    verdict = precision_from_safetensors(gptq, qwen.params_unquantized)
    assert (verdict.precision, verdict.fmt) == ("int4", "gptq_int4")
    # Without the x8 packing factor the F16 scales and embeddings (I32 is 1/8 of the weights) would win.
    assert gptq["F16"] > gptq["I32"]

    # MXFP4 of gpt-oss-120b (openai/gpt-oss-120b): routed experts as U8 blocks (2 FP4 values a byte)
    # plus U8 E8M0 scales (1 per 32 values), everything else BF16; no F8_E4M3 -> mxfp4.
    oss_config = files("openai__gpt-oss-120b")[0]
    oss = describe(oss_config, model_id="openai/gpt-oss-120b")
    experts = oss.params_routed_experts
    mx = {"U8": experts // 2 + experts // 32, "BF16": oss.params_total - experts}
    verdict = precision_from_safetensors(mx, oss.params_unquantized)
    assert (verdict.precision, verdict.fmt) == ("fp4", "mxfp4")

    # NVFP4 (ModelOpt): U8 packed values, F8_E4M3 block scales (1 per 16 values), F32 global scales.
    nvfp4 = {"U8": 10_000_000_000, "F8_E4M3": 1_250_000_000, "F32": 1000, "BF16": 900_000_000}
    verdict = precision_from_safetensors(nvfp4, 900_000_000)
    assert (verdict.precision, verdict.fmt) == ("fp4", "nvfp4")
    assert verdict.substantial == frozenset({"fp4"})  # block scales are not an FP8 claim


def test_what_every_quantized_checkpoint_keeps_at_16_bits_is_set_aside():
    # google/gemma-3-270m (model card: 170M embedding parameters, 100M in transformer blocks)
    # quantized to FP8: the BF16 embedding outweighs the FP8 weights unless set aside.
    counts = {"BF16": 170_000_000, "F8_E4M3": 100_000_000}
    assert precision_from_safetensors(counts, 0).precision == "bf16"
    assert precision_from_safetensors(counts, 170_000_000).precision == "fp8"
    assert precision_from_safetensors({"I64": 5, "BOOL": 3}) is None
    assert precision_from_safetensors(None) is None


def test_model_info_from_each_bundled_checkpoints_own_scheme_agrees_with_it():
    """For every supported bundled model, the Hub counts its own scheme implies (packing and scales
    included) give the same precision with no conflict: the substantial-share rule does not mistake
    NVFP4 block scales, excluded modules or mixed FP8+NVFP4 layers for a contradiction."""
    checked = 0
    for entry in snapshot_entries():
        config, quant = files(entry["directory"])
        spec = describe(config, model_id=entry["model_id"], quant_config=quant)
        if not spec.supported:
            continue
        qc = config.get("quantization_config") or (config.get("text_config") or {}).get("quantization_config")
        scheme = read_scheme(qc, quant)
        dtypes = hub_counts(config, scheme, spec.checkpoint_format)
        again = describe(config, model_id=entry["model_id"], quant_config=quant, safetensors_dtypes=dtypes)
        assert again.checkpoint_precision == spec.checkpoint_precision, entry["model_id"]
        assert again.checkpoint_precision_conflict is None, (entry["model_id"], again.checkpoint_precision_conflict)
        checked += 1
    assert checked >= 95


def hub_counts(config: dict, scheme, fmt: str) -> dict[str, int]:
    """Stored elements per safetensors dtype for a checkpoint stored as ``scheme`` (or ``fmt``)."""
    from sizing.quantization import QuantScheme

    if scheme is None and fmt not in ("bf16", "fp16", "fp32"):
        scheme = QuantScheme(fmt)
    dense = {"fp16": "F16", "fp32": "F32"}.get(fmt, "BF16")
    acc = build(HFConfig(config)).acc
    counts: Counter[str] = Counter()
    for t in acc.tensors:
        n = t.numel
        if t.role == BUFFER:
            counts["F32"] += n
            continue
        f = "bf16" if (t.role not in QUANTIZABLE_ROLES or scheme is None) else scheme.format_of(_module_of(t.name, t.role == EXPERTS))
        if f in ("bf16", "fp16", "fp32"):
            counts[dense] += n
        elif f in ("fp8", "fp8_block"):
            counts["F8_E4M3"] += n
            counts["F32"] += n // 16384 if f == "fp8_block" else 2
        elif f == "int8":
            counts["I8"] += n
            counts["BF16"] += n // 4096
        elif f in ("gptq_int4", "awq_int4"):
            counts["I32"] += n // 8 + n // 1024
            counts["F16"] += n // 128
        elif f == "int4_g32":
            counts["I32"] += n // 8
            counts["BF16"] += n // 32
        elif f == "nvfp4":
            counts["U8"] += n // 2
            counts["F8_E4M3"] += n // 16
        elif f == "mxfp4":
            counts["U8"] += n // 2 + n // 32
        else:  # pragma: no cover - every format is listed
            raise AssertionError(f)
    counts[dense] += acc.vision + acc.mtp
    return dict(counts)


# --- repo name, the last resort ----------------------------------------------------------------------


def test_glm_4_7_fp8_is_fp8_from_its_name():
    # Bundled zai-org__GLM-4.7-FP8 has only config.json, without quantization_config (aiconfigurator
    # trimmed it), "torch_dtype": "bfloat16": only the name says FP8.
    spec = spec_of("zai-org/GLM-4.7-FP8")
    assert (spec.checkpoint_precision, spec.checkpoint_format, spec.checkpoint_precision_source) == (
        "fp8", "fp8_block", "repo_name")
    assert spec.checkpoint_precision_conflict is None
    assert spec.weights_bytes_checkpoint == spec.weights_bytes["fp8"]


def test_nemotron_3_5_lightning_nvfp4_is_fp4_from_its_name():
    # Bundled nvidia__NVIDIA-Nemotron-3.5-Lightning-30B-A3B-NVFP4 has only config.json ("dtype":
    # "bfloat16"); its >200 KB hf_quant_config.json was not collected (shared/data MANIFEST).
    spec = spec_of("nvidia/NVIDIA-Nemotron-3.5-Lightning-30B-A3B-NVFP4")
    assert (spec.checkpoint_precision, spec.checkpoint_format, spec.checkpoint_precision_source) == (
        "fp4", "nvfp4", "repo_name")
    assert spec.weights_bytes_checkpoint == spec.weights_bytes["fp4"]


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("Qwen/Qwen2.5-7B-Instruct-AWQ", ("int4", "awq_int4", "AWQ")),
        ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", ("int4", "gptq_int4", "INT4")),
        ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8", ("int8", "int8", "INT8")),
        ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", ("int8", "int8", "W8A8")),
        ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16", ("int4", "gptq_int4", "W4A16")),
        ("RedHatAI/Qwen3-8B-W8A8-FP8-dynamic", ("fp8", "fp8_block", "FP8")),
        ("openai/gpt-oss-20b-MXFP4", ("fp4", "mxfp4", "MXFP4")),
        ("nvidia/DeepSeek-R1-FP4", ("fp4", "nvfp4", "FP4")),
        ("zai-org__GLM-4.7-FP8", ("fp8", "fp8_block", "FP8")),  # snapshot directory form
        ("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", None),
        ("someone/fp8ish-Llama", None),  # not a whole token
        ("FP8-lab/Llama-3.1-8B", None),  # only the name part counts
    ],
)
def test_repo_name_tokens(model_id, expected):
    assert precision_from_repo_name(model_id) == expected


# --- contradictions ---------------------------------------------------------------------------------


def test_a_quantization_config_contradicted_by_bf16_files_is_recorded():
    # Qwen3-30B-A3B-FP8's config (quant_method fp8) with the model info of the BF16 repo
    # Qwen/Qwen3-30B-A3B: {"BF16": 30,532,122,624}.
    spec = spec_of("Qwen/Qwen3-30B-A3B-FP8", safetensors_dtypes={"BF16": 30_532_122_624})
    assert (spec.checkpoint_precision, spec.checkpoint_precision_source) == ("fp8", "quantization_config")
    assert spec.checkpoint_precision_conflict == (
        "quantization_config says fp8 (fp8_block) but safetensors_dtypes says bf16 (bf16 100.0%); "
        "safetensors_dtypes says bf16 (bf16 100.0%) but repo_name says fp8 (token FP8)"
    )


def test_a_quantized_name_over_bf16_files_is_recorded():
    # GLM-4.7-FP8's config declares no quantization; model info says all BF16 (352.8B parameters,
    # what the BF16 repo zai-org/GLM-4.7 would show): the files win, the name contradicts them.
    spec = spec_of("zai-org/GLM-4.7-FP8", safetensors_dtypes={"BF16": 352_797_829_120})
    assert (spec.checkpoint_precision, spec.checkpoint_format, spec.checkpoint_precision_source) == (
        "bf16", "bf16", "safetensors_dtypes")
    assert spec.checkpoint_precision_conflict == (
        "safetensors_dtypes says bf16 (bf16 100.0%) but repo_name says fp8 (token FP8)")


def test_the_blocking_expectations_hold_a_conflict_and_a_missing_source():
    suite = load_suite("models")
    columns = {"checkpoint_precision", "checkpoint_precision_source", "checkpoint_precision_conflict"}
    suite = {**suite, "expectations": [e for e in suite["expectations"] if e["kwargs"].get("column") in columns]}
    assert len(suite["expectations"]) == 5
    frame = pd.DataFrame({
        "model_id": ["ok/A", "zai-org/GLM-4.7-FP8", "bad/B"],
        "checkpoint_precision": ["bf16", "bf16", "fp6"],
        "checkpoint_precision_source": ["config_dtype", "safetensors_dtypes", None],
        "checkpoint_precision_conflict": [None, "safetensors_dtypes says bf16 (bf16 100.0%) but repo_name says fp8 (token FP8)", None],
    })
    outcome = validate_frame(suite, frame, lambda q: [])
    failed = {o.label: o.failing_rows for o in outcome.failed}
    assert not outcome.errored
    assert failed["expect_column_values_to_be_null(checkpoint_precision_conflict)"] == [
        {"model_id": "zai-org/GLM-4.7-FP8", "checkpoint_precision_conflict": frame.loc[1, "checkpoint_precision_conflict"]}
    ]
    assert failed["expect_column_values_to_be_in_set(checkpoint_precision)"] == [{"model_id": "bad/B", "checkpoint_precision": "fp6"}]
    assert failed["expect_column_values_to_not_be_null(checkpoint_precision_source)"] == [
        {"model_id": "bad/B", "checkpoint_precision_source": None}
    ]


# --- the bundled snapshot -------------------------------------------------------------------------------


def test_every_bundled_model_has_a_consistent_precision_and_its_source():
    sources: Counter[str] = Counter()
    for entry in snapshot_entries():
        config, quant = files(entry["directory"])
        spec = describe(config, model_id=entry["model_id"], quant_config=quant)
        if not spec.supported:
            continue
        assert spec.checkpoint_precision in ("bf16", "fp8", "int8", "int4", "fp4"), entry["model_id"]
        assert spec.checkpoint_precision_source in PRECISION_SOURCES
        assert spec.checkpoint_precision_conflict is None, (entry["model_id"], spec.checkpoint_precision_conflict)
        sources[spec.checkpoint_precision_source] += 1
    # No model info in the snapshot; 2 repos are known only by name (GLM-4.7-FP8, Nemotron-3.5 Lightning).
    assert sources == {"config_dtype": 64, "quantization_config": 27, "hf_quant_config": 11, "repo_name": 2}


def test_mixed_precision_experts_listed_once_are_priced_at_their_format():
    # nvidia/Qwen3.6-35B-A3B-NVFP4 hf_quant_config.json quantized_layers lists
    # "model.language_model.layers.0.mlp.experts": {"quant_algo": "W4A16_NVFP4"} once for all experts.
    spec = spec_of("nvidia/Qwen3.6-35B-A3B-NVFP4")
    assert spec.checkpoint_format == "mixed:fp8+nvfp4" and spec.checkpoint_precision == "fp4"
    assert spec.weights_bytes["fp4"] < spec.weights_bytes_checkpoint < spec.weights_bytes["fp8"]


# --- tensor-parallel fields ---------------------------------------------------------------------------


def test_nemotron_h_mamba2_heads_and_groups():
    # nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16 config.json: "mamba_num_heads": 64, "n_groups": 8,
    # "moe_intermediate_size": 1856.
    nano = spec_of("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    assert (nano.ssm_num_heads, nano.ssm_n_groups, nano.moe_intermediate_size) == (64, 8, 1856)
    assert (nano.linear_attn_key_heads, nano.linear_attn_value_heads) == (0, 0)
    # nvidia__NVIDIA-Nemotron-3-Super-120B-A12B-FP8: "mamba_num_heads": 128, "n_groups": 8,
    # "moe_intermediate_size": 2688. Ultra-550B: 256, 8, 5120.
    super_ = spec_of("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8")
    assert (super_.ssm_num_heads, super_.ssm_n_groups, super_.moe_intermediate_size) == (128, 8, 2688)
    ultra = spec_of("nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16")
    assert (ultra.ssm_num_heads, ultra.ssm_n_groups, ultra.moe_intermediate_size) == (256, 8, 5120)


def test_gated_deltanet_key_and_value_heads():
    # Qwen__Qwen3.5-122B-A10B text_config: "linear_num_key_heads": 16, "linear_num_value_heads": 64,
    # "moe_intermediate_size": 1024.
    q35 = spec_of("Qwen/Qwen3.5-122B-A10B")
    assert (q35.linear_attn_key_heads, q35.linear_attn_value_heads, q35.moe_intermediate_size) == (16, 64, 1024)
    assert (q35.ssm_num_heads, q35.ssm_n_groups) == (0, 0)
    # nvidia__Qwen3.6-27B-NVFP4 (dense) text_config: 16 key heads, 48 value heads, no experts.
    q36 = spec_of("nvidia/Qwen3.6-27B-NVFP4")
    assert (q36.linear_attn_key_heads, q36.linear_attn_value_heads, q36.moe_intermediate_size) == (16, 48, 0)
    # tests/fixtures/extra_configs/qwen3-next-80b-a3b.json (Qwen/Qwen3-Next-80B-A3B-Instruct):
    # "linear_num_key_heads": 16, "linear_num_value_heads": 32, "moe_intermediate_size": 512.
    nxt = describe(json.loads((EXTRA / "qwen3-next-80b-a3b.json").read_text()), model_id="Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert (nxt.linear_attn_key_heads, nxt.linear_attn_value_heads, nxt.moe_intermediate_size) == (16, 32, 512)


def test_other_models_have_zero_or_their_expert_width():
    # Jamba-v0.1 (tests/fixtures/extra_configs/jamba-v0.1.json): Mamba-1 mixers have no SSM heads or
    # groups; experts are "intermediate_size": 14336 wide.
    jamba = describe(json.loads((EXTRA / "jamba-v0.1.json").read_text()), model_id="ai21labs/Jamba-v0.1")
    assert (jamba.ssm_num_heads, jamba.ssm_n_groups, jamba.moe_intermediate_size) == (0, 0, 14336)
    # Mixtral-8x7B: experts use "intermediate_size": 14336; DeepSeek-V3: "moe_intermediate_size": 2048.
    assert spec_of("mistralai/Mixtral-8x7B-v0.1").moe_intermediate_size == 14336
    assert spec_of("deepseek-ai/DeepSeek-V3").moe_intermediate_size == 2048
    dense = spec_of("meta-llama/Meta-Llama-3.1-8B")
    assert (dense.moe_intermediate_size, dense.ssm_num_heads, dense.ssm_n_groups,
            dense.linear_attn_key_heads, dense.linear_attn_value_heads) == (0, 0, 0, 0, 0)


def test_new_fields_are_model_columns():
    models, _ = specs_to_frames([spec_of("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")])
    for column in ("checkpoint_precision_source", "checkpoint_precision_conflict", "moe_intermediate_size",
                   "ssm_num_heads", "ssm_n_groups", "linear_attn_key_heads", "linear_attn_value_heads"):
        assert column in MODEL_COLUMNS and column in models.columns
    assert models.row(0, named=True)["ssm_n_groups"] == 8


# --- live mode: model info -> raw record -> staging -> model_specs ---------------------------------------------


def test_parse_model_info_keeps_the_per_dtype_counts():
    document = {"sha": "a" * 40, "safetensors": {"parameters": {"F8_E4M3": 6_979_321_856, "BF16": 1_050_939_392,
                                                                  "F32": 448, "bad": "x", "neg": -1}, "total": 8_030_261_696}}
    info = parse_model_info(json.dumps(document).encode(), "http://hub/api/models/x/y")
    assert info.safetensors_parameters == {"BF16": 1_050_939_392, "F32": 448, "F8_E4M3": 6_979_321_856}
    assert info.as_record()["safetensors_parameters"] == info.safetensors_parameters
    assert parse_model_info(json.dumps({"sha": "b" * 40}).encode(), "u").safetensors_parameters is None


def test_live_model_info_reaches_describe(tmp_path: Path):
    """The fake Hub serves `safetensors.parameters`; live landing keeps it in `record.model_info`,
    the staging SQL exposes it and the model_specs asset hands it to describe."""
    from pipelines.defs.sizing.assets import model_specs

    bf16_qwen = {"BF16": 1_543_714_304}  # Qwen/Qwen2.5-1.5B on the Hub: BF16, 1.54B parameters
    bf16_30b = {"BF16": 30_532_122_624}  # the BF16 Qwen/Qwen3-30B-A3B's counts, under an FP8 repo
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text("models:\n  - Qwen/Qwen2.5-1.5B\n  - Qwen/Qwen3-30B-A3B-FP8\n")
    with FakeSources() as server:
        server.add_model("Qwen/Qwen2.5-1.5B", sha="1" * 40, safetensors_parameters=bf16_qwen)
        server.add_model("Qwen/Qwen3-30B-A3B-FP8", sha="1" * 40, safetensors_parameters=bf16_30b)
        env = live_mode_env(server, tmp_path / "data", watchlist, ("lambda",))
        settings = Settings.from_environment(env)
        config = LiveSourcesResource.from_environment(env).live_config()
        with config.fetcher() as fetcher, connect(settings.warehouse_path) as con:
            batch = live_units("hf_model_configs", con, config, fetcher, spec_sheets_dir=settings.spec_sheets_dir,
                               snapshot_dir=settings.snapshot_dir, watchlist_path=settings.watchlist_path)
            report = land_live_batch(con, raw_table="hf_model_configs", batch_id="b1", batch=batch)
            assert report.records_landed == 2 and not report.failures
            staging = STAGING_SQL.read_text().replace("{{ source('raw', 'hf_model_configs') }}", "raw.hf_model_configs")
            con.execute("create schema if not exists staging")
            con.execute(f"create table staging.stg_hf__model_configs as {staging}")
            staged = dict(con.execute(
                "select model_id, model_info_safetensors_parameters::varchar from staging.stg_hf__model_configs").fetchall())
        assert json.loads(staged["Qwen/Qwen2.5-1.5B"]) == bf16_qwen

    model_specs(dg.build_asset_context(), warehouse=WarehouseResource(database=str(settings.warehouse_path)))
    with connect(settings.warehouse_path) as con:
        rows = {r["model_id"]: r for r in read_table(con, "select * from sizing.model_specs").iter_rows(named=True)}
    qwen = rows["Qwen/Qwen2.5-1.5B"]
    assert (qwen["checkpoint_precision"], qwen["checkpoint_precision_source"], qwen["checkpoint_precision_conflict"]) == (
        "bf16", "safetensors_dtypes", None)
    fp8 = rows["Qwen/Qwen3-30B-A3B-FP8"]
    assert (fp8["checkpoint_precision"], fp8["checkpoint_precision_source"]) == ("fp8", "quantization_config")
    assert fp8["checkpoint_precision_conflict"].startswith("quantization_config says fp8 (fp8_block) but safetensors_dtypes says bf16")
