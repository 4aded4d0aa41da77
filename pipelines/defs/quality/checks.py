"""Blocking asset checks: each audited table of a batch is validated against its suite.

Failing rows go to `audit.failing_rows` (all of them, for reviewers to query) and a sample goes to
the check's metadata in the Dagster UI. An errored expectation fails the check execution itself, so
it is never mistaken for bad data — and it still blocks publication.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import dagster as dg
import duckdb

from pipelines.defs.quality.suites import SuiteOutcome, load_suite, validate_frame
from pipelines.settings import load_settings
from pipelines.warehouse import WAREHOUSE_POOL, connect

AUDITED_TABLES: tuple[str, ...] = ("models", "gpus", "provider_prices", "fit_matrix", "recommendations")
METADATA_SAMPLE_ROWS = 10

AUDIT_DDL = (
    "create schema if not exists audit",
    """create table if not exists audit.check_results (
        batch_id varchar, table_name varchar, expectation varchar, status varchar,
        unexpected_count bigint, why varchar, error varchar, rows_validated bigint, evaluated_at timestamp)""",
    """create table if not exists audit.failing_rows (
        batch_id varchar, table_name varchar, expectation varchar, row_data json)""",
)


def record_outcome(con: duckdb.DuckDBPyConnection, batch_id: str, outcome: SuiteOutcome) -> None:
    for statement in AUDIT_DDL:
        con.execute(statement)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    con.execute("begin")
    con.execute("delete from audit.check_results where batch_id = ? and table_name = ?", [batch_id, outcome.table])
    con.execute("delete from audit.failing_rows where batch_id = ? and table_name = ?", [batch_id, outcome.table])
    for item in outcome.outcomes:
        con.execute(
            "insert into audit.check_results values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [batch_id, outcome.table, item.label, item.status, item.unexpected_count, item.why, item.error,
             outcome.rows_validated, now],
        )
        if item.failing_rows:
            con.executemany(
                "insert into audit.failing_rows values (?, ?, ?, ?)",
                [(batch_id, outcome.table, item.label, json.dumps(row)) for row in item.failing_rows],
            )
    con.execute("commit")


def audit_table(table: str, batch_id: str) -> SuiteOutcome:
    suite = load_suite(table)
    with connect(load_settings().warehouse_path) as con:
        frame = con.sql(suite["query"]).df()
        outcome = validate_frame(suite, frame, lambda q: [row[0] for row in con.execute(q).fetchall()])
        record_outcome(con, batch_id, outcome)
    return outcome


def _metadata(outcome: SuiteOutcome) -> dict[str, dg.MetadataValue]:
    sample = [
        {"expectation": item.label, **row}
        for item in outcome.failed
        for row in item.failing_rows[:METADATA_SAMPLE_ROWS]
    ][: METADATA_SAMPLE_ROWS * 3]
    return {
        "rows_validated": dg.MetadataValue.int(outcome.rows_validated),
        "expectations": dg.MetadataValue.int(len(outcome.outcomes)),
        "failed_expectations": dg.MetadataValue.json(
            [{"expectation": i.label, "unexpected_count": i.unexpected_count, "why": i.why} for i in outcome.failed]
        ),
        "failing_rows_sample": dg.MetadataValue.json(sample),
        "all_failing_rows": dg.MetadataValue.text(
            "select * from audit.failing_rows where batch_id = '<run id>' and table_name = '" + outcome.table + "'"
        ),
    }


def build_suite_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(table),
        name=f"{table}_expectations",
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=f"Great Expectations suite expectations/{table}.json on this batch of `{table}`.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        outcome = audit_table(table, context.run.run_id)
        if outcome.errored:
            errors = "; ".join(f"{i.label}: {i.error}" for i in outcome.errored)
            raise dg.Failure(
                description=f"{table}: {len(outcome.errored)} expectation(s) errored (a fault of the check, not of the data): {errors}",
                metadata=_metadata(outcome),
            )
        return dg.AssetCheckResult(
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=_metadata(outcome),
            description=None if outcome.passed else f"{len(outcome.failed)} expectation(s) failed on {table}",
        )

    return _check


suite_checks = [build_suite_check(table) for table in AUDITED_TABLES]
