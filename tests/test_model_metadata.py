"""model_metadata and similar_models (issue 11) built by real dbt on the bundled snapshot, their GE
suites, and the Hub model info fields live ingest keeps for them."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from test_dbt_normalisation import MODEL_MARTS_SELECTION, SELECTION, dbt_build, describe_models, land_snapshot

from pipelines.defs.ingest.live_source import parse_model_info
from pipelines.defs.quality.suites import load_suite, validate_frame

pytestmark = pytest.mark.integration

ENGINE_SEED = Path(__file__).parents[1] / "dbt_project" / "seeds" / "engine_support.csv"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Land the snapshot, build the first dbt half (with this issue's seeds), size, build the second."""
    data_dir = tmp_path_factory.mktemp("metadata")
    path = data_dir / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        land_snapshot(con)
    first = dbt_build(path, SELECTION)
    assert first.returncode == 0, first.stdout[-6000:]
    describe_models(data_dir)
    second = dbt_build(path, MODEL_MARTS_SELECTION, exclude="")
    assert second.returncode == 0, second.stdout[-6000:]
    return path


def rows(warehouse: Path, sql: str, params: list | None = None) -> list[dict]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(sql, params or [])
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_llama_405b_metadata_comes_from_its_sources(warehouse: Path):
    [row] = rows(warehouse, "select * from marts.model_metadata where model_id = 'meta-llama/Llama-3.1-405B-Instruct'")
    assert row["vendor"] == "Meta" and row["hub_org"] == "meta-llama"  # seed model_vendors, huggingface.co/meta-llama
    # The bundled snapshot has no Hub model info: no release date, license, gating or tags, and it says so.
    assert row["release_date"] is None and row["license"] is None and row["gated"] is None and row["hub_tags"] is None
    assert row["metadata_source"] == "none: the bundled snapshot carries no Hub model info"
    # config.json has no vision tower (models.params_vision = 0) and OpenRouter's snapshot lists no 405B entry.
    assert row["is_vision"] is False and row["tool_use"] is None and row["reasoning"] is None
    assert row["max_context"] == 131_072  # config max_position_embeddings
    # LlamaForCausalLM is named by all three lists (seed rows cite vLLM, SGLang and TensorRT-LLM docs).
    assert (row["vllm"], row["sglang"], row["tensorrt_llm"]) == ("supported", "supported", "supported")
    assert row["engine_versions"] == "vLLM main@0046f770, SGLang main@01fd8153, TensorRT-LLM main@00b6d5a2"
    assert "vllm-project/vllm/blob/0046f770" in row["engine_source"]


def test_vision_models_and_unlisted_engines(warehouse: Path):
    [vl] = rows(warehouse, "select * from marts.model_metadata where model_id = 'Qwen/Qwen3-VL-8B-Instruct'")
    assert vl["is_vision"] is True and vl["capability_sources"].startswith("is_vision: config (vision tower")
    # Qwen3VLForConditionalGeneration: vLLM multimodal list and TensorRT-LLM multimodal matrix; SGLang's
    # LLM page does not name it -> null (not listed), never "not supported".
    assert (vl["vllm"], vl["sglang"], vl["tensorrt_llm"]) == ("supported", None, "supported")
    [step] = rows(warehouse, "select * from marts.model_metadata where model_id = 'stepfun-ai/Step-3.7-Flash'")
    assert (step["vendor"], step["vllm"], step["sglang"], step["tensorrt_llm"]) == ("StepFun", None, None, None)


def test_one_metadata_row_per_published_model(warehouse: Path):
    [counts] = rows(warehouse, "select (select count(*) from marts.models) as models, count(*) as rows, count(distinct model_id) as ids from marts.model_metadata")
    assert counts["rows"] == counts["ids"] == counts["models"] == 104


