"""Size: model specs, the fit matrix, recommendations and the speed calibration table."""

import dagster as dg

from pipelines.defs.sizing.assets import fit_matrix, model_specs, recommendations
from pipelines.defs.sizing.calibration import calibration


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[model_specs, fit_matrix, recommendations, calibration])
