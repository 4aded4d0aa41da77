"""The published ``calibration`` table: every public throughput measurement next to our estimate.

Inputs: the measurements bundled by the snapshot tool (``pipelines/snapshot/benchmarks/
serving_calibration.csv``, from ``../shared/data``), the measurements this project collected with
their citations (``benchmarks/measurements/serving_measurements_extra.csv``) and the bundled model
configs in ``pipelines/snapshot/hf``; GPU specs are the datasheet values in
``sizing.calibration.MEASUREMENT_GPUS``. The pure work is ``sizing.calibration.calibration_table``.
"""

import dagster as dg

from pipelines.resources import WarehouseResource
from pipelines.settings import REPO_ROOT, SNAPSHOT_DIR
from pipelines.versions import sizing_code_version, table_version
from pipelines.warehouse import WAREHOUSE_POOL, replace_table
from sizing.calibration import calibration_table, error_summary, load_measurements, load_specs

from .assets import SIZING_GROUP

#: Every measurement file the calibration reads (also benchmarks/calibrate.py and the tests).
MEASUREMENT_FILES = (
    SNAPSHOT_DIR / "benchmarks" / "serving_calibration.csv",
    REPO_ROOT / "benchmarks" / "measurements" / "serving_measurements_extra.csv",
)
CONFIG_DIR = SNAPSHOT_DIR / "hf"
# No upstream asset: what it reads is files, so they are part of its code version with the library.
CALIBRATION_CODE_VERSION = sizing_code_version(__file__, *MEASUREMENT_FILES, CONFIG_DIR)


@dg.asset(
    code_version=CALIBRATION_CODE_VERSION,
    group_name=SIZING_GROUP,
    kinds={"python", "polars", "duckdb"},
    pool=WAREHOUSE_POOL,
    description="Measured serving throughput (NVIDIA TensorRT-LLM perf-overview, benchmarks/measurements) "
    "next to our estimate for the same model, GPU, count, precision and ISL/OSL: ratio = estimate / "
    "measured, the train/held_out split of the class calibration and the speed class "
    "(sizing.calibration.calibration_table).",
)
def calibration(warehouse: WarehouseResource) -> dg.MaterializeResult:
    measurements = load_measurements(MEASUREMENT_FILES)
    table = calibration_table(measurements, load_specs(CONFIG_DIR))
    with warehouse.get_connection() as con:
        replace_table(con, "sizing.calibration", table)
        data_version = table_version(con, "sizing.calibration")
    held = error_summary(table).row(0, named=True)
    return dg.MaterializeResult(
        data_version=data_version,
        metadata={
            "rows": table.height,
            "measurements": measurements.height,
            "held_out_rows": held["rows"],
            "held_out_median_error": held["median_error"],
            "held_out_p90_error": held["p90_error"],
        }
    )
