"""dbt staging and marts as Dagster assets; dbt tests become asset checks."""


import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pipelines.dbt_project import fitatlas_dbt_project
from pipelines.resources import WarehouseResource
from pipelines.warehouse import WAREHOUSE_POOL


class FitAtlasDbtTranslator(DagsterDbtTranslator):
    """Marts keep their bare names (`models`, `gpus`, ...) as asset keys, like the published tables;
    staging models live under `staging/`; sources use the asset key from their `meta.dagster`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        schema = dbt_resource_props.get("config", {}).get("schema") or "main"
        name = dbt_resource_props["name"]
        return dg.AssetKey([name]) if schema == "marts" else dg.AssetKey([schema, name])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "normalise"


TRANSLATOR = FitAtlasDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

# Some marts read `sizing.model_specs`, which the Python `model_specs` asset computes from the staged
# configs: `models`, `unsupported_models`, and `provider_prices` (its plausibility rules compare
# prices across model sizes, read from `models` via `int_model_lines`). The dbt project is split around
# model_specs, so no op depends on itself: the second half is everything downstream of that source.
MODEL_MARTS = "source:sizing.model_specs+"


def warehouse_vars(warehouse: WarehouseResource) -> list[str]:
    """dbt's profile reads the warehouse file from this var (dbt_project/profiles.yml)."""
    return ["--vars", json.dumps({"fitatlas_warehouse": warehouse.database})]


def build_dbt_assets(name: str, *, select: str = "fqn:*", exclude: str = "") -> dg.AssetsDefinition:
    @dbt_assets(
        manifest=fitatlas_dbt_project.manifest_path,
        project=fitatlas_dbt_project,
        dagster_dbt_translator=TRANSLATOR,
        select=select,
        exclude=exclude,
        pool=WAREHOUSE_POOL,
        name=name,
    )
    def _dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
        yield from dbt.cli(["build", *warehouse_vars(warehouse)], context=context).stream()

    return _dbt


dbt_staging_and_reference_marts = build_dbt_assets("dbt_staging_and_reference_marts", exclude=MODEL_MARTS)
dbt_model_marts = build_dbt_assets("dbt_model_marts", select=MODEL_MARTS)


def dbt_resource() -> DbtCliResource:
    """The dbt installed beside this interpreter (the project's venv), whether or not it is on PATH."""
    return DbtCliResource(project_dir=fitatlas_dbt_project, dbt_executable=str(Path(sys.executable).with_name("dbt")))
