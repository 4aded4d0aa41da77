"""The whole graph materialised in-process on the bundled snapshot into a temporary directory.

Real parts only: real DuckDB files, a real dbt build, a real (temporary) Dagster instance, the
real Great Expectations suites, and the published site opened in a real headless Chromium. Expected
values cite their source.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
from browser import Browser, PageLoad, chromium_binary, page_url
from duckdb_rows import query
from pipeline_runs import run_pipeline

from pipelines.publishing import PUBLISHED_TABLES, site_index
from pipelines.settings import SNAPSHOT_DIR, Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("data")
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_pipeline(data_dir, instance)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        yield data_dir, instance, result


def snapshot_model_ids() -> set[str]:
    listing = json.loads((SNAPSHOT_DIR / "hf" / "models.json").read_text())
    entries = listing.get("models", listing) if isinstance(listing, dict) else listing
    return {entry["model_id"] for entry in entries}


def test_every_published_table_is_published_and_exported(published):
    data_dir, _, _ = published
    db = data_dir / "published.duckdb"
    tables = {row[0] for row in query(db, "select table_name from information_schema.tables")}
    assert set(PUBLISHED_TABLES) <= tables
    for table in PUBLISHED_TABLES:
        assert query(db, f"select count(*) from {table}")[0][0] > 0, table
        assert (data_dir / "published" / "current" / f"{table}.parquet").exists()


def test_every_snapshot_model_is_published_or_reported_unsupported(published):
    data_dir, _, _ = published
    db = data_dir / "published.duckdb"
    published_models = {row[0] for row in query(db, "select model_id from models")}
    unsupported = {row[0] for row in query(data_dir / "warehouse.duckdb", "select model_id from marts.unsupported_models")}
    assert published_models | unsupported == snapshot_model_ids()
    assert len(published_models) >= 60
    in_matrix = {row[0] for row in query(db, "select distinct model_id from fit_matrix")}
    recommended = {row[0] for row in query(db, "select distinct model_id from recommendations")}
    assert in_matrix == published_models
    assert recommended == published_models


def test_every_gpu_is_in_the_fit_matrix(published):
    data_dir, _, _ = published
    db = data_dir / "published.duckdb"
    gpus = {row[0] for row in query(db, "select gpu_id from gpus")}
    assert len(gpus) >= 40
    assert {row[0] for row in query(db, "select distinct gpu_id from fit_matrix")} == gpus


def test_fit_matrix_covers_both_kv_dtypes(published):
    data_dir, _, _ = published
    db = data_dir / "published.duckdb"
    assert {row[0] for row in query(db, "select distinct kv_dtype from fit_matrix")} == {"bf16", "fp8"}
    # An FP8 cache holds 1 byte per element instead of 2: never less concurrency than BF16, and
    # Llama-3.1-8B on one H100 at 32k holds at least 1.9x as many sequences.
    worse = query(
        db,
        """select count(*) from fit_matrix b join fit_matrix f using (model_id, gpu_id, precision, gpu_count, context_length)
           where b.kv_dtype = 'bf16' and f.kv_dtype = 'fp8' and f.max_concurrent_seqs < b.max_concurrent_seqs""",
    )[0][0]
    assert worse == 0
    bf16, fp8 = (
        query(db, "select max_concurrent_seqs from fit_matrix where model_id = 'meta-llama/Meta-Llama-3.1-8B' and gpu_id = "
                  "'nvidia-h100-sxm-80gb' and precision = 'bf16' and gpu_count = 1 and context_length = 32768 and kv_dtype = ?", [dtype])[0][0]
        for dtype in ("bf16", "fp8")
    )
    assert bf16 > 0 and fp8 >= 1.9 * bf16
    assert {row[0] for row in query(db, "select distinct kv_dtype from recommendations")} == {"bf16"}


def test_published_architecture_values(published):
    data_dir, _, _ = published
    db = data_dir / "published.duckdb"
    # Llama-3.1-405B config.json: num_hidden_layers 126, num_key_value_heads 8, head_dim 16384/128 = 128;
    # KV bytes/token = 126 layers x 8 heads x 128 x 2 (K,V) x 2 bytes = 516,096.
    layers, kv = query(db, "select num_layers, kv_bytes_per_token_bf16 from models where model_id = 'meta-llama/Meta-Llama-3.1-405B'")[0]
    assert (layers, kv) == (126, 516_096)
    # Llama-3.1-8B: 8,030,261,248 parameters (safetensors total quoted in the model card; the
    # transformers meta-device count in tests/oracle/param_counts.csv agrees).
    assert query(db, "select params_total from models where model_id = 'meta-llama/Meta-Llama-3.1-8B'")[0][0] == 8_030_261_248


def test_instruct_release_tracked_through_its_base_config(published):
    data_dir, _, _ = published
    db = data_dir / "published.duckdb"
    # Llama-3.1-405B-Instruct's architecture is the base's (snapshot_tool.SAME_ARCHITECTURE_VARIANTS).
    rows = query(db, "select num_layers, kv_bytes_per_token_bf16 from models where model_id = 'meta-llama/Llama-3.1-405B-Instruct'")
    assert rows == [(126, 516_096)]
    assert query(db, "select count(*) from recommendations where model_id = 'meta-llama/Llama-3.1-405B-Instruct'")[0][0] >= 3
    providers = {row[0] for row in query(db, "select provider from provider_prices where model_id = 'meta-llama/Llama-3.1-405B-Instruct'")}
    assert len(providers) >= 3


def test_publication_is_recorded_as_auto_approved(published):
    data_dir, _, result = published
    rows = query(data_dir / "published.duckdb", "select batch_id, approval_kind, approved_by, checks_failed, checks_passed from publications")
    assert rows == [(result.run_id, "auto", "fitatlas:auto", 0, rows[0][4])]
    assert rows[0][4] > 0


def test_site_charts_are_drawn_while_the_checks_run(published):
    """audited_batch hands the batch's charts to a background worker; the publication's site build
    (same process: the in-process executor) waits for it and draws none itself."""
    _, instance, _ = published
    metadata = {k: v.value for k, v in instance.get_latest_materialization_event(dg.AssetKey("site"))
                .asset_materialization.metadata.items()}
    assert metadata["charts_reused"] >= 2 * metadata["model_pages"]  # throughput + VRAM for (almost) every model
    assert metadata["charts_drawn"] == 0
    assert metadata["build_seconds"] > 0


def test_failing_blocking_check_leaves_previous_publication_untouched(published, tmp_path):
    data_dir, instance, _ = published
    db = data_dir / "published.duckdb"
    before = db.read_bytes()
    # Land a spec sheet claiming 8,000 GB of memory for a GPU: the gpus suite rejects memory above 2 TB.
    sheets = tmp_path / "spec_sheets"
    sheets.mkdir()
    for sheet in (SNAPSHOT_DIR / "spec_sheets").rglob("*"):
        if sheet.is_file():
            target = sheets / sheet.relative_to(SNAPSHOT_DIR / "spec_sheets")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(sheet.read_bytes())
    # ml-engineering's memory table is the first-priority memory source (seed gpu_spec_source_priority).
    memory_sheet = sheets / "ml-engineering_accelerator_memory.csv"
    text = memory_sheet.read_text()
    assert "NVIDIA H100 SXM,80,HBM3,3.35" in text
    memory_sheet.write_text(text.replace("NVIDIA H100 SXM,80,HBM3,3.35", "NVIDIA H100 SXM,8000,HBM3,3.35"))
    result = run_pipeline(data_dir, instance, spec_sheets_dir=sheets)
    checks = {e.asset_key.path[-1]: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["gpus"] is False
    assert not any(e.asset_key == dg.AssetKey("publication") for e in result.get_asset_materialization_events())
    assert db.read_bytes() == before
    failing = query(
        data_dir / "batches" / f"{result.run_id}.duckdb",
        "select row_data from failing_rows where table_name = 'gpus' and expectation = 'expect_column_values_to_be_between(memory_gb)'",
    )
    assert [json.loads(row[0])["gpu_id"] for row in failing] == ["nvidia-h100-sxm-80gb"]
    assert json.loads(failing[0][0])["memory_gb"] > 2000


@pytest.fixture
def cli_env(published, monkeypatch: pytest.MonkeyPatch):
    """The CLI reads its settings from the environment: point it at the published data dir."""
    monkeypatch.setenv("FITATLAS_DATA_DIR", str(published[0]))


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    from pipelines.cli import main

    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_gpus_lists_the_published_gpus(cli_env, capsys):
    code, out, _ = run_cli(["gpus", "--json"], capsys)
    gpus = {g["gpu_id"]: g for g in json.loads(out)}
    assert code == 0 and len(gpus) >= 40
    # aiconfigurator h100_sxm.yaml: mem_capacity 85,899,345,920 bytes (80 GiB) = 85.9 GB.
    assert {k: gpus["nvidia-h100-sxm-80gb"][k] for k in ("vendor", "memory_gb")} == {"vendor": "NVIDIA", "memory_gb": 85.899}


def test_cli_estimate_on_a_gpu(cli_env, capsys):
    config = SNAPSHOT_DIR / "hf" / "meta-llama__Meta-Llama-3.1-8B" / "config.json"
    code, out, _ = run_cli(
        ["estimate", "--config", str(config), "--gpu", "nvidia-h100-sxm-80gb", "--precision", "fp8",
         "--context", "8192", "--json"],
        capsys,
    )
    result = json.loads(out)
    assert code == 0 and result["supported"] is True
    assert result["params_total"] == 8_030_261_248
    # 32 layers x 8 KV heads x 128 x 2 (K,V) x 2 bytes = 131,072 B/token; x 8,192 tokens.
    assert (result["kv_bytes_per_token"], result["kv_bytes_per_seq"]) == (131_072, 131_072 * 8192)
    for field in ("fits", "fit_class", "max_concurrent_seqs", "decode_tok_s", "decode_tok_s_batch1", "itl_ms", "ttft_ms", "cost_per_mtok_usd"):
        assert result[field] is not None, field
    assert result["fits"] is True and result["decode_tok_s"] > result["decode_tok_s_batch1"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["estimate", "--config", "/nonexistent/config.json"], "no such file"),
        (["estimate", "--config", str(SNAPSHOT_DIR / "SNAPSHOT.json"), "--gpu", "no-such-gpu"], "unknown GPU id 'no-such-gpu'"),
    ],
)
def test_cli_estimate_errors_name_the_item(cli_env, capsys, args, message):
    code, _, err = run_cli(args, capsys)
    assert code == 2 and message in err


def test_cli_estimate_rejects_bad_json(cli_env, capsys, tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    code, _, err = run_cli(["estimate", "--config", str(bad)], capsys)
    assert code == 2 and "not valid JSON" in err

# --- the published site, in a real browser -----------------------------------------------------------
# The browser loads the index, the Llama-3.1-405B page and a GPU page of this module's publication at
# 375 px (a phone) and 1,440 px (a desktop); every number checked is read from the published tables.
# Screenshots go to the test's temp dir; FITATLAS_SCREENSHOT_DIR keeps a copy (for looking at them).

LLAMA_405B = "meta-llama/Llama-3.1-405B-Instruct"
WIDTHS = (375, 1440)

# The first table after a section heading, as the reader meets it.
TABLE_AFTER = """(id => { let el = document.getElementById(id);
  while (el && !(el.classList && el.classList.contains('table-wrap'))) el = el.nextElementSibling;
  return el; })"""


@pytest.fixture(scope="module")
def site_settings(published) -> Settings:
    return Settings.for_data_dir(published[0])


@pytest.fixture(scope="module")
def browser():
    binary = chromium_binary()
    if binary is None:
        pytest.fail("no chromium on PATH: `apt-get install -y chromium` (.ci/run installs it)")
    opened = Browser(binary)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def keep(load: PageLoad, name: str, screenshots: Path) -> None:
    path = screenshots / f"{name}-{load.width}.png"
    path.write_bytes(load.screenshot)
    if target := os.environ.get("FITATLAS_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def assert_clean(load: PageLoad, page_width: int) -> None:
    assert load.console_errors == [], load.console_errors
    assert load.external_requests == [], load.external_requests
    assert load.screenshot.startswith(b"\x89PNG")
    assert page_width <= load.width + 1, f"the page scrolls sideways at {load.width} px ({page_width} px wide)"


def published_value(settings: Settings, sql: str, params: list | None = None):
    (value,), = query(settings.published_path, sql, params)
    return value


@pytest.mark.parametrize("width", WIDTHS)
def test_the_405b_page_shows_the_published_numbers(site_settings, browser, screenshots, width):
    page = site_index(site_settings).parent / "models" / "meta-llama--Llama-3.1-405B-Instruct.html"
    load, found = browser.load(page_url(page), width, evaluate={
        "text": "document.body.innerText",
        "page_width": "document.documentElement.scrollWidth",
        "h1": "[...document.querySelectorAll('h1')].map(h => h.innerText)",
        "rank1": f"{TABLE_AFTER}('recommendations').querySelector('tbody tr').innerText",
        "unlabelled_images": "[...document.querySelectorAll('img:not([alt]), svg:not([aria-label]):not([aria-hidden])')]"
                             ".filter(e => !e.closest('svg[aria-label]')).length",
        "headers_without_scope": "document.querySelectorAll('th:not([scope])').length",
    })
    keep(load, "model-llama-3.1-405b", screenshots)
    assert_clean(load, found["page_width"])
    # models.kv_bytes_per_token_bf16: 126 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 516,096
    kv = published_value(site_settings, "select kv_bytes_per_token_bf16 from models where model_id = ?", [LLAMA_405B])
    assert kv == 516_096 and f"{kv:,} bytes" in found["text"]
    weights = published_value(site_settings, "select weights_gb_bf16 from models where model_id = ?", [LLAMA_405B])
    assert f"{weights:,.1f} GB" in found["text"]
    gpu_id, count = query(site_settings.published_path,
                          "select gpu_id, gpu_count from recommendations where model_id = ? and rank = 1", [LLAMA_405B])[0]
    gpu_name = published_value(site_settings, "select name from gpus where gpu_id = ?", [gpu_id])
    assert gpu_name in found["rank1"] and str(count) in found["rank1"], found["rank1"]
    assert len(found["h1"]) == 1 and "Llama 3.1 405B" in found["h1"][0].replace("-", " ")
    assert found["unlabelled_images"] == 0 and found["headers_without_scope"] == 0
    for placeholder in ("NaN", "Infinity", "None", "undefined", "$0.00"):
        assert placeholder not in found["text"], placeholder


@pytest.mark.parametrize("width", WIDTHS)
def test_the_index_sorts_and_filters_every_model_in_the_browser(site_settings, browser, screenshots, width):
    models = published_value(site_settings, "select count(*) from models")
    load, found = browser.load(page_url(site_index(site_settings)), width, evaluate={
        "page_width": "document.documentElement.scrollWidth",
        "rows": "document.querySelectorAll('#models tbody tr').length",
        "filtered": """(() => { const box = document.getElementById('filter'); box.value = '405B';
            box.dispatchEvent(new Event('input', {bubbles: true}));
            return [...document.querySelectorAll('#models tbody tr')].filter(r => !r.hidden && r.style.display !== 'none')
              .map(r => r.querySelector('th').innerText); })()""",
        "sorted_params": """(() => { const box = document.getElementById('filter'); box.value = '';
            box.dispatchEvent(new Event('input', {bubbles: true}));
            const header = [...document.querySelectorAll('#models thead th')].find(th => th.innerText.startsWith('Params total'));
            (header.querySelector('button') || header).click();
            const first = () => document.querySelector('#models tbody tr th').innerText.split('\\n').pop().trim();
            const once = first(); (header.querySelector('button') || header).click(); return [once, first()]; })()""",
        "links": "[...document.querySelectorAll('#models tbody tr th a')].map(a => a.getAttribute('href'))",
    })
    keep(load, "index", screenshots)
    assert_clean(load, found["page_width"])
    assert found["rows"] == models
    shown = {text.splitlines()[-1].strip() for text in found["filtered"]}
    expected = {row[0] for row in query(site_settings.published_path, "select model_id from models where model_id ilike '%405B%'")}
    assert shown == expected and LLAMA_405B in shown
    largest, smallest = (
        published_value(site_settings, f"select model_id from models order by params_total {order} limit 1") for order in ("desc", "asc")
    )
    assert sorted(found["sorted_params"]) == sorted([largest, smallest])  # one click each way: extremes first
    site = site_index(site_settings).parent
    assert all((site / href).is_file() for href in found["links"])


@pytest.mark.parametrize("width", WIDTHS)
def test_a_gpu_page_lists_what_runs_on_it(site_settings, browser, screenshots, width):
    gpu_id = published_value(site_settings, "select gpu_id from recommendations where model_id = ? and rank = 1", [LLAMA_405B])
    page = site_index(site_settings).parent / "gpus" / f"{gpu_id}.html"
    load, found = browser.load(page_url(page), width, evaluate={
        "text": "document.body.innerText",
        "page_width": "document.documentElement.scrollWidth",
    })
    keep(load, f"gpu-{gpu_id}", screenshots)
    assert_clean(load, found["page_width"])
    name, memory_gb = query(site_settings.published_path, "select name, memory_gb from gpus where gpu_id = ?", [gpu_id])[0]
    assert name in found["text"] and f"{memory_gb:,.1f} GB" in found["text"]
    assert "Llama-3.1-405B-Instruct" in found["text"]
