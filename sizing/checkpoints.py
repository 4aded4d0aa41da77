"""Which weights a recommendation needs, and whether this repo (or one the catalogue tracks) has them.

A repo ships one checkpoint precision (``models.checkpoint_precision``). A configuration at weight
precision ``q`` is **deployable as is** from a repo whose checkpoint is ``c`` when ``q == c``, or when
``c`` is BF16/FP16 and ``q`` is FP8: vLLM and SGLang quantize 16-bit weights to FP8 online at load
(``--quantization fp8``). Every other precision needs weights the repo does not have
(``needs_other_checkpoint``): INT8 W8A8, INT4 (GPTQ/AWQ) and FP4 (NVFP4/MXFP4) come from an offline
calibration pass, and no engine up-casts a quantized checkpoint.

Where the catalogue tracks another repo of the same model whose checkpoint deploys ``q`` as is,
``checkpoint_model_id`` names it. "Same model" = the same base name once precision tokens are
removed (``checkpoint_base_key``: ``nvidia/Llama-3.1-70B-Instruct-FP8`` and
``meta-llama/Llama-3.1-70B-Instruct`` are both ``llama-3.1-70b-instruct``) *and* the same
architecture (layers, hidden size, vocabulary): a name match alone never links two repos.
"""

from __future__ import annotations

import polars as pl

from sizing.quantization import REPO_NAME_TOKENS

#: Name tokens that describe how a checkpoint is stored, not which model it is (case-insensitive,
#: as separate ``-``/``_`` tokens at the end of the repo name): the quantization tokens checkpoint
#: detection reads (``sizing.quantization.REPO_NAME_TOKENS``) plus words that only qualify them.
STORAGE_WORDS: tuple[str, ...] = (
    "w4a8", "bf16", "fp16", "dynamic", "static", "pertensor", "per-tensor", "block", "quantized", "4bit", "8bit",
)  # fmt: skip
PRECISION_TOKENS: tuple[str, ...] = tuple(token.lower() for token, _, _ in REPO_NAME_TOKENS) + STORAGE_WORDS
_TRAILING_TOKEN = "(?i)[-_](" + "|".join(t.replace("-", r"\-") for t in PRECISION_TOKENS) + ")$"
_ARCHITECTURE_KEYS = ("num_layers", "hidden_size", "vocab_size")


def checkpoint_base_key_expr(model_id: pl.Expr) -> pl.Expr:
    """Lower-case repo name (no owner) without trailing precision tokens."""
    name = model_id.str.split("/").list.last()
    for _ in range(4):
        name = name.str.replace(_TRAILING_TOKEN, "")
    return name.str.to_lowercase()


def deployable_as_is_expr(precision: pl.Expr, checkpoint_precision: pl.Expr) -> pl.Expr:
    ckpt = checkpoint_precision.fill_null("bf16")
    return (precision == ckpt) | ((ckpt == "bf16") & (precision == "fp8"))


def checkpoint_columns(models: pl.DataFrame | pl.LazyFrame, precisions: pl.LazyFrame) -> pl.LazyFrame:
    """Per (model_id, precision): ``checkpoint_precision``, ``needs_other_checkpoint`` and
    ``checkpoint_model_id`` (a tracked repo that deploys that precision as is, or null)."""
    base = models.lazy().select(
        "model_id",
        pl.col("checkpoint_precision").fill_null("bf16"),
        *_ARCHITECTURE_KEYS,
        _key=checkpoint_base_key_expr(pl.col("model_id")),
    )
    rows = base.join(precisions, how="cross").with_columns(
        needs_other_checkpoint=~deployable_as_is_expr(pl.col("precision"), pl.col("checkpoint_precision"))
    )
    siblings = (
        base.rename({"model_id": "checkpoint_model_id", "checkpoint_precision": "_sibling_precision"})
        .join(precisions, how="cross")
        .filter(deployable_as_is_expr(pl.col("precision"), pl.col("_sibling_precision")))
    )
    linked = (
        rows.filter(pl.col("needs_other_checkpoint"))
        .join(siblings, on=["_key", *_ARCHITECTURE_KEYS, "precision"])
        .filter(pl.col("checkpoint_model_id") != pl.col("model_id"))
        # the sibling whose checkpoint *is* that precision first (no online quantization), then by id
        .sort(pl.col("_sibling_precision") != pl.col("precision"), "checkpoint_model_id")
        .unique(subset=["model_id", "precision"], keep="first", maintain_order=True)
        .select("model_id", "precision", "checkpoint_model_id")
    )
    return rows.join(linked, on=["model_id", "precision"], how="left").select(
        "model_id", "precision", "checkpoint_precision", "needs_other_checkpoint", "checkpoint_model_id"
    )
