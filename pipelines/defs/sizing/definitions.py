"""Size: model specs, the sizing inputs, the grid by shard and its tables, the speed calibration
table, workload costs and the changes since the current publication."""

import dagster as dg

from pipelines.defs.sizing.assets import model_specs, sizing_grid_asset, sizing_inputs, sizing_shard_asset
from pipelines.defs.sizing.calibration import calibration
from pipelines.defs.sizing.reader_tables import model_changes, workload_costs
from pipelines.defs.sizing.sharding import shard_partitions


def defs(sizing_shards: int) -> dg.Definitions:
    """`sizing_shards`: how many Dagster partitions `sizing_shard` has (FITATLAS_SIZING_SHARDS)."""
    partitions = shard_partitions(sizing_shards)
    return dg.Definitions(assets=[
        model_specs, sizing_inputs, sizing_shard_asset(partitions), sizing_grid_asset(partitions),
        calibration, workload_costs, model_changes,
    ])
