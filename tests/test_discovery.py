"""Discovery (issue 12): FITATLAS_DISCOVER lists text-generation models through the Hub's model listing.

Real parts throughout: the loopback fake Hub (tests/fake_sources.py) serves a paginated `/api/models`
the way the Hub does (hub-docs `docs/hub/api.md`: paginated by the `Link` header; `expand[]` is a
whitelist of fields; filtered by `pipeline_tag` and `filter` tags), the fetcher is the live ingest's
`HttpFetcher`, candidates land in a real DuckDB warehouse, and the live run is the code location's
`full_pipeline` job. Expected orders are the fixtures' own listing orders (what the fake Hub serves).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import dagster as dg
import pytest
from duckdb_rows import query
from fake_sources import (
    LISTING_PATH,
    LITELLM_PATH,
    FakeSources,
    Fault,
    listing_entry,
    litellm_subset,
    live_mode_env,
)
from pipeline_runs import run_live

from pipelines.defs.ingest.automation import hf_model_sensor
from pipelines.defs.ingest.discovery import (
    CANDIDATES_TABLE,
    EXPAND_FIELDS,
    DiscoveryResult,
    discover_models,
    land_candidates,
    listing_url,
    next_link,
)
from pipelines.defs.ingest.http import HttpFetcher, HttpPolicy
from pipelines.resources import FitAtlasResource, fitatlas_resources
from pipelines.settings import REPO_ROOT, Discovery, Settings, SettingsError, parse_discover
from pipelines.warehouse import connect

FAST = HttpPolicy(
    timeout_s=0.5, attempt_deadline_s=5, max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.05,
    max_server_wait_s=3, max_bytes=8 * 1024 * 1024, concurrency=2,
)
DAGSTER = Path(sys.executable).with_name("dagster")


def sha(n: int) -> str:
    return f"{n:040x}"


# Ten models by 30-day downloads, highest first: the order the fake Hub lists them for sort=downloads.
TOP = [f"org{n}/model-{n}" for n in range(10)]
TOP_ENTRIES = [listing_entry(repo, sha(n + 1), downloads=1000 - 10 * n, trending=n) for n, repo in enumerate(TOP)]
# The same models by trending score, highest first (the reverse of the download order above).
TRENDING_ENTRIES = sorted(TOP_ENTRIES, key=lambda entry: -entry["trendingScore"])


def fetcher() -> HttpFetcher:
    return HttpFetcher(FAST, allowed_hosts={"127.0.0.1"})


def listing_requests(server: FakeSources) -> list[dict[str, list[str]]]:
    return [parse_qs(r.query) for r in server.requests_to(LISTING_PATH)]


# --- FITATLAS_DISCOVER ------------------------------------------------------------------------------


def test_discovery_is_off_by_default():
    assert Settings.from_environment({}).discover == ()
    assert Settings.from_environment({"FITATLAS_DISCOVER": "  "}).discover == ()
    assert Settings.for_data_dir(Path("/tmp/x")).discover == ()
    assert FitAtlasResource.for_settings(Settings.from_environment({})).discover == ""


def test_discover_items_map_to_the_hubs_sort_keys():
    settings = Settings.from_environment({"FITATLAS_DISCOVER": "top-downloads:2000, trending:500"})
    assert settings.discover == (Discovery("top-downloads", 2000), Discovery("trending", 500))
    # huggingface_hub HfApi.list_models sends sort=downloads, and trending_score as `trendingScore`
    assert [item.sort for item in settings.discover] == ["downloads", "trendingScore"]
    # the resource carries them as text and gives the same settings back
    resource = FitAtlasResource.for_settings(settings)
    assert resource.discover == "top-downloads:2000,trending:500"
    assert resource.settings == settings


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("top-downloads", "item 'top-downloads': expected <mode>:<count>"),
        ("popular:10", "item 'popular:10': unknown mode 'popular': expected one of top-downloads, trending"),
        ("trending:ten", "item 'trending:ten': count 'ten' is not a whole number"),
        ("trending:-5", "item 'trending:-5': count '-5' is not a whole number"),
        ("trending:2.5", "item 'trending:2.5': count '2.5' is not a whole number"),
        ("trending:0", "item 'trending:0': count 0 is out of range: expected 1 to 100,000"),
        ("trending:100001", "item 'trending:100001': count 100001 is out of range"),
        ("trending:10,,top-downloads:5", "item '': empty item"),
        ("trending:10,trending:20", "item 'trending:20': mode 'trending' is given twice"),
    ],
)
def test_a_bad_discover_value_names_the_variable_the_item_and_the_reason(value: str, message: str):
    with pytest.raises(SettingsError) as raised:
        Settings.from_environment({"FITATLAS_DISCOVER": value})
    assert str(raised.value).startswith(f"FITATLAS_DISCOVER={value!r}: ")
    assert message in str(raised.value)
    with pytest.raises(SettingsError, match="FITATLAS_DISCOVER"):
        parse_discover(value)


@pytest.mark.integration
def test_a_bad_discover_value_stops_the_code_location_load(tmp_path: Path):
    """`dagster definitions validate` in its own process, as tests/test_code_location.py does for FITATLAS_SOURCE."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").touch()
    loaded = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home), "FITATLAS_DATA_DIR": str(tmp_path / "data"), "FITATLAS_DISCOVER": "trending:lots"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert loaded.returncode != 0
    assert "FITATLAS_DISCOVER='trending:lots': item 'trending:lots': count 'lots' is not a whole number" in loaded.stdout


