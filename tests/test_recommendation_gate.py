"""The gate learns issue 8's errors: expectations/recommendations.json (and gpus.json), run by the real GE runner on
recommendations the real grid computed, passes them and holds each injected regression with evidence."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from test_parallelism import REPO, _gpus, _seed_gpu, _spec

from pipelines.defs.quality.suites import load_suite, validate_frame
from sizing.grid import fit_matrix, recommendations
from sizing.model_spec import specs_to_frames

pytestmark = pytest.mark.integration

NEMOTRON_H = "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8"
LLAMA_FP8 = "nvidia/Llama-3.1-70B-Instruct-FP8"


@pytest.fixture(scope="module")
def tables() -> dict[str, pl.DataFrame]:
    specs = [
        _spec("nvidia__NVIDIA-Nemotron-3-Super-120B-A12B-FP8", NEMOTRON_H),  # Mamba2 n_groups 8
        _spec("nvidia__Llama-3.1-70B-Instruct-FP8", LLAMA_FP8),  # FP8 checkpoint
    ]
    models, groups = specs_to_frames(specs)
    # datasheet specs: RTX 5090 (NVIDIA: 32 GB, 1,792 GB/s), H100 SXM (80 GiB, 3,350 GB/s, 989/1,979 TFLOPS);
    # hourly prices are round figures (the gate does not read them)
    gpus = _gpus(
        _seed_gpu("nvidia-rtx-5090-32gb", memory_gb=34.36, bw=1792.0, bf16=419.0, fp8=838.0, fp4=1676.0, hourly=0.4),
        _seed_gpu("nvidia-h100-sxm-80gb", memory_gb=85.9, bw=3350.0, bf16=989.0, fp8=1979.0, hourly=1.8),
    )
    prices = pl.DataFrame(
        {"model_id": [LLAMA_FP8], "input_usd_per_mtok": [0.4], "output_usd_per_mtok": [0.4]}
    )
    fm = fit_matrix(models, groups, gpus, contexts=(4096,))
    recs = recommendations(fm, models, groups, gpus, prices)
    return {"models": models, "gpus": gpus, "recommendations": recs}


def _audit(tables: dict[str, pl.DataFrame], recs: pl.DataFrame):
    suite = load_suite("recommendations")
    con = duckdb.connect()
    for name, frame in {**tables, "recommendations": recs}.items():
        con.register(f"_{name}", frame.to_arrow())
        con.execute(f"create table {name} as select * from _{name}")
    frame = con.sql(suite["query"]).df()
    outcome = validate_frame(suite, frame, lambda q: [r[0] for r in con.execute(q).fetchall()])
    return {o.label: o for o in outcome.failed}, outcome


def _failed_columns(failed) -> set[str]:
    return {o.kwargs.get("column") for o in failed.values()}


def test_the_grid_output_passes_the_gate(tables):
    failed, outcome = _audit(tables, tables["recommendations"])
    assert outcome.errored == [] and failed == {}


def test_a_consumer_replica_across_hosts_is_held(tables):
    recs = tables["recommendations"]
    row = recs.filter(pl.col("gpu_id") == "nvidia-rtx-5090-32gb").head(1)
    assert row.height == 1
    bad = row.with_columns(gpu_count=pl.lit(16, pl.Int64), tensor_parallel=pl.lit(8, pl.Int64),
                           pipeline_parallel=pl.lit(2, pl.Int64), rank=pl.lit(99, pl.Int64))
    failed, _ = _audit(tables, pl.concat([recs, bad]))
    assert "spans_domains_only_over_scale_out" in _failed_columns(failed)
    (evidence,) = [o for o in failed.values() if o.kwargs.get("column") == "spans_domains_only_over_scale_out"]
    assert evidence.failing_rows[0]["gpu_id"] == "nvidia-rtx-5090-32gb" and evidence.failing_rows[0]["gpu_count"] == 16


def test_nemotron_h_at_tp16_is_held(tables):
    recs = tables["recommendations"]
    row = recs.filter(pl.col("model_id") == NEMOTRON_H).head(1)
    bad = row.with_columns(gpu_count=pl.lit(16, pl.Int64), tensor_parallel=pl.lit(16, pl.Int64),
                           pipeline_parallel=pl.lit(1, pl.Int64), rank=pl.lit(99, pl.Int64))
    failed, _ = _audit(tables, pl.concat([recs, bad]))
    # n_groups 8 (config) does not split 16 ways, and 16 > the H100's 8-GPU NVSwitch domain
    assert {"engine_tp_constraints_hold", "tp_inside_scale_up_domain"} <= _failed_columns(failed)


def test_zero_and_infinite_comparisons_are_held(tables):
    recs = tables["recommendations"].with_columns(
        cheapest_api_output_usd_per_mtok=pl.when(pl.col("model_id") == LLAMA_FP8).then(0.0).otherwise(
            pl.col("cheapest_api_output_usd_per_mtok")),
        breakeven_mtok_per_month=pl.when(pl.col("model_id") == LLAMA_FP8).then(float("inf")).otherwise(
            pl.col("breakeven_mtok_per_month")),
    )
    failed, _ = _audit(tables, recs)
    assert {"cheapest_api_output_usd_per_mtok", "breakeven_mtok_per_month"} <= _failed_columns(failed)


def test_a_quantized_repo_recommended_other_weights_first_is_held(tables):
    recs = tables["recommendations"]
    first = (pl.col("model_id") == LLAMA_FP8) & (pl.col("rank") == 1)
    # rank 1 of the FP8 repo relabelled as FP4 weights the repo does not ship (issue 8's example)
    bad = recs.with_columns(
        precision=pl.when(first).then(pl.lit("fp4")).otherwise(pl.col("precision")),
        needs_other_checkpoint=pl.when(first).then(pl.lit(True)).otherwise(pl.col("needs_other_checkpoint")),
    )
    failed, _ = _audit(tables, bad)
    assert "quantized_rank1_deployable_as_is" in _failed_columns(failed)
    # and a row that hides its need for other weights
    hidden = recs.with_columns(precision=pl.when(first).then(pl.lit("fp4")).otherwise(pl.col("precision")))
    failed, _ = _audit(tables, hidden)
    assert "needs_other_checkpoint_consistent" in _failed_columns(failed)


def test_gpus_suite_holds_a_datacenter_fabric_without_bandwidth_and_a_consumer_nic():
    """The topology expectations of expectations/gpus.json on the seed's rows (gpu_topology.csv joined
    to gpu_catalog.csv's segment), then with issue 8's two faults injected."""
    suite = load_suite("gpus")
    wanted = {"scale_up_domain_gpus", "topology_source", "scale_up_gbps", "scale_out_gbps", "consumer_has_no_scale_out",
              "datacenter_fabric_has_bandwidth"}
    topology_rules = [e for e in suite["expectations"] if e["kwargs"].get("column") in wanted]
    seeds = REPO / "dbt_project" / "seeds"
    con = duckdb.connect()
    con.execute(
        f"create table gpus as select c.gpu_id, c.name, c.segment, t.scale_up_fabric, t.scale_up_domain_gpus, "
        f"t.scale_up_gbps, t.scale_out_gbps, t.source_document as topology_source "
        f"from read_csv_auto('{seeds}/gpu_catalog.csv') c join read_csv_auto('{seeds}/gpu_topology.csv') t using (gpu_id)"
    )
    query = suite["query"].replace("fp8_tflops / nullif(bf16_tflops, 0)", "null")

    def audit():
        frame = con.sql(query).df()
        outcome = validate_frame({**suite, "expectations": topology_rules}, frame, lambda q: [])
        assert outcome.errored == []
        return {o.kwargs["column"]: o for o in outcome.failed}

    assert audit() == {}
    con.execute("update gpus set scale_up_gbps = null where gpu_id = 'amd-mi300x-192gb'")
    con.execute("update gpus set scale_out_gbps = 50 where gpu_id = 'nvidia-rtx-5090-32gb'")
    failed = audit()
    assert failed["datacenter_fabric_has_bandwidth"].failing_rows[0]["gpu_id"] == "amd-mi300x-192gb"
    assert failed["consumer_has_no_scale_out"].failing_rows[0]["gpu_id"] == "nvidia-rtx-5090-32gb"
