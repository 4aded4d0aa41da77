"""Model discovery: the Hub's model listing as candidates for live ingest (`FITATLAS_DISCOVER`).

Besides the watchlist, live mode can track the first N text-generation models of a Hub listing
(`pipelines.settings.parse_discover`: `top-downloads:2000`, `trending:500`). One listing is

    GET {HF_ENDPOINT}/api/models?pipeline_tag=text-generation&filter=transformers
        &sort=<downloads|trendingScore>&direction=-1&limit=<page size>&expand[]=sha&expand[]=downloads...

- The Hub's listing API (hub-docs `docs/hub/api.md`, "GET /api/models") is paginated: the next page
  is the `Link: <url>; rel="next"` header (GitHub's format), which already carries the query;
  huggingface_hub's `utils/_pagination.py` and huggingface.js's `list-models.ts` follow it the same
  way. `limit` is the page size (huggingface.js asks for at most 500 a page and keeps following
  `Link`); we ask for min(N, 1000) and stop as soon as N models are collected.
- `pipeline_tag` is the task filter and `filter` a tag filter; `transformers` keeps the models
  whose repos carry a transformers `config.json`, the file sizing reads (huggingface_hub
  `HfApi.list_models`: "Models can be filtered by library, language, task, tags").
- `sort=downloads` (the last 30 days' downloads) or `sort=trendingScore` (huggingface_hub maps
  `trending_score` to that wire value); `direction=-1` is descending (hub-docs; recent
  huggingface_hub no longer sends it since the Hub always sorts descending).
- `expand[]` is a whitelist: the answer carries only the named properties (plus `id` and `_id`),
  from huggingface_hub's `ExpandModelProperty_T`. `sha` is the one that makes ingest incremental:
  a candidate whose listed commit sha is the one already landed costs no further request.

Every answer is untrusted. A page that is not a JSON list, an entry that is not an object, has no
valid repo id (`is_valid_repo_id`) or commit sha, or names another task is recorded with its reason
(`SourceFormatError`: location, item, reason) and the other entries go on. Pagination stops at N
models, at the last page, at a page that fails (after the fetcher's retries), at a `Link` that
leaves the listing or points back to a page already fetched, and at a page repeating an earlier
page's content.

Candidates land append-only in `raw.hf_model_candidates` (one row per listed model, provenance of
the page it came from, source `hf_model_listing`), their failures in `raw.ingest_failures`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlencode, urljoin, urlsplit

import duckdb

from pipelines.defs.ingest import formats
from pipelines.defs.ingest.http import Fetched, HttpFetcher, NotModified
from pipelines.defs.ingest.landing import FetchedFile, LandingReport, SourceUnit, land_units, record_failure
from pipelines.defs.ingest.records import RawRecord, SourceFormatError
from pipelines.defs.ingest.watchlist import is_valid_repo_id
from pipelines.settings import Discovery

CANDIDATES_TABLE = "hf_model_candidates"
LISTING_SOURCE = "hf_model_listing"
LISTING_PATH = "/api/models"
PIPELINE_TAG = "text-generation"
LIBRARY_FILTER = "transformers"
MAX_PAGE_SIZE = 1000
# What each candidate carries (huggingface_hub `ExpandModelProperty_T`); the listing's `id` always comes.
EXPAND_FIELDS = (
    "sha", "downloads", "likes", "trendingScore", "createdAt", "lastModified",
    "library_name", "pipeline_tag", "tags", "gated", "private",
)
# Pages that add no new candidate (all duplicates or malformed) before a listing is given up.
MAX_FRUITLESS_PAGES = 3
MAX_TAGS = 500
MAX_TEXT_CHARS = 200

_LINK = re.compile(r"<([^>]*)>([^<]*)")


def listing_url(endpoint: str, discovery: Discovery, page_size: int) -> str:
    """The first page of one listing."""
    params = [
        ("pipeline_tag", PIPELINE_TAG),
        ("filter", LIBRARY_FILTER),
        ("sort", discovery.sort),
        ("direction", "-1"),
        ("limit", str(max(1, min(page_size, MAX_PAGE_SIZE)))),
        *(("expand[]", name) for name in EXPAND_FIELDS),
    ]
    return f"{endpoint.rstrip('/')}{LISTING_PATH}?{urlencode(params)}"


def next_link(header: str | None, base_url: str) -> str | None:
    """The `rel="next"` target of a `Link` header (RFC 8288), resolved against the page's URL."""
    for target, params in _LINK.findall(header or ""):
        for param in params.split(",", 1)[0].split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                return urljoin(base_url, target.strip())
    return None