# --- the listing client ------------------------------------------------------------------------------


def test_next_link_reads_the_rel_next_target_of_a_link_header():
    page = "https://huggingface.co/api/models?limit=2"
    assert next_link('<https://huggingface.co/api/models?cursor=eyJ9&limit=2>; rel="next"', page) == (
        "https://huggingface.co/api/models?cursor=eyJ9&limit=2"
    )
    assert next_link('<https://h/a?p=1>; rel="prev", <https://h/a?p=3>; rel="next"', page) == "https://h/a?p=3"
    assert next_link("</api/models?cursor=x>; rel=next", page) == "https://huggingface.co/api/models?cursor=x"
    assert next_link('<https://h/a?p=1>; rel="prev"', page) is None
    assert next_link(None, page) is None
    assert next_link("garbage", page) is None


def test_pagination_collects_exactly_n_in_the_hubs_order_across_pages():
    with FakeSources(listing_page_size=3) as server:
        server.listings["downloads"] = list(TOP_ENTRIES)
        server.listings["trendingScore"] = list(TRENDING_ENTRIES)
        result = discover_models(fetcher(), server.base_url, parse_discover("top-downloads:7,trending:2"))
        asked = listing_requests(server)

    by_mode = {mode: [c.repo for c in result.candidates if c.mode == mode] for mode in ("top-downloads", "trending")}
    assert by_mode["top-downloads"] == TOP[:7]  # the first 7 by downloads
    assert by_mode["trending"] == [TOP[9], TOP[8]]  # the 2 highest trending scores
    assert [c.rank for c in result.candidates if c.mode == "top-downloads"] == [1, 2, 3, 4, 5, 6, 7]
    assert result.repos() == [*TOP[:7], TOP[9], TOP[8]] and result.all_failures == []
    # pages of 3 (the server's cap): 7 models = pages 3 + 3 + 1 (page 3 trimmed to what is wanted), and one
    # page for trending; the fourth page of top-downloads is never asked for
    assert len(asked) == 4 and [len(p.candidates) for p in result.pages] == [3, 3, 1, 2]
    first = asked[0]
    assert first["pipeline_tag"] == ["text-generation"] and first["filter"] == ["transformers"]
    assert first["sort"] == ["downloads"] and first["direction"] == ["-1"] and first["limit"] == ["7"]
    assert first["expand[]"] == list(EXPAND_FIELDS) and "cursor" not in first
    assert all("cursor" in page for page in asked[1:3])  # followed through the Link header
    assert asked[3]["sort"] == ["trendingScore"] and asked[3]["limit"] == ["2"]
    # the listing's own sha: what makes the ingest incremental
    assert result.shas()[TOP[0]] == sha(1)
    record = result.candidates[0].as_record()
    assert record["id"] == TOP[0] and record["downloads"] == 1000 and record["discovery"] == {"mode": "top-downloads", "rank": 1}


