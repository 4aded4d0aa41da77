"""Ingest: raw assets per source, their upstream source specs, ingest checks, sensors and schedules."""

import dagster as dg

from pipelines.defs.ingest.assets import freshness_checks, raw_assets, source_specs
from pipelines.defs.ingest.automation import INGEST_JOBS, ingest_schedules, ingest_sensors
from pipelines.defs.ingest.checks import ingest_checks
from pipelines.settings import Cadence


def defs(cadence: Cadence) -> dg.Definitions:
    return dg.Definitions(
        assets=[*source_specs, *raw_assets],
        asset_checks=[*ingest_checks, *freshness_checks],
        jobs=INGEST_JOBS,
        sensors=ingest_sensors(cadence),
        schedules=ingest_schedules(cadence),
    )
