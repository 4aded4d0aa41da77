"""Run the code location's jobs in-process with settings of the test's own, passed as resources.

Nothing here touches the environment: the test decides the settings (`Settings.for_data_dir`) and the
live-source configuration (`environ`, the mapping `LiveSourcesResource.from_environment` reads), and
`build_definitions` turns them into the resources the assets, checks and sensors take.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.definitions import FULL_PIPELINE, build_definitions
from pipelines.resources import fitatlas_resources
from pipelines.settings import Settings


def definitions_for(settings: Settings, environ: Mapping[str, str] | None = None) -> dg.Definitions:
    """The code location for `settings`; `environ` configures live sources (default: none set)."""
    return build_definitions(settings, environ=environ or {})


def run_job(
    settings: Settings,
    instance: dg.DagsterInstance,
    job: str = FULL_PIPELINE,
    *,
    environ: Mapping[str, str] | None = None,
    **execute: Any,
) -> dg.ExecuteInProcessResult:
    """`job` of the code location for `settings`, in-process on `instance` (raise_on_error=False)."""
    return (
        definitions_for(settings, environ)
        .resolve_job_def(job)
        .execute_in_process(instance=instance, raise_on_error=False, **execute)
    )


def run_pipeline(data_dir: Path, instance: dg.DagsterInstance, **overrides: Any) -> dg.ExecuteInProcessResult:
    """The full pipeline on the bundled snapshot (or `overrides` of `Settings.for_data_dir`)."""
    return run_job(Settings.for_data_dir(data_dir, **overrides), instance)


def live_resources(environ: Mapping[str, str]) -> dict[str, object]:
    """Resources for a live-mode environment mapping (`fake_sources.live_mode_env`), read the way the
    code location reads the process environment, without touching it."""
    return fitatlas_resources(Settings.from_environment(environ), environ)


def run_live(environ: Mapping[str, str], instance: dg.DagsterInstance, job: str = FULL_PIPELINE, **execute: Any) -> dg.ExecuteInProcessResult:
    """`job` in live mode configured by `environ`, as `fitatlas run` with that environment would."""
    return run_job(Settings.from_environment(environ), instance, job, environ=environ, **execute)


def with_code_version(defs: dg.Definitions, key: dg.AssetKey, code_version: str) -> dg.Definitions:
    """`defs` with one asset's code version replaced, as a deployment that changed its code would
    have it (a multi-asset's other assets keep theirs); everything else is the same objects."""
    original = defs.get_assets_def(key)
    bumped = original.map_asset_specs(
        lambda spec: spec.replace_attributes(code_version=code_version) if spec.key == key else spec
    )
    return dg.Definitions(
        assets=[bumped if asset is original else asset for asset in defs.assets or ()],
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        sensors=defs.sensors,
        schedules=defs.schedules,
        resources=defs.resources,
        executor=defs.executor,
    )
