"""sizing.layouts as a package: the model_type registry keeps every route the old single-module
dispatcher had, declined and unknown model_types still say why, and one attention-kind rule holds
for every builder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sizing.hf_config import HFConfig
from sizing.layouts import REGISTRY, UNSUPPORTED, Unsupported, attention_kind, build

# Every model_type the if/elif in the old sizing/layouts.py ``build`` (before the package split)
# sent to a builder, by the builder it reached; classic's families now have one function each.
OLD_DISPATCH: dict[str, tuple[str, ...]] = {
    # `top in ("kimi_k2", "kimi_k25") or mt in ("kimi_k2", "deepseek_v2", "deepseek_v3", "deepseek_v32",
    # "glm_moe_dsa")` -> mla
    "sizing.layouts.mla": ("kimi_k2", "kimi_k25", "deepseek_v2", "deepseek_v3", "deepseek_v32", "glm_moe_dsa"),
    # qwen_hybrid, nemotron_h and jamba branches
    "sizing.layouts.hybrid": ("qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text", "qwen3_next",
                              "nemotron_h", "jamba"),
    "sizing.layouts.gemma": ("gemma4", "gemma4_text"),
    # `mt in _STD or mt in _STD_ALIASES` -> standard
    "sizing.layouts.standard": (
        "llama", "mistral", "mixtral", "qwen2", "mimo", "qwen3", "qwen3_moe", "qwen3_vl_text", "qwen3_vl_moe_text",
        "qwen2_moe", "gemma", "gemma2", "gemma3_text", "olmo2", "phi3", "internlm2", "minimax_m2", "glm4_moe",
        "gpt_oss", "llama4_text", "deepseek", "step3p7", "granite", "granitemoe",
        "llama4", "qwen3_vl", "qwen3_vl_moe", "codellama",
    ),
    # `mt in _CLASSIC` -> classic, and `mt == "phi-msft"` -> classic as phi
    "sizing.layouts.classic": ("gpt2", "gptj", "gpt_neox", "falcon", "phi", "starcoder2", "cohere", "olmo", "dbrx",
                               "chatglm", "phi-msft"),
}
OLD_TYPES = [(module, mt) for module, types in OLD_DISPATCH.items() for mt in types]


def test_old_dispatch_has_no_duplicates():
    names = [mt for _, mt in OLD_TYPES]
    assert len(names) == len(set(names)) == 54


@pytest.mark.parametrize(("module", "model_type"), OLD_TYPES)
def test_registry_covers_every_model_type_of_the_old_dispatcher(module, model_type):
    assert REGISTRY[model_type].__module__ == module


@pytest.mark.parametrize("model_type", sorted(UNSUPPORTED))
def test_declined_model_types_say_why(model_type):
    with pytest.raises(Unsupported) as info:
        build(HFConfig({"model_type": model_type, "num_hidden_layers": 2}))
    assert str(info.value) == f"unsupported model_type '{model_type}': {UNSUPPORTED[model_type]}"


def test_declined_text_model_type_inside_a_known_wrapper():
    cfg = HFConfig({"model_type": "kimi_k25", "text_config": {"model_type": "kimi_linear"}})
    with pytest.raises(Unsupported, match="^unsupported model_type 'kimi_linear': KDA"):
        build(cfg)


@pytest.mark.parametrize(("config", "shown"), [({"model_type": "mamba_xyz"}, "'mamba_xyz'"), ({}, "'None'"),
                                               ({"model_type": "mistral3"}, "'mistral3'")])
def test_unknown_model_types_say_why(config, shown):
    with pytest.raises(Unsupported) as info:
        build(HFConfig(config))
    assert str(info.value) == f"unsupported model_type {shown}: no parameter accounting for this architecture"


@pytest.mark.parametrize(
    ("heads", "kv_heads", "kind"),
    [
        (32, 32, "mha"),
        (32, 8, "gqa"),
        (64, 2, "gqa"),
        (71, 1, "mqa"),  # Falcon-7B multi_query
        (8, 1, "mqa"),  # Gemma-2B
        (2, 1, "mqa"),  # the smallest sharing
        (1, 1, "mha"),  # one query head, its own K/V head: nothing shared
        (8, 0, "gqa"),  # counts that fit no kind keep the old fallback
        (8, 16, "gqa"),
    ],
)
def test_attention_kind_rule(heads, kv_heads, kind):
    assert attention_kind(heads, kv_heads) == kind


_ONE_HEAD = {"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 1, "num_key_value_heads": 1,
             "head_dim": 8, "vocab_size": 16, "intermediate_size": 16}


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "llama", **_ONE_HEAD},
        {"model_type": "cohere", **_ONE_HEAD},
        # gemma4 was the copy that called this case "mqa".
        {"model_type": "gemma4_text", "sliding_window": 4, "layer_types": ["sliding_attention", "full_attention"],
         **_ONE_HEAD},
    ],
    ids=["standard", "classic", "gemma4"],
)
def test_every_builder_applies_the_one_rule(config):
    assert build(HFConfig(config)).attention_kind == "mha"
    gqa = {**config, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 2}
    mqa = {**config, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 2}
    assert build(HFConfig(gqa)).attention_kind == "gqa"
    assert build(HFConfig(mqa)).attention_kind == "mqa"


def test_layouts_import_without_dagster():
    code = "import sys, sizing.layouts; sys.exit(any(m.split('.')[0] == 'dagster' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
