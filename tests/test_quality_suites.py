"""The Great Expectations runner: failed vs errored, failing rows, declarative references, suite files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipelines.batches import AUDITED_TABLES
from pipelines.defs.quality.suites import load_suite, suite_path, validate_frame

pytestmark = pytest.mark.integration


def suite(*expectations: dict, key_columns: list[str] | None = None) -> dict:
    return {"name": "t", "key_columns": key_columns or ["gpu_id"], "expectations": list(expectations)}


def expectation(kind: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs, "meta": {"why": f"because {kind}"}}


GPUS = pd.DataFrame(
    {
        "gpu_id": ["nvidia-h100-sxm-80gb", "nvidia-h200-sxm-141gb", "bad-gpu"],
        # H100 85.9 GB and H200 151.4 GB (80 / 141 GiB datasheets); 8,000 GB is the injected error.
        "memory_gb": [85.899, 151.398, 8000.0],
    }
)


def test_failed_expectation_keeps_its_failing_rows_with_keys():
    outcome = validate_frame(
        suite(expectation("expect_column_values_to_be_between", column="memory_gb", min_value=1, max_value=2000)),
        GPUS,
        lambda q: [],
    )
    (item,) = outcome.outcomes
    assert (item.status, item.unexpected_count) == ("failed", 1)
    assert item.failing_rows == [{"gpu_id": "bad-gpu", "memory_gb": 8000.0}]
    assert item.why == "because expect_column_values_to_be_between"
    assert not outcome.passed and outcome.failed == [item] and outcome.errored == []


def test_expectation_whose_metric_raises_is_errored_not_failed():
    outcome = validate_frame(
        suite(
            expectation("expect_column_values_to_not_be_null", column="no_such_column"),
            expectation("expect_column_values_to_not_be_null", column="gpu_id"),
        ),
        GPUS,
        lambda q: [],
    )
    errored, passed = outcome.outcomes
    assert errored.status == "errored" and "no_such_column" in errored.error
    assert errored.failing_rows == [] and errored.unexpected_count == 0
    assert passed.status == "passed"
    assert outcome.failed == [] and not outcome.passed


def test_query_references_resolve_to_value_sets():
    asked: list[str] = []

    def run_query(sql: str) -> list[str]:
        asked.append(sql)
        return ["nvidia-h100-sxm-80gb", "nvidia-h200-sxm-141gb"]

    outcome = validate_frame(
        suite(expectation("expect_column_values_to_be_in_set", column="gpu_id", value_set={"$query": "select gpu_id from gpus"})),
        GPUS,
        run_query,
    )
    assert asked == ["select gpu_id from gpus"]
    assert [row["gpu_id"] for row in outcome.outcomes[0].failing_rows] == ["bad-gpu"]


def test_scalar_references_resolve_to_one_value():
    """model_metadata's row count must equal the published models' count: `$scalar` gives the one value."""
    outcome = validate_frame(
        suite(
            expectation("expect_table_row_count_to_equal", value={"$scalar": "select count(*) from models"}),
            expectation("expect_table_row_count_to_equal", value={"$scalar": "select count(*) from more_models"}),
        ),
        GPUS,
        lambda sql: [3] if sql.endswith(" models") else [4],
    )
    assert [o.status for o in outcome.outcomes] == ["passed", "failed"]  # GPUS has 3 rows


@pytest.mark.parametrize("table", AUDITED_TABLES)
def test_every_audited_table_has_a_reviewable_suite(table):
    document = load_suite(table)
    assert document["name"] == table and document["query"].strip().lower().startswith("select")
    assert json.loads(suite_path(table).read_text()) == document
    for item in document["expectations"]:
        assert item["type"].startswith("expect_") and item["meta"]["why"], item
    # The published contract's columns are required by the first expectation of every suite.
    assert document["expectations"][0]["type"] == "expect_table_columns_to_match_set"
