"""Gate: the blocking Great Expectations checks on each batch, and the excluded-prices warning."""

import dagster as dg

from pipelines.defs.quality.checks import suite_checks
from pipelines.defs.quality.price_checks import price_checks


def defs() -> dg.Definitions:
    return dg.Definitions(asset_checks=[*suite_checks, *price_checks])