def test_a_listing_shorter_than_n_ends_at_its_last_page_without_a_failure():
    with FakeSources(listing_page_size=4) as server:
        server.listings["downloads"] = list(TOP_ENTRIES)
        result = discover_models(fetcher(), server.base_url, parse_discover("top-downloads:50"))
        assert len(server.requests_to(LISTING_PATH)) == 3  # 4 + 4 + 2, the last page has no Link
    assert result.repos() == TOP and result.all_failures == []


MALFORMED = [
    {**listing_entry("org/ok-1", sha(1)), "downloads": "many"},  # an ill-typed field is left out, the entry kept
    listing_entry("../../etc/passwd", sha(2)),
    "not an object",
    {**listing_entry("org/no-sha", sha(3)), "sha": None},
    listing_entry("org/ok-2", sha(4)),
    listing_entry("org/ok-1", sha(1)),  # listed again: skipped, not counted twice
    listing_entry("org/ok-3", sha(5)),
    listing_entry("org/ok-4", sha(6)),
]


def test_malformed_entries_are_recorded_with_their_reason_and_the_others_land(tmp_path: Path):
    with FakeSources(listing_page_size=3) as server:
        server.listings["downloads"] = list(MALFORMED)
        result = discover_models(fetcher(), server.base_url, parse_discover("top-downloads:3"))
        first_page = listing_url(server.base_url, Discovery("top-downloads", 3), 3)
    assert result.repos() == ["org/ok-1", "org/ok-2", "org/ok-3"]
    assert "downloads" not in result.candidates[0].fields
    reasons = {f.record_key: f.reason for f in result.all_failures}
    assert reasons == {
        "'../../etc/passwd'": "`id` is not a valid Hugging Face repo id (owner/name)",
        "top-downloads entry 3": "entry is a JSON str, not an object",
        "org/no-sha": "entry has no commit `sha`",
    }
    assert result.duplicates == 1

    warehouse = tmp_path / "warehouse.duckdb"
    with connect(warehouse) as con:
        report = land_candidates(con, batch_id="batch-1", result=result)
    assert report.records_landed == 3
    rows = query(warehouse, f"select record_key, source, location, http_status, content_sha256, record from raw.{CANDIDATES_TABLE}")
    assert [row[0] for row in rows] == ["org/ok-1", "org/ok-2", "org/ok-3"]
    assert {row[1] for row in rows} == {"hf_model_listing"} and {row[3] for row in rows} == {200}
    assert rows[0][2] == first_page  # provenance: the page each candidate came from
    assert json.loads(rows[2][5])["discovery"] == {"mode": "top-downloads", "rank": 3}
    recorded = query(warehouse, "select raw_table, record_key, reason from raw.ingest_failures order by record_key")
    assert {(table, key) for table, key, _reason in recorded} == {(CANDIDATES_TABLE, key) for key in reasons}

    # the same pages again: append-only, nothing new lands
    with connect(warehouse) as con:
        assert land_candidates(con, batch_id="batch-2", result=result).records_landed == 0


def page(entries: list[dict], link: str | None) -> Fault:
    """A listing page the test writes itself: its entries and its `Link` to the next page."""
    headers = {"Content-Type": "application/json", **({"Link": f'<{link}>; rel="next"'} if link else {})}
    return Fault.status_code(200, headers, json.dumps(entries).encode())


