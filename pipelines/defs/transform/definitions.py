"""Normalise: the dbt project's staging and marts, split around the sizing asset they read."""

import dagster as dg

from pipelines.defs.transform.dbt_assets import dbt_model_marts, dbt_resource, dbt_staging_and_reference_marts


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[dbt_staging_and_reference_marts, dbt_model_marts],
        resources={"dbt": dbt_resource()},
    )
