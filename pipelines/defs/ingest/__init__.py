"""Raw ingest: every source lands append-only in the warehouse's `raw` schema with provenance."""
