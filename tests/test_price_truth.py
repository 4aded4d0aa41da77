"""Price truth: canonical providers, tiers, exclusions with evidence, one canonical price, finite break-even.

Real parts only: the bundled snapshot (and, for the provider-name survey, the full price files in
shared/data) landed by the ingest parsers into a real DuckDB file, a real two-half dbt build around
the real `model_specs` asset, the real Great Expectations suite and the real Dagster check.
Expected values cite the raw file and entry they come from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from test_dbt_normalisation import SNAPSHOT, build_warehouse, dbt_build, land_snapshot
from test_kv_per_gpu import gpu_frame, hand_frames

from pipelines.defs.quality.price_checks import PROVIDER_PRICES_KEY, excluded_prices_check, price_checks
from pipelines.defs.quality.suites import load_suite, validate_frame
from pipelines.resources import FitAtlasResource, WarehouseResource
from pipelines.settings import Settings
from sizing.cost import api_prices, comparable_prices, cost_columns
from sizing.grid import fit_matrix, recommendations

pytestmark = pytest.mark.integration

SNAPSHOT_PRICES = SNAPSHOT / "prices"
LLAMA_405B = "meta-llama/Llama-3.1-405B-Instruct"
HYPERBOLIC_LLAMA_31 = {  # LiteLLM key -> tracked model (hf_repo_renames / alias seed)
    "hyperbolic/meta-llama/Meta-Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B-Instruct",
    "hyperbolic/meta-llama/Meta-Llama-3.1-70B-Instruct": "meta-llama/Llama-3.1-70B-Instruct",
    "hyperbolic/meta-llama/Meta-Llama-3.1-405B-Instruct": LLAMA_405B,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("price_truth")
    build_warehouse(directory)
    return directory


@pytest.fixture(scope="module")
def warehouse(data_dir: Path) -> Path:
    return data_dir / "warehouse.duckdb"


def rows(warehouse: Path, sql: str, parameters: list | None = None) -> list[dict]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(sql, parameters or [])
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def prices_frame(warehouse: Path) -> pl.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.sql("select * from marts.provider_prices").pl()


def litellm_snapshot() -> dict:
    return json.loads((SNAPSHOT_PRICES / "litellm_model_prices_and_context_window.json").read_text())


# --- exclusions ----------------------------------------------------------------------------------


def test_hyperbolic_placeholder_is_excluded_with_evidence(warehouse: Path) -> None:
    # pipelines/snapshot/prices/litellm_model_prices_and_context_window.json: hyperbolic lists
    # input_cost_per_token 1.2e-07 and output_cost_per_token 3e-07 for Llama 3.1 8B, 70B and 405B.
    litellm = litellm_snapshot()
    for key in HYPERBOLIC_LLAMA_31:
        assert (litellm[key]["input_cost_per_token"], litellm[key]["output_cost_per_token"]) == (1.2e-07, 3e-07), key
    excluded = rows(
        warehouse,
        "select * from marts.provider_prices where provider = 'hyperbolic' and model_line = 'llama-3.1' order by params_total",
    )
    assert [r["model_id"] for r in excluded] == list(HYPERBOLIC_LLAMA_31.values())
    for row in excluded:
        assert (row["input_usd_per_mtok"], row["output_usd_per_mtok"]) == (0.12, 0.3)
        assert row["excluded_reason"] == "same_price_across_sizes"
    evidence = json.loads(excluded[-1]["excluded_evidence"])
    assert evidence["rule"] == "same_price_across_sizes"
    assert evidence["detail"] == "hyperbolic quotes $0.12/$0.3 per 1M in/out for 3 sizes of llama-3.1"
    # Every source's hyperbolic rows for the line, by size: 8B (8,030,261,248 params), 70B, 405B.
    listed = [(r["model_id"], r["params_total"], r["source"], r["output_usd_per_mtok"]) for r in evidence["rows"]]
    assert listed == [
        ("meta-llama/Llama-3.1-8B-Instruct", 8_030_261_248, "litellm_prices_json", 0.3),
        ("meta-llama/Llama-3.1-70B-Instruct", 70_553_706_496, "litellm_prices_json", 0.3),
        (LLAMA_405B, 405_853_388_800, "litellm_prices_json", 0.3),
    ]


def test_405b_cheapest_comparable_api_is_not_the_placeholder(warehouse: Path) -> None:
    prices = prices_frame(warehouse)
    at_mix = api_prices(prices, input_len=1000, output_len=1000).collect()
    cheapest = at_mix.filter(pl.col("model_id") == LLAMA_405B).row(0, named=True)
    # Before: every row counted, so hyperbolic's $0.30 was the cheapest API for the 405B.
    legacy = api_prices(prices.drop("excluded_reason", "is_canonical"), input_len=1000, output_len=1000).collect()
    assert legacy.filter(pl.col("model_id") == LLAMA_405B)["cheapest_api_output_usd_per_mtok"].item() == 0.3
    # After: genai-prices (pipelines/snapshot/prices/genai-prices_data.json), provider openrouter,
    # meta-llama/llama-3.1-405b-instruct: input_mtok 0.8, output_mtok 0.8 - the cheapest comparable.
    assert cheapest["cheapest_api_output_usd_per_mtok"] == 0.8
    assert cheapest["api_usd_per_mtok_at_mix"] == pytest.approx(1.6)
    comparable = comparable_prices(prices.lazy()).collect().filter(pl.col("model_id") == LLAMA_405B)
    assert 0.3 not in comparable["output_usd_per_mtok"].to_list()
    assert set(comparable["provider"]) == {"openrouter", "avian", "nebius", "fireworks", "together"}


def test_no_free_or_batch_price_is_comparable(warehouse: Path) -> None:
    # pipelines/snapshot/prices/openrouter_api_v1_models.json: z-ai/glm-5.2:free prices "0"/"0",
    # z-ai/glm-5.2:batch "0.0000007"/"0.0000022".
    glm = {r["tier"]: r for r in rows(warehouse, "select * from marts.provider_prices where source = 'openrouter_models_json' and provider_model_id like 'z-ai/glm-5.2%'")}
    assert (glm["free"]["output_usd_per_mtok"], glm["batch"]["output_usd_per_mtok"], glm["standard"]["output_usd_per_mtok"]) == (0.0, 2.2, 1.496)
    assert {glm["free"]["excluded_reason"], glm["batch"]["excluded_reason"]} == {"non_standard_tier"}
    assert glm["standard"]["excluded_reason"] is None and glm["standard"]["provider"] == "openrouter"
    tiers = rows(warehouse, "select tier, count(*) filter (where excluded_reason is null) as comparable from marts.provider_prices group by tier")
    assert {t["tier"]: t["comparable"] for t in tiers if t["tier"] != "standard"} == {"free": 0, "batch": 0}
    zero = rows(
        warehouse,
        "select * from marts.provider_prices where excluded_reason is null "
        "and (coalesce(input_usd_per_mtok, 0) <= 0 or coalesce(output_usd_per_mtok, 0) <= 0)",
    )
    assert zero == []


def test_prices_the_source_copied_are_not_comparable(warehouse: Path) -> None:
    # genai-prices_data.json, provider openai, gpt-oss-120b: price_comments "Imported from OpenRouter
    # pricing; verify against OpenAI pricing when native API pricing is published."
    (row,) = rows(warehouse, "select * from marts.provider_prices where provider = 'openai' and model_id = 'openai/gpt-oss-120b'")
    assert row["excluded_reason"] == "unverified_price"
    assert row["source_note"].startswith("Imported from OpenRouter pricing")


def test_every_exclusion_carries_its_evidence(warehouse: Path) -> None:
    checked = rows(warehouse, "select excluded_reason, excluded_evidence from marts.provider_prices")
    assert all((r["excluded_reason"] is None) == (r["excluded_evidence"] is None) for r in checked)
    for row in checked:
        if row["excluded_reason"]:
            evidence = json.loads(row["excluded_evidence"])
            assert evidence["rule"] == row["excluded_reason"] and evidence["detail"] and evidence["rows"]


# --- providers and canonical prices -------------------------------------------------------------


def test_one_company_is_one_provider_slug(warehouse: Path) -> None:
    names = {
        (r["provider_raw"], r["provider"])
        for r in rows(warehouse, "select distinct provider_raw, provider from marts.provider_prices")
    }
    # LiteLLM together_ai / fireworks_ai / moonshot / zai; genai-prices together, huggingface_together,
    # fireworks, huggingface_fireworks-ai, moonshotai, zhipuai (pipelines/snapshot/prices/*).
    for raw, slug in [
        ("together", "together"), ("together_ai", "together"), ("huggingface_together", "together"),
        ("fireworks", "fireworks"), ("fireworks_ai", "fireworks"), ("huggingface_fireworks-ai", "fireworks"),
        ("moonshot", "moonshotai"), ("moonshotai", "moonshotai"), ("zai", "zai"), ("zhipuai", "zai"),
        ("huggingface_hyperbolic", "hyperbolic"), ("hyperbolic", "hyperbolic"),
    ]:
        assert (raw, slug) in names, raw
    slugs = {slug for _, slug in names}
    assert not {"together_ai", "fireworks_ai", "moonshot", "zhipuai", "openrouter:free", "openrouter:batch"} & slugs
    assert not [slug for slug in slugs if slug.startswith("huggingface_")]


def test_exactly_one_canonical_price_per_model_and_provider(warehouse: Path) -> None:
    groups = rows(
        warehouse,
        "select model_id, provider, count(*) filter (where is_canonical) as canonical from marts.provider_prices group by all",
    )
    assert groups and all(g["canonical"] == 1 for g in groups)
    # Llama-3.1-405B at together: LiteLLM together_ai/meta-llama/Llama-3.1-405B-Instruct ($3.50/$3.50)
    # is the one row (genai-prices' together entry is the -Turbo repo, not mapped).
    (together,) = rows(warehouse, "select * from marts.provider_prices where model_id = ? and provider = 'together'", [LLAMA_405B])
    assert (together["provider_raw"], together["is_canonical"], together["output_usd_per_mtok"]) == ("together_ai", True, 3.5)
    # Llama-3.1-8B at novita: genai-prices novita (0.05/0.05) wins over LiteLLM novita (0.02/0.05) and
    # genai-prices huggingface_novita (0.02/0.05): genai-prices first, then the provider's own listing.
    novita = {
        (r["provider_raw"], r["source"]): r["is_canonical"]
        for r in rows(warehouse, "select * from marts.provider_prices where model_id = 'meta-llama/Llama-3.1-8B-Instruct' and provider = 'novita'")
    }
    assert novita == {
        ("novita", "genai_prices_json"): True,
        ("novita", "litellm_prices_json"): False,
        ("huggingface_novita", "genai_prices_json"): False,
    }


def test_unique_key_and_model_lines(warehouse: Path) -> None:
    duplicated = rows(
        warehouse,
        "select model_id, provider_raw, source, tier from marts.provider_prices group by all having count(*) > 1",
    )
    assert duplicated == []
    lines = {r["model_id"]: r["model_line"] for r in rows(warehouse, "select model_id, model_line from staging.int_model_lines")}
    assert lines[LLAMA_405B] == lines["meta-llama/Meta-Llama-3.1-8B"] == "llama-3.1"
    assert lines["meta-llama/Llama-3.3-70B-Instruct"] == "llama-3.3"
    assert lines["Qwen/Qwen2.5-72B"] == "qwen2.5"
    assert lines["Qwen/Qwen3-235B-A22B-FP8"] == lines["Qwen/Qwen3-8B"] == "qwen3"


# --- the gate ------------------------------------------------------------------------------------


def audited_copy(warehouse: Path, target: Path, tamper: str | None = None) -> duckdb.DuckDBPyConnection:
    """What the audited batch holds (pipelines/batches.py): models and their prices, optionally broken."""
    con = duckdb.connect(str(target))
    con.execute(f"attach '{warehouse}' as warehouse (read_only)")
    con.execute("create table models as select * from warehouse.marts.models")
    con.execute(
        "create table provider_prices as select * from warehouse.marts.provider_prices "
        "where model_id in (select model_id from warehouse.marts.models)"
    )
    if tamper:
        con.execute(tamper)
    return con


def run_suite(con: duckdb.DuckDBPyConnection):
    suite = load_suite("provider_prices")
    expectations = [e for e in suite["expectations"] if not e["meta"].get("requires_previous")]
    frame = con.sql(suite["query"]).df()
    return validate_frame({**suite, "expectations": expectations}, frame, lambda q: [r[0] for r in con.execute(q).fetchall()])


def test_the_suite_passes_on_the_snapshot_and_holds_regressions(warehouse: Path, tmp_path: Path) -> None:
    with audited_copy(warehouse, tmp_path / "ok.duckdb") as con:
        outcome = run_suite(con)
    assert outcome.passed, [(o.label, o.unexpected_count, o.error) for o in outcome.outcomes if o.status != "passed"]

    regressions = {
        # the placeholder back in the comparisons
        "update provider_prices set excluded_reason = null, excluded_evidence = null "
        "where provider = 'hyperbolic' and model_id = 'meta-llama/Llama-3.1-405B-Instruct'":
            "expect_column_pair_values_to_be_equal(excluded_reason vs required_exclusion)",
        # a free tier compared at $0
        "update provider_prices set excluded_reason = null, excluded_evidence = null where tier = 'free'":
            "expect_column_values_to_be_between(comparable_output_usd_per_mtok)",
        # two canonical prices for one provider
        "update provider_prices set is_canonical = true where provider = 'novita'":
            "expect_column_values_to_be_in_set(canonical_rows)",
        # a raw provider name published as the provider
        "update provider_prices set provider = provider_raw where provider_raw = 'together_ai'":
            "expect_column_values_to_not_be_in_set(provider)",
    }
    for number, (tamper, expectation) in enumerate(regressions.items()):
        with audited_copy(warehouse, tmp_path / f"bad{number}.duckdb", tamper) as con:
            failed = {o.label for o in run_suite(con).failed}
        assert expectation in failed, (tamper, failed)


def test_suite_provider_aliases_cover_the_seed() -> None:
    suite = load_suite("provider_prices")
    (aliases,) = [
        e["kwargs"]["value_set"] for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_not_be_in_set" and e["kwargs"]["column"] == "provider"
    ]
    seed = (SNAPSHOT.parents[1] / "dbt_project" / "seeds" / "provider_slugs.csv").read_text().splitlines()[1:]
    assert {line.split(",")[0] for line in seed} <= set(aliases)


def test_excluded_prices_warn_with_evidence_without_blocking(data_dir: Path) -> None:
    defs = dg.Definitions(
        resources={"warehouse": WarehouseResource(database=str(data_dir / "warehouse.duckdb"))},
        assets=[dg.AssetSpec(PROVIDER_PRICES_KEY)],
        asset_checks=[excluded_prices_check],
        jobs=[dg.define_asset_job("excluded", selection=dg.AssetSelection.checks(excluded_prices_check))],
    )
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("excluded").execute_in_process(instance=instance)
    assert result.success  # a warning never fails the run
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "excluded_prices_reviewed"
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    suspect = evaluation.metadata["suspect_prices"].value
    hyperbolic_405b = next(p for p in suspect if p["provider"] == "hyperbolic" and p["model_id"] == LLAMA_405B)
    assert hyperbolic_405b["excluded_reason"] == "same_price_across_sizes"
    assert [(r["model_id"], r["output_usd_per_mtok"]) for r in hyperbolic_405b["evidence"]] == [
        (model, 0.3) for model in HYPERBOLIC_LLAMA_31.values()
    ]
    assert evaluation.metadata["tier_excluded_by_tier"].value == {"batch": 3, "free": 4}
    assert "non_standard_tier" not in evaluation.metadata["suspect_by_reason"].value


def test_the_check_and_the_split_are_wired_into_the_code_location() -> None:
    from test_dbt_normalisation import MODEL_MARTS_SELECTION

    from pipelines.definitions import defs
    from pipelines.defs.transform.dbt_assets import MODEL_MARTS, dbt_model_marts

    assert MODEL_MARTS == MODEL_MARTS_SELECTION
    # provider_prices reads model sizes, so it is built after model_specs, in the second dbt asset.
    assert {dg.AssetKey("provider_prices"), dg.AssetKey(["staging", "int_model_lines"])} <= set(dbt_model_marts.keys)
    with dg.instance_for_test():
        graph = defs().get_repository_def().asset_graph
    key = dg.AssetCheckKey(PROVIDER_PRICES_KEY, "excluded_prices_reviewed")
    assert key in graph.asset_check_keys and not graph.get_check_spec(key).blocking
    assert len(price_checks) == 1


# --- cost: never $0.00, never inf ----------------------------------------------------------------


def test_break_even_is_null_without_a_positive_api_price() -> None:
    frame = pl.DataFrame(
        {"hourly_usd": [2.0] * 5, "gpu_count": [1] * 5, "api_usd_per_mtok_at_mix": [1.46, 0.0, None, -1.0, float("inf")]}
    )
    got = frame.with_columns(cost_columns(pl.lit(100.0), utilisation=0.5))["breakeven_mtok_per_month"].to_list()
    # $2/h x 730 h = $1,460/month; / $1.46 per 1M output tokens = 1,000 M tokens/month.
    assert got[0] == pytest.approx(1000.0)
    assert got[1:] == [None, None, None, None]


def test_library_callers_without_exclusion_columns_still_never_get_a_zero_price() -> None:
    prices = pl.DataFrame({
        "model_id": ["m", "m", "m", "n"],
        "input_usd_per_mtok": [0.0, 0.2, None, 0.0],
        "output_usd_per_mtok": [0.0, 0.6, 0.1, 0.0],
    })
    got = {r["model_id"]: r for r in api_prices(prices, input_len=2000, output_len=1000).collect().iter_rows(named=True)}
    assert set(got) == {"m"}  # n has only a free price: no API comparison at all
    assert got["m"]["cheapest_api_output_usd_per_mtok"] == 0.6  # the row without an input price is not comparable
    assert got["m"]["api_usd_per_mtok_at_mix"] == pytest.approx(0.6 + 2 * 0.2)


def test_recommendations_for_a_model_with_only_free_prices_have_no_api_side() -> None:
    models, groups = hand_frames()
    prices = pl.DataFrame({
        "model_id": ["meta-llama/Llama-3.1-8B"] * 2,
        "provider": ["openrouter"] * 2,
        "tier": ["free", "standard"],
        "input_usd_per_mtok": [0.0, 0.05],
        "output_usd_per_mtok": [0.0, 0.08],
        "excluded_reason": ["non_standard_tier", "same_price_across_sizes"],
        "is_canonical": [False, True],
    })
    recs = recommendations(fit_matrix(models, groups, gpu_frame()), models, groups, gpu_frame(), prices, top_n=5)
    llama = recs.filter(pl.col("model_id") == "meta-llama/Llama-3.1-8B")
    assert llama.height > 0
    assert llama["cheapest_api_output_usd_per_mtok"].null_count() == llama.height
    assert llama["breakeven_mtok_per_month"].null_count() == llama.height


def test_published_recommendations_compare_with_comparable_prices_only(data_dir: Path) -> None:
    """The real sizing assets (inputs, every shard, the grid) on the warehouse built from the snapshot."""
    from pipelines.defs.sizing.assets import sizing_grid_asset, sizing_inputs, sizing_shard_asset
    from pipelines.defs.sizing.sharding import partition_range_tags, shard_partitions

    shards = shard_partitions(3)
    resources = {
        "warehouse": WarehouseResource(database=str(data_dir / "warehouse.duckdb")),
        "fitatlas": FitAtlasResource.for_settings(Settings.for_data_dir(data_dir)),
    }
    result = dg.materialize(
        [sizing_inputs, sizing_shard_asset(shards), sizing_grid_asset(shards)],
        resources=resources, tags=partition_range_tags(3),
    )
    assert result.success
    grid = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"fit_matrix", "recommendations", "model_gpu_speed"} <= grid
    recs = rows(
        data_dir / "warehouse.duckdb",
        "select model_id, cheapest_api_output_usd_per_mtok as cheapest, api_usd_per_mtok_at_mix as at_mix, "
        "breakeven_mtok_per_month as breakeven, cost_per_month_usd from sizing.recommendations",
    )
    assert recs
    for rec in recs:
        assert rec["cheapest"] is None or rec["cheapest"] > 0, rec
        assert rec["breakeven"] is None or 0 < rec["breakeven"] < float("inf"), rec
        if rec["at_mix"] is None or rec["cost_per_month_usd"] is None:
            assert rec["breakeven"] is None, rec
    # Llama-3.1-405B-Instruct: OpenRouter's $0.80 (genai-prices), not hyperbolic's $0.30 placeholder.
    assert {rec["cheapest"] for rec in recs if rec["model_id"] == LLAMA_405B} == {0.8}


# --- every provider name of the full sources ----------------------------------------------------


# Companies listed under more than one name in shared/data/prices (LiteLLM litellm_provider values,
# genai-prices provider ids, OpenRouter): canonical slug -> every raw name that must map to it.
MERGED_NAMES = {
    "alibaba": {"dashscope", "qwen_ai_platform", "qwencloud"},
    "azure": {"azure", "azure_ai", "azure_text"},
    "bedrock": {"aws", "bedrock", "bedrock_converse", "bedrock_mantle"},
    "cerebras": {"cerebras", "huggingface_cerebras"},
    "cohere": {"cohere", "cohere_chat"},
    "fireworks": {"fireworks", "fireworks_ai", "fireworks_ai-embedding-models", "huggingface_fireworks-ai"},
    "google": {"gemini", "google"},
    "groq": {"groq", "huggingface_groq"},
    "hyperbolic": {"hyperbolic", "huggingface_hyperbolic"},
    "inception": {"inception", "text-completion-inception"},
    "meta": {"meta", "meta_llama"},
    "mistral": {"mistral", "codestral", "text-completion-codestral"},
    "moonshotai": {"moonshot", "moonshotai"},
    "nebius": {"nebius", "huggingface_nebius"},
    "novita": {"novita", "huggingface_novita"},
    "nscale": {"nscale", "huggingface_nscale"},
    "openai": {"openai", "text-completion-openai"},
    "ovhcloud": {"ovhcloud", "huggingface_ovhcloud"},
    "publicai": {"publicai", "huggingface_publicai"},
    "sambanova": {"sambanova", "huggingface_sambanova"},
    "together": {"together", "together_ai", "huggingface_together"},
    "vertex": {
        "vertex_ai", "vertex_ai-ai21_models", "vertex_ai-anthropic_models", "vertex_ai-deepseek_models",
        "vertex_ai-embedding-models", "vertex_ai-language-models", "vertex_ai-llama_models", "vertex_ai-minimax_models",
        "vertex_ai-mistral_models", "vertex_ai-moonshot_models", "vertex_ai-openai_models", "vertex_ai-qwen_models",
        "vertex_ai-text-models", "vertex_ai-video-models", "vertex_ai-zai_models",
    },
    "voyage": {"voyage", "voyageai"},
    "xai": {"xai", "x-ai"},
    "zai": {"zai", "zhipuai", "bigmodel"},
}


def test_every_provider_name_in_the_full_sources_gets_one_slug(shared_data: Path, tmp_path: Path) -> None:
    """shared/data/prices: LiteLLM's whole cost map, genai-prices' data.json and OpenRouter's catalogue."""
    prices = tmp_path / "snapshot" / "prices"
    prices.mkdir(parents=True)
    for name in ("litellm_model_prices_and_context_window.json", "genai-prices_data.json", "openrouter_api_v1_models_2026-08-19.json"):
        shutil.copyfile(shared_data / "prices" / name, prices / name)
    shutil.copytree(SNAPSHOT / "hf", tmp_path / "snapshot" / "hf")
    (tmp_path / "snapshot" / "gpu_rental").mkdir()
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        land_snapshot(con, tmp_path / "snapshot")
    result = dbt_build(path, "+int_provider_prices__mapped")
    assert result.returncode == 0, result.stdout[-6000:]
    mapping = {r["provider_raw"]: r["provider"] for r in rows(path, "select distinct provider_raw, provider from staging.int_provider_prices__mapped")}
    assert len(mapping) > 150  # every name of the three sources, not a sample
    merged: dict[str, set[str]] = {}
    for raw, slug in mapping.items():
        merged.setdefault(slug, set()).add(raw)
    assert {slug: raws for slug, raws in merged.items() if len(raws) > 1} == MERGED_NAMES
    # The generic rule's other renamings: a separated `ai` suffix goes.
    assert {mapping[raw] for raw in ("lambda_ai", "fal_ai", "jina_ai", "exa_ai", "featherless_ai", "scx-ai")} == {
        "lambda", "fal", "jina", "exa", "featherless", "scx",
    }
    assert mapping["openrouter"] == "openrouter" and mapping["amazon_nova"] == "amazon_nova"
