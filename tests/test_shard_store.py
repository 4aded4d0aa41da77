"""The sizing shards' files (pipelines.defs.sizing.sharding) and the settings that choose where shards
run (pipelines.settings): shard keys, a shard set that loads only when complete and current, and a
warehouse table loaded from every shard equal to the whole catalogue sized at once.

The catalogue is the bundled snapshot's configs (test_catalogue_sizing.snapshot_bases) against the
datasheet GPUs of test_kv_per_gpu; the reference is `size_catalogue` without shards."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from test_catalogue_sizing import snapshot_bases
from test_kv_per_gpu import gpu_frame

from pipelines.defs.sizing.assets import _size_shard
from pipelines.defs.sizing.sharding import (
    IncompleteShards,
    ShardStore,
    partition_range_tags,
    shard_keys,
    shard_of,
)
from pipelines.defs.sizing.shards import GRID_TABLES, load_shards
from pipelines.settings import Settings, SettingsError
from sizing.architecture import describe
from sizing.catalogue import size_catalogue
from sizing.grid import CONFIG_KEYS
from sizing.model_spec import specs_to_frames


def snapshot_inputs() -> dict[str, pl.DataFrame]:
    """The frames `sizing_inputs` exports, from the snapshot's configs, datasheet GPUs and two prices."""
    specs = [describe(b.config, model_id=b.model_id, quant_config=b.quant_config) for b in snapshot_bases()]
    models, kv_groups = specs_to_frames(specs)
    prices = pl.DataFrame({
        "model_id": ["Qwen/Qwen3-8B", "deepseek-ai/DeepSeek-V3"],
        "provider": ["a", "a"],
        "input_usd_per_mtok": [0.05, 0.27],
        "output_usd_per_mtok": [0.2, 1.10],
    })
    return {"models": models.filter("supported"), "kv_groups": kv_groups, "gpus": gpu_frame(), "prices": prices}


@pytest.fixture(scope="module")
def inputs() -> dict[str, pl.DataFrame]:
    return snapshot_inputs()


def test_a_shard_key_names_its_index_and_the_shard_count():
    assert shard_keys(3) == ["000-of-003", "001-of-003", "002-of-003"]
    assert [shard_of(key) for key in shard_keys(3)] == [(0, 3), (1, 3), (2, 3)]
    assert partition_range_tags(3) == {
        "dagster/asset_partition_range_start": "000-of-003", "dagster/asset_partition_range_end": "002-of-003",
    }
    for bad in ("3-of-4", "004-of-004", "000-of-000", "000_of_004", "../000-of-004"):
        with pytest.raises(ValueError, match="not a sizing shard key"):
            shard_of(bad)
    with pytest.raises(ValueError, match="expected 1 to 999"):
        shard_keys(0)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("FITATLAS_EXECUTOR", "ray", "FITATLAS_EXECUTOR='ray': expected one of in_process, dask"),
    ("FITATLAS_SIZING_SHARDS", "0", "FITATLAS_SIZING_SHARDS=0: expected 1 to 999"),
    ("FITATLAS_SIZING_SHARDS", "four", "FITATLAS_SIZING_SHARDS='four': expected a whole number"),
    ("FITATLAS_DASK_WORKERS", "0", "FITATLAS_DASK_WORKERS=0: expected at least 1"),
    ("FITATLAS_DASK_ADDRESS", "scheduler:8786", "expected a scheduler address such as tcp://host:8786"),
])
def test_a_bad_distribution_setting_names_its_variable(variable, value, message):
    with pytest.raises(SettingsError) as raised:
        Settings.from_environment({variable: value})
    assert message in str(raised.value)


def test_the_distribution_settings_default_to_four_shards_in_process():
    settings = Settings.from_environment({})
    assert (settings.sizing_shards, settings.executor, settings.dask_address, settings.dask_workers) == (
        4, "in_process", None, None)
    dask = Settings.from_environment({"FITATLAS_EXECUTOR": "dask", "FITATLAS_DASK_ADDRESS": "tcp://10.0.0.5:8786",
                                      "FITATLAS_SIZING_SHARDS": "16"})
    assert (dask.executor, dask.dask_address, dask.sizing_shards) == ("dask", "tcp://10.0.0.5:8786", 16)


def _sort(frame: pl.DataFrame) -> pl.DataFrame:
    keys = [c for c in [*CONFIG_KEYS, "rank"] if c in frame.columns]
    return frame.sort(keys)


def test_the_shards_loaded_together_are_the_whole_catalogue(tmp_path, inputs):
    store = ShardStore(tmp_path / "sizing")
    store.write_inputs("v1", inputs)
    version, frames = store.read_inputs()
    keys = shard_keys(3)
    manifests = [_size_shard(store, key, version, frames) for key in keys]
    assert sum(m.models for m in manifests) == inputs["models"].height
    whole = size_catalogue(inputs["models"], inputs["kv_groups"], inputs["gpus"], inputs["prices"])
    assert sum(m.signatures for m in manifests) == whole.signatures

    assert store.verify(keys)[0] == "v1"
    con = duckdb.connect()
    for table in GRID_TABLES:
        load_shards(con, f"sizing.{table}", store.files(keys, table))
        loaded = con.sql(f"select * from sizing.{table}").pl()
        expected = whole.table(table)
        assert loaded.height == expected.height == sum(m.rows[table] for m in manifests)
        assert loaded.columns == expected.columns
        assert _sort(loaded).equals(_sort(expected)), table


def test_a_missing_or_outdated_shard_stops_the_load_and_is_named(tmp_path, inputs):
    store = ShardStore(tmp_path / "sizing")
    with pytest.raises(IncompleteShards, match="no sizing inputs at .*: materialise sizing_inputs first"):
        store.verify(shard_keys(2))
    store.write_inputs("v1", inputs)
    version, frames = store.read_inputs()
    first, second = shard_keys(2)
    _size_shard(store, first, version, frames)
    _size_shard(store, second, version, frames)
    store.write_inputs("v2", inputs)  # new inputs: both shards are outdated until sized again
    assert not (store.inputs_root / "v1").exists()
    _size_shard(store, first, *store.read_inputs())
    with pytest.raises(IncompleteShards) as raised:
        store.verify([first, second])
    message = str(raised.value)
    assert "1 of 2 sizing shards cannot be loaded" in message
    assert f"shard {second} was sized from inputs v1, the current inputs are v2" in message

    store.open_shard(first)  # a shard that starts again loses its manifest before any row is written
    assert store.problems([first]) == [f"shard {first} has no complete result in {store.shard_dir(first)}"]


def test_the_load_removes_only_the_shards_of_another_count(tmp_path):
    store = ShardStore(tmp_path / "sizing")
    for key in shard_keys(2) + shard_keys(3):
        (store.shard_dir(key) / "fit_matrix").mkdir(parents=True)
    assert store.prune(shard_keys(3)) == shard_keys(2)
    assert sorted(path.name for path in store.shards_root.iterdir()) == shard_keys(3)
