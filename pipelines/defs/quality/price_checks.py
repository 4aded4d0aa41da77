"""Warning check that puts excluded API prices in front of reviewers (never blocking publication).

`provider_prices` `excluded_prices_reviewed`: every price the comparisons do not use, with its
reason and evidence (`provider_prices.excluded_reason` / `excluded_evidence`, see the dbt schema
YAML). Exclusion is the safe side - a suspect price never becomes the cheapest API - so the batch
still publishes; this check only shows what was set aside and why:

- *suspect* exclusions (a zero, missing or copied price, the same price for three sizes of a model
  line, a bigger model priced below a smaller sibling) mean a source is probably wrong: the check
  fails (severity WARN) and lists each with the evidence - every source's rows for that provider
  and model line, per size;
- *tier* exclusions (free, batch, flex, promo ... rates) are policy, not a data problem: they are
  counted and listed, but do not fail the check.

The whole list stays queryable in the warehouse and in the published table
(`select * from provider_prices where excluded_reason is not null`).
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import duckdb

from pipelines.resources import WarehouseResource
from pipelines.warehouse import WAREHOUSE_POOL

PROVIDER_PRICES_KEY = dg.AssetKey("provider_prices")
TIER_REASON = "non_standard_tier"
SHOWN_WITH_EVIDENCE = 50
SHOWN_TIER_ROWS = 100
ALL_EXCLUDED_SQL = "select * from marts.provider_prices where excluded_reason is not null order by excluded_reason, provider, model_id"


def excluded_prices(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every excluded price in the warehouse, suspect ones first, with its evidence decoded."""
    exists = con.execute(
        "select 1 from information_schema.tables where table_schema = 'marts' and table_name = 'provider_prices'"
    ).fetchone()
    if not exists:
        return []
    cursor = con.execute(
        f"""select model_id, provider, provider_raw, source, tier, provider_model_id,
                   input_usd_per_mtok, output_usd_per_mtok, excluded_reason, excluded_evidence
            from marts.provider_prices
            where excluded_reason is not null
            order by excluded_reason = '{TIER_REASON}', excluded_reason, provider, model_line nulls last,
                     params_total nulls last, model_id, source, tier"""
    )
    names = [column[0] for column in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        evidence = json.loads(row.pop("excluded_evidence") or "{}")
        row["detail"] = evidence.get("detail")
        row["evidence"] = evidence.get("rows", [])
    return rows


def _counts(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[key]] = counts.get(row[key], 0) + 1
    return dict(sorted(counts.items()))


@dg.asset_check(
    asset=PROVIDER_PRICES_KEY,
    name="excluded_prices_reviewed",
    blocking=False,
    pool=WAREHOUSE_POOL,
    description="API prices set aside from comparisons (WARN, never blocking: exclusion is the safe side). Fails "
    "when a price looks wrong - zero, missing or copied, the same price for 3+ sizes of a model line, a bigger "
    "model priced below a smaller sibling - and lists each with its evidence (every source's rows for that "
    "provider and line, per size); free/batch/other tiers are counted, not flagged.",
)
def excluded_prices_check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        rows = excluded_prices(con)
    suspect = [row for row in rows if row["excluded_reason"] != TIER_REASON]
    tiers = [row for row in rows if row["excluded_reason"] == TIER_REASON]
    by_reason = _counts(suspect, "excluded_reason")
    return dg.AssetCheckResult(
        passed=not suspect,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if not suspect
        else f"{len(suspect)} price(s) excluded as suspect ("
        + ", ".join(f"{count} {reason}" for reason, count in by_reason.items())
        + f"); {len(tiers)} non-standard tier price(s) excluded by policy",
        metadata={
            "excluded_count": dg.MetadataValue.int(len(rows)),
            "suspect_count": dg.MetadataValue.int(len(suspect)),
            "suspect_by_reason": dg.MetadataValue.json(by_reason),
            "tier_excluded_by_tier": dg.MetadataValue.json(_counts(tiers, "tier")),
            "suspect_prices": dg.MetadataValue.json(suspect[:SHOWN_WITH_EVIDENCE]),
            "tier_excluded_prices": dg.MetadataValue.json(
                [{k: v for k, v in row.items() if k != "evidence"} for row in tiers[:SHOWN_TIER_ROWS]]
            ),
            "all_excluded": dg.MetadataValue.text(ALL_EXCLUDED_SQL),
        },
    )


price_checks = [excluded_prices_check]