def test_a_page_that_is_not_a_listing_stops_that_listing_only():
    with FakeSources() as server:
        server.listings["trendingScore"] = list(TRENDING_ENTRIES)
        second = server.listing_url({"sort": "downloads", "cursor": "page-2"})
        server.fail(LISTING_PATH, page(TOP_ENTRIES[:3], second), Fault.html())  # page 2: an HTML login page
        result = discover_models(fetcher(), server.base_url, parse_discover("top-downloads:5,trending:2"))
    assert [c.repo for c in result.candidates if c.mode == "top-downloads"] == TOP[:3]  # page 1 kept
    assert [(f.location, f.record_key, f.reason) for f in result.all_failures] == [
        (second, "top-downloads page", "an HTML page, not a model listing (error or login page?)")
    ]
    assert [c.repo for c in result.candidates if c.mode == "trending"] == [TOP[9], TOP[8]]


def test_a_listing_the_hub_refuses_is_a_failure_and_the_other_listing_goes_on():
    with FakeSources() as server:
        server.listings["trendingScore"] = list(TRENDING_ENTRIES)
        second = server.listing_url({"sort": "downloads", "cursor": "page-2"})
        # page 2 answers 503 to both attempts (FAST: max_attempts=2)
        server.fail(LISTING_PATH, page(TOP_ENTRIES[:3], second), Fault.status_code(503), Fault.status_code(503))
        result = discover_models(fetcher(), server.base_url, parse_discover("top-downloads:5,trending:2"))
    assert [c.repo for c in result.candidates if c.mode == "top-downloads"] == TOP[:3]  # page 1 kept
    assert [(f.location, f.record_key, f.reason) for f in result.failures] == [
        (second, "top-downloads:5", "server error (HTTP 503) (gave up after 2 attempts)")
    ]
    assert [c.repo for c in result.candidates if c.mode == "trending"] == [TOP[9], TOP[8]]


def test_a_link_loop_stops_the_listing():
    with FakeSources() as server:
        first = listing_url(server.base_url, Discovery("top-downloads", 9), 9)
        second = server.listing_url({"sort": "downloads", "cursor": "page-2"})
        server.fail(LISTING_PATH, page(TOP_ENTRIES[:3], second), page(TOP_ENTRIES[3:5], first))
        result = discover_models(fetcher(), server.base_url, (Discovery("top-downloads", 9),))
        assert len(server.requests_to(LISTING_PATH)) == 2
    assert result.repos() == TOP[:5]
    assert [f.reason for f in result.failures] == [
        f"the next-page Link points back to a page already fetched ({first}); listing stopped"
    ]


def test_a_repeated_page_stops_the_listing():
    with FakeSources() as server:
        links = [server.listing_url({"sort": "downloads", "cursor": f"page-{n}"}) for n in (2, 3)]
        server.fail(LISTING_PATH, page(TOP_ENTRIES[:3], links[0]), page(TOP_ENTRIES[:3], links[1]))
        result = discover_models(fetcher(), server.base_url, (Discovery("top-downloads", 9),))
        assert len(server.requests_to(LISTING_PATH)) == 2
    assert result.repos() == TOP[:3] and len(result.pages) == 1
    (failure,) = result.failures
    assert failure.location == links[0] and "page repeats the content of" in failure.reason


def test_a_link_leaving_the_listing_is_not_followed():
    with FakeSources() as server:
        server.fail(LISTING_PATH, page(TOP_ENTRIES[:3], "http://evil.example/api/models?cursor=2"))
        result = discover_models(fetcher(), server.base_url, (Discovery("top-downloads", 9),))
        server.fail(LISTING_PATH, page(TOP_ENTRIES[:3], server.url("/api/models/org0/model-0")))
        elsewhere = discover_models(fetcher(), server.base_url, (Discovery("top-downloads", 9),))
        assert server.paths_requested() == [LISTING_PATH, LISTING_PATH]
    for outcome in (result, elsewhere):
        assert outcome.repos() == TOP[:3]
        assert "the next-page Link leaves the model listing" in outcome.failures[0].reason


