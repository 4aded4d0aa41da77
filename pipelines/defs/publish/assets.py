"""The publish step: runs only when every blocking check of the batch passed."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.quality.checks import AUDITED_TABLES
from pipelines.publishing import publish_batch
from pipelines.settings import load_settings
from pipelines.warehouse import WAREHOUSE_POOL, connect


def check_counts(batch_id: str) -> tuple[int, int]:
    """Expectations passed and not passed (failed or errored) for a batch, from audit.check_results."""
    with connect(load_settings().warehouse_path) as con:
        passed, not_passed = con.execute(
            "select count(*) filter (where status = 'passed'), count(*) filter (where status <> 'passed') "
            "from audit.check_results where batch_id = ?",
            [batch_id],
        ).fetchone()
    return int(passed), int(not_passed)


@dg.asset(
    deps=[dg.AssetKey(table) for table in AUDITED_TABLES],
    group_name="publish",
    kinds={"duckdb", "parquet"},
    pool=WAREHOUSE_POOL,
    description="Copies the audited tables into data/published.duckdb (atomically, via os.replace) "
    "and data/published/current/*.parquet. Blocking checks upstream keep a failing batch out.",
)
def publication(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    batch_id = context.run.run_id
    passed, not_passed = check_counts(batch_id)
    if not_passed:
        raise dg.Failure(f"batch {batch_id} has {not_passed} expectation(s) not passed; it needs a reviewer")
    settings = load_settings()
    published = publish_batch(
        settings,
        batch_id=batch_id,
        approved_by="fitatlas:auto",
        approval_kind="auto",
        checks_passed=passed,
        checks_failed=0,
    )
    context.log.info(f"published {published.publication_id}: {published.row_counts}")
    return dg.MaterializeResult(
        metadata={
            "publication_id": published.publication_id,
            "content_sha256": published.content_sha256,
            "path": dg.MetadataValue.path(str(settings.published_path)),
            **{f"rows_{table}": count for table, count in published.row_counts.items()},
        }
    )
