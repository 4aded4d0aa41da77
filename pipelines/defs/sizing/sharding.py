"""Sizing by model shard: the shard keys (Dagster partitions) and the files the shards share.

The grid is sized in shards so that it can run on many machines (`sizing_shard`, one Dagster
partition per shard, on Dask with FITATLAS_EXECUTOR=dask). A shard is the set of sizing signatures
`sizing.signature.shard_index` assigns to it, so each model's rows are sized by exactly one shard
and the shards together give the whole grid (`sizing.catalogue.size_catalogue(shard=...)`).

Shards never open the warehouse: one process writes it at a time, and a worker on another machine
cannot open it at all. They meet through files under `Settings.sizing_shards_dir`, which every
worker must see at the same path (a shared filesystem; see the README's "Scale-out"):

    inputs/<version>/{models,kv_groups,gpus,prices}.parquet   what every shard sizes (sizing_inputs)
    inputs/CURRENT                                          the complete inputs' version, written last
    shards/<key>/<table>/part-*.parquet                     one shard's rows (sizing_shard)
    shards/<key>/manifest.json                              written last: the inputs it sized, counts

Every file has one writer: the inputs the `sizing_inputs` step, a shard's directory its own
partition's step, and the warehouse tables the `sizing_grid` step, which loads only a complete set
(`ShardStore.verify`): every shard of the current count, each sized from the current inputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.defs.sizing.shards import GRID_TABLES, ParquetShards
from pipelines.settings import MAX_SIZING_SHARDS

SHARD_KEY = re.compile(r"(?P<index>[0-9]{3})-of-(?P<count>[0-9]{3})")
#: the frames a shard sizes from, each one Parquet file of the inputs
INPUT_FRAMES = ("models", "kv_groups", "gpus", "prices")
MANIFEST = "manifest.json"


def shard_keys(count: int) -> list[str]:
    """`000-of-004` ... `003-of-004`: a key names its shard and how many there are, so a key of an
    earlier shard count is never mistaken for one of the current count."""
    if not 1 <= count <= MAX_SIZING_SHARDS:
        raise ValueError(f"shard count {count}: expected 1 to {MAX_SIZING_SHARDS}")
    return [f"{index:03d}-of-{count:03d}" for index in range(count)]


def shard_of(key: str) -> tuple[int, int]:
    """`002-of-004` -> (2, 4)."""
    match = SHARD_KEY.fullmatch(key)
    if not match or not int(match["index"]) < int(match["count"]):
        raise ValueError(f"{key!r} is not a sizing shard key (expected e.g. 002-of-004)")
    return int(match["index"]), int(match["count"])


def shard_partitions(count: int) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(shard_keys(count))


def partition_range_tags(count: int) -> dict[str, str]:
    """Run tags that make one run size every shard (a partition range over all of them)."""
    keys = shard_keys(count)
    return {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}


class IncompleteShards(RuntimeError):
    """The shard files cannot make a whole grid; the message names each missing or stale shard."""


@dataclass(frozen=True)
class ShardManifest:
    """What one shard sized, written after its rows."""

    key: str
    inputs_version: str
    models: int
    signatures: int
    chunks: int
    rows: dict[str, int]
    seconds_fit: float
    seconds_recommend: float
    host: str
    pid: int


class ShardStore:
    """The files under `root` (module docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.inputs_root = self.root / "inputs"
        self.shards_root = self.root / "shards"

    # --- inputs ---------------------------------------------------------------------------------

    def write_inputs(self, version: str, frames: dict[str, pl.DataFrame]) -> Path:
        """Write the inputs under `version`, then point CURRENT at them; other versions are removed
        (no shard reads them: shards run after this step, and sizing_grid only loads shards of CURRENT)."""
        missing = set(INPUT_FRAMES) - set(frames)
        if missing:
            raise ValueError(f"sizing inputs lack {', '.join(sorted(missing))}")
        target = self.inputs_root / version
        staging = self.inputs_root / f".{version}.{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        for name in INPUT_FRAMES:
            frames[name].write_parquet(staging / f"{name}.parquet")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        _write_atomically(self.inputs_root / "CURRENT", version)
        for other in self.inputs_root.iterdir():
            if other.is_dir() and other.name != version:
                shutil.rmtree(other, ignore_errors=True)
        return target

    def current_inputs_version(self) -> str:
        try:
            return (self.inputs_root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            raise IncompleteShards(
                f"no sizing inputs at {self.inputs_root}: materialise sizing_inputs first"
            ) from None

    def read_inputs(self) -> tuple[str, dict[str, pl.DataFrame]]:
        version = self.current_inputs_version()
        directory = self.inputs_root / version
        return version, {name: pl.read_parquet(directory / f"{name}.parquet") for name in INPUT_FRAMES}

    # --- shards ---------------------------------------------------------------------------------

    def shard_dir(self, key: str) -> Path:
        shard_of(key)
        return self.shards_root / key

    def open_shard(self, key: str) -> ParquetShards:
        """A sink for `key`'s rows; its manifest goes first, so a shard that dies half-written is
        missing, never mistaken for complete."""
        (self.shard_dir(key) / MANIFEST).unlink(missing_ok=True)
        return ParquetShards(self.shard_dir(key), GRID_TABLES)

    def write_manifest(self, manifest: ShardManifest) -> None:
        _write_atomically(self.shard_dir(manifest.key) / MANIFEST, json.dumps(manifest.__dict__, sort_keys=True))

    def read_manifest(self, key: str) -> ShardManifest | None:
        try:
            return ShardManifest(**json.loads((self.shard_dir(key) / MANIFEST).read_text()))
        except FileNotFoundError:
            return None

    def unusable(self, keys: list[str]) -> dict[str, str]:
        """The shards of `keys` that cannot be loaded, each with why: missing, or sized from other
        inputs (every shard, when there are no inputs)."""
        try:
            version = self.current_inputs_version()
        except IncompleteShards as missing:
            return dict.fromkeys(keys, str(missing))
        reasons: dict[str, str] = {}
        for key in keys:
            manifest = self.read_manifest(key)
            if manifest is None:
                reasons[key] = f"shard {key} has no complete result in {self.shard_dir(key)}"
            elif manifest.inputs_version != version:
                reasons[key] = f"shard {key} was sized from inputs {manifest.inputs_version}, the current inputs are {version}"
        return reasons

    def problems(self, keys: list[str]) -> list[str]:
        """Why shards of `keys` cannot be loaded, each reason once."""
        return list(dict.fromkeys(self.unusable(keys).values()))

    def verify(self, keys: list[str]) -> tuple[str, list[ShardManifest]]:
        """The current inputs' version and every shard's manifest, or IncompleteShards naming each
        shard that is missing or was sized from other inputs."""
        problems = self.problems(keys)
        if problems:
            raise IncompleteShards(
                f"{len(problems)} of {len(keys)} sizing shards cannot be loaded: " + "; ".join(problems)
                + ". Materialise those partitions of sizing_shard (fitatlas run does it)."
            )
        manifests = [self.read_manifest(key) for key in keys]
        return self.current_inputs_version(), [m for m in manifests if m is not None]

    def files(self, keys: list[str], table: str) -> list[Path]:
        return [path for key in keys for path in sorted((self.shard_dir(key) / table).glob("part-*.parquet"))]

    def prune(self, keys: list[str]) -> list[str]:
        """Remove the directories of shards not in `keys` (an earlier shard count); their names."""
        if not self.shards_root.exists():
            return []
        gone = [path.name for path in self.shards_root.iterdir() if path.is_dir() and path.name not in keys]
        for name in gone:
            shutil.rmtree(self.shards_root / name, ignore_errors=True)
        return sorted(gone)


def worker_identity() -> tuple[str, int]:
    """Which machine and process sized a shard (shown in its metadata: proof of where it ran)."""
    return socket.gethostname(), os.getpid()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    temporary.write_text(text)
    os.replace(temporary, path)
