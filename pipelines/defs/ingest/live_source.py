"""The live sources as landing units: the same `SourceUnit`s the snapshot yields, fetched over HTTP.

What is already landed is not fetched again. A Hub model whose commit sha equals the last landed
one costs one model-info call; a price file whose ETag is unchanged costs one 304. The ETag of a
URL is remembered (in `raw.http_cache`) only once its content is in the raw table, so a crash or a
bad body between fetch and landing can never make a later run skip data it never landed.

Every failure to fetch an item is returned as a `SourceFormatError` (location, reason, item) for
`raw.ingest_failures`; the other items go on.

With discovery on (`FITATLAS_DISCOVER`, `pipelines.defs.ingest.discovery`), the Hub models are the
watchlist's plus the listed candidates (each repo once, watchlist first). A candidate whose listed
commit sha is the one already landed costs no request beyond its share of the listing pages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from pipelines.defs.ingest import formats
from pipelines.defs.ingest.discovery import DiscoveryResult, discover_models, land_candidates
from pipelines.defs.ingest.formats import Parser
from pipelines.defs.ingest.http import Fetched, FetchFailed, FetchRequest, HttpFetcher, NotModified
from pipelines.defs.ingest.landing import (
    NEWEST_LANDING_FIRST,
    FetchedFile,
    LandingReport,
    SourceUnit,
    land_units,
    record_failure,
)
from pipelines.defs.ingest.live_config import LiveConfig
from pipelines.defs.ingest.records import RawRecord, SourceFormatError
from pipelines.defs.ingest.snapshot_source import spec_sheet_units
from pipelines.defs.ingest.watchlist import is_valid_repo_id, read_watchlist
from pipelines.settings import Discovery

HF_OPTIONAL_FILES = ("hf_quant_config.json", "model.safetensors.index.json")

HTTP_CACHE_DDL = """
create table if not exists raw.http_cache (
    url varchar primary key,
    etag varchar not null,
    content_sha256 varchar not null,
    recorded_at timestamp not null
)
"""

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class PriceSource:
    source: str
    parse: Parser


PRICE_SOURCES: dict[str, PriceSource] = {
    "openrouter_models": PriceSource("openrouter_models_json", formats.parse_openrouter_models_json),
    "litellm_prices": PriceSource("litellm_prices_json", formats.parse_litellm_prices_json),
    "genai_prices": PriceSource("genai_prices_json", formats.parse_genai_prices_json),
    "gpu_rental_prices": PriceSource("skypilot_catalog_csv", formats.parse_skypilot_catalog_csv),
}


FETCH_FAILURE_SOURCES = {"hf_model_configs": "hf_model", "gpu_spec_sheets": "spec_sheet_directory"}


@dataclass
class LiveBatch:
    """What one live pass produced: units to land, fetch failures, and what was skipped as unchanged."""

    units: list[SourceUnit] = field(default_factory=list)
    failures: list[SourceFormatError] = field(default_factory=list)
    items_checked: int = 0
    items_unchanged: int = 0
    retries: int = 0
    quota_pauses: int = 0
    etags: dict[str, str] = field(default_factory=dict)
    discovery: DiscoveryResult | None = None  # the Hub listings' candidates (discovery on)

    def as_metadata(self) -> dict[str, int]:
        return {
            "items_checked": self.items_checked,
            "items_unchanged_at_source": self.items_unchanged,
            "fetch_failures": len(self.failures),
            "http_retries": self.retries,
            "http_quota_pauses": self.quota_pauses,
            **(self.discovery.as_metadata() if self.discovery is not None else {}),
        }


@dataclass(frozen=True)
class ModelInfo:
    """The fields of the Hub's `/api/models/{repo}` answer FitAtlas keeps next to the config.

    `safetensors_parameters` is the Hub's `safetensors.parameters`: stored elements per safetensors
    dtype over the repo's weight files (e.g. `{"BF16": 1_050_673_152, "F8_E4M3": 6_979_321_856}`),
    the evidence `sizing.quantization.precision_from_safetensors` reads the checkpoint precision from.
    `created_at` is the Hub's `createdAt` (when the repo was created: the model page's release date)
    and `tags` its `tags` (strings only); both None when the answer has no well-typed value, and
    then left out of the record.
    """

    sha: str
    last_modified: str | None
    gated: Any
    license: str | None
    safetensors_total: int | None
    siblings: frozenset[str] | None
    safetensors_parameters: dict[str, int] | None = None
    created_at: str | None = None
    tags: tuple[str, ...] | None = None

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "sha": self.sha,
            "lastModified": self.last_modified,
            "gated": self.gated,
            "license": self.license,
            "safetensors_total": self.safetensors_total,
            "safetensors_parameters": self.safetensors_parameters,
        }
        if self.created_at is not None:
            record["createdAt"] = self.created_at
        if self.tags is not None:
            record["tags"] = list(self.tags)
        return record


def live_units(
    raw_table: str,
    con: duckdb.DuckDBPyConnection,
    config: LiveConfig,
    fetcher: HttpFetcher,
    *,
    spec_sheets_dir: Path,
    snapshot_dir: Path,
    watchlist_path: Path,
    items: Sequence[str] = (),
    force: bool = False,
    progress: Progress | None = None,
    discover: Sequence[Discovery] = (),
) -> LiveBatch:
    """Fetch what changed for `raw.<raw_table>`. `items` narrows a run (repo ids, or spec-sheet
    paths relative to the directory); `force` ignores remembered shas and ETags (a full refresh
    still lands only content that differs, as landing dedupes on content); `discover` adds the
    Hub listings' models to the watchlist's."""
    if raw_table == "hf_model_configs":
        return hf_model_batch(
            con, config, fetcher, watchlist_path=watchlist_path, items=items, force=force, progress=progress, discover=discover
        )
    if raw_table == "gpu_spec_sheets":
        return spec_sheet_batch(spec_sheets_dir, snapshot_dir, items=items)
    if raw_table in PRICE_SOURCES:
        return price_batch(raw_table, con, config, fetcher, force=force, progress=progress)
    raise ValueError(f"no live source for raw table {raw_table!r}")


def land_live_batch(
    con: duckdb.DuckDBPyConnection, *, raw_table: str, batch_id: str, batch: LiveBatch, progress: Progress | None = None
) -> LandingReport:
    """Land the batch's units, record its fetch failures beside the parse failures, then remember
    the ETags of what is now landed. Discovered candidates land first, in their own table."""
    if batch.discovery is not None:
        land_candidates(con, batch_id=batch_id, result=batch.discovery)
    report = land_units(con, raw_table=raw_table, batch_id=batch_id, units=with_progress(batch.units, progress))
    source = FETCH_FAILURE_SOURCES.get(raw_table) or PRICE_SOURCES[raw_table].source
    con.execute("begin")
    for failure in batch.failures:
        record_failure(con, batch_id=batch_id, raw_table=raw_table, source=source, failure=failure)
    remember_landed_etags(con, raw_table, batch)
    con.execute("commit")
    report.failures.extend(batch.failures)
    return report


def with_progress(units: Sequence[SourceUnit], progress: Progress | None) -> Iterator[SourceUnit]:
    """Yield the units, reporting "n of N" as each one is taken for landing."""
    for position, unit in enumerate(units, start=1):
        if progress:
            progress(position, len(units), unit.fetched.location)
        yield unit


def spec_sheet_batch(spec_sheets_dir: Path, snapshot_dir: Path, items: Sequence[str] = ()) -> LiveBatch:
    """Spec sheets are a landing directory in both modes; `items` limits to the sheets a sensor saw change."""
    wanted = {Path(item).as_posix() for item in items}
    units = [
        unit
        for unit in spec_sheet_units(spec_sheets_dir, snapshot_dir)
        if not wanted or _relative_sheet_path(unit.fetched.location, spec_sheets_dir, snapshot_dir) in wanted
    ]
    return LiveBatch(units=units, items_checked=len(units))


def _relative_sheet_path(location: str, spec_sheets_dir: Path, snapshot_dir: Path) -> str:
    path = snapshot_dir / location.removeprefix("snapshot/") if location.startswith("snapshot/") else Path(location)
    try:
        return path.resolve().relative_to(spec_sheets_dir.resolve()).as_posix()
    except ValueError:
        return location


# --- prices -----------------------------------------------------------------------------------


def price_urls(raw_table: str, config: LiveConfig) -> tuple[str, ...]:
    return {
        "openrouter_models": config.openrouter_urls,
        "litellm_prices": config.litellm_urls,
        "genai_prices": config.genai_prices_urls,
        "gpu_rental_prices": config.gpu_prices_urls,
    }[raw_table]


def price_batch(
    raw_table: str,
    con: duckdb.DuckDBPyConnection,
    config: LiveConfig,
    fetcher: HttpFetcher,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> LiveBatch:
    source = PRICE_SOURCES[raw_table]
    urls = price_urls(raw_table, config)
    known = {} if force else remembered_etags(con, urls)
    retries_before, pauses_before = fetcher.retries, fetcher.quota_pauses
    outcomes = fetcher.get_many([FetchRequest(url, known.get(url)) for url in urls])
    batch = LiveBatch(items_checked=len(urls))
    for position, outcome in enumerate(outcomes, start=1):
        if isinstance(outcome, Fetched):
            batch.units.append(SourceUnit(source.source, FetchedFile(outcome.url, outcome.content, outcome.fetched_at, outcome.status, outcome.etag), source.parse))
            if outcome.etag:
                batch.etags[outcome.url] = outcome.etag
        elif isinstance(outcome, NotModified):
            batch.items_unchanged += 1
        else:
            batch.failures.append(SourceFormatError(outcome.url, outcome.reason))
        if progress:
            progress(position, len(urls), outcome.url)
    batch.retries = fetcher.retries - retries_before
    batch.quota_pauses = fetcher.quota_pauses - pauses_before
    return batch


def remembered_etags(con: duckdb.DuckDBPyConnection, urls: Iterable[str]) -> dict[str, str]:
    con.execute("create schema if not exists raw")
    con.execute(HTTP_CACHE_DDL)
    urls = list(urls)
    if not urls:
        return {}
    rows = con.execute("select url, etag from raw.http_cache where list_contains(?, url)", [urls]).fetchall()
    return dict(rows)


def remember_landed_etags(con: duckdb.DuckDBPyConnection, raw_table: str, batch: LiveBatch) -> int:
    """Remember each fetched URL's ETag, but only if its exact content is now in `raw.<raw_table>`:
    a body that failed to parse must be fetched again next time, not answered with a 304."""
    con.execute(HTTP_CACHE_DDL)
    remembered = 0
    for unit in batch.units:
        etag = batch.etags.get(unit.fetched.location)
        if not etag:
            continue
        landed = con.execute(
            f"select 1 from raw.{raw_table} where location = ? and content_sha256 = ? limit 1",
            [unit.fetched.location, unit.fetched.sha256],
        ).fetchone()
        if landed:
            con.execute(
                "insert or replace into raw.http_cache values (?, ?, ?, ?)",
                [unit.fetched.location, etag, unit.fetched.sha256, datetime.now(UTC).replace(tzinfo=None)],
            )
            remembered += 1
    return remembered


# --- Hugging Face models ------------------------------------------------------------------------


def hf_model_batch(
    con: duckdb.DuckDBPyConnection,
    config: LiveConfig,
    fetcher: HttpFetcher,
    *,
    watchlist_path: Path,
    items: Sequence[str] = (),
    force: bool = False,
    progress: Progress | None = None,
    discover: Sequence[Discovery] = (),
) -> LiveBatch:
    """One unit per tracked model (the watchlist's, plus the discovered ones) whose Hub commit sha
    differs from the last landed one."""
    batch = LiveBatch()
    retries_before, pauses_before = fetcher.retries, fetcher.quota_pauses
    watchlist = read_watchlist(watchlist_path)
    for entry, reason in watchlist.rejected:
        batch.failures.append(SourceFormatError(str(watchlist_path), reason, record_key=entry))
    models = watchlist.models
    listed: dict[str, str] = {}
    if discover:
        batch.discovery = discover_models(fetcher, config.hf_endpoint, tuple(discover))
        listed = batch.discovery.shas()
        models = list(dict.fromkeys([*models, *batch.discovery.repos()]))
    if items:
        for item in items:
            if not is_valid_repo_id(item):
                batch.failures.append(SourceFormatError("run config", "not a valid Hugging Face repo id", record_key=repr(item)[:120]))
        models = [item for item in dict.fromkeys(items) if is_valid_repo_id(item)]
    landed = {} if force else last_landed_shas(con)
    batch.items_checked = len(models)

    def fetch(repo: str) -> SourceUnit | SourceFormatError | None:
        if repo in listed and listed[repo] == landed.get(repo):
            return None  # the listing already says its landed commit is current
        return fetch_hf_model(fetcher, config.hf_endpoint, repo, landed.get(repo))

    done = 0
    with ThreadPoolExecutor(max_workers=config.policy.concurrency, thread_name_prefix="fitatlas-hf") as pool:
        for repo, result in zip(models, pool.map(fetch, models), strict=True):
            done += 1
            if isinstance(result, SourceUnit):
                batch.units.append(result)
            elif isinstance(result, SourceFormatError):
                batch.failures.append(result)
            else:
                batch.items_unchanged += 1
            if progress:
                progress(done, len(models), repo)
    batch.retries = fetcher.retries - retries_before
    batch.quota_pauses = fetcher.quota_pauses - pauses_before
    return batch


def last_landed_shas(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The Hub sha of the newest landed record of each model (snapshot records have none)."""
    exists = con.execute(
        "select 1 from information_schema.tables where table_schema = 'raw' and table_name = 'hf_model_configs'"
    ).fetchone()
    if not exists:
        return {}
    rows = con.execute(
        f"""
        select record_key, record->>'$.model_info.sha'
        from (
            select record_key, record,
                   row_number() over (partition by record_key order by {NEWEST_LANDING_FIRST}) as recency
            from raw.hf_model_configs
            where source = 'hf_model'
        )
        where recency = 1 and (record->>'$.model_info.sha') is not null
        """
    ).fetchall()
    return dict(rows)


def fetch_hf_model(fetcher: HttpFetcher, endpoint: str, repo: str, landed_sha: str | None) -> SourceUnit | SourceFormatError | None:
    """The model's unit, its failure, or None when its sha is the one already landed."""
    if not is_valid_repo_id(repo):
        return SourceFormatError("watchlist", "not a valid Hugging Face repo id", record_key=repr(repo)[:120])
    info_url = f"{endpoint}/api/models/{repo}"
    info_outcome = fetcher.get(info_url)
    if not isinstance(info_outcome, Fetched):
        return _failure(info_outcome, repo)
    try:
        info = parse_model_info(info_outcome.content, info_url)
    except SourceFormatError as error:
        return SourceFormatError(error.location, error.reason, record_key=repo)
    if info.sha == landed_sha:
        return None
    base = f"{endpoint}/{repo}/resolve/{info.sha}"
    config_outcome = fetcher.get(f"{base}/config.json")
    if not isinstance(config_outcome, Fetched):
        return _failure(config_outcome, repo)
    optional: dict[str, bytes | None] = {}
    for name in HF_OPTIONAL_FILES:
        if info.siblings is not None and name not in info.siblings:
            optional[name] = None
            continue
        outcome = fetcher.get(f"{base}/{name}")
        if isinstance(outcome, Fetched):
            optional[name] = outcome.content
        elif isinstance(outcome, FetchFailed) and outcome.status == 404:
            optional[name] = None
        else:
            return _failure(outcome, repo)
    return hf_model_unit(repo, base, info, config_outcome, optional)


def hf_model_unit(
    repo: str, location: str, info: ModelInfo, config: Fetched, optional: dict[str, bytes | None]
) -> SourceUnit:
    quant = optional.get("hf_quant_config.json")
    index = optional.get("model.safetensors.index.json")
    model_info = info.as_record()
    content = b"\0".join(
        [config.content, quant or b"", index or b"", json.dumps(model_info, sort_keys=True).encode()]
    )

    def parse(_content: bytes, _location: str) -> formats.ParsedFile:
        try:
            parsed = formats.parse_hf_model(repo, config.content, location, quant_config=quant, safetensors_index=index)
        except SourceFormatError as error:
            raise SourceFormatError(error.location, error.reason, record_key=repo) from None
        records = [RawRecord(r.record_key, {**r.record, "model_info": model_info}) for r in parsed.records]
        return formats.ParsedFile(records, parsed.failures)

    return SourceUnit("hf_model", FetchedFile(location, content, config.fetched_at, config.status, config.etag), parse)


def parse_model_info(content: bytes, location: str) -> ModelInfo:
    """Read the Hub's model info JSON; raise `SourceFormatError` for anything else (an HTML page...)."""
    document = formats.read_json(content, location, "model info JSON")
    if not isinstance(document, dict):
        raise SourceFormatError(location, f"expected a JSON object, got {type(document).__name__}")
    sha = document.get("sha")
    if not isinstance(sha, str) or not sha.isalnum():
        raise SourceFormatError(location, "model info has no commit `sha`")
    card = document.get("cardData") if isinstance(document.get("cardData"), dict) else {}
    safetensors = document.get("safetensors") if isinstance(document.get("safetensors"), dict) else {}
    total = safetensors.get("total")
    parameters = safetensors.get("parameters")
    siblings = document.get("siblings")
    return ModelInfo(
        sha=sha,
        last_modified=document.get("lastModified"),
        gated=document.get("gated", False),
        license=card.get("license") if isinstance(card.get("license"), str) else None,
        safetensors_total=total if isinstance(total, int) else None,
        safetensors_parameters=_dtype_counts(parameters),
        created_at=_iso_timestamp(document.get("createdAt")),
        tags=_tags(document.get("tags")),
        siblings=(
            frozenset(s["rfilename"] for s in siblings if isinstance(s, dict) and isinstance(s.get("rfilename"), str))
            if isinstance(siblings, list)
            else None
        ),
    )


def _dtype_counts(value: Any) -> dict[str, int] | None:
    """`safetensors.parameters` as {dtype: count}, keeping only well-formed entries; None if none."""
    if not isinstance(value, dict):
        return None
    counts = {
        str(dtype): count
        for dtype, count in value.items()
        if isinstance(dtype, str) and isinstance(count, int) and not isinstance(count, bool) and count >= 0
    }
    return dict(sorted(counts.items())) or None


MAX_TAGS = 500
MAX_TAG_CHARS = 200


def _iso_timestamp(value: Any) -> str | None:
    """The Hub's `createdAt` (ISO 8601, e.g. "2024-07-16T13:56:53.000Z") when it parses as one; else None."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value


def _tags(value: Any) -> tuple[str, ...] | None:
    """The Hub's `tags`: the non-empty strings of a list (order kept, duplicates dropped, each at most
    200 characters, at most 500 of them); None when it is not a list."""
    if not isinstance(value, list):
        return None
    kept = dict.fromkeys(tag for tag in value if isinstance(tag, str) and tag and len(tag) <= MAX_TAG_CHARS)
    return tuple(list(kept)[:MAX_TAGS])


def _failure(outcome: NotModified | FetchFailed, repo: str) -> SourceFormatError:
    if isinstance(outcome, NotModified):
        return SourceFormatError(outcome.url, "unexpected 304 Not Modified to an unconditional request", record_key=repo)
    return SourceFormatError(outcome.url, outcome.reason, record_key=repo)
