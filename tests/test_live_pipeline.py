"""Issue 5's "done when": the whole graph in live mode against a faulty fake Hub and price server.

A real HTTP server on loopback (tests/fake_sources.py) serves a small watchlist and the price
files, injecting faults: a gated model, 500-then-success, a stalled response, 429 with
Retry-After, truncated JSON, an HTML body, a redirect to another host, an oversized body. The
whole `full_pipeline` job runs in-process on a temp data dir with an ephemeral Dagster instance;
then the documented command (`fitatlas run`, a real subprocess) runs again on the same data dir
and must land nothing and publish nothing new.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from duckdb_rows import query
from fake_sources import (
    LITELLM_PATH,
    LIVE_ENV_CLEARED,
    OPENROUTER_PATH,
    SHARED_DATA,
    FakeSources,
    Fault,
    litellm_subset,
    live_mode_env,
    skypilot_path,
)
from pipeline_runs import run_job

from pipelines.defs.ingest.assets import RAW_SOURCES
from pipelines.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration

SHA = "c" * 40
INSTRUCT = "meta-llama/Llama-3.1-8B-Instruct"  # served from the base repo's config, like the snapshot does
GOOD = {INSTRUCT, "Qwen/Qwen3-0.6B", "Qwen/Qwen2.5-1.5B"}
GATED = "meta-llama/Llama-3.3-70B-Instruct"  # priced on OpenRouter; held back, its prices must stay unmapped
TRUNCATED = "Qwen/Qwen3-8B"
HTML = "microsoft/phi-2"
BAD_ID = "../../etc/passwd"
WATCHLIST = [INSTRUCT, GATED, "Qwen/Qwen3-0.6B", TRUNCATED, HTML, "Qwen/Qwen2.5-1.5B", BAD_ID]
RUNPOD_PATH = skypilot_path("runpod")
CLI_TIMEOUT_S = 300


def config_path(repo: str) -> str:
    return f"/{repo}/resolve/{SHA}/config.json"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    """The fake server with its faults, and the live-mode environment pointing at it."""
    tmp = tmp_path_factory.mktemp("live_pipeline")
    watchlist = tmp / "watchlist.yaml"
    watchlist.write_text("models:\n" + "".join(f"  - {json.dumps(repo)}\n" for repo in WATCHLIST))
    with FakeSources() as server:
        server.add_model(INSTRUCT, sha=SHA, directory=SHARED_DATA / "hf_configs" / "meta-llama__Meta-Llama-3.1-8B")
        for repo in ("Qwen/Qwen3-0.6B", "Qwen/Qwen2.5-1.5B", TRUNCATED, HTML):
            server.add_model(repo, sha=SHA)
        server.add_model(GATED, sha=SHA, gated="manual")
        server.fail(config_path(INSTRUCT), Fault.status_code(500))  # 500, then success
        server.fail("/api/models/Qwen/Qwen3-0.6B", Fault.rate_limited(retry_after="1"))
        server.fail(config_path("Qwen/Qwen2.5-1.5B"), Fault.stall(1.5))  # past the 0.5 s timeout, then fine
        server.always(config_path(TRUNCATED), Fault.truncated_json())
        server.always(f"/api/models/{HTML}", Fault.html())
        server.always(skypilot_path("vast"), Fault.redirect("http://evil.example/vms.csv"))
        server.always(RUNPOD_PATH, Fault.oversized(12 * 1024 * 1024, declare_length=False))
        server.bodies[LITELLM_PATH] = litellm_subset(300)
        data_dir = tmp / "data"
        env = live_mode_env(server, data_dir, watchlist, ("lambda", "vast", "runpod"))
        yield server, data_dir, env


@pytest.fixture(scope="module")
def first_run(live):
    server, data_dir, env = live
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(Settings.from_environment(env), instance, environ=env)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        yield server, data_dir, env, instance, result


def raw_counts(warehouse: Path) -> dict[str, int]:
    return {table: query(warehouse, f"select count(*) from raw.{table}")[0][0] for table in RAW_SOURCES}


def check_results(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_the_good_models_are_published_with_recommendations(first_run):
    _server, data_dir, _env, _instance, _result = first_run
    published = data_dir / "published.duckdb"
    assert {row[0] for row in query(published, "select model_id from models")} == GOOD
    assert {row[0] for row in query(published, "select distinct model_id from recommendations")} == GOOD
    assert {row[0] for row in query(published, "select distinct model_id from fit_matrix")} == GOOD
    # Llama-3.1-8B-Instruct landed from its base repo's config.json: 32 layers, 8 KV heads x 128.
    assert query(published, "select num_layers, kv_bytes_per_token_bf16 from models where model_id = ?", [INSTRUCT]) == [
        (32, 32 * 8 * 128 * 2 * 2)
    ]
    assert query(published, "select count(*) from gpus")[0][0] >= 40
    assert len(query(published, "select * from publications")) == 1


def test_each_fault_is_recorded_with_its_reason_and_holds_back_only_its_item(first_run):
    server, data_dir, _env, _instance, result = first_run
    warehouse = data_dir / "warehouse.duckdb"
    rows = query(
        warehouse,
        "select raw_table, coalesce(record_key, location), reason from raw.ingest_failures where batch_id = ?",
        [result.run_id],
    )
    reasons = {(table, item): reason for table, item, reason in rows}
    assert "gated or unauthorised (HTTP 401)" in reasons[("hf_model_configs", GATED)]
    assert "malformed JSON" in reasons[("hf_model_configs", TRUNCATED)]
    assert "HTML page" in reasons[("hf_model_configs", HTML)]
    assert reasons[("hf_model_configs", repr(BAD_ID))] == "not a valid Hugging Face repo id (owner/name)"
    assert "'evil.example', which is not allowed" in reasons[("gpu_rental_prices", server.url(skypilot_path("vast")))]
    assert "8388608-byte cap" in reasons[("gpu_rental_prices", server.url(RUNPOD_PATH))]
    assert len(reasons) == 6, reasons  # the 500, the 429 and the stall were retried away, not failures

    landed = {row[0] for row in query(warehouse, "select distinct record_key from raw.hf_model_configs")}
    assert landed == GOOD
    published = {row[0] for row in query(data_dir / "published.duckdb", "select model_id from models")}
    assert not published & {GATED, TRUNCATED, HTML}
    # retries happened: each faulted path was asked again
    assert len(server.requests_to(config_path(INSTRUCT))) == 2
    assert len(server.requests_to("/api/models/Qwen/Qwen3-0.6B")) == 2
    assert len(server.requests_to(config_path("Qwen/Qwen2.5-1.5B"))) == 2
    assert not any("etc/passwd" in path for path in server.paths_requested())
    assert not any(r.host.startswith("evil.example") for r in server.requests)
    lambda_rows = query(warehouse, "select count(*) from raw.gpu_rental_prices where location = ?", [server.url(skypilot_path("lambda"))])
    assert lambda_rows[0][0] > 0  # lambda's catalog landed beside vast's and runpod's failures


def test_held_back_models_prices_stay_unmapped_and_visible(first_run):
    _server, data_dir, _env, _instance, _result = first_run
    warehouse = data_dir / "warehouse.duckdb"
    unmapped = {
        row[0]
        for row in query(warehouse, "select provider_model_id from marts.unmapped_provider_prices where source = 'openrouter_models_json'")
    }
    assert {"meta-llama/llama-3.3-70b-instruct", "qwen/qwen3-8b"} <= unmapped
    priced = {row[0] for row in query(warehouse, "select distinct model_id from marts.provider_prices")}
    assert not priced & {GATED, TRUNCATED, HTML}
    # OpenRouter's hugging_face_id for it is the pre-rename repo id (seed hf_repo_renames).
    published_prices = query(data_dir / "published.duckdb", "select count(*) from provider_prices where model_id = ?", [INSTRUCT])
    assert published_prices[0][0] >= 1


def test_failures_and_unmapped_prices_are_warning_checks(first_run):
    _server, _data_dir, _env, _instance, result = first_run
    checks = check_results(result)
    hf = checks[("raw/hf_model_configs", "no_ingest_failures")]
    assert hf.passed is False and hf.severity == dg.AssetCheckSeverity.WARN
    failures = hf.metadata["failures"].value
    assert {f["record_key"] for f in failures} == {GATED, TRUNCATED, HTML, repr(BAD_ID)}
    assert all(f["reason"] and f["location"] for f in failures)
    rental = checks[("raw/gpu_rental_prices", "no_ingest_failures")]
    assert rental.passed is False and rental.metadata["failure_count"].value == 2
    for table in ("openrouter_models", "litellm_prices", "genai_prices", "gpu_spec_sheets"):
        assert checks[(f"raw/{table}", "no_ingest_failures")].passed is True, table
    unmapped = checks[("unmapped_provider_prices", "provider_prices_all_mapped")]
    assert unmapped.passed is False and unmapped.severity == dg.AssetCheckSeverity.WARN
    assert unmapped.metadata["unmapped_count"].value > 0


def test_progress_and_counts_are_in_logs_and_metadata(first_run):
    _server, _data_dir, _env, instance, result = first_run
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("raw.hf_model_configs: 6 of 6 checked at the source" in m for m in messages)
    assert any("raw.gpu_rental_prices: 3 of 3 checked at the source" in m for m in messages)
    metadata = result.asset_materializations_for_node("raw__hf_model_configs")[0].metadata
    assert metadata["records_landed"].value == 3
    assert metadata["fetch_failures"].value == 3  # gated, HTML model info, invalid id; the truncated config fails parsing
    assert metadata["failures"].value == 4
    assert metadata["http_retries"].value >= 3
    assert metadata["bytes_landed"].value > 0
    assert "HTML page" in metadata["failure_reasons"].value


def test_provenance_of_each_landed_row(first_run):
    server, data_dir, _env, _instance, _result = first_run
    warehouse = data_dir / "warehouse.duckdb"
    rows = query(
        warehouse,
        "select location, http_status, etag, content_sha256, content_bytes, fetched_at from raw.openrouter_models limit 1",
    )
    location, status, etag, sha256, size, fetched_at = rows[0]
    body = (SHARED_DATA / "prices" / "openrouter_api_v1_models_2026-08-19.json").read_bytes()
    assert (location, status, size) == (server.url(OPENROUTER_PATH), 200, len(body))
    assert etag and etag.startswith('"') and len(sha256) == 64 and fetched_at is not None
    hf = query(warehouse, "select http_status, record->>'$.model_info.sha' from raw.hf_model_configs")
    assert set(hf) == {(200, SHA)}


def test_a_second_run_with_the_documented_command_lands_and_publishes_nothing(first_run, tmp_path: Path):
    """`FITATLAS_SOURCE=live HF_ENDPOINT=... fitatlas run` as a real process, on the same data dir."""
    _server, data_dir, env, _instance, _result = first_run
    warehouse = data_dir / "warehouse.duckdb"
    published = data_dir / "published.duckdb"
    counts_before = raw_counts(warehouse)
    publications_before = query(published, "select publication_id, content_sha256 from publications")
    published_bytes = published.read_bytes()
    home = tmp_path / "dagster_home"
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("fitatlas")), "run", "--log-level", "INFO"],
        env={
            **{name: value for name, value in os.environ.items() if name not in LIVE_ENV_CLEARED},
            **env,
            "DAGSTER_HOME": str(home),
        },
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    assert ": success" in completed.stdout
    assert raw_counts(warehouse) == counts_before
    assert query(published, "select publication_id, content_sha256 from publications") == publications_before
    assert published.read_bytes() == published_bytes
    assert "unchanged since publication " + publications_before[0][0] in completed.stderr
    # the persistent faults are recorded again, under the new run's batch id
    batches = query(warehouse, "select count(distinct batch_id) from raw.ingest_failures where record_key = ?", [GATED])
    assert batches == [(2,)]
