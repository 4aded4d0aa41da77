"""Real reviewer keys for tests: `ssh-keygen -t ed25519` in a temporary directory, and a reviewers file.

Test modules use `reviewer_setup(tmp_path, monkeypatch, "alice", "bob")`: it makes one key per
name, writes a reviewers file listing them, points FITATLAS_REVIEWERS at it and sets
FITATLAS_REVIEW_KEY to the first reviewer's key (pass `--key` / `key=` for the others).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml


def make_key(directory: Path, name: str) -> Path:
    """A fresh ed25519 key pair without passphrase: returns the private key's path (`.pub` beside it)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / f"{name}_review"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(key)], check=True)
    return key


def public_key(key: Path) -> str:
    return key.with_name(key.name + ".pub").read_text().strip()


def write_reviewers(path: Path, keys: dict[str, Path]) -> Path:
    entries = [{"name": name, "public_key": public_key(key)} for name, key in keys.items()]
    path.write_text(yaml.safe_dump({"reviewers": entries}, sort_keys=False))
    return path


def reviewer_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *names: str) -> dict[str, Path]:
    """Keys for `names`, listed in a reviewers file the process uses; returns {name: private key}."""
    keys = {name: make_key(tmp_path / "keys", name) for name in names}
    reviewers = write_reviewers(tmp_path / "reviewers.yaml", keys)
    monkeypatch.setenv("FITATLAS_REVIEWERS", str(reviewers))
    monkeypatch.setenv("FITATLAS_REVIEW_KEY", str(keys[names[0]]))
    monkeypatch.delenv("FITATLAS_REVIEWER", raising=False)
    return keys
