"""Issue 9, "sources degrade, they don't block": a dead source's last landed data is carried forward
(stale), the run still publishes what the other sources bring, and only a kind no source of which
ever landed stops the run.

Real parts throughout: the loopback fake Hub and price server (tests/fake_sources.py), a port with
nothing listening for the dead source (connection refused), the whole `full_pipeline` job in-process
on a persistent Dagster instance, and the published DuckDB file BI reads.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from duckdb_rows import query
from fake_sources import (
    LITELLM_PATH,
    SHARED_DATA,
    FakeSources,
    litellm_subset,
    live_mode_env,
)
from pipeline_runs import live_resources, run_live

from pipelines.defs.ingest import freshness
from pipelines.defs.ingest.assets import raw_assets

pytestmark = pytest.mark.integration

SHA = "d" * 40
OLD = "meta-llama/Llama-3.1-8B-Instruct"  # priced on OpenRouter; landed by the first run
NEW = "Qwen/Qwen3-0.6B"  # added to the watchlist while OpenRouter is down
PRICE_TABLES = ("openrouter_models", "litellm_prices", "genai_prices")


def closed_port_url(path: str = "/api/v1/models") -> str:
    """An address on loopback where nothing listens: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def write_watchlist(path: Path, models: list[str]) -> None:
    path.write_text("models:\n" + "".join(f"  - {json.dumps(m)}\n" for m in models))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Run 1: every source up, the watchlist holds OLD. Run 2: OpenRouter refuses connections and the
    Hub serves NEW, just added to the watchlist. One Dagster instance for both, like a deployment."""
    tmp = tmp_path_factory.mktemp("degradation")
    watchlist = tmp / "watchlist.yaml"
    write_watchlist(watchlist, [OLD])
    data_dir = tmp / "data"
    with FakeSources() as server, dg.instance_for_test() as instance:
        server.add_model(OLD, sha=SHA, directory=SHARED_DATA / "hf_configs" / "meta-llama__Meta-Llama-3.1-8B")
        server.add_model(NEW, sha=SHA)
        server.bodies[LITELLM_PATH] = litellm_subset(200)
        env = live_mode_env(server, data_dir, watchlist, ("lambda",))
        first = run_live(env, instance)
        assert first.success, [e.message for e in first.all_events if e.is_failure]
        first_prices = query(
            data_dir / "published.duckdb",
            "select model_id, provider, tier, observed_at from provider_prices where source = 'openrouter_models_json' order by all",
        )

        write_watchlist(watchlist, [OLD, NEW])
        second = run_live({**env, "FITATLAS_OPENROUTER_URL": closed_port_url()}, instance)
        yield {
            "server": server, "data_dir": data_dir, "instance": instance,
            "first": first, "second": second, "first_prices": first_prices,
        }


def test_the_run_with_a_dead_source_succeeds_and_publishes_the_new_model(two_runs):
    second = two_runs["second"]
    assert second.success, [e.message for e in second.all_events if e.is_failure]
    published = two_runs["data_dir"] / "published.duckdb"
    assert {row[0] for row in query(published, "select model_id from models")} == {OLD, NEW}
    assert {row[0] for row in query(published, "select distinct model_id from recommendations")} == {OLD, NEW}
    publications = query(published, "select batch_id from publications order by published_at")
    assert [row[0] for row in publications] == [two_runs["first"].run_id, second.run_id]


def test_the_dead_sources_prices_are_carried_forward_with_their_original_time(two_runs):
    first_prices = two_runs["first_prices"]
    assert first_prices and OLD in {row[0] for row in first_prices}
    published = two_runs["data_dir"] / "published.duckdb"
    after = query(
        published,
        "select model_id, provider, tier, observed_at from provider_prices where source = 'openrouter_models_json' "
        "and model_id = any(?) order by all",
        [[OLD]],
    )
    assert after == [row for row in first_prices if row[0] == OLD]  # same rows, same observed_at
    landed_at = query(two_runs["data_dir"] / "warehouse.duckdb", "select max(fetched_at) from raw.openrouter_models")[0][0]
    assert {row[3] for row in after} == {landed_at}
    # nothing new landed from OpenRouter in run 2: the connection was refused, and why is recorded
    reasons = query(
        two_runs["data_dir"] / "warehouse.duckdb",
        "select reason from raw.ingest_failures where batch_id = ? and raw_table = 'openrouter_models'",
        [two_runs["second"].run_id],
    )
    assert len(reasons) == 1 and "refused" in reasons[0][0].lower(), reasons


def test_source_freshness_marks_the_dead_source_stale_since_the_failed_attempt(two_runs):
    data_dir, second = two_runs["data_dir"], two_runs["second"]
    rows = query(
        data_dir / "published.duckdb",
        "select source, kind, stale, stale_since, last_landed_at, last_error from source_freshness order by source",
    )
    by_source = {row[0]: row[1:] for row in rows}
    assert set(by_source) == set(freshness.SOURCE_KINDS)
    kind, stale, stale_since, last_landed_at, last_error = by_source["openrouter_models"]
    assert (kind, stale) == ("prices", True)
    assert "refused" in last_error.lower()
    attempted_at = query(
        data_dir / "warehouse.duckdb",
        "select attempted_at from raw.source_attempts where batch_id = ? and raw_table = 'openrouter_models'",
        [second.run_id],
    )[0][0]
    assert stale_since == attempted_at and last_landed_at < stale_since
    for source in set(freshness.SOURCE_KINDS) - {"openrouter_models"}:
        assert by_source[source][1] is False and by_source[source][2] is None, source
    # the warehouse mart keeps the per-run times the publication leaves out
    warehouse = query(
        data_dir / "warehouse.duckdb",
        "select last_success_at, last_attempt_at, failed_attempts from marts.source_freshness where source = 'openrouter_models'",
    )[0]
    assert warehouse[0] < warehouse[1] == stale_since and warehouse[2] == 1


def test_a_warning_check_and_the_metadata_say_which_source_is_stale_since_when(two_runs):
    second, instance = two_runs["second"], two_runs["instance"]
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in second.get_asset_check_evaluations()}
    check = checks[("raw/openrouter_models", "source_fresh")]
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
    assert "stale since" in check.description and "carried forward" in check.description
    assert check.metadata["stale"].value is True
    for table in set(freshness.SOURCE_KINDS) - {"openrouter_models"}:
        assert checks[(f"raw/{table}", "source_fresh")].passed is True, table
    from pipelines.definitions import defs

    graph = defs().get_repository_def().asset_graph
    key = dg.AssetCheckKey(dg.AssetKey(["raw", "openrouter_models"]), "source_fresh")
    assert graph.get_check_spec(key).blocking is False  # a warning: the run went on and published

    metadata = second.asset_materializations_for_node("raw__openrouter_models")[0].metadata
    assert metadata["stale"].value is True and metadata["stale_since"].value != "never"
    assert metadata["carried_forward_rows"].value > 0
    tags = instance.get_run_by_id(second.run_id).tags
    assert tags[freshness.STALE_TAG].startswith("openrouter_models since ")


def test_the_freshness_policy_sees_only_runs_where_the_source_answered(two_runs):
    first, second, instance = two_runs["first"], two_runs["second"], two_runs["instance"]
    from pipelines.definitions import defs

    node = defs().get_repository_def().asset_graph.get(freshness.source_key("openrouter_models"))
    policy = node.freshness_policy
    assert isinstance(policy, dg.FreshnessPolicy)
    assert policy.fail_window.to_timedelta() == timedelta(days=2, hours=1)
    assert policy.warn_window.to_timedelta() == timedelta(days=1, hours=1)

    def source_runs(table: str) -> list[str]:
        records = instance.fetch_materializations(freshness.source_key(table), limit=10).records
        return sorted(r.run_id for r in records)

    assert source_runs("openrouter_models") == [first.run_id]  # the refused attempt is not "fresh"
    assert source_runs("litellm_prices") == sorted([first.run_id, second.run_id])
    raw_runs = {r.run_id for r in instance.fetch_materializations(dg.AssetKey(["raw", "openrouter_models"]), limit=10).records}
    assert raw_runs == {first.run_id, second.run_id}  # downstream still ran on the carried-forward data


# --- a kind no source of which ever landed ---------------------------------------------------------


def price_assets() -> list[dg.AssetsDefinition]:
    return [a for a in raw_assets if a.key.path[-1] in PRICE_TABLES]


@pytest.fixture
def fresh_live(tmp_path: Path) -> Iterator[tuple[FakeSources, dict[str, str]]]:
    watchlist = tmp_path / "watchlist.yaml"
    write_watchlist(watchlist, [NEW])
    with FakeSources() as server:
        server.add_model(NEW, sha=SHA)
        server.bodies[LITELLM_PATH] = litellm_subset(50)
        yield server, live_mode_env(server, tmp_path / "data", watchlist, ("lambda",))


def test_a_kind_with_no_source_ever_landed_fails_the_run_naming_the_kind_and_failures(fresh_live):
    _server, env = fresh_live
    for name in ("FITATLAS_OPENROUTER_URL", "FITATLAS_LITELLM_URL", "FITATLAS_GENAI_PRICES_URL"):
        env[name] = closed_port_url(f"/{name.lower()}")
    with dg.instance_for_test() as instance:
        result = dg.materialize(price_assets(), instance=instance, raise_on_error=False, resources=live_resources(env))
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert len(failures) == 1  # the last price source tried decides, whatever the order
    message = failures[0].step_failure_data.error.message
    assert "no prices source has ever landed" in message
    for table in PRICE_TABLES:
        assert f"{table}: " in message and "refused" in message.lower()
    # each failed attempt is on record
    warehouse = Path(env["FITATLAS_DATA_DIR"]) / "warehouse.duckdb"
    outcomes = query(warehouse, "select raw_table, outcome from raw.source_attempts order by raw_table")
    assert outcomes == sorted((t, "failed") for t in PRICE_TABLES)


def test_one_dead_source_that_never_landed_does_not_fail_while_its_kind_has_another(fresh_live):
    _server, env = fresh_live
    env["FITATLAS_OPENROUTER_URL"] = closed_port_url()
    with dg.instance_for_test() as instance:
        result = dg.materialize(price_assets(), instance=instance, raise_on_error=False, resources=live_resources(env))
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    metadata = result.asset_materializations_for_node("raw__openrouter_models")[0].metadata
    assert metadata["stale"].value is True and metadata["carried_forward_rows"].value == 0


def test_a_malformed_body_counts_as_a_failed_attempt(fresh_live):
    from fake_sources import GENAI_PATH, Fault

    server, env = fresh_live
    server.always(GENAI_PATH, Fault.truncated_json())
    with dg.instance_for_test() as instance:
        result = dg.materialize(price_assets(), instance=instance, raise_on_error=False, resources=live_resources(env))
    assert result.success
    warehouse = Path(env["FITATLAS_DATA_DIR"]) / "warehouse.duckdb"
    (outcome, error), = query(warehouse, "select outcome, error from raw.source_attempts where raw_table = 'genai_prices'")
    assert outcome == "failed" and "malformed JSON" in error


def test_stale_since_is_the_first_failure_of_the_streak(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    freshness.ensure_attempts_table(con)
    base = datetime(2026, 1, 1)
    for hours, outcome in ((0, "answered"), (1, "failed"), (2, "answered"), (3, "failed"), (4, "nothing_to_check"), (5, "failed")):
        con.execute(
            "insert into raw.source_attempts values (?, 'genai_prices', 'prices', 'live', ?, ?, 1, ?, ?, 0, ?, ?)",
            [f"b{hours}", base + timedelta(hours=hours), base + timedelta(hours=hours), int(outcome == "answered"),
             int(outcome == "failed"), outcome, "x: down" if outcome == "failed" else None],
        )
    state = freshness.source_state(con, "genai_prices")
    assert state.stale and state.stale_since == base + timedelta(hours=3) and state.failed_attempts == 2
    assert state.last_success_at == base + timedelta(hours=2) and state.last_error == "x: down"
    assert state.landed_rows == 0 and state.last_landed_at is None
