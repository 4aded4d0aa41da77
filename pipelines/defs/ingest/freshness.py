"""Sources degrade, they don't block: every attempt at a source is logged, a dead source's last
landed data is carried forward and marked stale, and only a kind no source of which ever landed
stops the run.

- **Attempts.** Each raw asset execution appends one row to `raw.source_attempts`: when it started,
  how many items it checked, how many the source answered (content now in the raw table, whether
  it landed in this run or earlier, or a 304 Not Modified), how many failed, and the outcome:
  `answered`, `failed` (items were checked and none was answered: connection refused, retries
  exhausted, every body malformed, ...) or `nothing_to_check` (no item configured).
- **Carry forward.** A failed attempt lands nothing, and staging reads the newest landed batch per
  source and record (macro `latest_raw_records`), so the source's last landed rows flow on with
  their original `fetched_at` (e.g. `provider_prices.observed_at`). The raw asset still
  materializes (with `stale`, `stale_since`, `last_landed_at` and `last_error` in its metadata, and
  a `fitatlas/stale_sources` run tag) so the run goes on and publishes. Its data version moves
  when the source turns stale (and when it recovers, or its error changes), never for another failed
  attempt alike: downstream re-runs once to publish the stale state, not on every failing run.
- **Stale.** A source is stale while its latest attempt failed; `stale_since` is the first failed
  attempt after its last answered one. The WARN check `source_fresh` on each raw asset and the dbt
  mart `source_freshness` (published) say so.
- **Freshness policy.** Each source is also an external asset `source/<raw table>` carrying a
  `dg.FreshnessPolicy`; the raw asset reports its materialization only when the source answered.
  A source that has not answered for longer than its schedule (plus slack) shows WARN, then FAIL
  in the Dagster UI, however many runs carried its data forward meanwhile.
- **The only failure.** When an attempt failed, the source never landed anything, and no other
  source of its kind (prices, models, gpu_specs, rentals) ever landed either, there is nothing to
  carry forward: the raw asset fails, naming the kind and each source's failures. A sibling
  source that is part of the same run and has not been attempted yet decides instead (it may
  still land), so the outcome does not depend on the order the raw assets run in.
"""


from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import pyarrow as pa

from pipelines.defs.ingest.landing import LandingReport, SourceUnit
from pipelines.defs.ingest.records import SourceFormatError
from pipelines.resources import WarehouseResource
from pipelines.warehouse import WAREHOUSE_POOL

# raw table -> kind. A kind is what the catalogue cannot do without: prices (API token prices),
# models (Hub configs), gpu_specs (spec sheets), rentals (GPU instance prices).
SOURCE_KINDS: dict[str, str] = {
    "hf_model_configs": "models",
    "gpu_spec_sheets": "gpu_specs",
    "openrouter_models": "prices",
    "litellm_prices": "prices",
    "genai_prices": "prices",
    "gpu_rental_prices": "rentals",
}
KINDS: tuple[str, ...] = ("prices", "models", "gpu_specs", "rentals")

# How often each source is expected to answer: prices and rentals nightly (`nightly_prices`), the
# Hub and the spec-sheet directory at least weekly (`weekly_full_refresh`; their sensors run only on
# change). WARN once one expected refresh is missed, FAIL after two, with an hour of slack for runs.
SCHEDULE_INTERVALS: dict[str, timedelta] = {
    "prices": timedelta(days=1),
    "rentals": timedelta(days=1),
    "models": timedelta(days=7),
    "gpu_specs": timedelta(days=7),
}
SLACK = timedelta(hours=1)

ANSWERED, FAILED, NOTHING = "answered", "failed", "nothing_to_check"
ERRORS_KEPT = 5
STALE_TAG = "fitatlas/stale_sources"

SOURCE_ATTEMPTS_DDL = """
create table if not exists raw.source_attempts (
    batch_id varchar not null,
    raw_table varchar not null,
    kind varchar not null,
    source_mode varchar not null,
    attempted_at timestamp not null,
    finished_at timestamp not null,
    items_checked integer not null,
    items_answered integer not null,
    items_failed integer not null,
    records_landed bigint not null,
    outcome varchar not null,
    error varchar
)
"""


def source_key(raw_table: str) -> dg.AssetKey:
    return dg.AssetKey(["source", raw_table])


def freshness_policy(raw_table: str) -> dg.FreshnessPolicy:
    interval = SCHEDULE_INTERVALS[SOURCE_KINDS[raw_table]]
    return dg.FreshnessPolicy.time_window(fail_window=2 * interval + SLACK, warn_window=interval + SLACK)


@dataclass(frozen=True)
class Attempt:
    raw_table: str
    batch_id: str
    attempted_at: datetime
    items_checked: int
    items_answered: int
    items_failed: int
    records_landed: int
    outcome: str
    error: str | None

    @property
    def failed(self) -> bool:
        return self.outcome == FAILED


