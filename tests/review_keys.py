"""Real reviewer keys for tests: `ssh-keygen -t ed25519` in a temporary directory, and a reviewers file.

`reviewer_keys(tmp_path, "alice", "bob")` makes one key per name and writes a reviewers file listing
them; it touches no environment. In-process code gets the file as `Settings.reviewers_path`
(`Settings.for_data_dir(data_dir, reviewers_path=keys.reviewers_path)`) and a key as `key=`.

The CLI reads its settings from the environment (that is its interface): `cli_environment(settings,
key=...)` is the environment naming exactly those settings (and the signing key `--key` defaults
to), for `monkeypatch.setenv` before an in-process `main([...])` (`set_cli_environment`) or for a
subprocess's `env=`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pipelines.settings import Settings


def make_key(directory: Path, name: str) -> Path:
    """A fresh ed25519 key pair without passphrase: returns the private key's path (`.pub` beside it)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / f"{name}_review"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(key)], check=True)
    return key


def public_key(key: Path) -> str:
    return key.with_name(key.name + ".pub").read_text().strip()


def write_reviewers(path: Path, keys: Mapping[str, Path]) -> Path:
    entries = [{"name": name, "public_key": public_key(key)} for name, key in keys.items()]
    path.write_text(yaml.safe_dump({"reviewers": entries}, sort_keys=False))
    return path


@dataclass(frozen=True)
class ReviewerKeys:
    """Private keys by reviewer name (`keys["alice"]`) and the reviewers file listing their public keys."""

    keys: dict[str, Path]
    reviewers_path: Path

    def __getitem__(self, name: str) -> Path:
        return self.keys[name]


def reviewer_keys(tmp_path: Path, *names: str) -> ReviewerKeys:
    """Keys for `names`, listed in `tmp_path/reviewers.yaml`; sets no environment variable."""
    keys = {name: make_key(tmp_path / "keys", name) for name in names}
    return ReviewerKeys(keys, write_reviewers(tmp_path / "reviewers.yaml", keys).resolve())


def cli_environment(settings: Settings, key: Path | None = None) -> dict[str, str]:
    """What the CLI reads to arrive at `settings` (`Settings.from_environment`), plus
    FITATLAS_REVIEW_KEY (its `--key` default) when `key` is given."""
    env = {
        "FITATLAS_DATA_DIR": str(settings.data_dir),
        "FITATLAS_SOURCE": settings.source_mode,
        "FITATLAS_SNAPSHOT_DIR": str(settings.snapshot_dir),
        "FITATLAS_SPEC_SHEETS_DIR": str(settings.spec_sheets_dir),
        "FITATLAS_WATCHLIST": str(settings.watchlist_path),
        "FITATLAS_REVIEWERS": str(settings.reviewers_path),
        "FITATLAS_SIZING_SHARDS": str(settings.sizing_shards),
        "FITATLAS_EXECUTOR": settings.executor,
    }
    env.update({name: str(value) for name, value in (
        ("FITATLAS_DASK_ADDRESS", settings.dask_address), ("FITATLAS_DASK_WORKERS", settings.dask_workers),
    ) if value is not None})
    if key is not None:
        env["FITATLAS_REVIEW_KEY"] = str(key)
    return env


def set_cli_environment(monkeypatch: pytest.MonkeyPatch, settings: Settings, key: Path | None = None) -> None:
    """Point an in-process `pipelines.cli.main` at `settings`: its environment names them, the
    signing key is `key` (else none: FITATLAS_REVIEW_KEY unset) and no FITATLAS_REVIEWER is set."""
    for name, value in cli_environment(settings, key).items():
        monkeypatch.setenv(name, value)
    if key is None:
        monkeypatch.delenv("FITATLAS_REVIEW_KEY", raising=False)
    monkeypatch.delenv("FITATLAS_REVIEWER", raising=False)
