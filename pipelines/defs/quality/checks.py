"""Blocking asset checks: each audited table of a batch is validated against its suite.

The checks read the frozen batch file, so what is validated is exactly what would be published.
Results and all failing rows are written into that batch file (`check_results`, `failing_rows`) for
reviewers to query, a sample goes to the check's metadata in the Dagster UI, and the batch's
counts go to the review ledger. An errored expectation fails the check execution itself, so it is
never mistaken for bad data — and it still holds the batch.
"""

import json
import shlex
from datetime import UTC, datetime

import dagster as dg
import duckdb

from pipelines.batches import AUDITED_TABLES, batch_path
from pipelines.defs.quality.suites import SuiteOutcome, load_suite, validate_frame
from pipelines.publishing import exclusive_lock
from pipelines.resources import FitAtlasResource
from pipelines.review_ledger import record_check_outcome
from pipelines.settings import Settings
from pipelines.warehouse import WAREHOUSE_POOL, sql_string

METADATA_SAMPLE_ROWS = 10

AUDIT_DDL = (
    """create table if not exists check_results (
        table_name varchar, expectation varchar, status varchar, unexpected_count bigint,
        why varchar, error varchar, rows_validated bigint, evaluated_at timestamp)""",
    """create table if not exists failing_rows (table_name varchar, expectation varchar, row_data json)""",
)


def audited_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["audited", table])


def record_outcome(con: duckdb.DuckDBPyConnection, outcome: SuiteOutcome) -> None:
    for statement in AUDIT_DDL:
        con.execute(statement)
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute("begin")
    con.execute("delete from check_results where table_name = ?", [outcome.table])
    con.execute("delete from failing_rows where table_name = ?", [outcome.table])
    for item in outcome.outcomes:
        con.execute(
            "insert into check_results values (?, ?, ?, ?, ?, ?, ?, ?)",
            [outcome.table, item.label, item.status, item.unexpected_count, item.why, item.error,
             outcome.rows_validated, now],
        )
        if item.failing_rows:
            con.executemany(
                "insert into failing_rows values (?, ?, ?)",
                [(outcome.table, item.label, json.dumps(row)) for row in item.failing_rows],
            )
    con.execute("commit")


def _attach_previous_publication(con: duckdb.DuckDBPyConnection, settings: Settings) -> bool:
    if not settings.published_path.exists():
        return False
    con.execute(f"attach {sql_string(settings.published_path)} as published (read_only)")
    return True


def batch_lock_path(settings: Settings, batch_id: str):
    """The flock that serialises writers of one batch file: DuckDB lets one process open a file for
    writing, and the multiprocess executor of daemon-launched runs audits tables in parallel steps."""
    path = batch_path(settings, batch_id)
    return path.with_name(path.name + ".lock")


def audit_table(settings: Settings, batch_id: str, table: str) -> SuiteOutcome:
    """Validate one table of a frozen batch and store the outcome in the batch file and ledger."""
    suite = load_suite(table)
    with exclusive_lock(batch_lock_path(settings, batch_id)):
        return _audit_locked(settings, batch_id, table, suite)


def _audit_locked(settings: Settings, batch_id: str, table: str, suite: dict) -> SuiteOutcome:
    con = duckdb.connect(str(batch_path(settings, batch_id)))
    try:
        has_previous = _attach_previous_publication(con, settings)
        query = suite["query_with_previous"] if has_previous and "query_with_previous" in suite else suite["query"]
        expectations = [
            e for e in suite["expectations"] if has_previous or not e.get("meta", {}).get("requires_previous")
        ]
        frame = con.sql(query).df()
        outcome = validate_frame({**suite, "expectations": expectations}, frame, lambda q: [r[0] for r in con.execute(q).fetchall()])
        if has_previous:
            con.execute("detach published")
        record_outcome(con, outcome)
        totals = con.execute(
            """select count(*) filter (where status = 'passed'), count(*) filter (where status = 'failed'),
                      count(*) filter (where status = 'errored'), count(distinct table_name) from check_results"""
        ).fetchone()
        failed_checks = [
            {"table": t, "expectation": e, "status": s, "unexpected_count": n}
            for t, e, s, n in con.execute(
                "select table_name, expectation, status, unexpected_count from check_results where status <> 'passed' order by 1, 2"
            ).fetchall()
        ]
    finally:
        con.close()
    passed, failed, errored, tables_done = totals
    record_check_outcome(
        settings, batch_id=batch_id, passed=passed, failed=failed, errored=errored,
        failed_checks=failed_checks, complete=tables_done == len(AUDITED_TABLES),
    )
    return outcome


def _metadata(outcome: SuiteOutcome, batch_id: str, settings: Settings) -> dict[str, dg.MetadataValue]:
    sample = [
        {"expectation": item.label, **row}
        for item in outcome.failed
        for row in item.failing_rows[:METADATA_SAMPLE_ROWS]
    ][: METADATA_SAMPLE_ROWS * 3]
    return {
        "batch_id": dg.MetadataValue.text(batch_id),
        "rows_validated": dg.MetadataValue.int(outcome.rows_validated),
        "expectations": dg.MetadataValue.int(len(outcome.outcomes)),
        "failed_expectations": dg.MetadataValue.json(
            [{"expectation": i.label, "unexpected_count": i.unexpected_count, "why": i.why} for i in outcome.failed]
        ),
        "failing_rows_sample": dg.MetadataValue.json(sample),
        "all_failing_rows": dg.MetadataValue.text(
            f"duckdb {shlex.quote(str(batch_path(settings, batch_id)))} \"select * from failing_rows where table_name = '{outcome.table}'\""
        ),
    }


def build_suite_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=audited_key(table),
        name="expectations",
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=f"Great Expectations suite expectations/{table}.json on this batch's `{table}`.",
    )
    def _check(context: dg.AssetCheckExecutionContext, fitatlas: FitAtlasResource) -> dg.AssetCheckResult:
        settings = fitatlas.settings
        batch_id = context.run.run_id
        outcome = audit_table(settings, batch_id, table)
        if outcome.errored:
            errors = "; ".join(f"{i.label}: {i.error}" for i in outcome.errored)
            raise dg.Failure(
                description=f"{table}: {len(outcome.errored)} expectation(s) errored (a fault of the check, not of the data): {errors}",
                metadata=_metadata(outcome, batch_id, settings),
            )
        return dg.AssetCheckResult(
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=_metadata(outcome, batch_id, settings),
            description=None if outcome.passed else f"{len(outcome.failed)} expectation(s) failed on {table}",
        )

    return _check


suite_checks = [build_suite_check(table) for table in AUDITED_TABLES]
