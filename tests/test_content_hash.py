"""The batch content hash: SHA-256 over a canonical serialisation, independent of the run and of DuckDB.

Unit level, on small DuckDB files: the hash ignores row order, run columns and last-bit float noise,
changes with any real content change, and equals an independent pure-Python computation of the
documented format (so it does not lean on anything DuckDB could change between versions).
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from pipelines import batches
from pipelines.batches import CONTENT_HASH_FORMAT, RUN_COLUMNS, UnhashableColumn, content_hash, table_content_digest

ROWS = [
    ("meta-llama/Llama-3.1-8B-Instruct", 8_030_261_248, 0.469762048, True, "a\tb", datetime(2026, 8, 19, 12, 0, 0, 123456)),
    ("Qwen/Qwen2-1.5B-Instruct", 1_543_714_304, 16.55840294856, False, None, datetime(2026, 8, 19, 12, 0, 1)),
    ("x/with 'quote'", -3, None, None, "", None),
]


def make_db(path: Path, rows=ROWS, *, extra_tables: bool = True) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute(
        "create table models (model_id varchar, params bigint, kv_gb double, ok boolean, note varchar, ingested_at timestamp)"
    )
    con.executemany("insert into models values (?, ?, ?, ?, ?, ?)", rows)
    if extra_tables:
        for table in batches.AUDITED_TABLES:
            if table != "models":
                con.execute(f"create table {table} as select 1::bigint as id, 'v' as label")
    return con


def test_row_order_and_physical_layout_do_not_matter(tmp_path):
    a = make_db(tmp_path / "a.duckdb")
    b = make_db(tmp_path / "b.duckdb", rows=list(reversed(ROWS)))
    assert content_hash(a) == content_hash(b)


def test_last_bit_float_noise_does_not_change_the_hash(tmp_path):
    # Seen between two runs of the grid: 0.469762048 vs 0.46976204800000004 (a parallel float sum).
    noisy = [(ROWS[0][0], ROWS[0][1], 0.46976204800000004, *ROWS[0][3:]), *ROWS[1:]]
    assert content_hash(make_db(tmp_path / "a.duckdb")) == content_hash(make_db(tmp_path / "b.duckdb", rows=noisy))


def test_run_columns_are_not_content(tmp_path):
    assert "ingested_at" in RUN_COLUMNS["models"]
    later = [(*row[:5], datetime(2030, 1, 1)) for row in ROWS]
    assert content_hash(make_db(tmp_path / "a.duckdb")) == content_hash(make_db(tmp_path / "b.duckdb", rows=later))


@pytest.mark.parametrize(
    "change",
    [
        "update models set kv_gb = kv_gb * (1 + 1e-9) where params = 8030261248",  # a visible float change
        "update models set params = params + 1 where params = -3",
        "update models set note = null where note = ''",  # null is not the empty string
        "update models set note = 'a' where note = ''",
        "update models set ok = not ok where ok",
        "update models set ok = null where not ok",  # null is not false
        "delete from models where params = -3",
        "insert into models select * from models where params = -3",  # a duplicate row counts
        "alter table models rename column note to comment",
        "update gpus set label = 'w'",
    ],
)
def test_a_real_content_change_changes_the_hash(tmp_path, change):
    con = make_db(tmp_path / "a.duckdb")
    before = content_hash(con)
    con.execute(change)
    assert content_hash(con) != before


def test_separators_inside_values_cannot_forge_another_row(tmp_path):
    con = duckdb.connect(str(tmp_path / "a.duckdb"))
    con.execute("create table t (a varchar, b varchar)")
    con.execute("insert into t values ('x' || chr(9) || 's1:y', 'z')")
    first = table_content_digest(con, "t")
    con.execute("delete from t")
    con.execute("insert into t values ('x', 'y' || chr(9) || 's1:z')")
    assert table_content_digest(con, "t") != first


def test_a_column_without_a_canonical_form_is_refused(tmp_path):
    con = duckdb.connect(str(tmp_path / "a.duckdb"))
    con.execute("create table t as select [1, 2] as xs")
    with pytest.raises(UnhashableColumn, match="xs"):
        table_content_digest(con, "t")


def _python_value(value, kind: str) -> str:
    """The documented canonical form, written independently of the SQL implementation."""
    if value is None:
        return "N"
    if kind == "int":
        return f"i{value}"
    if kind == "float":
        if math.isnan(value):
            return "fnan"
        return "f0" if value == 0 else f"f{value:.12g}"
    if kind == "bool":
        return "b1" if value else "b0"
    if kind == "timestamp":
        return "T" + value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    text = str(value)
    return f"s{len(text.encode())}:{text}"


def test_the_hash_is_the_documented_format_computed_without_duckdb(tmp_path):
    con = make_db(tmp_path / "a.duckdb")
    kinds = {"model_id": "text", "params": "int", "kv_gb": "float", "ok": "bool", "note": "text"}
    lines = []
    for table in batches.AUDITED_TABLES:
        if table in batches.HASH_EXCLUDED_TABLES:
            continue
        if table == "models":
            columns = list(kinds)
            rows = [row[:5] for row in ROWS]
        else:
            kinds_t = {"id": "int", "label": "text"}
            columns, rows = list(kinds_t), [(1, "v")]
        kind_of = kinds if table == "models" else {"id": "int", "label": "text"}
        row_digests = sorted(
            hashlib.sha256("\t".join(_python_value(v, kind_of[c]) for c, v in zip(columns, row, strict=True)).encode()).hexdigest()
            for row in rows
        )
        header = ",".join(f"{c}:{kind_of[c]}" for c in columns)
        lines.append(f"{table}\t{header}\t{len(rows)}\t{hashlib.sha256(chr(10).join(row_digests).encode()).hexdigest()}\n")
    expected = hashlib.sha256((CONTENT_HASH_FORMAT + "\n" + "".join(lines)).encode()).hexdigest()
    assert content_hash(con) == expected


def test_model_changes_is_not_content(tmp_path):
    # pipelines/batches.py HASH_EXCLUDED_TABLES: model_changes is the diff against the previous
    # publication, so the first publication's (every model new) and an unchanged rerun's (nothing)
    # must hash alike, or every unchanged run would publish again.
    assert "model_changes" in batches.AUDITED_TABLES and "model_changes" in batches.HASH_EXCLUDED_TABLES
    con = make_db(tmp_path / "a.duckdb")
    before = content_hash(con)
    con.execute("insert into model_changes values (2, 'new_model')")
    assert content_hash(con) == before


def test_a_list_of_strings_is_content_in_order_and_cannot_be_forged(tmp_path):
    """model_metadata.hub_tags (VARCHAR[]): hashed as its JSON text, so order counts and a comma
    inside one tag is not two tags."""

    def tags_hash(name: str, tags: list[str]) -> str:
        con = make_db(tmp_path / f"{name}.duckdb")
        con.execute("drop table model_metadata")
        con.execute("create table model_metadata (model_id varchar, hub_tags varchar[])")
        con.execute("insert into model_metadata values ('m', ?)", [tags])
        return content_hash(con)

    same = tags_hash("a", ["text-generation", "llama"])
    assert tags_hash("b", ["text-generation", "llama"]) == same
    assert tags_hash("c", ["llama", "text-generation"]) != same
    assert tags_hash("d", ["a,b"]) != tags_hash("e", ["a", "b"])
