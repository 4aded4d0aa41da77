"""Developer tools run from the repo root (`python -m tools.<name>`); not installed, not imported at runtime."""
