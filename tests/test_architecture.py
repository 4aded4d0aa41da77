"""describe() against the transformers oracle (tests/oracle/param_counts.csv) and known anchors.

The oracle table is produced by tests/oracle/count_params.py (transformers 5.24, meta device); its
``params_language_model`` excludes vision towers and MTP modules, which is what
``ModelSpec.params_total`` means.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sizing.architecture import describe

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO.parent / "shared" / "data" / "hf_configs"
ORACLE = {row["model_dir"]: row for row in csv.DictReader((REPO / "tests" / "oracle" / "param_counts.csv").open())}
ALL_DIRS = sorted(p.parent.name for p in CONFIGS.glob("*/config.json"))
COUNTED = [d for d in ALL_DIRS if ORACLE.get(d, {}).get("status") == "ok"]

# Oracle-countable configs whose architecture describe() declines on purpose (see layouts.UNSUPPORTED).
KNOWN_UNSUPPORTED = {
    "deepseek-ai__DeepSeek-V4-Flash", "deepseek-ai__DeepSeek-V4-Pro",
    "nvidia__DeepSeek-V4-Flash-NVFP4", "nvidia__DeepSeek-V4-Pro-NVFP4",
}


def spec_of(model_dir: str):
    folder = CONFIGS / model_dir
    quant = folder / "hf_quant_config.json"
    return describe(json.loads((folder / "config.json").read_text()), model_id=model_dir,
                    quant_config=json.loads(quant.read_text()) if quant.exists() else None)


def test_every_config_is_listed_in_the_oracle_table():
    assert len(ALL_DIRS) == 110
    assert set(ALL_DIRS) == set(ORACLE)


@pytest.mark.parametrize("model_dir", COUNTED)
def test_params_total_equals_transformers(model_dir):
    spec = spec_of(model_dir)
    if model_dir in KNOWN_UNSUPPORTED:
        assert not spec.supported and spec.reason.startswith("unsupported model_type")
        return
    assert spec.supported, spec.reason
    assert spec.params_total == int(ORACLE[model_dir]["params_language_model"])


def test_oracle_covers_most_configs():
    matched = [d for d in COUNTED if d not in KNOWN_UNSUPPORTED]
    assert len(matched) >= 96


@pytest.mark.parametrize(
    ("model_dir", "total", "active"),
    [
        # Meta model cards / transformers: 8,030,261,248 and 70,553,706,496 parameters.
        ("meta-llama__Meta-Llama-3.1-8B", 8_030_261_248, 8_030_261_248),
        ("meta-llama__Meta-Llama-3.1-70B", 70_553_706_496, 70_553_706_496),
        # DeepSeek-V3 report: 671B total, 37B activated (HF card 671.03B / 37.55B excluding MTP).
        ("deepseek-ai__DeepSeek-V3", 671_026_404_352, 37_552_282_624),
        # Mixtral paper: 46.7B total, 12.9B active (2 of 8 experts).
        ("mistralai__Mixtral-8x7B-v0.1", 46_702_792_704, 12_879_925_248),
        # microsoft/phi-2's original remote-code (phi-msft) config; the published total
        # 2,779,683,840 equals transformers' PhiForCausalLM count (tests/oracle/param_counts_extra.csv).
        ("microsoft__phi-2", 2_779_683_840, 2_779_683_840),
    ],
)
def test_anchor_counts(model_dir, total, active):
    spec = spec_of(model_dir)
    assert (spec.params_total, spec.params_active) == (total, active)


def test_deepseek_v3_active_and_mtp_by_hand():
    spec = spec_of("deepseek-ai__DeepSeek-V3")
    # Routed expert: 3 x 7168 x 2048 = 44,040,192; 58 MoE layers x 256 experts = 654,011,285,504.
    assert spec.params_routed_experts == 58 * 256 * 3 * 7168 * 2048
    # Active swaps 256 routed experts for 8: total - 58 x 248 x 44,040,192.
    assert spec.params_active == spec.params_total - 58 * 248 * 3 * 7168 * 2048
    # MTP = one MoE decoder layer (11,507,286,528 params... computed from the oracle's layer
    # shapes) + enorm + hnorm + shared_head.norm (3 x 7168) + eh_proj (2 x 7168 x 7168):
    # DeepSeek's card lists 671B main + 14B MTP including the MTP's own embedding/head copy
    # (2 x 129280 x 7168 = 1.85B); 11.61B + 1.85B + rounding = 13.5-14B.
    assert spec.params_mtp == 11_610_067_968
    assert spec.num_moe_layers == 58 and spec.num_shared_experts == 1 and spec.experts_per_token == 8


def test_embedding_and_unquantized_split_llama_8b():
    spec = spec_of("meta-llama__Meta-Llama-3.1-8B")
    # vocab 128256 x hidden 4096, untied: embed + lm_head.
    assert spec.params_embedding == 2 * 128_256 * 4096
    # + 32 layers x 2 RMSNorms x 4096 + final norm 4096.
    assert spec.params_unquantized == 2 * 128_256 * 4096 + 65 * 4096


def test_tied_embeddings_counted_once():
    spec = spec_of("meta-llama__Llama-3.2-1B-Instruct")  # tie_word_embeddings: true
    assert spec.params_embedding == 128_256 * 2048


def test_vision_and_mtp_excluded_from_total():
    spec = spec_of("Qwen__Qwen3.5-35B-A3B")
    assert spec.params_total == int(ORACLE["Qwen__Qwen3.5-35B-A3B"]["params_language_model"])
    assert spec.params_mtp > 0


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "vocab_size": 32000,
          "intermediate_size": 11008}, "missing num_hidden_layers"),
        ({"model_type": "llama", "num_hidden_layers": 2}, "missing hidden_size"),
        ({"model_type": "mamba_xyz", "num_hidden_layers": 2}, "unsupported model_type 'mamba_xyz'"),
        ({"model_type": "deepseek_v4"}, "unsupported model_type 'deepseek_v4'"),
        ({}, "unsupported model_type"),
        ({"model_type": "llama", "num_hidden_layers": "many"}, "config rejected: num_hidden_layers = 'many' is a string"),
    ],
)
def test_unsupported_or_malformed_configs_say_why(config, reason):
    spec = describe(config, model_id="x")
    assert not spec.supported
    assert spec.reason.startswith(reason)
    assert spec.params_total == 0


NOT_AN_OBJECT = (False, "config is not a JSON object", 0, 0)
NO_MODEL_TYPE = (False, "unsupported model_type 'None': no parameter accounting for this architecture", 0, 0)
# Sized by hand as a Qwen3-MoE with decoder_sparse_step 1 and no dense layers (layouts._is_moe_layer
# reads 0 and None so), head_dim 8/2 = 4 and 2 kv heads (HFConfig's defaults when absent), expert
# width = intermediate_size 4 (no moe_intermediate_size). Per layer: q,k,v,o 4 x 8x8 = 256, q/k norms
# 2 x 4, two RMSNorms 2 x 8, router 8x4 = 32, experts 4 x 3 x 8x4 = 384 (2 active: 192). Embeddings
# 10x8 + untied lm_head 10x8 + final norm 8 = 168. Total 2 x 696 + 168 = 1560; active 2 x 504 + 168.
DEGENERATE_QWEN3_MOE = (True, None, 1560, 1176)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, NOT_AN_OBJECT),
        ([], NOT_AN_OBJECT),
        ("x", NOT_AN_OBJECT),
        ({"text_config": 3}, NO_MODEL_TYPE),
        ({"model_type": 5}, NO_MODEL_TYPE),
        ({"model_type": "qwen3_moe", "num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 10,
          "intermediate_size": 4, "num_experts": 4, "num_experts_per_tok": 2, "mlp_only_layers": None,
          "decoder_sparse_step": 0}, DEGENERATE_QWEN3_MOE),
    ],
)
def test_describe_never_raises(config, expected):
    """Inputs that crash naive code (`layer % decoder_sparse_step`, `layer in mlp_only_layers`) get a
    spec, not an exception: unsupported with a reason naming the problem and no parameters, or sized."""
    spec = describe(config, model_id="x")  # type: ignore[arg-type]
    assert spec.model_id == "x"
    assert (spec.supported, spec.reason, spec.params_total, spec.params_active) == expected


def test_remote_code_families_without_oracle():
    # DeepSeek-MoE-16B card: 16.4B total, ~2.8B active (2 shared + 6 of 64 routed experts).
    spec = spec_of("deepseek-ai__deepseek-moe-16b-chat")
    assert spec.supported and round(spec.params_total / 1e9, 1) == 16.4
    assert round(spec.params_active / 1e9, 1) == 2.8
    # InternLM2.5-7B card: 7.74B parameters (Llama layout with fused wqkv).
    assert round(spec_of("internlm__internlm2_5-7b-chat").params_total / 1e9, 2) == 7.74



# --------------------------------------------------------------------------------------------
# Vision towers: params_vision equals the oracle's vision column (language model unchanged).
# --------------------------------------------------------------------------------------------

# Step-3.7's config.json is flat (no vision fields): the oracle's vision count is of a default
# transformers tower the checkpoint may not match, so describe() reports 0 (layouts.vision_params).
VISION_NOT_COUNTED = {"stepfun-ai__Step-3.7-Flash", "stepfun-ai__Step-3.7-Flash-FP8"}


@pytest.mark.parametrize("model_dir", [d for d in COUNTED if int(ORACLE[d]["params_vision"] or 0) > 0])
def test_params_vision_equals_transformers(model_dir):
    spec = spec_of(model_dir)
    expected = 0 if model_dir in VISION_NOT_COUNTED else int(ORACLE[model_dir]["params_vision"])
    assert spec.params_vision == expected


# --------------------------------------------------------------------------------------------
# Families beyond shared/data: tests/fixtures/extra_configs (sources in SOURCES.md), counted by the
# same oracle into tests/oracle/param_counts_extra.csv.
# --------------------------------------------------------------------------------------------

EXTRA = REPO / "tests" / "fixtures" / "extra_configs"
ORACLE_EXTRA = {r["model_dir"]: r for r in csv.DictReader((REPO / "tests" / "oracle" / "param_counts_extra.csv").open())}
EXTRA_NAMES = sorted(p.stem for p in EXTRA.glob("*.json"))
# Multimodal fixtures whose tower describe() does not account (params_vision stays 0 by design).
EXTRA_VISION_NOT_COUNTED = {"mistral-small-3.1-24b"}


def extra_spec(name: str):
    return describe(json.loads((EXTRA / f"{name}.json").read_text()), model_id=name)


def test_every_extra_fixture_is_in_the_oracle_table():
    assert len(EXTRA_NAMES) >= 30
    assert set(EXTRA_NAMES) == set(ORACLE_EXTRA)
    assert all(ORACLE_EXTRA[n]["status"] == "ok" for n in EXTRA_NAMES)


@pytest.mark.parametrize("name", EXTRA_NAMES)
def test_extra_family_params_equal_transformers(name):
    spec = extra_spec(name)
    assert spec.supported, spec.reason
    assert spec.params_total == int(ORACLE_EXTRA[name]["params_language_model"])
    vision = int(ORACLE_EXTRA[name]["params_vision"] or 0)
    assert spec.params_vision == (0 if name in EXTRA_VISION_NOT_COUNTED else vision)


@pytest.mark.parametrize(
    ("name", "total", "active"),
    [
        # Published counts the oracle reproduces: GPT-2 124,439,808; Pythia-6.9B 6,857,302,016
        # (Pythia paper table); Falcon-7B 6,921,720,704; phi-2 2,779,683,840.
        ("gpt2", 124_439_808, 124_439_808),
        ("pythia-6.9b", 6_857_302_016, 6_857_302_016),
        ("falcon-7b", 6_921_720_704, 6_921_720_704),
        ("phi-2", 2_779_683_840, 2_779_683_840),
    ],
)
def test_extra_anchor_counts(name, total, active):
    spec = extra_spec(name)
    assert (spec.params_total, spec.params_active) == (total, active)


def test_extra_moe_active_counts():
    # Qwen1.5-MoE-A2.7B: 14.3B total, 2.7B active (4 of 60 routed + shared expert).
    q = extra_spec("qwen1.5-moe-a2.7b")
    assert round(q.params_total / 1e9, 1) == 14.3 and round(q.params_active / 1e9, 1) == 2.7
    assert q.num_shared_experts == 1 and q.num_moe_layers == 24
    # Jamba-v0.1: 52B total, 12B active; MoE on the 16 odd layers.
    j = extra_spec("jamba-v0.1")
    assert round(j.params_total / 1e9) == 52 and round(j.params_active / 1e9) == 12 and j.num_moe_layers == 16
    # DBRX: 132B total, 36B active (4 of 16 experts).
    d = extra_spec("dbrx-instruct")
    assert round(d.params_total / 1e9) == 132 and round(d.params_active / 1e9) == 36
    # Qwen3-Next-80B-A3B: 80B total, ~3B active (10 of 512 + shared).
    n = extra_spec("qwen3-next-80b-a3b")
    assert round(n.params_total / 1e9) == 80 and round(n.params_active / 1e9) in (3, 4)


def test_chatglm3_matches_published_total():
    # THUDM ChatGLM3-6B (remote code, no transformers class): published 6,243,584,000 parameters.
    # 28 x (qkv 4096 x 4608 + 4608 bias, dense 4096^2, SwiGLU 4096 x 27392 + 13696 x 4096, 2 RMSNorm)
    # + final RMSNorm + word_embeddings and untied output_layer (2 x 65024 x 4096).
    spec = spec_of("THUDM__chatglm3-6b")
    assert spec.supported, spec.reason
    assert spec.params_total == 6_243_584_000
    assert spec.num_kv_heads == 2 and spec.head_dim == 128
