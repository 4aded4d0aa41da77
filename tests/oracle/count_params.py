"""Ground-truth parameter counts: build each config's transformers model on the meta device.

Run in the separate oracle venv (torch + transformers are not project dependencies):

    python3 -m venv .venv-oracle
    .venv-oracle/bin/pip install torch==2.13.0 transformers
    .venv-oracle/bin/python tests/oracle/count_params.py

It writes ``tests/oracle/param_counts.csv`` (the shared configs) and
``tests/oracle/param_counts_extra.csv`` (the hand-written fixtures in ``tests/fixtures/extra_configs``,
one ``<name>.json`` each; ``model_dir`` is the file stem), which ``tests/test_architecture.py``
compares ``sizing.architecture.describe`` against. No weights are downloaded: the meta device allocates no
storage, and configs whose model_type transformers does not ship (they need ``trust_remote_code``,
impossible offline) are recorded as ``oracle unavailable``.

Columns:
- ``params_total``: every parameter of the built model (``model.parameters()``, so a tied LM head
  is counted once).
- ``params_vision``: parameters under vision/audio towers and their projectors (module names
  containing ``visual``, ``vision``, ``audio``, ``multi_modal_projector``, ``embed_vision``,
  ``embed_audio``, ``mm_projector``).
- ``params_mtp``: multi-token-prediction modules (names starting with ``mtp`` or containing
  ``.mtp.``). transformers drops the DeepSeek MTP layer (``num_nextn_predict_layers``), so it is
  0 there: the oracle cannot check MTP and the test does not use this column for such models.
- ``params_language_model`` = total - vision - mtp: what ``ModelSpec.params_total`` must equal.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers
from transformers import AutoModelForCausalLM
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "hf_configs"
OUT = Path(__file__).resolve().parent / "param_counts.csv"
EXTRA = REPO / "tests" / "fixtures" / "extra_configs"
OUT_EXTRA = Path(__file__).resolve().parent / "param_counts_extra.csv"

# Repos whose model_type needs remote code although their architecture is a transformers one:
# Kimi-K2 ships ``architectures: ["DeepseekV3ForCausalLM"]`` with the DeepSeek-V3 config fields.
ALIASES = {"kimi_k2": "deepseek_v3"}
FLAT_COMPOSITE = {"step3p7"}

VISION_MARKERS = ("visual", "vision", "audio", "multi_modal_projector", "embed_vision", "embed_audio", "mm_projector")


def _is_vision(name: str) -> bool:
    return any(marker in name for marker in VISION_MARKERS)


def _is_mtp(name: str) -> bool:
    return name.startswith("mtp") or ".mtp." in name or name.startswith("model.mtp")


def _model_class(config):
    """ConditionalGeneration configs (vision-language) are not in the causal-LM auto map."""
    arch = (getattr(config, "architectures", None) or [None])[0]
    if arch and hasattr(transformers, arch):
        return getattr(transformers, arch)
    if getattr(config, "text_config", None) is not None or "ConditionalGeneration" in (arch or ""):
        name = type(config).__name__.replace("Config", "ForConditionalGeneration")
        return getattr(transformers, name, None)
    return None


def count(config_path: Path, name: str | None = None) -> dict:
    raw = json.loads(config_path.read_text())
    row = {
        "model_dir": name or config_path.parent.name,
        "model_type": raw.get("model_type"),
        "transformers_version": transformers.__version__,
        "params_total": "",
        "params_language_model": "",
        "params_vision": "",
        "params_mtp": "",
        "status": "",
        "note": "",
    }
    model_type = raw.get("model_type")
    alias = ALIASES.get(model_type)
    if alias:
        row["note"] = f"built as {alias}: "
    fields = {k: v for k, v in raw.items() if k not in ("auto_map", "model_type")}
    if model_type in FLAT_COMPOSITE:
        # Step-3.7's config.json is flat while transformers' Step3p7Config nests the decoder under
        # text_config: passing the fields at the top level would silently build the default decoder.
        fields = {"text_config": dict(fields)}
        row["note"] += "flat config passed as text_config: "
    try:
        config = CONFIG_MAPPING[alias or model_type](**fields)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded, the run goes on
        row["status"] = "oracle unavailable"
        row["note"] += f"config: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return row
    # The quantization config would make from_config build quantized (packed) modules.
    for holder in (config, getattr(config, "text_config", None)):
        if holder is not None and hasattr(holder, "quantization_config"):
            try:
                delattr(holder, "quantization_config")
            except AttributeError:
                pass
    cls = _model_class(config)
    try:
        with torch.device("meta"):
            if cls is not None:
                model = cls._from_config(config) if hasattr(cls, "_from_config") else cls(config)
            else:
                model = AutoModelForCausalLM.from_config(config)
    except Exception as exc:  # noqa: BLE001
        row["status"] = "oracle unavailable"
        row["note"] = f"model: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        return row
    total = vision = mtp = 0
    for name, param in model.named_parameters():
        n = param.numel()
        total += n
        if _is_vision(name):
            vision += n
        elif _is_mtp(name):
            mtp += n
    row.update(
        params_total=total,
        params_vision=vision,
        params_mtp=mtp,
        params_language_model=total - vision - mtp,
        status="ok",
        note=row["note"] + type(model).__name__,
    )
    return row


def main() -> int:
    only = set(sys.argv[1:])
    for configs, out in (
        ([(p, p.parent.name) for p in sorted(DATA.glob("*/config.json"))], OUT),
        ([(p, p.stem) for p in sorted(EXTRA.glob("*.json"))], OUT_EXTRA),
    ):
        _run(configs, out, only)
    return 0


def _run(configs: list[tuple[Path, str]], out: Path, only: set[str]) -> None:
    rows = []
    for path, name in configs:
        if only and name not in only:
            continue
        try:
            row = count(path, name)
        except Exception:  # noqa: BLE001
            row = {"model_dir": name, "status": "oracle unavailable", "note": traceback.format_exc(limit=1)[-200:]}
        print(row["model_dir"], row.get("status"), row.get("params_language_model"), row.get("note"), flush=True)
        rows.append(row)
    if not only:
        fields = ["model_dir", "model_type", "transformers_version", "params_total", "params_language_model",
                  "params_vision", "params_mtp", "status", "note"]
        with out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