def test_pages_that_add_nothing_stop_the_listing():
    with FakeSources() as server:
        links = [server.listing_url({"sort": "downloads", "cursor": f"page-{n}"}) for n in range(2, 7)]
        server.fail(LISTING_PATH, *(page([{"junk": n}], link) for n, link in enumerate(links)))
        result = discover_models(fetcher(), server.base_url, (Discovery("top-downloads", 9),))
        assert len(server.requests_to(LISTING_PATH)) == 3
    assert result.repos() == [] and len(result.entry_failures) == 3
    assert result.failures[0].reason == "3 pages in a row added no new model; listing stopped"


# --- discovered models in a live run -------------------------------------------------------------------

WATCHED = "Qwen/Qwen3-0.6B"
# The fake Hub's top-downloads listing, in order. Pages of 2: [WATCHED, bad id], [SmolLM2, Qwen2.5-1.5B], [Qwen3-1.7B].
LIVE_LISTING = [
    listing_entry(WATCHED, "1" * 40, downloads=900),
    listing_entry("bad/../id", "2" * 40, downloads=800),
    listing_entry("HuggingFaceTB/SmolLM2-360M-Instruct", "3" * 40, downloads=700),
    listing_entry("Qwen/Qwen2.5-1.5B", "4" * 40, downloads=600),
    listing_entry("Qwen/Qwen3-1.7B", "5" * 40, downloads=500),
]
# top-downloads:3 = the first three valid entries; the watchlist's model is one of them (tracked once).
DISCOVERED = {WATCHED, "HuggingFaceTB/SmolLM2-360M-Instruct", "Qwen/Qwen2.5-1.5B"}