@dataclass(frozen=True)
class Candidate:
    """One listed model: its repo id and commit sha, where it ranked, and the listing's fields."""

    repo: str
    sha: str
    mode: str
    rank: int
    fields: dict[str, Any]

    def as_record(self) -> dict[str, Any]:
        """The Hub's own field names (`id`, `sha`, `downloads`, ...) plus how it was discovered."""
        return {"id": self.repo, "sha": self.sha, **self.fields, "discovery": {"mode": self.mode, "rank": self.rank}}


@dataclass(frozen=True)
class ListingPage:
    """One fetched page: the candidates it added and the entries it rejected."""

    mode: str
    fetched: Fetched
    candidates: tuple[Candidate, ...]
    failures: tuple[SourceFormatError, ...]
    duplicates: int = 0  # entries skipped as already listed (the ranking moved between pages)
    entries: int = 0  # entries read from the page (those past the N wanted are not read)

    def unit(self) -> SourceUnit:
        """The page as a landing unit: its body is the provenance, its candidates the records."""
        records = [RawRecord(c.repo, c.as_record()) for c in self.candidates]
        failures = list(self.failures)

        def parse(_content: bytes, _location: str) -> formats.ParsedFile:
            return formats.ParsedFile(records, failures)

        fetched = self.fetched
        return SourceUnit(
            LISTING_SOURCE, FetchedFile(fetched.url, fetched.content, fetched.fetched_at, fetched.status, fetched.etag), parse
        )


@dataclass
class DiscoveryResult:
    """What the listings produced: pages (to land), page-level failures, and the candidates."""

    discoveries: tuple[Discovery, ...]
    pages: list[ListingPage] = field(default_factory=list)
    failures: list[SourceFormatError] = field(default_factory=list)
    duplicates: int = 0

    @property
    def candidates(self) -> list[Candidate]:
        return [candidate for page in self.pages for candidate in page.candidates]

    @property
    def entry_failures(self) -> list[SourceFormatError]:
        return [failure for page in self.pages for failure in page.failures]

    @property
    def all_failures(self) -> list[SourceFormatError]:
        return [*self.entry_failures, *self.failures]

    def repos(self) -> list[str]:
        """Discovered repo ids, each once: listing by listing, in the Hub's order."""
        return list(dict.fromkeys(candidate.repo for candidate in self.candidates))

    def shas(self) -> dict[str, str]:
        """Repo -> the commit sha its listing gave (the first listing that named it)."""
        shas: dict[str, str] = {}
        for candidate in self.candidates:
            shas.setdefault(candidate.repo, candidate.sha)
        return shas

    def collected(self, mode: str) -> int:
        return sum(1 for candidate in self.candidates if candidate.mode == mode)

    def summary(self) -> str:
        listings = ", ".join(f"{d} -> {self.collected(d.mode)}" for d in self.discoveries)
        return (
            f"discovery: {listings} candidate(s) over {len(self.pages)} page(s); {len(self.repos())} distinct model(s), "
            f"{len(self.entry_failures)} rejected entr{'y' if len(self.entry_failures) == 1 else 'ies'}, "
            f"{len(self.failures)} listing failure(s)"
        )

    def as_metadata(self) -> dict[str, int]:
        return {
            "discovered_models": len(self.repos()),
            "discovery_pages": len(self.pages),
            "discovery_failures": len(self.all_failures),
        }

    def units(self) -> list[SourceUnit]:
        return [page.unit() for page in self.pages]


