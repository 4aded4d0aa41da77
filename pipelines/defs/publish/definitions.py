"""Publish: freeze the batch, publish what the gate lets through, and the approval sensor."""

import dagster as dg

from pipelines.defs.publish.approval import approval_sensor, publish_batch_job
from pipelines.defs.publish.assets import audited_batch, publication
from pipelines.settings import Cadence


def defs(cadence: Cadence) -> dg.Definitions:
    return dg.Definitions(
        assets=[audited_batch, publication],
        jobs=[publish_batch_job],
        sensors=[approval_sensor(cadence.approval_sensor_s)],
    )
