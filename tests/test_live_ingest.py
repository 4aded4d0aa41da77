"""Live ingest against a real HTTP server on loopback: faults, retries, incrementality, secrecy."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from pathlib import Path

import pytest
from fake_sources import (
    GENAI_PATH,
    LITELLM_PATH,
    OPENROUTER_PATH,
    FakeSources,
    Fault,
    litellm_subset,
    live_mode_env,
    skypilot_path,
)

from pipelines.defs.ingest.http import (
    Fetched,
    FetchFailed,
    HttpFetcher,
    HttpPolicy,
    NotModified,
    Secret,
    ratelimit_pacing,
    ratelimit_reset_seconds,
    retry_after_seconds,
)
from pipelines.defs.ingest.landing import LandingReport
from pipelines.defs.ingest.live_config import LiveConfig
from pipelines.defs.ingest.live_source import land_live_batch, live_units
from pipelines.defs.ingest.watchlist import is_valid_repo_id, read_watchlist
from pipelines.resources import LiveSourcesResource
from pipelines.settings import Settings
from pipelines.warehouse import connect

TOKEN = "hf_TESTtokenNEVERtoLEAK0123456789"
FAST = HttpPolicy(
    timeout_s=0.5, attempt_deadline_s=5, max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.05,
    max_server_wait_s=3, max_bytes=8 * 1024 * 1024, concurrency=4,
)
SMALL_MODELS = ["Qwen/Qwen3-0.6B", "Qwen/Qwen2.5-1.5B", "microsoft/phi-2", "nvidia/DeepSeek-V3.1-NVFP4"]


@pytest.fixture
def server():
    with FakeSources(hf_token=TOKEN) as sources:
        # A 300-entry LiteLLM map, not the 5 MB file: fetches must stay well inside the tests' 0.5 s
        # timeout even on a loaded 2-core machine.
        sources.bodies[LITELLM_PATH] = litellm_subset(300)
        yield sources


def fetcher_for(server: FakeSources, policy: HttpPolicy = FAST, token: str | None = None, **kwargs) -> HttpFetcher:
    return HttpFetcher(
        policy,
        allowed_hosts={"127.0.0.1"},
        hf_host="127.0.0.1" if token else None,
        hf_token=Secret(token) if token else None,
        **kwargs,
    )


class LiveSetup:
    """Live mode pointed at the fake server: a temp warehouse, a temp watchlist, tiny timeouts. The
    settings and live sources come from `env`, read as the code location reads the process
    environment; only the Hub token goes through the process environment (it is a `dg.EnvVar`)."""

    def __init__(self, server: FakeSources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.watchlist = tmp_path / "watchlist.yaml"
        self.env = live_mode_env(server, tmp_path / "data", self.watchlist, ("lambda", "vast"))
        self._monkeypatch = monkeypatch
        monkeypatch.delenv("HF_TOKEN", raising=False)

    def use_token(self, token: str) -> None:
        self._monkeypatch.setenv("HF_TOKEN", token)
        self.env["HF_TOKEN"] = token

    @property
    def settings(self) -> Settings:
        return Settings.from_environment(self.env)

    def live_config(self) -> LiveConfig:
        return LiveSourcesResource.from_environment(self.env).process_config_and_initialize().live_config()


@pytest.fixture
def live_env(server: FakeSources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LiveSetup:
    setup = LiveSetup(server, tmp_path, monkeypatch)
    setup.watchlist.write_text("models:\n" + "".join(f"  - {repo}\n" for repo in SMALL_MODELS))
    for repo in SMALL_MODELS:
        server.add_model(repo, sha="1" * 40)
    server.bodies[LITELLM_PATH] = litellm_subset(300)
    return setup


def run_live(
    setup: LiveSetup, raw_table: str, *, batch_id: str = "batch-1", items=(), force: bool = False
) -> tuple[LandingReport, dict]:
    settings, config = setup.settings, setup.live_config()
    with config.fetcher() as fetcher, connect(settings.warehouse_path) as con:
        batch = live_units(
            raw_table, con, config, fetcher,
            spec_sheets_dir=settings.spec_sheets_dir, snapshot_dir=settings.snapshot_dir,
            watchlist_path=settings.watchlist_path, items=items, force=force,
        )
        report = land_live_batch(con, raw_table=raw_table, batch_id=batch_id, batch=batch)
    return report, batch.as_metadata()


def query(setup: LiveSetup, sql: str, params=None) -> list[tuple]:
    with connect(setup.settings.warehouse_path) as con:
        return con.execute(sql, params or []).fetchall()


def failures(setup: LiveSetup, raw_table: str) -> dict[str, str]:
    return dict(query(setup, "select coalesce(record_key, location), reason from raw.ingest_failures where raw_table = ?", [raw_table]))


# --- the fetcher on its own ---------------------------------------------------------------------


def test_retry_after_and_ratelimit_headers_are_parsed():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("not a date") is None
    assert ratelimit_reset_seconds('"api";r=0;t=55') == 55.0
    assert ratelimit_reset_seconds('"api";r=12;t=55') is None
    assert ratelimit_reset_seconds('"api";r=0;t=5, "resolvers";r=0;t=20') == 20.0


def test_429_waits_as_long_as_retry_after_says_then_succeeds(server: FakeSources):
    server.fail(OPENROUTER_PATH, Fault.rate_limited(retry_after="1"))
    with fetcher_for(server) as fetcher:
        started = time.monotonic()
        outcome = fetcher.get(server.url(OPENROUTER_PATH))
        elapsed = time.monotonic() - started
    assert isinstance(outcome, Fetched) and outcome.retries == 1
    assert elapsed >= 1.0
    assert len(server.requests_to(OPENROUTER_PATH)) == 2


def test_hub_ratelimit_header_sets_the_wait(server: FakeSources):
    waits: list[float] = []
    server.fail(LITELLM_PATH, Fault.rate_limited(ratelimit='"api";r=0;t=2'))
    with fetcher_for(server, sleep=waits.append) as fetcher:
        outcome = fetcher.get(server.url(LITELLM_PATH))
    assert isinstance(outcome, Fetched) and outcome.retries >= 1
    assert max(waits) >= 2.0


def test_a_wait_longer_than_allowed_fails_fast_instead_of_hanging(server: FakeSources):
    server.always(LITELLM_PATH, Fault.rate_limited(retry_after="3600"))
    with fetcher_for(server, sleep=lambda _s: None) as fetcher:
        outcome = fetcher.get(server.url(LITELLM_PATH))
    assert isinstance(outcome, FetchFailed) and outcome.status == 429
    assert "3600s" in outcome.reason
    assert len(server.requests_to(LITELLM_PATH)) == 1


def test_500_then_success_is_retried_with_growing_backoff(server: FakeSources):
    waits: list[float] = []
    server.fail(OPENROUTER_PATH, Fault.status_code(500), Fault.status_code(503))
    with fetcher_for(server, sleep=waits.append) as fetcher:
        outcome = fetcher.get(server.url(OPENROUTER_PATH))
        assert fetcher.retries == 2
    assert isinstance(outcome, Fetched) and outcome.retries == 2
    assert len(waits) == 2 and 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02


def test_persistent_5xx_fails_with_status_after_max_attempts(server: FakeSources):
    server.always(OPENROUTER_PATH, Fault.status_code(502))
    with fetcher_for(server) as fetcher:
        outcome = fetcher.get(server.url(OPENROUTER_PATH))
    assert isinstance(outcome, FetchFailed)
    assert outcome.status == 502 and outcome.retries == 2
    assert "server error (HTTP 502)" in outcome.reason and "3 attempts" in outcome.reason


def test_a_stalled_response_times_out_and_is_retried(server: FakeSources):
    server.fail(OPENROUTER_PATH, Fault.stall(1.5))
    with fetcher_for(server) as fetcher:
        outcome = fetcher.get(server.url(OPENROUTER_PATH))
    # Without the per-request timeout the stalled answer would arrive (after 1.5 s) with no retry.
    assert isinstance(outcome, Fetched) and outcome.retries == 1
    assert len(server.requests_to(OPENROUTER_PATH)) == 2


def test_a_server_that_always_stalls_is_a_timeout_failure(server: FakeSources):
    server.always(OPENROUTER_PATH, Fault.stall(2))
    with fetcher_for(server, HttpPolicy(**{**FAST.__dict__, "timeout_s": 0.2, "max_attempts": 2})) as fetcher:
        outcome = fetcher.get(server.url(OPENROUTER_PATH))
    assert isinstance(outcome, FetchFailed) and "timed out" in outcome.reason and outcome.retries == 1


@pytest.mark.parametrize("declare_length", [True, False])
def test_an_oversized_body_is_refused_without_retrying(server: FakeSources, declare_length: bool):
    server.always(OPENROUTER_PATH, Fault.oversized(3 * 1024 * 1024, declare_length=declare_length))
    policy = HttpPolicy(**{**FAST.__dict__, "max_bytes": 1024 * 1024})
    with fetcher_for(server, policy) as fetcher:
        outcome = fetcher.get(server.url(OPENROUTER_PATH))
    assert isinstance(outcome, FetchFailed) and "1048576-byte cap" in outcome.reason
    assert outcome.retries == 0
    assert ("streaming" in outcome.reason) is not declare_length


def test_a_cut_connection_is_retried_then_reported(server: FakeSources):
    server.always(OPENROUTER_PATH, Fault.cut_connection())
    with fetcher_for(server) as fetcher:
        outcome = fetcher.get(server.url(OPENROUTER_PATH))
    assert isinstance(outcome, FetchFailed) and "connection problem" in outcome.reason
    assert outcome.retries == 2


def test_redirects_are_followed_only_to_allowed_hosts(server: FakeSources):
    server.fail(LITELLM_PATH, Fault.redirect(OPENROUTER_PATH, status=307))
    server.fail(GENAI_PATH, Fault.redirect(f"http://localhost:{server.port}{OPENROUTER_PATH}"))
    with fetcher_for(server) as fetcher:
        followed = fetcher.get(server.url(LITELLM_PATH))
        refused = fetcher.get(server.url(GENAI_PATH))
        foreign = fetcher.get(f"http://localhost:{server.port}{OPENROUTER_PATH}")
    assert isinstance(followed, Fetched) and followed.url == server.url(LITELLM_PATH)
    assert json.loads(followed.content)["data"]  # the OpenRouter body, reached through the redirect
    assert isinstance(refused, FetchFailed) and "'localhost', which is not allowed" in refused.reason
    assert isinstance(foreign, FetchFailed) and "not an allowed source host" in foreign.reason
    assert [r.host for r in server.requests if r.host.startswith("localhost")] == []


def test_conditional_get_answers_not_modified(server: FakeSources):
    with fetcher_for(server) as fetcher:
        first = fetcher.get(server.url(OPENROUTER_PATH))
        assert isinstance(first, Fetched) and first.etag
        second = fetcher.get(server.url(OPENROUTER_PATH), etag=first.etag)
    assert isinstance(second, NotModified) and second.etag == first.etag
    assert server.requests_to(OPENROUTER_PATH)[1].headers["if-none-match"] == first.etag


def test_the_token_goes_to_the_hub_host_only_and_never_into_outcomes_or_logs(server: FakeSources, caplog):
    caplog.set_level(logging.DEBUG)
    server.add_model("meta-llama/Llama-3.2-3B", gated="manual")
    server.always(LITELLM_PATH, Fault.status_code(500, body=TOKEN.encode()))
    config_path = f"/meta-llama/Llama-3.2-3B/resolve/{'a' * 40}/config.json"
    fetcher = HttpFetcher(FAST, allowed_hosts={"127.0.0.1", "localhost"}, hf_host="127.0.0.1", hf_token=Secret(TOKEN))
    with fetcher:
        gated = fetcher.get(server.url(config_path))
        elsewhere = fetcher.get(f"http://localhost:{server.port}{OPENROUTER_PATH}")
        failed = fetcher.get(server.url(LITELLM_PATH))
    assert isinstance(gated, Fetched)
    assert server.requests_to(config_path)[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert isinstance(elsewhere, Fetched)
    assert "authorization" not in server.requests_to(OPENROUTER_PATH)[0].headers
    assert isinstance(failed, FetchFailed)
    for text in (repr(gated), repr(elsewhere), repr(failed), failed.reason, repr(fetcher), caplog.text):
        assert TOKEN not in text


# --- live units landed ----------------------------------------------------------------------------


def test_hf_models_land_with_model_info_and_a_second_run_lands_nothing(server: FakeSources, live_env: LiveSetup):
    server.models["Qwen/Qwen3-0.6B"].parameters = 596_049_920
    report, meta = run_live(live_env, "hf_model_configs")
    assert report.records_landed == len(SMALL_MODELS) and not report.failures
    record = json.loads(query(live_env, "select record from raw.hf_model_configs where record_key = 'Qwen/Qwen3-0.6B'")[0][0])
    assert record["model_info"] == {
        "sha": "1" * 40, "lastModified": "2026-11-20T10:00:00.000Z", "gated": False,
        "license": "apache-2.0", "safetensors_total": 596_049_920,
        "safetensors_parameters": {"BF16": 596_049_920},
        "tags": ["transformers", "safetensors"],  # the fake Hub's model info (tests/fake_sources.py)
    }
    assert record["config"]["model_type"] == "qwen3"
    nvfp4 = json.loads(query(live_env, "select record from raw.hf_model_configs where record_key = 'nvidia/DeepSeek-V3.1-NVFP4'")[0][0])
    assert nvfp4["quant_config"]["quantization"]["quant_algo"] == "NVFP4"
    assert query(live_env, "select distinct location from raw.hf_model_configs where record_key = 'microsoft/phi-2'") == [
        (f"{server.base_url}/microsoft/phi-2/resolve/{'1' * 40}",)
    ]

    configs_before = len([p for p in server.paths_requested() if "/resolve/" in p])
    report, meta = run_live(live_env, "hf_model_configs", batch_id="batch-2")
    assert report.records_landed == 0 and report.files_seen == 0
    assert meta["items_unchanged_at_source"] == len(SMALL_MODELS)
    assert len([p for p in server.paths_requested() if "/resolve/" in p]) == configs_before


def test_a_changed_sha_refetches_only_that_model(server: FakeSources, live_env: LiveSetup):
    run_live(live_env, "hf_model_configs")
    server.models["Qwen/Qwen2.5-1.5B"].sha = "2" * 40
    report, _ = run_live(live_env, "hf_model_configs", batch_id="batch-2")
    assert report.records_landed == 1
    assert query(live_env, "select record_key from raw.hf_model_configs where batch_id = 'batch-2'") == [("Qwen/Qwen2.5-1.5B",)]
    resolved_again = [p for p in server.paths_requested() if f"/resolve/{'2' * 40}/" in p]
    assert resolved_again == ["/Qwen/Qwen2.5-1.5B/resolve/" + "2" * 40 + "/config.json"]


def test_optional_files_absent_from_the_listing_are_probed_and_404_means_absent(server: FakeSources, live_env: LiveSetup):
    for model in server.models.values():
        model.list_siblings = False
    report, _ = run_live(live_env, "hf_model_configs")
    assert report.records_landed == len(SMALL_MODELS) and not report.failures
    phi2 = json.loads(query(live_env, "select record from raw.hf_model_configs where record_key = 'microsoft/phi-2'")[0][0])
    assert phi2["quant_config"] is None and phi2["safetensors_metadata"] is None


def test_bad_models_are_recorded_and_good_ones_land(server: FakeSources, live_env: LiveSetup, monkeypatch):
    sha = "1" * 40
    live_env.watchlist.write_text(
        "models:\n"
        + "".join(f"  - {repo}\n" for repo in SMALL_MODELS)
        + "  - meta-llama/Llama-3.2-3B\n  - nobody/does-not-exist\n  - ../../etc/passwd\n  - \"x/y;drop table raw.hf_model_configs\"\n"
    )
    server.add_model("meta-llama/Llama-3.2-3B", sha=sha, gated="manual")
    server.always(f"/Qwen/Qwen3-0.6B/resolve/{sha}/config.json", Fault.html())
    server.always(f"/Qwen/Qwen2.5-1.5B/resolve/{sha}/config.json", Fault.truncated_json())
    server.fail("/api/models/microsoft/phi-2", Fault.rate_limited(retry_after="0"), Fault.status_code(500))
    server.always(f"/nvidia/DeepSeek-V3.1-NVFP4/resolve/{sha}/hf_quant_config.json", Fault.status_code(503))

    report, meta = run_live(live_env, "hf_model_configs")

    assert query(live_env, "select record_key from raw.hf_model_configs") == [("microsoft/phi-2",)]
    reasons = failures(live_env, "hf_model_configs")
    assert "gated or unauthorised (HTTP 401)" in reasons["meta-llama/Llama-3.2-3B"]
    assert reasons["nobody/does-not-exist"].startswith("not found (HTTP 404)")
    assert "HTML page" in reasons["Qwen/Qwen3-0.6B"]
    assert "malformed JSON" in reasons["Qwen/Qwen2.5-1.5B"]
    assert "server error (HTTP 503)" in reasons["nvidia/DeepSeek-V3.1-NVFP4"]
    assert reasons["'../../etc/passwd'"] == "not a valid Hugging Face repo id (owner/name)"
    assert "'x/y;drop table raw.hf_model_configs'" in reasons
    assert meta["http_retries"] >= 2 + 2  # phi-2's 429 and 500, DeepSeek's two 503 retries
    assert not any("etc/passwd" in path or "drop" in path for path in server.paths_requested())

    live_env.use_token(TOKEN)
    report, _ = run_live(live_env, "hf_model_configs", batch_id="batch-2")
    assert query(live_env, "select record_key from raw.hf_model_configs where batch_id = 'batch-2'") == [("meta-llama/Llama-3.2-3B",)]


def test_prices_land_then_come_back_not_modified(server: FakeSources, live_env: LiveSetup):
    for table, expected in [("openrouter_models", 414), ("litellm_prices", 300), ("genai_prices", 100), ("gpu_rental_prices", 100)]:
        report, meta = run_live(live_env, table)
        assert report.records_landed >= expected, table
        again, meta = run_live(live_env, table, batch_id="batch-2")
        assert again.records_landed == 0 and again.files_seen == 0, table
        assert meta["items_unchanged_at_source"] == meta["items_checked"]
    assert server.requests_to(OPENROUTER_PATH)[-1].headers.get("if-none-match")


def test_changed_price_file_lands_again(server: FakeSources, live_env: LiveSetup):
    run_live(live_env, "openrouter_models")
    document = json.loads((Path(__file__).resolve().parents[1].parent / "shared/data/prices/openrouter_api_v1_models_2026-08-19.json").read_bytes())
    document["data"][0]["pricing"]["prompt"] = "0.000001"
    server.bodies[OPENROUTER_PATH] = json.dumps(document).encode()
    report, _ = run_live(live_env, "openrouter_models", batch_id="batch-2")
    assert report.records_landed == len(document["data"])


def test_bad_price_bodies_are_failures_and_are_fetched_again_next_time(server: FakeSources, live_env: LiveSetup):
    server.fail(LITELLM_PATH, Fault.html())
    server.fail(OPENROUTER_PATH, Fault.truncated_json())
    server.fail(skypilot_path("vast"), Fault.redirect("http://evil.example/vms.csv"))
    run_live(live_env, "litellm_prices")
    run_live(live_env, "openrouter_models")
    rental, _ = run_live(live_env, "gpu_rental_prices")
    reasons = failures(live_env, "litellm_prices") | failures(live_env, "openrouter_models") | failures(live_env, "gpu_rental_prices")
    assert "HTML page" in reasons[server.url(LITELLM_PATH)]
    assert "malformed JSON" in reasons[server.url(OPENROUTER_PATH)]
    assert "'evil.example', which is not allowed" in reasons[server.url(skypilot_path("vast"))]
    assert rental.records_landed > 0  # lambda's catalog landed beside vast's failure
    assert query(live_env, "select count(*) from raw.http_cache where url = ?", [server.url(LITELLM_PATH)]) == [(0,)]

    report, meta = run_live(live_env, "litellm_prices", batch_id="batch-2")
    assert report.records_landed == 300 and meta["items_unchanged_at_source"] == 0


def test_token_never_leaks_into_warehouse_logs_or_metadata(server: FakeSources, live_env: LiveSetup, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    live_env.use_token(TOKEN)
    server.add_model("meta-llama/Llama-3.2-3B", gated="manual")
    live_env.watchlist.write_text("models:\n  - meta-llama/Llama-3.2-3B\n  - Qwen/Qwen3-0.6B\n  - nobody/missing\n")
    server.always("/api/models/Qwen/Qwen3-0.6B", Fault.status_code(500, body=f"debug: {TOKEN}".encode()))
    report, meta = run_live(live_env, "hf_model_configs")
    assert report.records_landed == 1
    dumped = json.dumps(query(live_env, "select * from raw.ingest_failures"), default=str)
    dumped += json.dumps(query(live_env, "select * from raw.hf_model_configs"), default=str)
    dumped += json.dumps(report.as_metadata()) + json.dumps(meta) + " ".join(map(str, report.failures))
    dumped += repr(live_env.live_config()) + caplog.text
    assert TOKEN not in dumped
    assert "Secret('***')" in repr(live_env.live_config())


def test_watchlist_validation():
    assert is_valid_repo_id("Qwen/Qwen3-0.6B")
    for bad in ["Qwen", "a/b/c", "../x", "a/..b", "-a/b", "a/b c", "a/b?x=1", "a/b%2F", "", None, 5, "a/" + "b" * 97]:
        assert not is_valid_repo_id(bad), bad


def test_the_bundled_watchlist_is_valid():
    watchlist = read_watchlist(Path(__file__).resolve().parents[1] / "pipelines" / "watchlist.yaml")
    assert len(watchlist.models) >= 100 and not watchlist.rejected
    assert "Qwen/Qwen3-32B-FP8-Static-PerTensor" not in watchlist.models


# --- proactive rate limiting, concurrency, provenance ------------------------------------------------


def quota_answer(remaining: int, reset_s: float) -> Fault:
    """A normal 200 answer carrying the Hub's quota headers (IETF draft RateLimit fields)."""
    headers = {
        "Content-Type": "application/json",
        "RateLimit": f'"api";r={remaining};t={reset_s:g}',
        "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
    }
    return Fault.status_code(200, headers, b"{}")


