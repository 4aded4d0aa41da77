"""The bundled snapshot as a source: the files the project's snapshot tool wrote, unit by unit.

Locations are recorded relative to the snapshot root (`snapshot/<path>`) so the same content
landed from another checkout is recognised as unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pipelines.defs.ingest import formats
from pipelines.defs.ingest.formats import Parser
from pipelines.defs.ingest.landing import FetchedFile, SourceUnit
from pipelines.defs.ingest.records import SourceFormatError
from sizing.constants import CONFIG_LIMITS


def _location(root: Path, path: Path) -> str:
    try:
        return f"snapshot/{path.relative_to(root).as_posix()}"
    except ValueError:
        return str(path)


def hf_model_units(snapshot_dir: Path) -> Iterator[SourceUnit]:
    """One unit per listed model: its directory's config.json with the optional quant config and
    index. A release listed with `architecture_from` is read from its base model's directory."""
    hf_dir = snapshot_dir / "hf"
    listing = hf_dir / "models.json"
    if listing.exists():
        entries = json.loads(listing.read_text())["models"]
    else:
        entries = [{"model_id": d.name.replace("__", "/", 1), "directory": d.name} for d in sorted(hf_dir.iterdir()) if d.is_dir()]
    for entry in entries:
        model_dir = hf_dir / entry["directory"]
        yield hf_model_unit(entry["model_id"], model_dir, _location(snapshot_dir, model_dir), entry.get("architecture_from"))


def hf_model_unit(model_id: str, model_dir: Path, location: str, architecture_from: str | None = None) -> SourceUnit:
    config_path = model_dir / "config.json"
    quant_path = model_dir / "hf_quant_config.json"
    index_path = model_dir / "model.safetensors.index.json"
    config = _read_capped(config_path) if config_path.exists() else b""
    quant = _read_capped(quant_path) if quant_path.exists() else None
    index = index_path.read_bytes() if index_path.exists() else None
    content = b"\0".join([config, quant or b"", index or b""])

    def parse(_content: bytes, _location: str) -> formats.ParsedFile:
        if not config:
            raise SourceFormatError(location, "config.json is missing", record_key=model_id)
        try:
            parsed = formats.parse_hf_model(model_id, config, location, quant_config=quant, safetensors_index=index)
        except SourceFormatError as error:  # a rejected file fails this model, named, as in live mode
            raise SourceFormatError(error.location, error.reason, record_key=model_id) from None
        if architecture_from:
            for record in parsed.records:
                record.record["architecture_from"] = architecture_from
        return parsed

    # A directory read for another id (a release tracked through its base, or the same repo listed
    # under a second spelling) is a unit of its own: the id is part of where it came from.
    if model_dir.name != model_id.replace("/", "__", 1):
        location = f"{location}#{model_id}"
    return SourceUnit("hf_model", FetchedFile(location, content), parse)


def _read_capped(path: Path) -> bytes:
    """At most one byte over the config cap: enough for the parser to reject an oversized file
    without reading all of it into memory."""
    with path.open("rb") as handle:
        return handle.read(CONFIG_LIMITS.max_config_bytes + 1)


def spec_sheet_units(spec_sheets_dir: Path, snapshot_dir: Path) -> Iterator[SourceUnit]:
    for path in sorted(p for p in spec_sheets_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
        location = _location(snapshot_dir, path)
        try:
            source, parse = formats.spec_sheet_parser_for(path.name)
        except SourceFormatError as error:
            yield SourceUnit("unrecognised_spec_sheet", FetchedFile(location, path.read_bytes()), _raiser(error.reason))
            continue
        yield SourceUnit(source, FetchedFile(location, path.read_bytes()), parse)


def _raiser(reason: str) -> Parser:
    def parse(_content: bytes, location: str) -> formats.ParsedFile:
        raise SourceFormatError(location, reason)

    return parse


def file_units(snapshot_dir: Path, pattern: str, source: str, parse: Parser) -> Iterator[SourceUnit]:
    for path in sorted(snapshot_dir.glob(pattern)):
        yield SourceUnit(source, FetchedFile(_location(snapshot_dir, path), path.read_bytes()), parse)


def snapshot_units(raw_table: str, snapshot_dir: Path, spec_sheets_dir: Path) -> Iterator[SourceUnit]:
    """Every unit of the bundled snapshot that lands in `raw.<raw_table>`."""
    if raw_table == "hf_model_configs":
        yield from hf_model_units(snapshot_dir)
    elif raw_table == "gpu_spec_sheets":
        yield from spec_sheet_units(spec_sheets_dir, snapshot_dir)
    elif raw_table == "openrouter_models":
        yield from file_units(snapshot_dir, "prices/openrouter*.json", "openrouter_models_json", formats.parse_openrouter_models_json)
    elif raw_table == "litellm_prices":
        yield from file_units(snapshot_dir, "prices/litellm*.json", "litellm_prices_json", formats.parse_litellm_prices_json)
    elif raw_table == "genai_prices":
        yield from file_units(snapshot_dir, "prices/genai*.json", "genai_prices_json", formats.parse_genai_prices_json)
    elif raw_table == "gpu_rental_prices":
        yield from file_units(snapshot_dir, "gpu_rental/*.csv", "skypilot_catalog_csv", formats.parse_skypilot_catalog_csv)
    else:
        raise ValueError(f"no snapshot source for raw table {raw_table!r}")
