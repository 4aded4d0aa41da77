"""The shape every source parser produces, before it lands in a raw table.

A raw table holds one row per record, with the provenance of the file (or HTTP response) it came
from. Parsers turn a source's wire format into records and never interpret values: field names and
units stay the source's own, so the raw layer can always be re-read by a corrected staging model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawRecord:
    """One item of a source file: a model's config, a GPU's spec sheet, a price entry, a CSV row."""

    record_key: str
    record: dict[str, Any]


class SourceFormatError(ValueError):
    """A fetched file (or one item in it) cannot be read in its declared wire format."""

    def __init__(self, location: str, reason: str, record_key: str | None = None):
        self.location = location
        self.reason = reason
        self.record_key = record_key
        item = f"{location}#{record_key}" if record_key else location
        super().__init__(f"{item}: {reason}")
