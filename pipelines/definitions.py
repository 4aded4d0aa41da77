"""The one Dagster code location: ingest -> dbt -> sizing -> blocking checks -> publish.

Each domain under `pipelines/defs/` says what it defines (`definitions.defs()`); this module merges
them with the resources and the executor. Settings are read from the environment once, when the code
location loads (`@dg.definitions`), and validated there: a bad `FITATLAS_SOURCE` stops the load with
the variable's name. Importing this module reads nothing, writes nothing and changes no global
state; the CLI and tests call `build_definitions` with settings of their own.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from pipelines.defs.executor import warehouse_writer_executor
from pipelines.defs.ingest import definitions as ingest
from pipelines.defs.publish import definitions as publish
from pipelines.defs.quality import definitions as quality
from pipelines.defs.sizing import definitions as sizing
from pipelines.defs.transform import definitions as transform
from pipelines.resources import fitatlas_resources
from pipelines.settings import Cadence, Settings

FULL_PIPELINE = "full_pipeline"


def build_definitions(
    settings: Settings, cadence: Cadence | None = None, environ: Mapping[str, str] | None = None
) -> dg.Definitions:
    """Every definition, configured by `settings` (live sources read from `environ`, default os.environ)."""
    cadence = cadence or Cadence()
    full_pipeline = dg.define_asset_job(
        name=FULL_PIPELINE,
        selection=dg.AssetSelection.all(),
        description="Land every source, normalise, size, audit and publish (what `fitatlas run` runs).",
    )
    return dg.Definitions.merge(
        ingest.defs(cadence),
        transform.defs(),
        sizing.defs(),
        quality.defs(),
        publish.defs(cadence),
        dg.Definitions(
            jobs=[full_pipeline],
            resources=fitatlas_resources(settings, environ),
            # daemon-launched runs take the warehouse lock `fitatlas run` takes
            executor=warehouse_writer_executor(settings.data_dir),
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location `dagster dev` / the daemon load (workspace.yaml)."""
    return build_definitions(Settings.from_environment(), Cadence.from_environment())