def discover_models(
    fetcher: HttpFetcher, endpoint: str, discoveries: tuple[Discovery, ...] | list[Discovery], *, page_size: int = MAX_PAGE_SIZE
) -> DiscoveryResult:
    """Follow each listing's pages until it gave its N models (never raises on what the Hub says)."""
    result = DiscoveryResult(tuple(discoveries))
    for discovery in discoveries:
        _follow_listing(fetcher, endpoint, discovery, min(page_size, discovery.count), result)
    return result


def _follow_listing(fetcher: HttpFetcher, endpoint: str, discovery: Discovery, page_size: int, result: DiscoveryResult) -> None:
    start = listing_url(endpoint, discovery, page_size)
    listing = urlsplit(start)
    seen_repos: set[str] = set()
    seen_urls: set[str] = set()
    seen_bodies: dict[str, str] = {}
    url: str | None = start
    fruitless = entries_before = 0
    while url is not None and len(seen_repos) < discovery.count:
        seen_urls.add(url)
        outcome = fetcher.get(url)
        if not isinstance(outcome, Fetched):
            reason = "unexpected 304 Not Modified to an unconditional request" if isinstance(outcome, NotModified) else outcome.reason
            result.failures.append(SourceFormatError(url, reason, record_key=str(discovery)))
            return
        digest = hashlib.sha256(outcome.content).hexdigest()
        if digest in seen_bodies:
            result.failures.append(
                SourceFormatError(url, f"page repeats the content of {seen_bodies[digest]}; listing stopped", record_key=str(discovery))
            )
            return
        seen_bodies[digest] = url
        page = parse_listing_page(
            outcome, mode=discovery.mode, wanted=discovery.count - len(seen_repos), seen=seen_repos,
            first_rank=len(seen_repos) + 1, first_position=entries_before + 1,
        )
        entries_before += page.entries
        result.duplicates += page.duplicates
        result.pages.append(page)
        seen_repos.update(candidate.repo for candidate in page.candidates)
        fruitless = 0 if page.candidates else fruitless + 1
        if len(seen_repos) >= discovery.count:
            return
        following = next_link(outcome.link, url)
        problem = _next_link_problem(following, listing, seen_urls, fruitless)
        if problem:
            result.failures.append(SourceFormatError(url, problem, record_key=str(discovery)))
            return
        url = following


def _next_link_problem(following: str | None, listing: SplitResult, seen_urls: set[str], fruitless: int) -> str | None:
    """Why the next page must not be fetched (None: fetch it, or the listing simply ended)."""
    if following is None:
        return None
    target = urlsplit(following)
    if (target.scheme, target.netloc.lower(), target.path) != (listing.scheme, listing.netloc.lower(), listing.path):
        return f"the next-page Link leaves the model listing ({following[:500]}); listing stopped"
    if following in seen_urls:
        return f"the next-page Link points back to a page already fetched ({following[:500]}); listing stopped"
    if fruitless >= MAX_FRUITLESS_PAGES:
        return f"{fruitless} pages in a row added no new model; listing stopped"
    return None


