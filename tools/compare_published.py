"""Compare two publications table by table, row for row: did a change alter what BI reads?

    python -m tools.compare_published BEFORE/published.duckdb AFTER/published.duckdb

Every table of either file is compared as a multiset of rows (`EXCEPT ALL` both ways), leaving out
what differs between any two runs by construction: the run's ids (`batch_id`, `publication_id`,
`run_id`), content hashes (they cover those ids and times) and timestamps (`*_at`, `stale_since`,
and `observed_at` inside `provider_prices.excluded_evidence`). Exit status 0 when every table
matches on the columns both files carry (added or removed columns are listed), 1 otherwise, with
the differing rows' count and a sample per table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

RUN_COLUMNS = {"batch_id", "publication_id", "run_id", "content_sha256", "stale_since"}
SAMPLE_ROWS = 3


def _varies_per_run(column: str, data_type: str) -> bool:
    return column in RUN_COLUMNS or column.endswith("_at") or data_type.startswith("TIMESTAMP")


def comparable_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    columns = []
    for column, data_type in rows:
        if _varies_per_run(column, data_type):
            continue
        quoted = f'"{column}"'
        if column == "excluded_evidence":  # evidence rows carry each price's observed_at
            quoted = f"regexp_replace({quoted}::varchar, '\"observed_at\":\"[^\"]*\"', '', 'g') as {quoted}"
        columns.append(quoted)
    return columns


def compare(before: Path, after: Path) -> dict[str, tuple[int, int, list[tuple]]]:
    """{table: (rows only before, rows only after, a sample of differing rows)} for every table."""
    con = duckdb.connect()
    con.execute(f"attach '{before}' as before (read_only)")
    con.execute(f"attach '{after}' as after (read_only)")
    tables = sorted(
        {row[0] for row in con.execute("select table_name from information_schema.tables where table_catalog in ('before', 'after')").fetchall()}
    )
    report = {}
    for table in tables:
        before_columns = comparable_columns(con, "before", table)
        after_columns = comparable_columns(con, "after", table)
        if not before_columns or not after_columns:
            report[table] = (-1, -1, [("only in " + ("after" if after_columns else "before"),)])
            continue
        columns = [c for c in before_columns if c in after_columns]
        added = [c for c in after_columns if c not in before_columns]
        removed = [c for c in before_columns if c not in after_columns]
        select = ", ".join(columns)
        only_before = con.execute(f"select {select} from before.{table} except all select {select} from after.{table}").fetchall()
        only_after = con.execute(f"select {select} from after.{table} except all select {select} from before.{table}").fetchall()
        notes = [(f"columns added: {', '.join(added)}",)] if added else []
        notes += [(f"columns removed: {', '.join(removed)}",)] if removed else []
        report[table] = (len(only_before), len(only_after), notes + (only_before + only_after)[:SAMPLE_ROWS])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    report = compare(args.before, args.after)
    con_before = duckdb.connect(str(args.before), read_only=True)
    differing = 0
    for table, (gone, new, sample) in report.items():
        rows = con_before.execute(f"select count(*) from {table}").fetchone()[0] if gone >= 0 else "?"
        if gone < 0:
            print(f"{table}: {sample[0][0]}")
            differing += 1
            continue
        status = "same rows" if gone == new == 0 else f"DIFFERENT: {gone} row(s) only before, {new} only after"
        print(f"{table}: {rows} rows, {status}")
        for row in sample:
            print(f"    {row}")
        differing += gone != 0 or new != 0
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
