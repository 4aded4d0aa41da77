"""Pure sizing library: architecture accounting, memory fit, speed and cost. No Dagster imports."""
