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

from pipelines.defs.executor import fitatlas_executor
from pipelines.defs.ingest import definitions as ingest
from pipelines.defs.publish import definitions as publish
from pipelines.defs.quality import definitions as quality
from pipelines.defs.sizing import definitions as sizing
from pipelines.defs.sizing.assets import SHARD_KEY
from pipelines.defs.sizing.sharding import partition_range_tags
from pipelines.defs.transform import definitions as transform
from pipelines.resources import fitatlas_resources
from pipelines.settings import Cadence, Settings

FULL_PIPELINE = "full_pipeline"
SIZING_SHARDS = "sizing_shards"


def build_definitions(
    settings: Settings, cadence: Cadence | None = None, environ: Mapping[str, str] | None = None
) -> dg.Definitions:
    """Every definition, configured by `settings` (live sources read from `environ`, default os.environ)."""
    cadence = cadence or Cadence()
    full_pipeline = dg.define_asset_job(
        name=FULL_PIPELINE,
        selection=dg.AssetSelection.all(),
        description="Land every source, normalise, size, audit and publish (what `fitatlas run` runs). "
        "Its runs size every shard of sizing_shard in one step.",
        # one run covers every sizing shard: a partition range over all of them
        tags=partition_range_tags(settings.sizing_shards),
    )
    sizing_shards = dg.define_asset_job(
        name=SIZING_SHARDS,
        selection=[SHARD_KEY],
        description="One shard of the sizing grid per run (FITATLAS_EXECUTOR=dask: on the Dask cluster); "
        "`fitatlas run` with Dask runs every shard this way, side by side.",
    )
    return dg.Definitions.merge(
        ingest.defs(cadence),
        transform.defs(),
        sizing.defs(settings.sizing_shards),
        quality.defs(),
        publish.defs(cadence),
        dg.Definitions(
            jobs=[full_pipeline, sizing_shards],
            resources=fitatlas_resources(settings, environ),
            # daemon-launched runs take the warehouse lock `fitatlas run` takes; shard runs may go to Dask
            executor=fitatlas_executor(settings),
        ),
    )


def sizing_shards_job() -> dg.JobDefinition:
    """The `sizing_shards` job of the code location the environment configures: the reconstructable
    target (`dg.reconstructable`) a Dask worker rebuilds to run a shard's step. Workers read the
    same FITATLAS_* environment (a local cluster inherits the CLI's)."""
    return build_definitions(Settings.from_environment(), Cadence.from_environment()).resolve_job_def(SIZING_SHARDS)


@dg.definitions
def defs() -> dg.Definitions:
    """The code location `dagster dev` / the daemon load (workspace.yaml)."""
    return build_definitions(Settings.from_environment(), Cadence.from_environment())
