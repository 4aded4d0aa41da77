"""Size: model specs, the fit matrix, recommendations with the speed table, the speed calibration
table, workload costs and the changes since the current publication."""

import dagster as dg

from pipelines.defs.sizing.assets import model_specs, sizing_grid
from pipelines.defs.sizing.calibration import calibration
from pipelines.defs.sizing.reader_tables import model_changes, workload_costs


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[model_specs, sizing_grid, calibration, workload_costs, model_changes])
