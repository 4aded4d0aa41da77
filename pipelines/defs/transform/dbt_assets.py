"""dbt staging and marts as Dagster assets; dbt tests become asset checks.

Versions (`pipelines.versions`): a model's or seed's code version is its SQL (or CSV) with the YAML
that configures it (contracts, columns, tests) and the project's macros and `dbt_project.yml`, so
editing a model re-runs it and what is downstream. Its data version is the content digest of the
relation dbt built, taken once dbt has exited (DuckDB lets one process open the file), so a model
rebuilt to the same rows leaves the assets below it fresh.
"""


import functools
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pipelines.batches import RUN_COLUMNS
from pipelines.dbt_project import fitatlas_dbt_project
from pipelines.resources import WarehouseResource
from pipelines.settings import DBT_PROJECT_DIR
from pipelines.versions import code_version, path_digest, table_version
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

    def get_code_version(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """The node's own code (dagster-dbt's default: its SQL, or a seed's file checksum) with its
        YAML file and what every node shares (macros, dbt_project.yml)."""
        own = super().get_code_version(dbt_resource_props)
        if own is None:
            return None
        patch = dbt_resource_props.get("patch_path") or ""
        yaml_digest = path_digest(DBT_PROJECT_DIR / patch.split("://", 1)[1]) if "://" in patch else "-"
        return code_version(DBT_PROJECT_DIR / "macros", DBT_PROJECT_DIR / "dbt_project.yml", salt=f"{own}\n{yaml_digest}")


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
        events = dbt.cli(["build", *warehouse_vars(warehouse)], context=context).stream()
        yield from with_content_versions(context, events, warehouse)

    return _dbt


@functools.cache
def _relations() -> dict[str, str]:
    """unique_id -> `schema.alias` of every model and seed in the manifest."""
    manifest = json.loads(Path(fitatlas_dbt_project.manifest_path).read_text())
    return {
        unique_id: f"{node['schema']}.{node.get('alias') or node['name']}"
        for unique_id, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "seed", "snapshot")
    }


def with_content_versions(
    context: dg.AssetExecutionContext, events: Iterator[Any], warehouse: WarehouseResource
) -> Iterator[Any]:
    """dbt's events, each model's and seed's output carrying the content digest of what dbt built as
    its data version. The events are held until dbt exits (it holds the warehouse meanwhile), then
    yielded in dbt's order; a failed build still reports what it built, then raises."""
    held: list[Any] = []
    failure: BaseException | None = None
    try:
        for event in events:
            held.append(event)
    except Exception as error:  # noqa: BLE001 - re-raised below, after what dbt built is reported
        failure = error
    relations = _relations()
    outputs = [e for e in held if isinstance(e, dg.Output) and _metadata_text(e.metadata.get("unique_id", "")) in relations]
    versions: dict[int, dg.DataVersion] = {}
    if outputs:
        with warehouse.get_connection() as con:
            for event in outputs:
                relation = relations[_metadata_text(event.metadata["unique_id"])]
                excluded = RUN_COLUMNS.get(relation.split(".")[1], frozenset())
                versions[id(event)] = table_version(con, relation, excluded=excluded)
    for event in held:
        version = versions.get(id(event))
        if version is None:
            yield event
        else:
            yield dg.MaterializeResult(
                asset_key=context.asset_key_for_output(event.output_name),
                metadata=event.metadata,
                data_version=version,
                tags=event.tags,
            )
    if failure is not None:
        raise failure


def _metadata_text(value: Any) -> str:
    return str(getattr(value, "value", value))


dbt_staging_and_reference_marts = build_dbt_assets("dbt_staging_and_reference_marts", exclude=MODEL_MARTS)
dbt_model_marts = build_dbt_assets("dbt_model_marts", select=MODEL_MARTS)


def dbt_resource() -> DbtCliResource:
    """The dbt installed beside this interpreter (the project's venv), whether or not it is on PATH."""
    return DbtCliResource(project_dir=fitatlas_dbt_project, dbt_executable=str(Path(sys.executable).with_name("dbt")))