@pytest.fixture(scope="module")
def live_discovery(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("discovery")
    watchlist = tmp / "watchlist.yaml"
    watchlist.write_text(f"models:\n  - {WATCHED}\n")
    with FakeSources(listing_page_size=2) as server:
        for entry in LIVE_LISTING:
            if entry["id"] != "bad/../id":
                server.add_model(entry["id"], sha=entry["sha"])
        server.listings["downloads"] = list(LIVE_LISTING)
        server.bodies[LITELLM_PATH] = litellm_subset(300)
        env = {**live_mode_env(server, tmp / "data", watchlist, ("lambda",)), "FITATLAS_DISCOVER": "top-downloads:3"}
        yield server, tmp / "data", env


@pytest.fixture(scope="module")
def discovered_run(live_discovery):
    server, data_dir, env = live_discovery
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_live(env, instance)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        yield server, data_dir, env, instance, result


@pytest.mark.integration
def test_discovered_models_are_ingested_and_published_beside_the_watchlist(discovered_run):
    server, data_dir, _env, _instance, result = discovered_run
    assert {row[0] for row in query(data_dir / "published.duckdb", "select model_id from models")} == DISCOVERED
    warehouse = data_dir / "warehouse.duckdb"
    assert {row[0] for row in query(warehouse, "select distinct record_key from raw.hf_model_configs")} == DISCOVERED
    candidates = query(warehouse, f"select record_key, record->>'$.discovery.rank' from raw.{CANDIDATES_TABLE} order by 2")
    assert candidates == [(WATCHED, "1"), ("HuggingFaceTB/SmolLM2-360M-Instruct", "2"), ("Qwen/Qwen2.5-1.5B", "3")]
    failures = query(warehouse, "select raw_table, record_key, reason from raw.ingest_failures where batch_id = ?", [result.run_id])
    assert (CANDIDATES_TABLE, "'bad/../id'", "`id` is not a valid Hugging Face repo id (owner/name)") in failures
    # the fourth valid model was beyond N: never listed further, never fetched
    assert len(server.requests_to(LISTING_PATH)) == 2
    assert not any("Qwen3-1.7B" in path for path in server.paths_requested())
    metadata = result.asset_materializations_for_node("raw__hf_model_configs")[0].metadata
    assert metadata["discovered_models"].value == 3 and metadata["items_checked"].value == 3
    assert metadata["records_landed"].value == 3


@pytest.mark.integration
def test_a_rerun_asks_only_the_listing_then_lands_only_the_model_whose_sha_moved(discovered_run):
    server, data_dir, env, instance, _result = discovered_run
    before = len(server.requests)
    again = run_live(env, instance, "ingest_hf_models")
    assert again.success
    asked = [r.path for r in server.requests[before:]]
    assert asked == [LISTING_PATH, LISTING_PATH]  # each listed sha is the landed one: no model info, no config
    assert again.asset_materializations_for_node("raw__hf_model_configs")[0].metadata["records_landed"].value == 0

    moved = "6" * 40
    server.models["Qwen/Qwen2.5-1.5B"].sha = moved
    server.listings["downloads"][3] = listing_entry("Qwen/Qwen2.5-1.5B", moved, downloads=600)
    before = len(server.requests)
    third = run_live(env, instance, "ingest_hf_models")
    assert third.success
    fetched = [r.path for r in server.requests[before:] if r.path != LISTING_PATH]
    assert fetched == ["/api/models/Qwen/Qwen2.5-1.5B", f"/Qwen/Qwen2.5-1.5B/resolve/{moved}/config.json"]
    landed = query(data_dir / "warehouse.duckdb", "select record->>'$.model_info.sha' from raw.hf_model_configs where batch_id = ?", [third.run_id])
    assert landed == [(moved,)]


@pytest.mark.integration
def test_the_sensor_reads_discovered_shas_from_the_listing(live_discovery, tmp_path: Path):
    server, _data_dir, env = live_discovery
    settings = Settings.from_environment({**env, "FITATLAS_DATA_DIR": str(tmp_path / "data")})
    resources = fitatlas_resources(settings, env)
    sensor = hf_model_sensor(900)
    with dg.instance_for_test() as instance:
        first = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        items = first.run_requests[0].run_config["ops"]["raw__hf_model_configs"]["config"]["items"]
        assert items == [WATCHED, "HuggingFaceTB/SmolLM2-360M-Instruct", "Qwen/Qwen2.5-1.5B"]
        assert not sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources)).run_requests
        before = len(server.requests)
        listed = server.listings["downloads"][2]
        server.listings["downloads"][2] = listing_entry("HuggingFaceTB/SmolLM2-360M-Instruct", "7" * 40, downloads=700)
        try:
            moved = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources))
        finally:
            server.listings["downloads"][2] = listed
        assert moved.run_requests[0].run_config["ops"]["raw__hf_model_configs"]["config"]["items"] == [
            "HuggingFaceTB/SmolLM2-360M-Instruct"
        ]
        # one model-info call for the watchlist's model, the listing's pages for the discovered ones
        assert [r.path for r in server.requests[before:]] == [f"/api/models/{WATCHED}", LISTING_PATH, LISTING_PATH]


@pytest.mark.integration
def test_discovery_off_asks_no_listing_and_lands_no_candidates(live_discovery, tmp_path: Path):
    server, _data_dir, env = live_discovery
    off = {k: v for k, v in env.items() if k != "FITATLAS_DISCOVER"} | {"FITATLAS_DATA_DIR": str(tmp_path / "data")}
    before = len(server.requests)
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_live(off, instance, "ingest_hf_models")
    assert result.success
    assert LISTING_PATH not in [r.path for r in server.requests[before:]]
    metadata = result.asset_materializations_for_node("raw__hf_model_configs")[0].metadata
    assert "discovered_models" not in metadata and metadata["items_checked"].value == 1
    tables = query(tmp_path / "data" / "warehouse.duckdb", "select table_name from information_schema.tables where table_schema = 'raw'")
    assert (CANDIDATES_TABLE,) not in tables


def test_discovery_result_is_empty_when_nothing_is_asked():
    result = DiscoveryResult(())
    assert result.repos() == [] and result.as_metadata() == {"discovered_models": 0, "discovery_pages": 0, "discovery_failures": 0}