def parse_listing_page(
    outcome: Fetched, *, mode: str, wanted: int, seen: set[str], first_rank: int = 1, first_position: int = 1
) -> ListingPage:
    """The page's new candidates (at most `wanted`, skipping repos `seen` already) and rejected
    entries, each named by its position in the whole listing (`first_position` is this page's first)."""
    location = outcome.url
    try:
        entries = _json_list(outcome.content, location)
    except SourceFormatError as error:
        return ListingPage(mode, outcome, (), (SourceFormatError(location, error.reason, record_key=f"{mode} page"),))
    candidates: list[Candidate] = []
    failures: list[SourceFormatError] = []
    taken: set[str] = set()
    duplicates = read = 0
    for position, entry in enumerate(entries, start=first_position):
        if len(candidates) >= wanted:
            break
        read += 1
        try:
            candidate = parse_entry(entry, location, mode=mode, rank=first_rank + len(candidates), position=position)
        except SourceFormatError as error:
            failures.append(error)
            continue
        if candidate.repo in seen or candidate.repo in taken:
            duplicates += 1  # the ranking moved between pages: the model was listed already
            continue
        taken.add(candidate.repo)
        candidates.append(candidate)
    return ListingPage(mode, outcome, tuple(candidates), tuple(failures), duplicates, read)


def _json_list(content: bytes, location: str) -> list[Any]:
    document = formats.read_json(content, location, "a model listing")
    if not isinstance(document, list):
        raise SourceFormatError(location, f"expected a JSON list of models, got {type(document).__name__}")
    return document


def parse_entry(entry: Any, location: str, *, mode: str, rank: int, position: int) -> Candidate:
    """One listing entry as a candidate; SourceFormatError (keyed by the entry) when it is unusable."""
    item = f"{mode} entry {position}"
    if not isinstance(entry, dict):
        raise SourceFormatError(location, f"entry is a JSON {type(entry).__name__}, not an object", record_key=item)
    repo = entry.get("id")
    if isinstance(repo, str):
        item = repr(repo)[:120] if not is_valid_repo_id(repo) else repo
    if not is_valid_repo_id(repo):
        raise SourceFormatError(location, "`id` is not a valid Hugging Face repo id (owner/name)", record_key=item)
    sha = entry.get("sha")
    if not isinstance(sha, str) or not sha.isalnum() or len(sha) > 64:
        raise SourceFormatError(location, "entry has no commit `sha`", record_key=item)
    task = entry.get("pipeline_tag")
    if task is not None and task != PIPELINE_TAG:
        raise SourceFormatError(location, f"listed with pipeline_tag {str(task)[:60]!r}, not {PIPELINE_TAG!r}", record_key=item)
    return Candidate(repo, sha, mode, rank, _kept_fields(entry))


def _kept_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """The expanded fields that are well typed (the others are left out, never guessed)."""
    kept: dict[str, Any] = {}
    for name in ("downloads", "likes", "trendingScore"):
        value = entry.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            kept[name] = value
    for name in ("createdAt", "lastModified", "library_name", "pipeline_tag"):
        value = entry.get(name)
        if isinstance(value, str) and len(value) <= MAX_TEXT_CHARS:
            kept[name] = value
    gated = entry.get("gated")
    if isinstance(gated, bool) or gated in ("auto", "manual"):
        kept["gated"] = gated
    if isinstance(entry.get("private"), bool):
        kept["private"] = entry["private"]
    tags = entry.get("tags")
    if isinstance(tags, list):
        kept["tags"] = list(dict.fromkeys(t for t in tags if isinstance(t, str) and t and len(t) <= MAX_TEXT_CHARS))[:MAX_TAGS]
    return kept


def land_candidates(con: duckdb.DuckDBPyConnection, *, batch_id: str, result: DiscoveryResult) -> LandingReport:
    """Append the listed pages' candidates to `raw.hf_model_candidates` (a page whose content is
    the one landed last from its URL lands nothing again); record rejected entries and listing
    failures in `raw.ingest_failures`."""
    report = land_units(con, raw_table=CANDIDATES_TABLE, batch_id=batch_id, units=result.units())
    con.execute("begin")
    for failure in result.failures:
        record_failure(con, batch_id=batch_id, raw_table=CANDIDATES_TABLE, source=LISTING_SOURCE, failure=failure)
    con.execute("commit")
    report.failures.extend(result.failures)
    return report
