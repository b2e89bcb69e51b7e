"""`python -m lake [--lake PATH] sql "SELECT ..."`: query the lake through DuckDB."""

from __future__ import annotations

import argparse
import sys

import duckdb

from lake.reader import connect
from lake.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake", description="Query the Parquet lake with DuckDB.")
    parser.add_argument("--lake", help="lake folder (default: LAKE_PATH or ./lake)")
    sub = parser.add_subparsers(dest="command", required=True)
    sql = sub.add_parser("sql", help="run one query and print the result")
    sql.add_argument("query")
    sql.add_argument("--max-rows", type=int, default=100)
    args = parser.parse_args(argv)

    lake = args.lake or Settings().lake_path
    con = connect(lake)
    try:
        result = con.sql(args.query)
    except duckdb.Error as exc:
        print(f"lake: query failed: {exc}", file=sys.stderr)
        return 1
    if result is None:
        print("lake: the statement returned no rows", file=sys.stderr)
        return 0
    result.show(max_rows=args.max_rows, max_width=200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
