"""The one Dagster code location: ingest -> dbt -> sizing -> blocking checks -> publish."""

from __future__ import annotations

import warnings

import dagster as dg

from pipelines.settings import configure_environment

# Our own code must not lean on deprecated Dagster APIs: make their warnings errors here.
warnings.filterwarnings("error", category=DeprecationWarning, module=r"pipelines\..*")

configure_environment()

from pipelines.defs.ingest.assets import freshness_checks, raw_assets, source_specs  # noqa: E402
from pipelines.defs.executor import warehouse_writer_executor  # noqa: E402
from pipelines.defs.ingest.checks import ingest_checks  # noqa: E402
from pipelines.defs.ingest.automation import ingest_jobs, ingest_schedules, ingest_sensors  # noqa: E402
from pipelines.defs.publish.approval import approval_sensor, publish_batch_job  # noqa: E402
from pipelines.defs.publish.assets import audited_batch, publication  # noqa: E402
from pipelines.defs.quality.checks import suite_checks  # noqa: E402
from pipelines.defs.quality.price_checks import price_checks  # noqa: E402
from pipelines.defs.sizing.assets import fit_matrix, model_specs, recommendations  # noqa: E402
from pipelines.defs.sizing.calibration import calibration  # noqa: E402
from pipelines.defs.transform.dbt_assets import (  # noqa: E402
    dbt_model_marts,
    dbt_resource,
    dbt_staging_and_reference_marts,
)

full_pipeline = dg.define_asset_job(
    name="full_pipeline",
    selection=dg.AssetSelection.all(),
    description="Land every source, normalise, size, audit and publish (what `fitatlas run` runs).",
)

defs = dg.Definitions(
    assets=[
        *source_specs,
        *raw_assets,
        dbt_staging_and_reference_marts,
        model_specs,
        dbt_model_marts,
        fit_matrix,
        recommendations,
        calibration,
        audited_batch,
        publication,
    ],
    asset_checks=[*suite_checks, *ingest_checks, *price_checks, *freshness_checks],
    jobs=[full_pipeline, *ingest_jobs, publish_batch_job],
    sensors=[*ingest_sensors, approval_sensor],
    schedules=[*ingest_schedules],
    resources={"dbt": dbt_resource},
    executor=warehouse_writer_executor,  # daemon-launched runs take the warehouse lock `fitatlas run` takes
)
