"""FitAtlas Dagster project: ingest -> dbt -> sizing -> gate -> publish."""