def test_ratelimit_headers_set_a_pace_only_when_the_quota_runs_low():
    policy = '"fixed window";"api";q=500;w=300'
    assert ratelimit_pacing('"api";r=400;t=100', policy, reserve=4) is None
    assert ratelimit_pacing('"api";r=50;t=100', policy, reserve=4) == (2.0, 100.0)  # 10% of q left: spread it
    assert ratelimit_pacing('"api";r=0;t=30', policy, reserve=4) == (30.0, 30.0)  # exhausted: wait for the reset
    assert ratelimit_pacing('"api";r=3;t=6', None, reserve=4) == (2.0, 6.0)  # no policy: low means <= workers
    assert ratelimit_pacing('"api";r=8;t=6', None, reserve=4) is None
    assert ratelimit_pacing('"api";r=90;t=60, "resolvers";r=2;t=10', '"fixed window";"resolvers";q=3000;w=300', reserve=4) == (5.0, 10.0)
    assert ratelimit_pacing("garbage", policy, reserve=4) is None and ratelimit_pacing(None, None, reserve=4) is None


def test_a_low_quota_spaces_requests_out_before_the_server_says_429(server: FakeSources):
    server.fail(
        OPENROUTER_PATH,
        quota_answer(400, 300),  # plenty left: no pacing
        quota_answer(3, 0.6),  # 3 left for 0.6 s: one request every 0.2 s
        quota_answer(2, 0.4),
        quota_answer(0, 0.5),  # exhausted: nothing until the reset
        quota_answer(450, 300),  # a fresh window: full speed again
    )
    url = server.url(OPENROUTER_PATH)
    with fetcher_for(server) as fetcher:
        stamps = [time.monotonic()]
        outcomes = []
        for _ in range(6):
            outcomes.append(fetcher.get(url))
            stamps.append(time.monotonic())
    gaps = [after - before for before, after in itertools.pairwise(stamps)]
    assert all(isinstance(o, Fetched) for o in outcomes) and fetcher.retries == 0
    # Lower bounds only: a loaded machine may be slower, never faster, than the pace.
    assert 0.18 <= gaps[2] and 0.18 <= gaps[3]  # after r=3 and r=2: t / r = 0.2 s
    assert gaps[4] >= 0.45  # after r=0: the 0.5 s reset
    assert fetcher.quota_pauses == 3  # exactly those three: none after r=400 or after the fresh r=450
    assert [r.path for r in server.requests].count(OPENROUTER_PATH) == 6  # no 429, no retry


