"""The dbt project, alone in its module so the CLI and tests can prepare it without the assets."""

from dagster_dbt import DbtProject

from pipelines.settings import DBT_PROJECT_DIR

fitatlas_dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
