"""The Hugging Face models FitAtlas tracks in live mode, and the check every repo id passes first.

A repo id ends up in URLs, in run config and tags, and as a SQL parameter, so anything that is not
a plain `owner/name` (the Hub's own charset) is rejected before it is used anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def is_valid_repo_id(value: object) -> bool:
    return isinstance(value, str) and bool(REPO_ID_PATTERN.fullmatch(value)) and ".." not in value


@dataclass(frozen=True)
class Watchlist:
    """Valid repo ids in file order (duplicates dropped), and the entries that were rejected."""

    models: list[str]
    rejected: list[tuple[str, str]] = field(default_factory=list)


def read_watchlist(path: Path) -> Watchlist:
    """Read `models:` from the YAML watchlist. A missing or malformed file raises ValueError: a
    live run without a readable watchlist must fail loudly rather than track nothing."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"watchlist {path} does not exist") from None
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"watchlist {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    entries = document.get("models") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"watchlist {path} needs a top-level `models:` list of repo ids")
    models: list[str] = []
    rejected: list[tuple[str, str]] = []
    for entry in entries:
        if not is_valid_repo_id(entry):
            rejected.append((repr(entry)[:120], "not a valid Hugging Face repo id (owner/name)"))
        elif entry not in models:
            models.append(entry)
    return Watchlist(models, rejected)
