"""Everything the site shows, read from the published tables of one ``published.duckdb`` (read-only).

No warehouse, no network, no sizing code: a BI tool reading the same tables can build the same page.
A table the file does not carry (an older publication) reads as empty, so its sections say that no
source gives the data. Rows come back as plain dicts keyed by column name.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

#: the new tables of issue 11, with the columns the site reads (CONTRACT.md)
CONTRACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "model_metadata": (
        "model_id", "vendor", "hub_org", "release_date", "license", "gated", "hub_tags", "metadata_source",
        "is_vision", "tool_use", "reasoning", "max_context", "capability_sources", "vllm", "sglang",
        "tensorrt_llm", "engine_versions", "engine_source",
    ),
    "similar_models": (
        "model_id", "similar_model_id", "rank", "same_family", "same_architecture", "size_ratio", "shared_tags",
        "cheapest_output_usd_per_mtok", "rule",
    ),
    "model_gpu_speed": (
        "model_id", "gpu_id", "precision", "gpu_count", "tensor_parallel", "pipeline_parallel", "context_length",
        "decode_tok_s", "decode_tok_s_slo", "decode_tok_s_batch1", "itl_ms", "ttft_ms", "speed_basis",
        "speed_error_band", "cost_per_month_usd", "cost_per_mtok_usd", "weights_gb_per_gpu", "kv_gb_per_seq",
        "overhead_gb", "fit_class", "needs_other_checkpoint", "checkpoint_model_id",
    ),
    "workload_costs": (
        "model_id", "profile", "input_tokens", "output_tokens", "option", "provider", "config",
        "usd_per_1k_requests", "monthly_requests", "usd_per_month", "basis",
    ),
    "model_changes": (
        "model_id", "change_kind", "subject", "before", "after", "previous_publication_id",
    ),
}

#: the columns that make a table the published one: a file whose table lacks them (an ancient or a
#: hand-made publication) has that table treated as absent; without models and gpus there is no site
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "models": ("model_id", "params_total"),
    "gpus": ("gpu_id", "vendor", "segment", "name"),
    "provider_prices": ("model_id", "excluded_reason", "is_canonical"),
    "recommendations": ("model_id", "rank"),
    "fit_matrix": ("model_id", "fits", "context_length"),
    "publications": ("publication_id", "published_at"),
    "source_freshness": ("source", "kind"),
    **CONTRACT_COLUMNS,
}

PRECISIONS = ("bf16", "fp8", "int8", "fp4", "int4")


class UnreadablePublication(ValueError):
    """The file lacks the models or gpus table with their published columns."""
PROFILE_ORDER = {"short": 0, "medium": 1, "long": 2}
FIT_CLASSES = ("excellent", "good", "moderate", "tight", "very_tight")


@dataclass
class Publication:
    """The published tables, indexed the way the pages read them."""

    tables: set[str]
    publication: dict | None
    models: dict[str, dict]
    gpus: dict[str, dict]
    metadata: dict[str, dict] = field(default_factory=dict)
    prices: dict[str, list[dict]] = field(default_factory=dict)
    recommendations: dict[str, list[dict]] = field(default_factory=dict)
    speed: dict[str, list[dict]] = field(default_factory=dict)
    speed_by_gpu: dict[str, list[dict]] = field(default_factory=dict)
    #: model_id -> context_length -> (gpu_id, precision) -> fewest fitting row
    compat: dict[str, dict[int, dict[tuple[str, str], dict]]] = field(default_factory=dict)
    contexts: list[int] = field(default_factory=list)
    #: gpu_id -> models that fit on up to 16 of it at some precision and context
    models_by_gpu: dict[str, set[str]] = field(default_factory=dict)
    #: gpu_id -> its generation as the speed classes name it (model_gpu_speed.gpu_generation)
    generations: dict[str, str] = field(default_factory=dict)
    #: model_id -> the fit_matrix row of its rank-1 recommendation (memory per GPU)
    top_fit: dict[str, dict] = field(default_factory=dict)
    workload: dict[str, list[dict]] = field(default_factory=dict)
    similar: dict[str, list[dict]] = field(default_factory=dict)
    changes: dict[str, list[dict]] = field(default_factory=dict)
    freshness: list[dict] = field(default_factory=list)

    def has(self, table: str) -> bool:
        return table in self.tables


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _group(rows: list[dict], key: str = "model_id") -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[row[key]].append(row)
    return dict(grouped)


def _select(table: str, tables: set[str], order: str = "") -> str | None:
    """SELECT of the contract columns of ``table``, or None when the file does not carry it."""
    if table not in tables:
        return None
    columns = ", ".join(f'"{c}"' for c in CONTRACT_COLUMNS[table])
    return f'select {columns} from "{table}"' + (f" order by {order}" if order else "")


def load(published_db: Path) -> Publication:
    """Read every table the site shows from ``published_db``, opened read-only."""
    con = duckdb.connect(str(published_db), read_only=True)
    try:
        return _load(con)
    finally:
        con.close()


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    columns: dict[str, set[str]] = defaultdict(set)
    for table, column in con.execute("select table_name, column_name from information_schema.columns").fetchall():
        columns[table].add(column)
    return columns


def _load(con: duckdb.DuckDBPyConnection) -> Publication:
    columns = _columns(con)
    # tables that carry the columns the site reads (KEY_COLUMNS); the others count as absent
    tables = {table for table, have in columns.items() if set(KEY_COLUMNS.get(table, ())) <= have}
    missing = {"models", "gpus"} - tables
    if missing:
        raise UnreadablePublication(
            f"no {' or '.join(sorted(missing))} table with the published columns "
            f"({'; '.join(f'{t}: ' + ', '.join(KEY_COLUMNS[t]) for t in sorted(missing))})"
        )

    publication = None
    if "publications" in tables:
        rows = _rows(con, "select * from publications order by published_at desc limit 1")
        publication = rows[0] if rows else None

    pub = Publication(
        tables=tables,
        publication=publication,
        models={r["model_id"]: r for r in _rows(con, "select * from models order by model_id")},
        gpus={r["gpu_id"]: r for r in _rows(con, "select * from gpus order by vendor, segment, name")},
    )
    if "provider_prices" in tables:
        pub.prices = _group(_rows(con, """
            select * from provider_prices
            order by model_id, (excluded_reason is null and is_canonical) desc, output_usd_per_mtok nulls last,
                     input_usd_per_mtok nulls last, provider, source, tier"""))
    if "recommendations" in tables:
        pub.recommendations = _group(_rows(con, "select * from recommendations order by model_id, rank"))
    if "fit_matrix" in tables:
        _load_fits(con, pub)
    if sql := _select("model_gpu_speed", tables, "model_id, gpu_id, precision"):
        rows = _rows(con, sql)
        pub.speed = _group(rows)
        pub.speed_by_gpu = _group(rows, "gpu_id")
        if "gpu_generation" in columns["model_gpu_speed"]:  # publications before it carry none
            pub.generations = dict(con.execute(
                "select distinct gpu_id, gpu_generation from model_gpu_speed where gpu_generation is not null").fetchall())
    if sql := _select("model_metadata", tables):
        pub.metadata = {r["model_id"]: r for r in _rows(con, sql)}
    if sql := _select("workload_costs", tables):
        rows = sorted(_rows(con, sql), key=lambda r: (r["model_id"], r["option"], PROFILE_ORDER.get(r["profile"], 9)))
        pub.workload = _group(rows)
    if sql := _select("similar_models", tables, "model_id, rank"):
        pub.similar = _group(_rows(con, sql))
    if sql := _select("model_changes", tables, "model_id, change_kind, subject"):
        pub.changes = _group(_rows(con, sql))
    if "source_freshness" in tables:
        pub.freshness = _rows(con, "select * from source_freshness order by kind, source")
    return pub


def _load_fits(con: duckdb.DuckDBPyConnection, pub: Publication) -> None:
    """Fewest GPUs that fit per model x GPU x precision x context (engine-default BF16 KV cache
    first; FP8 KV only when it needs fewer GPUs), and the memory of each rank-1 configuration."""
    rows = _rows(con, """
        select model_id, gpu_id, precision, context_length, gpu_count, fit_class, kv_dtype,
               tensor_parallel, pipeline_parallel
        from fit_matrix where fits
        qualify row_number() over (partition by model_id, gpu_id, precision, context_length
                                   order by gpu_count, kv_dtype = 'fp8') = 1""")
    compat: dict[str, dict[int, dict[tuple[str, str], dict]]] = defaultdict(lambda: defaultdict(dict))
    by_gpu: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        compat[row["model_id"]][row["context_length"]][(row["gpu_id"], row["precision"])] = row
        by_gpu[row["gpu_id"]].add(row["model_id"])
    pub.models_by_gpu = dict(by_gpu)
    pub.compat = {m: dict(by_ctx) for m, by_ctx in compat.items()}
    pub.contexts = [r[0] for r in con.execute("select distinct context_length from fit_matrix order by 1").fetchall()]
    if "recommendations" in pub.tables:
        top = _rows(con, """
            select f.* from recommendations r join fit_matrix f
              on f.model_id = r.model_id and f.gpu_id = r.gpu_id and f.precision = r.precision
             and f.gpu_count = r.gpu_count and f.context_length = r.context_length and f.kv_dtype = r.kv_dtype
            where r.rank = 1""")
        pub.top_fit = {r["model_id"]: r for r in top}