@dataclass(frozen=True)
class SourceState:
    raw_table: str
    kind: str
    landed_rows: int
    last_landed_at: datetime | None
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    stale: bool
    stale_since: datetime | None
    failed_attempts: int
    last_error: str | None

    def as_metadata(self) -> dict[str, dg.MetadataValue]:
        def ts(value: datetime | None) -> dg.MetadataValue:
            return dg.MetadataValue.text(value.isoformat() if value else "never")

        return {
            "kind": dg.MetadataValue.text(self.kind),
            "stale": dg.MetadataValue.bool(self.stale),
            "stale_since": ts(self.stale_since),
            "last_success_at": ts(self.last_success_at),
            "last_landed_at": ts(self.last_landed_at),
            "failed_attempts": dg.MetadataValue.int(self.failed_attempts),
            "last_error": dg.MetadataValue.text(self.last_error or ""),
        }


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select 1 from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
        ).fetchone()
    )


def ensure_attempts_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    con.execute(SOURCE_ATTEMPTS_DDL)


def _answered_units(con: duckdb.DuckDBPyConnection, raw_table: str, units: Sequence[SourceUnit]) -> set[str]:
    """Locations whose exact fetched content is in the raw table (landed now or in an earlier run)."""
    if not units or not _table_exists(con, "raw", raw_table):
        return set()
    attempted = pa.table(
        {"location": [u.fetched.location for u in units], "sha": [u.fetched.sha256 for u in units]}
    )
    con.register("_attempted_units", attempted)
    try:
        rows = con.execute(
            f"select distinct a.location from _attempted_units a where exists (select 1 from raw.{raw_table} r "
            "where r.location = a.location and r.content_sha256 = a.sha)"
        ).fetchall()
    finally:
        con.unregister("_attempted_units")
    return {row[0] for row in rows}


def summarise_failures(failures: Iterable[SourceFormatError], limit: int = ERRORS_KEPT) -> str | None:
    """`item: reason` of the first distinct failures, and how many more."""
    lines = list(dict.fromkeys(f"{f.record_key or f.location}: {f.reason}" for f in failures))
    if not lines:
        return None
    more = len(lines) - limit
    return "; ".join(lines[:limit]) + (f"; and {more} more" if more > 0 else "")


def record_attempt(
    con: duckdb.DuckDBPyConnection,
    *,
    raw_table: str,
    batch_id: str,
    source_mode: str,
    attempted_at: datetime,
    units: Sequence[SourceUnit],
    items_checked: int,
    items_unchanged: int,
    fetch_failures: Sequence[SourceFormatError],
    report: LandingReport,
) -> Attempt:
    """Classify one raw asset execution and append it to `raw.source_attempts`."""
    ensure_attempts_table(con)
    answered_locations = _answered_units(con, raw_table, units)
    failed_locations = {f.location for f in report.failures}
    units_failed = sum(
        1 for u in units if u.fetched.location not in answered_locations and u.fetched.location in failed_locations
    )
    checked = max(items_checked, len(units) + items_unchanged)
    answered = len(answered_locations) + items_unchanged
    failed = len(fetch_failures) + units_failed
    if checked == 0 and not failed:
        outcome = NOTHING
    elif answered == 0 and failed > 0:
        outcome = FAILED
    else:
        outcome = ANSWERED  # answered, possibly with some items failing (the WARN check lists those)
    error = summarise_failures([*fetch_failures, *report.failures]) if outcome == FAILED else None
    attempt = Attempt(raw_table, batch_id, attempted_at, checked, answered, failed, report.records_landed, outcome, error)
    con.execute(
        "insert into raw.source_attempts values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            batch_id, raw_table, SOURCE_KINDS[raw_table], source_mode, attempted_at, _utcnow(),
            checked, answered, failed, report.records_landed, outcome, error,
        ],
    )
    return attempt


def source_state(con: duckdb.DuckDBPyConnection, raw_table: str) -> SourceState:
    """What the warehouse knows of one source: its landed data and its attempts."""
    landed_rows, last_landed_at = 0, None
    if _table_exists(con, "raw", raw_table):
        landed_rows, last_landed_at = con.execute(f"select count(*), max(fetched_at) from raw.{raw_table}").fetchone()
    attempts: list[tuple] = []
    if _table_exists(con, "raw", "source_attempts"):
        attempts = con.execute(
            "select attempted_at, outcome, error from raw.source_attempts where raw_table = ? and outcome <> ? "
            "order by attempted_at desc, finished_at desc",
            [raw_table, NOTHING],
        ).fetchall()
    streak = []
    for attempted_at, outcome, error in attempts:
        if outcome != FAILED:
            break
        streak.append((attempted_at, error))
    answered = [a for a, outcome, _e in attempts if outcome == ANSWERED]
    return SourceState(
        raw_table=raw_table,
        kind=SOURCE_KINDS[raw_table],
        landed_rows=landed_rows,
        last_landed_at=last_landed_at,
        # A warehouse older than the attempt log: its newest landing is the last known success.
        last_success_at=answered[0] if answered else last_landed_at,
        last_attempt_at=attempts[0][0] if attempts else None,
        stale=bool(streak),
        stale_since=streak[-1][0] if streak else None,
        failed_attempts=len(streak),
        last_error=streak[0][1] if streak else None,
    )