def test_llama_405b_similar_models_follow_the_rule(warehouse: Path):
    similar = rows(warehouse, "select * from marts.similar_models where model_id = 'meta-llama/Llama-3.1-405B-Instruct' order by rank")
    assert [r["similar_model_id"] for r in similar] == [
        "meta-llama/Meta-Llama-3.1-405B",  # same family, same architecture, same size
        "meta-llama/Llama-4-Maverick-17B-128E-Instruct",  # family llama, 400B total: closer in size than the 70Bs
        "meta-llama/Llama-3.1-70B-Instruct",  # the 70B sizes tie on size; model_id decides
        "meta-llama/Llama-3.3-70B-Instruct",
        "meta-llama/Meta-Llama-3.1-70B",
    ]
    assert all(r["same_family"] for r in similar)
    assert similar[0]["size_ratio"] == pytest.approx(1.0) and similar[0]["same_architecture"]
    assert not similar[1]["same_architecture"]  # llama4 vs llama
    assert all(r["shared_tags"] == 0 for r in similar)  # no Hub tags in the snapshot
    assert len({r["rule"] for r in similar}) == 1 and similar[0]["rule"].startswith("Candidates: the other published models")


def test_similar_models_shape(warehouse: Path):
    [shape] = rows(warehouse, """
        select count(*) as rows, count(distinct model_id) as models, max(rank) as max_rank,
               count(*) filter (where model_id = similar_model_id) as self_rows,
               count(*) filter (where size_ratio <= 0) as bad_ratios
        from marts.similar_models""")
    assert shape == {"rows": 520, "models": 104, "max_rank": 5, "self_rows": 0, "bad_ratios": 0}


@pytest.mark.parametrize("table", ["model_metadata", "similar_models"])
def test_ge_suite_passes_on_the_snapshot(warehouse: Path, table: str):
    suite = load_suite(table)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("set schema 'marts'")
        frame = con.execute(suite["query"]).df()
        outcome = validate_frame(suite, frame, lambda sql: [r[0] for r in con.execute(sql).fetchall()])  # as the audit runs it
    assert outcome.passed, [(o.label, o.status, o.failing_rows[:3] if hasattr(o, "failing_rows") else None) for o in outcome.outcomes if o.status != "passed"]


def test_engine_seed_cites_every_row():
    lines = ENGINE_SEED.read_text().splitlines()
    assert lines[0] == "architecture,model_type,engine,supported,engine_version,source,evidence"
    assert all(",https://github.com/" in line for line in lines[1:])


def test_live_model_info_lands_created_at_tags_and_license_in_staging(tmp_path: Path):
    """A Hub `/api/models` answer (shape of huggingface.co/api/models/meta-llama/Llama-3.1-405B-Instruct):
    its createdAt, tags, license and gating reach stg_hf__model_configs typed; ill-typed values do not."""
    document = {
        "sha": "a" * 40, "createdAt": "2024-07-16T13:56:53.000Z", "gated": "manual",
        "tags": ["transformers", "safetensors", "llama", "text-generation", 7, None, ""],
        "cardData": {"license": "llama3.1"},
    }
    info = parse_model_info(json.dumps(document).encode(), "https://huggingface.co/api/models/x")
    assert info.created_at == "2024-07-16T13:56:53.000Z"
    assert info.tags == ("transformers", "safetensors", "llama", "text-generation")
    record = info.as_record()
    assert record["createdAt"] == "2024-07-16T13:56:53.000Z" and record["license"] == "llama3.1" and record["gated"] == "manual"
    bad = parse_model_info(json.dumps({"sha": "b" * 40, "createdAt": 1721138213, "tags": "llama"}).encode(), "u")
    assert bad.created_at is None and bad.tags is None and "createdAt" not in bad.as_record()

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema raw")
        con.execute("""create table raw.hf_model_configs (batch_id varchar, source varchar, location varchar, fetched_at timestamp,
                       content_sha256 varchar, content_bytes bigint, record_key varchar, record json)""")
        con.execute("insert into raw.hf_model_configs values ('b1', 'hf_model', 'u', timestamp '2026-11-27 10:00:00', 'x', 1, 'meta-llama/Llama-3.1-405B-Instruct', ?)",
                    [json.dumps({"config": {"model_type": "llama"}, "model_info": record})])
    result = dbt_build(warehouse, "stg_hf__model_configs", exclude="test_name:relationships")  # its marts do not exist here
    assert result.returncode == 0, result.stdout[-4000:]
    [staged] = rows(warehouse, "select has_model_info, hub_created_at::varchar as created, hub_license, hub_gated, hub_tags from staging.stg_hf__model_configs")
    assert staged == {"has_model_info": True, "created": "2024-07-16 13:56:53", "hub_license": "llama3.1", "hub_gated": True,
                      "hub_tags": ["transformers", "safetensors", "llama", "text-generation"]}