def test_paced_workers_share_one_quota(server: FakeSources):
    """Four workers, one host at 2 requests left for 0.4 s: they queue up 0.2 s apart, not all at once."""
    server.fail(OPENROUTER_PATH, quota_answer(2, 0.4))
    url = server.url(OPENROUTER_PATH)
    with fetcher_for(server) as fetcher:
        assert isinstance(fetcher.get(url), Fetched)
        started = time.monotonic()
        outcomes = fetcher.get_many([url] * 2)
        elapsed = time.monotonic() - started
    assert all(isinstance(o, Fetched) for o in outcomes)
    assert elapsed >= 0.35 and fetcher.quota_pauses == 2  # slots at +0.2 s and +0.4 s (the window's end)


def test_concurrency_is_bounded_by_the_policy(server: FakeSources):
    server.always(OPENROUTER_PATH, Fault.stall(0.3))
    url = server.url(OPENROUTER_PATH)
    for workers in (2, 4):
        server.max_stalling = 0
        policy = HttpPolicy(**{**FAST.__dict__, "timeout_s": 5, "concurrency": workers})
        with fetcher_for(server, policy) as fetcher:
            outcomes = fetcher.get_many([url] * 8)
        assert all(isinstance(o, Fetched) for o in outcomes)
        # 8 requests stalled 0.3 s each: never more than `workers` inside the stall at once. A stall
        # ends before its reply is sent, so a worker's next request cannot overlap its previous one
        # there (the server's handler may still be closing the old connection, so in_flight can).
        # How many actually overlap depends on scheduling on a loaded machine: only the bound is asserted.
        assert 1 <= server.max_stalling <= workers, (workers, server.max_stalling)