def attempted_in_run(con: duckdb.DuckDBPyConnection, batch_id: str) -> set[str]:
    if not _table_exists(con, "raw", "source_attempts"):
        return set()
    return {row[0] for row in con.execute("select distinct raw_table from raw.source_attempts where batch_id = ?", [batch_id]).fetchall()}


def siblings(raw_table: str) -> list[str]:
    kind = SOURCE_KINDS[raw_table]
    return [table for table, k in SOURCE_KINDS.items() if k == kind and table != raw_table]


def kind_gate(
    con: duckdb.DuckDBPyConnection, raw_table: str, attempt: Attempt, run_tables: set[str] | None
) -> str | None:
    """After a failed attempt of a source that never landed: None when the run may go on (another
    source of the kind has landed, or one in this run is still to be tried), else the reason."""
    kind = SOURCE_KINDS[raw_table]
    others = [source_state(con, table) for table in siblings(raw_table)]
    if any(state.landed_rows for state in others):
        return None
    tried = attempted_in_run(con, attempt.batch_id)
    pending = [s.raw_table for s in others if (run_tables is None or s.raw_table in run_tables) and s.raw_table not in tried]
    if pending:
        return None
    failures = [f"{raw_table}: {attempt.error or 'no item answered'}"] + [
        f"{s.raw_table}: {s.last_error or ('never attempted' if s.last_attempt_at is None else 'landed nothing')}" for s in others
    ]
    sources = ", ".join([raw_table, *siblings(raw_table)])
    return (
        f"raw.{raw_table}: every one of {attempt.items_checked} item(s) failed to fetch, and no {kind} source has "
        f"ever landed ({sources}): there is nothing to carry forward, so the run stops. Failures: " + " | ".join(failures)
    )


def stale_tag_value(states: Iterable[SourceState]) -> str:
    return ", ".join(
        f"{s.raw_table} since {s.stale_since:%Y-%m-%dT%H:%M:%SZ}" for s in states if s.stale and s.stale_since
    )


# --- Dagster definitions -----------------------------------------------------------------------


def build_source_spec(raw_table: str, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        source_key(raw_table),
        description=f"The upstream source of raw.{raw_table}, materialized whenever it answered a fetch "
        f"(new content landed, or confirmed unchanged). {description} Its freshness policy fails when "
        "it has not answered for two scheduled refreshes, however many runs carried its data forward.",
        group_name="ingest",
        kinds={"source"},
        freshness_policy=freshness_policy(raw_table),
    )


def build_freshness_check(raw_table: str, asset_key: dg.AssetKey) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key,
        name="source_fresh",
        blocking=False,
        pool=WAREHOUSE_POOL,
        description=f"The latest attempt at raw.{raw_table}'s source was answered (WARN: a dead source's last "
        "landed data is carried forward and published, marked stale in source_freshness).",
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as con:
            state = source_state(con, raw_table)
        description = None
        if state.stale:
            carried = (
                f"its data landed at {state.last_landed_at:%Y-%m-%d %H:%M:%S} UTC is carried forward"
                if state.last_landed_at
                else "it never landed: nothing to carry forward"
            )
            description = (
                f"raw.{raw_table} is stale since {state.stale_since:%Y-%m-%d %H:%M:%S} UTC "
                f"({state.failed_attempts} failed attempt(s)); {carried}. Last error: {state.last_error}"
            )
        return dg.AssetCheckResult(
            passed=not state.stale,
            severity=dg.AssetCheckSeverity.WARN,
            description=description,
            metadata=state.as_metadata(),
        )

    return _check


def source_materialization(raw_table: str, attempt: Attempt) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(
        asset_key=source_key(raw_table),
        description=f"the source answered {attempt.items_answered} of {attempt.items_checked} item(s)",
        metadata={
            "items_checked": attempt.items_checked,
            "items_answered": attempt.items_answered,
            "items_failed": attempt.items_failed,
            "records_landed": attempt.records_landed,
        },
    )


def failure_metadata(state: SourceState) -> dict[str, object]:
    return {**state.as_metadata(), "carried_forward_rows": dg.MetadataValue.int(state.landed_rows)}
