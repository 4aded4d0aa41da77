"""Append-only landing of fetched files into raw tables, with provenance and without losing anything.

A file whose content equals the latest landing from the same source and location (same sha256) is
skipped, so a rerun over unchanged sources lands nothing; content that changes back to an earlier
version lands again, since it is news relative to what staging reads. A file that cannot be parsed, or a bad item inside a good
file, is written to `raw.ingest_failures` with the reason; the good items still land.

Provenance per row: location (URL or path), fetched_at, content_sha256 and content_bytes of the
whole fetched file, and for HTTP fetches `http_status` and `etag` (added as nullable columns to
tables created before they existed; null for files read from disk). A Hub model's commit sha is in
its record (`model_info.sha`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.defs.ingest.formats import ParsedFile, Parser
from pipelines.defs.ingest.records import SourceFormatError
from pipelines.warehouse import ensure_raw_table

FAILURES_DDL = """
create table if not exists raw.ingest_failures (
    batch_id varchar not null,
    raw_table varchar not null,
    source varchar not null,
    location varchar not null,
    record_key varchar,
    reason varchar not null,
    recorded_at timestamp not null
)
"""


# HTTP provenance, added after the raw tables' first release: nullable, appended to existing tables.
PROVENANCE_COLUMNS = (("http_status", "integer"), ("etag", "varchar"))
RAW_COLUMNS = "batch_id, source, location, fetched_at, content_sha256, content_bytes, record_key, record, http_status, etag"


def ensure_provenance_columns(con: duckdb.DuckDBPyConnection, raw_table: str) -> None:
    present = {
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns where table_schema = 'raw' and table_name = ?", [raw_table]
        ).fetchall()
    }
    for name, sql_type in PROVENANCE_COLUMNS:
        if name not in present:
            con.execute(f"alter table raw.{raw_table} add column {name} {sql_type}")


@dataclass(frozen=True)
class FetchedFile:
    """One unit fetched from a source: a file on disk or an HTTP response body."""

    location: str
    content: bytes
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    http_status: int | None = None
    etag: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class SourceUnit:
    """A fetched file with the source name and parser that read it."""

    source: str
    fetched: FetchedFile
    parse: Parser


@dataclass
class LandingReport:
    raw_table: str
    files_seen: int = 0
    files_unchanged: int = 0
    records_landed: int = 0
    bytes_landed: int = 0
    failures: list[SourceFormatError] = field(default_factory=list)

    def as_metadata(self) -> dict[str, object]:
        return {
            "files_seen": self.files_seen,
            "files_unchanged": self.files_unchanged,
            "records_landed": self.records_landed,
            "bytes_landed": self.bytes_landed,
            "failures": len(self.failures),
        }


NEWEST_LANDING_FIRST = "fetched_at desc, batch_id desc"
"""Which landing of a record is the current one: the newest fetch, ties broken by batch id. dbt's
`latest_raw_records` macro orders by the same clause (tests/test_formats.py holds them together)."""


def land_units(
    con: duckdb.DuckDBPyConnection,
    *,
    raw_table: str,
    batch_id: str,
    units: Iterable[SourceUnit],
) -> LandingReport:
    """Parse and append each new unit's records to `raw.<raw_table>`; record every failure."""
    ensure_raw_table(con, raw_table)
    ensure_provenance_columns(con, raw_table)
    con.execute(FAILURES_DDL)
    report = LandingReport(raw_table=raw_table)
    for unit in units:
        source, fetched = unit.source, unit.fetched
        report.files_seen += 1
        latest = con.execute(
            f"select content_sha256 from raw.{raw_table} where source = ? and location = ? "
            f"order by {NEWEST_LANDING_FIRST} limit 1",
            [source, fetched.location],
        ).fetchone()
        if latest and latest[0] == fetched.sha256:
            report.files_unchanged += 1
            continue
        try:
            parsed = unit.parse(fetched.content, fetched.location)
        except SourceFormatError as error:
            parsed = ParsedFile(records=[], failures=[error])
        rows = pa.table(
            {
                "record_key": [record.record_key for record in parsed.records],
                "record": [
                    json.dumps(_json_safe(record.record), sort_keys=True, allow_nan=False, default=str)
                    for record in parsed.records
                ],
            }
        )
        con.execute("begin")
        if rows.num_rows:
            con.register("_landing", rows)
            con.execute(
                f"insert into raw.{raw_table} ({RAW_COLUMNS}) select ?, ?, ?, ?, ?, ?, record_key, record::json, ?, ? from _landing",
                [
                    batch_id, source, fetched.location, fetched.fetched_at.replace(tzinfo=None), fetched.sha256,
                    len(fetched.content), fetched.http_status, fetched.etag,
                ],
            )
            con.unregister("_landing")
        for failure in parsed.failures:
            record_failure(con, batch_id=batch_id, raw_table=raw_table, source=source, failure=failure)
        con.execute("commit")
        report.records_landed += rows.num_rows
        report.bytes_landed += len(fetched.content) if rows.num_rows else 0
        report.failures.extend(parsed.failures)
    return report


def _json_safe(value: Any) -> Any:
    """Python's JSON reader accepts Infinity and NaN (real configs use them, e.g. Nemotron-H's
    time_step_limit); DuckDB's JSON type does not. They land as the strings "Infinity", "NaN"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def record_failure(
    con: duckdb.DuckDBPyConnection, *, batch_id: str, raw_table: str, source: str, failure: SourceFormatError
) -> None:
    con.execute(FAILURES_DDL)
    con.execute(
        "insert into raw.ingest_failures values (?, ?, ?, ?, ?, ?, ?)",
        [
            batch_id,
            raw_table,
            source,
            failure.location,
            failure.record_key,
            failure.reason,
            datetime.now(UTC).replace(tzinfo=None),
        ],
    )
