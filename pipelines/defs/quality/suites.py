"""Run the Great Expectations suites in `expectations/` against one batch of an audited table.

A suite file is a reviewable JSON document: the GE 1.x suite (`expectations`: type, kwargs, meta)
plus `query`, the SQL that reads the table under audit from the warehouse (it may add derived
columns, e.g. a ratio that exposes sparse-vs-dense TFLOPS), and `key_columns`, shown with every
failing row. A kwarg given as `{"$query": "select ..."}` is resolved to that query's first column
(e.g. the model ids a price may refer to), and `{"$scalar": "select ..."}` to its one value (e.g. a
row count another table must equal), so referential rules stay declarative.

GE validates a pandas frame (its SQL path through duckdb-engine fails silently) and is imported
lazily: it costs seconds and hundreds of MB. An expectation whose metric raised is *errored* — a
fault of the check, not evidence of bad data — and is kept apart from *failed*.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.settings import EXPECTATIONS_DIR

FAILING_ROWS_KEPT = 1000


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation_type: str
    kwargs: dict[str, Any]
    why: str
    status: str  # passed / failed / errored
    unexpected_count: int = 0
    failing_rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def label(self) -> str:
        column = self.kwargs.get("column") or self.kwargs.get("column_list") or (
            f"{self.kwargs.get('column_A')} vs {self.kwargs.get('column_B')}" if "column_A" in self.kwargs else ""
        )
        return f"{self.expectation_type}({column})"


@dataclass(frozen=True)
class SuiteOutcome:
    table: str
    rows_validated: int
    outcomes: list[ExpectationOutcome]

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def errored(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.status == "errored"]

    @property
    def passed(self) -> bool:
        return not self.failed and not self.errored


def suite_path(table: str) -> Path:
    return EXPECTATIONS_DIR / f"{table}.json"


def load_suite(table: str) -> dict[str, Any]:
    return json.loads(suite_path(table).read_text())


def resolve_kwargs(kwargs: dict[str, Any], run_query: Callable[[str], list[Any]]) -> dict[str, Any]:
    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "$query" in value:
            return run_query(value["$query"])
        if isinstance(value, dict) and "$scalar" in value:
            column = run_query(value["$scalar"])
            if len(column) != 1:
                raise ValueError(f"$scalar query {value['$scalar']!r} gave {len(column)} rows, not one")
            return column[0]
        return value

    return {name: resolve(value) for name, value in kwargs.items()}


def validate_frame(suite: dict[str, Any], frame: pd.DataFrame, run_query: Callable[[str], list[Any]]) -> SuiteOutcome:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    declared = suite["expectations"]
    configs = [
        ExpectationConfiguration(
            type=item["type"], kwargs=resolve_kwargs(item["kwargs"], run_query), meta=item.get("meta", {})
        )
        for item in declared
    ]
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("audit")
        .add_dataframe_asset(suite["name"])
        .add_batch_definition_whole_dataframe("batch")
    )
    gx_suite = context.suites.add(
        gx.ExpectationSuite(name=suite["name"], expectations=[c.to_domain_obj() for c in configs])
    )
    validation = gx.ValidationDefinition(data=batch, suite=gx_suite, name=f"{suite['name']}-batch")
    result = validation.run(batch_parameters={"dataframe": frame}, result_format={"result_format": "COMPLETE"})
    key_columns = [c for c in suite.get("key_columns", []) if c in frame.columns]
    declared_ids = [expectation.id for expectation in gx_suite.expectations]
    outcomes = [
        _outcome(item, res, frame, key_columns)
        for item, res in zip(declared, _in_declared_order(declared_ids, result.results), strict=True)
    ]
    return SuiteOutcome(table=suite["name"], rows_validated=len(frame), outcomes=outcomes)


def _in_declared_order(declared_ids: list[str], results: list[Any]) -> list[Any]:
    """GE may reorder results; match them back to the declared expectations by expectation id."""
    by_id = {r.expectation_config.id: r for r in results}
    missing = [i for i in declared_ids if i not in by_id]
    if missing:
        raise RuntimeError(f"Great Expectations returned no result for expectation ids {missing}")
    return [by_id[i] for i in declared_ids]


def _outcome(item: dict[str, Any], res: Any, frame: pd.DataFrame, key_columns: list[str]) -> ExpectationOutcome:
    why = item.get("meta", {}).get("why", "")
    error = _error_message(res.exception_info)
    if error:
        return ExpectationOutcome(item["type"], item["kwargs"], why, "errored", error=error)
    if res.success:
        return ExpectationOutcome(item["type"], item["kwargs"], why, "passed")
    details = res.result or {}
    indexes = details.get("unexpected_index_list") or []
    failing = _failing_rows(frame, indexes, item["kwargs"], key_columns)
    count = details.get("unexpected_count")
    if count is None:
        count = len(indexes) or 1
    return ExpectationOutcome(item["type"], item["kwargs"], why, "failed", int(count), failing)


def _error_message(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for nested in info.values():
        if isinstance(nested, dict) and nested.get("raised_exception"):
            return str(nested.get("exception_message"))
    return None


def _failing_rows(frame: pd.DataFrame, indexes: list[Any], kwargs: dict[str, Any], key_columns: list[str]) -> list[dict[str, Any]]:
    involved = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    involved += list(kwargs.get("column_list", []))
    columns = list(dict.fromkeys([*key_columns, *[c for c in involved if c in frame.columns]]))
    rows = frame.loc[[i for i in indexes[:FAILING_ROWS_KEPT] if i in frame.index], columns or list(frame.columns)]
    return json.loads(rows.to_json(orient="records", date_format="iso"))
