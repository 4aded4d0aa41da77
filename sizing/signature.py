"""Sizing signatures: which models the engine cannot tell apart.

Most of a real catalogue is fine-tunes and re-uploads of a few architectures: same layers, widths,
heads, experts, context and checkpoint quantization, different repo names. Every number the grid
computes for a model (fit, speed, GPU cost, ranking) is a function of the model's row of the models
frame without its name, and of its KV groups. The **sizing signature** is the SHA-256 of exactly
that, so models that share one are sized once and joined to the result (``sizing.catalogue``).

What the grid reads of a model beyond its signature, and what is therefore applied per model after
the join: its API prices (``sizing.cost.api_prices``) and the sibling repo that has other weights
(``sizing.checkpoints.checkpoint_columns``: matched by repo name).
"""

from __future__ import annotations

import hashlib
import json

import polars as pl

from sizing.model_spec import KV_GROUP_COLUMNS, MODEL_COLUMNS

SIGNATURE_FORMAT = "fitatlas-sizing-signature-v1"
#: model columns no sizing number depends on: the name, and text saying why or from where
DESCRIPTIVE_COLUMNS = frozenset({
    "model_id", "reason", "family", "checkpoint_precision_source", "checkpoint_precision_conflict",
})  # fmt: skip
SIGNATURE_MODEL_COLUMNS = tuple(c for c in MODEL_COLUMNS if c not in DESCRIPTIVE_COLUMNS)
SIGNATURE_GROUP_COLUMNS = tuple(c for c in KV_GROUP_COLUMNS if c != "model_id")


def signatures(models: pl.DataFrame, kv_groups: pl.DataFrame) -> pl.DataFrame:
    """``model_id``, ``signature`` for every row of ``models``: SHA-256 (hex) of the model's
    signature columns and its KV groups in order, as canonical JSON. A Python loop per *model*
    (not per grid cell): ~10 µs each."""
    groups: dict[str, list[list]] = {}
    for row in kv_groups.select("model_id", *SIGNATURE_GROUP_COLUMNS).iter_rows():
        groups.setdefault(row[0], []).append(list(row[1:]))
    ids: list[str] = []
    digests: list[str] = []
    for row in models.select("model_id", *SIGNATURE_MODEL_COLUMNS).iter_rows():
        payload = json.dumps([SIGNATURE_FORMAT, row[1:], groups.get(row[0], [])], separators=(",", ":"), default=str)
        ids.append(row[0])
        digests.append(hashlib.sha256(payload.encode()).hexdigest())
    return pl.DataFrame({"model_id": ids, "signature": digests}, schema={"model_id": pl.Utf8, "signature": pl.Utf8})


#: hex digits of a signature that choose its shard (60 bits: an Int64 in Polars)
SHARD_HEX_DIGITS = 15


def shard_index(signature: str, shards: int) -> int:
    """The shard (0..shards-1) a signature belongs to: its first 60 bits modulo ``shards``. Models of
    one signature always share a shard, so dedup within a shard loses nothing."""
    return int(signature[:SHARD_HEX_DIGITS], 16) % shards


def shard_index_expr(signature: pl.Expr, shards: int) -> pl.Expr:
    """``shard_index`` over a column of signatures."""
    return signature.str.slice(0, SHARD_HEX_DIGITS).str.to_integer(base=16) % shards