def test_price_rows_record_http_status_etag_and_content_provenance(server: FakeSources, live_env: LiveSetup):
    run_live(live_env, "genai_prices")
    body = (Path(__file__).resolve().parents[1].parent / "shared/data/prices/genai-prices_data.json").read_bytes()
    rows = set(query(live_env, "select location, http_status, etag, content_sha256, content_bytes from raw.genai_prices"))
    etag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'  # what fake_sources sends
    assert rows == {(server.url(GENAI_PATH), 200, etag, hashlib.sha256(body).hexdigest(), len(body))}


def test_provenance_columns_are_added_to_raw_tables_created_before_them(tmp_path: Path):
    import duckdb

    from pipelines.defs.ingest.formats import ParsedFile
    from pipelines.defs.ingest.landing import FetchedFile, SourceUnit, land_units
    from pipelines.defs.ingest.records import RawRecord
    from pipelines.warehouse import RAW_TABLE_DDL

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("create schema raw")
    con.execute(RAW_TABLE_DDL.format(table="genai_prices"))
    con.execute("insert into raw.genai_prices values ('old', 's', 'loc', now()::timestamp, 'x', 1, 'k', '{}')")

    def parse(_content: bytes, _location: str) -> ParsedFile:
        return ParsedFile([RawRecord("k2", {"a": 1})], [])

    unit = SourceUnit("s", FetchedFile("http://h/x.json", b"{}", http_status=200, etag='"e1"'), parse)
    land_units(con, raw_table="genai_prices", batch_id="new", units=[unit])
    rows = con.execute("select batch_id, http_status, etag from raw.genai_prices order by batch_id").fetchall()
    con.close()
    assert rows == [("new", 200, '"e1"'), ("old", None, None)]


def test_a_redirect_to_another_allowed_host_is_followed_without_the_token(server: FakeSources):
    """The Hub redirects big files to its CDN: followed when the host is allowed, never with the token."""
    server.add_model("Qwen/Qwen3-0.6B")
    config = f"/Qwen/Qwen3-0.6B/resolve/{'a' * 40}/config.json"
    server.fail(config, Fault.redirect(f"http://localhost:{server.port}{config}", status=302))
    fetcher = HttpFetcher(FAST, allowed_hosts={"127.0.0.1", "localhost"}, hf_host="127.0.0.1", hf_token=Secret(TOKEN))
    with fetcher:
        outcome = fetcher.get(server.url(config))
    assert isinstance(outcome, Fetched) and json.loads(outcome.content)["model_type"] == "qwen3"
    first, second = server.requests_to(config)
    assert first.headers["authorization"] == f"Bearer {TOKEN}" and first.host.startswith("127.0.0.1")
    assert second.host.startswith("localhost") and "authorization" not in second.headers
