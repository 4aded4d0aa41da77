"""The checked-in snapshot is exactly what the snapshot tool builds from shared/data, and covers enough.

The tool is a developer tool in `tools/`, run from the repo root as `make snapshot` runs it; the
installed packages never import it.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CHECKED_IN = REPO / "pipelines" / "snapshot"
TOOL = REPO / "tools" / "snapshot_tool.py"


def relative_files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    out = tmp_path_factory.mktemp("snapshot") / "snapshot"
    subprocess.run(
        [sys.executable, "-m", "tools.snapshot_tool", "--shared", str(SHARED_DATA), "--out", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return out


def load_tool() -> ModuleType:
    """The tool by file path: `tools/` is not installed, and bare `pytest` does not put the repo root on sys.path."""
    spec = importlib.util.spec_from_file_location("snapshot_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_rebuild_reproduces_checked_in_snapshot_byte_for_byte(rebuilt: Path) -> None:
    expected, actual = relative_files(CHECKED_IN), relative_files(rebuilt)
    assert sorted(actual) == sorted(expected)
    changed = [name for name in expected if expected[name] != actual[name]]
    assert not changed, f"rerun `make snapshot`; differing files: {changed[:10]}"


def test_snapshot_json_records_provenance_and_hashes() -> None:
    document = json.loads((CHECKED_IN / "SNAPSHOT.json").read_text())
    assert document["snapshot_date"] == "2026-11-27"
    listed = {entry["path"]: entry for entry in document["files"]}
    assert set(listed) == set(relative_files(CHECKED_IN)) - {"SNAPSHOT.json"}
    for path, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256((CHECKED_IN / path).read_bytes()).hexdigest(), path
        assert entry["source_repo"] and entry["source_commit"] and entry["license"], path


def test_coverage_models_gpus_price_sources_and_clouds() -> None:
    models = json.loads((CHECKED_IN / "hf" / "models.json").read_text())["models"]
    assert len(models) >= 60
    assert all((CHECKED_IN / "hf" / model["directory"] / "config.json").exists() for model in models)

    seeds = REPO / "dbt_project" / "seeds"
    with (seeds / "gpu_catalog.csv").open() as handle:
        tracked = {row["gpu_id"] for row in csv.DictReader(handle)}
    with (seeds / "gpu_source_keys.csv").open() as handle:
        with_spec_sheet = {row["gpu_id"] for row in csv.DictReader(handle)}
    assert len(tracked) >= 40 and tracked == with_spec_sheet

    prices = CHECKED_IN / "prices"
    openrouter = json.loads((prices / "openrouter_api_v1_models.json").read_text())["data"]
    litellm = json.loads((prices / "litellm_model_prices_and_context_window.json").read_text())
    genai = json.loads((prices / "genai-prices_data.json").read_text())
    assert openrouter and litellm and genai and "sample_spec" not in litellm
    providers = {entry["litellm_provider"] for entry in litellm.values()} | {provider["id"] for provider in genai}
    assert len(providers) >= 3

    clouds = [path for path in (CHECKED_IN / "gpu_rental").glob("*.csv") if path.read_text().count("\n") > 1]
    assert len(clouds) >= 2


def test_snapshot_keeps_wire_formats() -> None:
    """Trimmed, not reshaped: the source parsers read every snapshot file without failures."""
    from pipelines.defs.ingest import formats

    for path in sorted((CHECKED_IN / "spec_sheets").rglob("*.*")):
        _, parse = formats.spec_sheet_parser_for(path.name)
        parsed = parse(path.read_bytes(), str(path))
        assert parsed.records and not parsed.failures, path
    for path in sorted((CHECKED_IN / "gpu_rental").glob("*.csv")):
        parsed = formats.parse_skypilot_catalog_csv(path.read_bytes(), str(path))
        assert not parsed.failures, path


def test_price_entries_kept_are_a_superset_by_name_not_the_mapping() -> None:
    """Which model an entry prices is dbt's int_provider_prices__mapped; the tool only keeps candidates."""
    entries = load_tool().PriceEntryFilter(
        ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-8B", "someorg/Qwen3-8B"],
        [{"source": "litellm_prices_json", "provider_model_id": "fireworks_ai/llama-v3p1-8b", "model_id": "x"}],
        [{"old_model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct", "model_id": "meta-llama/Llama-3.1-8B-Instruct"}],
    )
    assert entries.keeps("litellm_prices_json", "fireworks_ai/llama-v3p1-8b")
    assert entries.keeps("openrouter_models_json", "qwen/qwen3-8b:free")
    assert entries.keeps("openrouter_models_json", "x/renamed", ["meta-llama/Meta-Llama-3.1-8B-Instruct"])
    assert entries.keeps("openrouter_models_json", "x/other-id", ["anyorg/qwen3-8b"])
    assert entries.keeps("genai_prices_json", "together/Llama-3.1-8B-Instruct-Turbo", ["Llama-3.1-8B-Instruct-Turbo"])
    assert not entries.keeps("openrouter_models_json", "x/other-id", ["anyorg/qwen3-8b-base"])
    assert not entries.keeps("openrouter_models_json", "qwen/qwen3-80b")
    assert not entries.keeps("genai_prices_json", "fireworks_ai/llama-v3p1-8b", ["llama-v3p1-8b"])


def test_installed_packages_do_not_import_the_tool() -> None:
    assert importlib.util.find_spec("pipelines.snapshot_tool") is None
    importers = []
    for path in sorted([*(REPO / "pipelines").rglob("*.py"), *(REPO / "sizing").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(name == "tools" or name.startswith("tools.") for name in names):
                importers.append(path.relative_to(REPO).as_posix())
    assert not importers
