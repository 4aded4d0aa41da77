"""model_changes (pipelines.changes): the diff between the current publication and this run's tables.
Rules: the module doc of pipelines.changes; the 1 % estimate tolerance is
pipelines.changes.CHANGE_RULES.estimate_tolerance."""

from __future__ import annotations

import polars as pl

from pipelines.changes import CHANGE_COLUMNS, PublishedTables, fits_from_fit_matrix, model_changes


def prices(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema=["model_id", "provider", "input_usd_per_mtok", "output_usd_per_mtok", "is_canonical", "excluded_reason"],
        orient="row",
    )


def fits(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["model_id", "gpu_id", "precision", "gpu_count"], orient="row")


def recs(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema=["model_id", "rank", "gpu_id", "precision", "gpu_count", "decode_tok_s", "cost_per_mtok_usd"], orient="row"
    )


BEFORE = PublishedTables(
    models=pl.DataFrame({"model_id": ["a", "b"]}),
    provider_prices=prices([
        ("a", "p1", 0.2, 0.6, True, None),
        ("a", "p2", 1.0, 1.0, True, None),
        ("a", "p3", 0.1, 0.1, False, None),  # not canonical: never compared
    ]),
    fits=fits([("a", "h100", "bf16", 2), ("a", "l40s", "fp8", 4)]),
    recommendations=recs([("a", 1, "h100", "bf16", 2, 1000.0, 1.00), ("a", 2, "l40s", "fp8", 4, 500.0, 2.0)]),
)
AFTER = PublishedTables(
    models=pl.DataFrame({"model_id": ["a", "c"]}),
    provider_prices=prices([
        ("a", "p1", 0.25, 0.6, True, None),  # input price moved
        ("a", "p2", 1.0, 1.0, True, None),  # unchanged
        ("a", "p3", 0.05, 0.05, False, None),  # not canonical: not a change
        ("a", "p4", 0.3, 0.9, True, None),  # new provider
        ("c", "p1", 1.0, 2.0, True, None),  # a new model's price: covered by its new_model row
    ]),
    fits=fits([("a", "h100", "bf16", 2), ("a", "b200", "fp4", 1), ("c", "h100", "bf16", 1)]),
    # decode 1000 -> 1005 (+0.5 %: within 1 %, not reported); cost 1.00 -> 1.02 (+2 %: reported)
    recommendations=recs([("a", 1, "h100", "bf16", 2, 1005.0, 1.02), ("c", 1, "h100", "bf16", 1, 50.0, None)]),
)


def test_first_publication_lists_every_model_as_new_and_nothing_else():
    changes = model_changes(AFTER, None, None)
    assert changes.columns == CHANGE_COLUMNS
    assert changes.rows() == [
        ("a", "new_model", "model", "not published", "published", None),
        ("c", "new_model", "model", "not published", "published", None),
    ]


def test_changes_between_two_publications():
    changes = model_changes(AFTER, BEFORE, "pub-1")
    assert changes.rows() == [
        ("a", "price", "p1", "$0.2/$0.6", "$0.25/$0.6", "pub-1"),
        ("a", "price", "p4", "no price", "$0.3/$0.9", "pub-1"),
        ("a", "new_fit", "b200 fp4", "does not fit", "fits on 1 GPU(s)", "pub-1"),
        ("a", "lost_fit", "l40s fp8", "fits on 4 GPU(s)", "does not fit", "pub-1"),
        ("a", "estimate", "cost_per_mtok_usd", "1.0 (2 x h100 bf16)", "1.02 (2 x h100 bf16)", "pub-1"),
        ("b", "removed_model", "model", "published", "not published", "pub-1"),
        ("c", "new_model", "model", "not published", "published", "pub-1"),
    ]


def test_unchanged_tables_have_no_changes():
    assert model_changes(AFTER, AFTER, "pub-2").height == 0


def test_an_estimate_becoming_unknown_is_a_change():
    unpriced = PublishedTables(**{**AFTER.__dict__, "recommendations": recs(
        [("a", 1, "h100", "bf16", 2, 1005.0, None), ("c", 1, "h100", "bf16", 1, 50.0, None)])})
    changes = model_changes(unpriced, AFTER, "pub-2")
    assert changes.rows() == [("a", "estimate", "cost_per_mtok_usd", "1.02 (2 x h100 bf16)", "unknown", "pub-2")]


def test_fits_from_fit_matrix_use_the_recommendation_context_and_fewest_gpus():
    # WORKLOAD 1,024 + 1,024 = 2,048 tokens: the smallest context holding them is 4,096 (model m),
    # a model whose only context is 2,000 (< 2,048) uses it (model s); fp8 KV rows are ignored.
    matrix = pl.DataFrame(
        [
            ("m", "h100", "bf16", 1, 4096, "bf16", False),
            ("m", "h100", "bf16", 2, 4096, "bf16", True),
            ("m", "h100", "bf16", 4, 4096, "bf16", True),
            ("m", "h100", "bf16", 1, 32768, "bf16", False),
            ("m", "l40s", "bf16", 8, 32768, "bf16", True),  # fits only at a longer context: not counted
            ("m", "l40s", "bf16", 1, 4096, "fp8", True),  # fp8 KV: not the recommendation's dtype
            ("s", "h100", "bf16", 1, 2000, "bf16", True),
        ],
        schema=["model_id", "gpu_id", "precision", "gpu_count", "context_length", "kv_dtype", "fits"],
        orient="row",
    )
    got = fits_from_fit_matrix(matrix).sort("model_id", "gpu_id").rows()
    assert got == [("m", "h100", "bf16", 2), ("s", "h100", "bf16", 1)]
