"""Catalogue sizing (sizing.catalogue): dedup by sizing signature and chunking change no row.

The bundled snapshot's configs (pipelines/snapshot/hf, described by sizing.architecture) against the
datasheet GPUs of test_kv_per_gpu, with hand API prices; the reference is fit_matrix +
rank_and_speeds over the whole catalogue at once."""

from __future__ import annotations

import json

import polars as pl
import pytest
from test_kv_per_gpu import gpu_frame

from pipelines.settings import SNAPSHOT_DIR
from sizing.architecture import describe
from sizing.catalogue import size_catalogue
from sizing.constants import PUBLISHED_KV_DTYPES, RECOMMENDATION_KV_DTYPE
from sizing.grid import CONFIG_KEYS, fit_matrix, rank_and_speeds
from sizing.model_spec import specs_to_frames
from sizing.signature import signatures
from sizing.synthetic import BaseConfig, synthetic_catalogue

# DeepSeek-R1 is DeepSeek-V3's architecture retrained: their config.json files agree on every field
# sizing reads (pipelines/snapshot/hf/deepseek-ai__DeepSeek-{V3,R1}/config.json)
TWINS = ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3")


def snapshot_bases() -> list[BaseConfig]:
    bases = []
    for path in sorted((SNAPSHOT_DIR / "hf").glob("*/config.json")):
        quant = path.parent / "hf_quant_config.json"
        bases.append(BaseConfig(path.parent.name.replace("__", "/", 1), json.loads(path.read_text()),
                                json.loads(quant.read_text()) if quant.exists() else None))
    return bases


@pytest.fixture(scope="module")
def catalogue():
    specs = [describe(b.config, model_id=b.model_id, quant_config=b.quant_config) for b in snapshot_bases()]
    models, groups = specs_to_frames(specs)
    prices = pl.DataFrame({  # one twin priced, the other not: per-model columns must follow the model
        "model_id": [TWINS[1], TWINS[1], "Qwen/Qwen3-8B"],
        "provider": ["a", "b", "a"],
        "input_usd_per_mtok": [0.27, 0.5, 0.05],
        "output_usd_per_mtok": [1.10, 0.9, 0.2],
    })
    return models, groups, gpu_frame(), prices


def _sorted(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.sort(keys)


def test_twins_share_a_signature_and_the_catalogue_has_fewer_signatures_than_models(catalogue):
    models, groups, *_ = catalogue
    sig = dict(signatures(models, groups).iter_rows())
    assert sig[TWINS[0]] == sig[TWINS[1]]
    assert sig["Qwen/Qwen3-8B"] != sig["Qwen/Qwen3-14B"]
    supported = models.filter("supported")["model_id"].to_list()
    assert len({sig[m] for m in supported}) < len(supported)


@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_dedup_and_chunks_give_the_rows_of_one_whole_grid(catalogue, chunk_size):
    models, groups, gpus, prices = catalogue
    supported = models.filter("supported")
    whole_fit = fit_matrix(supported, groups, gpus, kv_dtype=PUBLISHED_KV_DTYPES)
    whole_recs, whole_speeds = rank_and_speeds(
        whole_fit.filter(pl.col("kv_dtype") == RECOMMENDATION_KV_DTYPE), supported, groups, gpus, prices)
    sized = size_catalogue(models, groups, gpus, prices, chunk_size=chunk_size)
    assert sized.signatures < sized.models == supported.height
    assert sized.chunks == -(-sized.signatures // chunk_size)
    assert _sorted(sized.table("fit_matrix"), CONFIG_KEYS).equals(_sorted(whole_fit, CONFIG_KEYS))
    assert _sorted(sized.table("recommendations"), ["model_id", "rank"]).equals(_sorted(whole_recs, ["model_id", "rank"]))
    speed_keys = ["model_id", "gpu_id", "precision"]
    assert _sorted(sized.table("model_gpu_speed"), speed_keys).equals(_sorted(whole_speeds, speed_keys))
    # the priced twin carries its own API columns, the other none
    recs = sized.table("recommendations")
    assert recs.filter(model_id=TWINS[1])["cheapest_api_output_usd_per_mtok"].unique().to_list() == [0.9]
    assert recs.filter(model_id=TWINS[0])["cheapest_api_output_usd_per_mtok"].null_count() == recs.filter(model_id=TWINS[0]).height


def test_a_synthetic_catalogue_is_all_distinct_signatures():
    bases = snapshot_bases()
    specs = [describe(b.config, model_id=b.model_id, quant_config=b.quant_config) for b in bases]
    models, groups = specs_to_frames(specs)
    sig = signatures(models.filter("supported"), groups)
    first = sig.unique("signature", keep="first")["model_id"].to_list()
    distinct_bases = [b for b in bases if b.model_id in set(first)]
    synthetic = list(synthetic_catalogue(distinct_bases, 3 * len(distinct_bases)))
    specs = [describe(c.config, model_id=c.model_id, quant_config=c.quant_config) for c in synthetic]
    assert all(s.supported for s in specs), [(s.model_id, s.reason) for s in specs if not s.supported][:3]
    models, groups = specs_to_frames(specs)
    assert signatures(models, groups)["signature"].n_unique() == len(synthetic)


def test_shards_together_give_every_row_once_and_keep_twins_together(catalogue):
    """n shards sized apart (as n Dask workers would) add up to the whole catalogue's rows, and the
    twins (one signature) land in one shard. shard_index and its Polars expression agree."""
    from sizing.signature import shard_index, shard_index_expr

    models, groups, gpus, prices = catalogue
    whole = size_catalogue(models, groups, gpus, prices)
    parts = [size_catalogue(models, groups, gpus, prices, shard=(i, 3)) for i in range(3)]
    assert sum(p.models for p in parts) == whole.models and sum(p.signatures for p in parts) == whole.signatures
    for table, keys in (("fit_matrix", CONFIG_KEYS), ("recommendations", ["model_id", "rank"]),
                        ("model_gpu_speed", ["model_id", "gpu_id", "precision"])):
        joined = pl.concat([p.table(table) for p in parts if p.table(table).height])
        assert _sorted(joined, keys).equals(_sorted(whole.table(table), keys)), table
    holding = [i for i, p in enumerate(parts) if TWINS[0] in set(p.table("recommendations")["model_id"])]
    assert holding == [i for i, p in enumerate(parts) if TWINS[1] in set(p.table("recommendations")["model_id"])]
    sig = signatures(models.filter("supported"), groups)
    assert sig.select(shard_index_expr(pl.col("signature"), 7)).to_series().to_list() == [
        shard_index(s, 7) for s in sig["signature"]]
    with pytest.raises(ValueError, match="shard 3 of 3"):
        size_catalogue(models, groups, gpus, prices, shard=(3, 3))
