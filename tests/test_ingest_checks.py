"""The ingest warning checks, on a real warehouse file and real Dagster instances.

Failures of a run show on its raw asset as a WARN check (the run still succeeds, good items land);
unmapped provider prices show on `unmapped_provider_prices` with the suggested tracked model.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from fake_sources import OPENROUTER_PATH, SHARED_DATA, FakeSources
from pipeline_runs import live_resources

from pipelines.defs.ingest.assets import RAW_SOURCES, raw_assets
from pipelines.defs.ingest.checks import (
    UNMAPPED_KEY,
    build_failure_check,
    ingest_checks,
    unmapped_provider_prices_check,
)
from pipelines.resources import WarehouseResource
from pipelines.settings import Settings
from pipelines.warehouse import connect

pytestmark = pytest.mark.integration

TOKEN = "hf_checksTOKEN0123456789"
GATED = "meta-llama/Llama-3.2-3B"


class Live:
    """The fake server and the live-mode configuration pointed at it (a mapping read like the
    process environment; only the Hub token goes through the process environment, as an EnvVar)."""

    def __init__(self, server: FakeSources, env: dict[str, str]):
        self.server, self.env = server, env

    @property
    def resources(self) -> dict[str, object]:
        return live_resources(self.env)

    @property
    def warehouse_path(self) -> Path:
        return Settings.from_environment(self.env).warehouse_path


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with FakeSources(hf_token=TOKEN) as server:
        server.add_model("Qwen/Qwen3-0.6B", sha="1" * 40)
        server.add_model(GATED, sha="1" * 40, gated="manual")
        watchlist = tmp_path / "watchlist.yaml"
        watchlist.write_text(f"models:\n  - Qwen/Qwen3-0.6B\n  - {GATED}\n  - nobody/missing\n")
        yield Live(
            server,
            {
                "FITATLAS_SOURCE": "live",
                "FITATLAS_DATA_DIR": str(tmp_path / "data"),
                "FITATLAS_WATCHLIST": str(watchlist),
                "HF_ENDPOINT": server.base_url,
                "FITATLAS_OPENROUTER_URL": server.url(OPENROUTER_PATH),
                "FITATLAS_HTTP_TIMEOUT_S": "1",
                "FITATLAS_HTTP_MAX_ATTEMPTS": "2",
                "FITATLAS_HTTP_BACKOFF_S": "0.01",
            },
        )


def raw_asset(table: str) -> dg.AssetsDefinition:
    return next(asset for asset in raw_assets if asset.key == dg.AssetKey(["raw", table]))


def only_evaluation(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_a_runs_fetch_failures_are_a_warning_on_its_raw_asset(live: Live, monkeypatch: pytest.MonkeyPatch):
    assets = [raw_asset("hf_model_configs"), build_failure_check("hf_model_configs")]
    with dg.instance_for_test() as instance:
        first = dg.materialize(assets, instance=instance, resources=live.resources)
        assert first.success  # a warning never fails the run
        evaluation = only_evaluation(first)
        assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
        assert evaluation.check_name == "no_ingest_failures"
        failures = {f["record_key"]: f for f in evaluation.metadata["failures"].value}
        assert set(failures) == {GATED, "nobody/missing"}
        assert "gated or unauthorised (HTTP 401)" in failures[GATED]["reason"]
        assert failures[GATED]["location"] == f"{live.server.base_url}/{GATED}/resolve/{'1' * 40}/config.json"
        assert failures["nobody/missing"]["reason"].startswith("not found (HTTP 404)")
        assert evaluation.metadata["failure_count"].value == 2
        assert evaluation.metadata["batch_id"].value == first.run_id
        assert GATED in evaluation.description and "nobody/missing" in evaluation.description

        # The next run's check sees only that run's failures: with the token the gated model lands.
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        live.env["HF_TOKEN"] = TOKEN
        second = only_evaluation(dg.materialize(assets, instance=instance, resources=live.resources))
        assert [f["record_key"] for f in second.metadata["failures"].value] == ["nobody/missing"]
        live.server.add_model("nobody/missing", sha="2" * 40, directory=SHARED_DATA / "hf_configs" / "Qwen__Qwen3-0.6B")
        third = only_evaluation(dg.materialize(assets, instance=instance, resources=live.resources))
        assert third.passed is True and third.metadata["failure_count"].value == 0
        assert TOKEN not in str(second.metadata) + str(third.metadata)
    with connect(live.warehouse_path) as con:
        assert con.execute("select count(distinct batch_id) from raw.ingest_failures").fetchone() == (2,)


def test_a_clean_price_run_passes(live: Live):
    assets = [raw_asset("openrouter_models"), build_failure_check("openrouter_models")]
    with dg.instance_for_test() as instance:
        evaluation = only_evaluation(dg.materialize(assets, instance=instance, resources=live.resources))
    assert evaluation.passed is True and evaluation.metadata["failures"].value == []


UNMAPPED_ROWS = [
    ("openrouter_models_json", "qwen", "qwen/qwen3-235b-a22b-2507", "Qwen/Qwen3-235B-A22B"),
    ("litellm_prices_json", "openai", "gpt-4o", None),
    ("litellm_prices_json", "openai", "gpt-4o", None),  # another mode of the same entry: listed once
    ("openrouter_models_json", "meta-llama", "meta-llama/llama-3.3-70b-instruct", None),
]


def run_unmapped_check(instance: dg.DagsterInstance, warehouse_path: Path) -> dg.AssetCheckEvaluation:
    defs = dg.Definitions(
        resources={"warehouse": WarehouseResource(database=str(warehouse_path))},
        assets=[dg.AssetSpec(UNMAPPED_KEY)],
        asset_checks=[unmapped_provider_prices_check],
        jobs=[dg.define_asset_job("unmapped_check", selection=dg.AssetSelection.checks(unmapped_provider_prices_check))],
    )
    result = defs.resolve_job_def("unmapped_check").execute_in_process(instance=instance)
    assert result.success
    return only_evaluation(result)


def test_unmapped_provider_prices_are_listed_for_reviewers(tmp_path: Path):
    warehouse_path = tmp_path / "data" / "warehouse.duckdb"
    with connect(warehouse_path) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.unmapped_provider_prices (source varchar, provider varchar, provider_model_id varchar, "
            "mode varchar, suggested_model_id varchar)"
        )
        con.executemany("insert into marts.unmapped_provider_prices values (?, ?, ?, 'chat', ?)", UNMAPPED_ROWS)
    with dg.instance_for_test() as instance:
        evaluation = run_unmapped_check(instance, warehouse_path)
        assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
        assert evaluation.check_name == "provider_prices_all_mapped"
        listed = evaluation.metadata["unmapped"].value
        assert listed[0] == {
            "source": "openrouter_models_json", "provider": "qwen",
            "provider_model_id": "qwen/qwen3-235b-a22b-2507", "suggested_model_id": "Qwen/Qwen3-235B-A22B",
        }  # entries with a suggestion first
        assert [e["provider_model_id"] for e in listed[1:]] == ["gpt-4o", "meta-llama/llama-3.3-70b-instruct"]
        assert evaluation.metadata["unmapped_count"].value == 3 and evaluation.metadata["with_suggestion"].value == 1

        with connect(warehouse_path) as con:
            con.execute("delete from marts.unmapped_provider_prices")
        assert run_unmapped_check(instance, warehouse_path).passed is True


def test_the_checks_are_wired_non_blocking_into_the_code_location():
    from pipelines.definitions import defs

    with dg.instance_for_test():
        repository = defs().get_repository_def()
        job = defs().resolve_job_def("full_pipeline")
    expected = {dg.AssetCheckKey(dg.AssetKey(["raw", table]), "no_ingest_failures") for table in RAW_SOURCES}
    expected.add(dg.AssetCheckKey(UNMAPPED_KEY, "provider_prices_all_mapped"))
    graph = repository.asset_graph
    assert expected <= set(graph.asset_check_keys)
    assert expected <= set(job.asset_layer.asset_graph.asset_check_keys)
    assert not any(graph.get_check_spec(key).blocking for key in expected)
    assert len(ingest_checks) == len(RAW_SOURCES) + 1


def test_an_outage_fails_the_raw_asset_and_still_records_why(live: Live):
    from fake_sources import Fault

    live.server.always(OPENROUTER_PATH, Fault.status_code(503))
    assets = [raw_asset("openrouter_models"), build_failure_check("openrouter_models")]
    with dg.instance_for_test() as instance:
        result = dg.materialize(assets, instance=instance, raise_on_error=False, resources=live.resources)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "every one of 1 item(s) failed to fetch" in failure.step_failure_data.error.message
    with connect(live.warehouse_path) as con:
        reasons = con.execute("select reason from raw.ingest_failures where raw_table = 'openrouter_models'").fetchall()
    assert len(reasons) == 1 and "server error (HTTP 503)" in reasons[0][0] and "2 attempts" in reasons[0][0]
