"""`python -m lake`: query, inspect, export, compact and vacuum the lake (Delta tables).

    python -m lake [--lake PATH] sql "SELECT ..." [--format table|csv|json|parquet] [--output FILE]
        (csv and json go to standard output without --output)
    python -m lake info
    python -m lake shell                         # an interactive SQL prompt with the views loaded
    python -m lake export TABLE --output FILE [--format parquet|csv|json] [--where "symbol = 'BTCUSDT'"]
    python -m lake export trades --symbol BTCUSDT --start 2026-11-20T23:00 --end 2026-11-21 --out t.parquet
        (a time range, streamed to Parquet with a progress bar: `lake.export`)
    python -m lake views > lake.sql              # then: duckdb -init lake.sql
    python -m lake --as-of 1200 sql "..."        # time travel: ohlc version 1200 (or an ISO time)
    python -m lake compact [--table ohlc|all] [--before YYYY-MM-DD]
    python -m lake vacuum [--table ohlc|all] [--older-than 30d] [--grace 1h]
    python -m lake maintain [--every 5m] [--retention 30d] [--trades-retention 7d] [--grace 1h]  # all tables

Queries run on a read-only connection (`lake.sandbox`): one SELECT at a time. Results are
written to files by a separate DuckDB connection that sees only the result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TextIO

import duckdb
import pyarrow as pa
from tqdm import tqdm

from core.settings import Settings, duration
from core.tables import DERIVED_VIEWS, TABLES, VIEWS
from lake import maintenance
from lake.delta import OldLakeFormat
from lake.export import ExportError, TimeRange, export_range, parse_time
from lake.info import format_info, lake_info
from lake.maintenance import DEFAULT_GRACE_S, compact, vacuum
from lake.reader import connect, list_tables, views_sql
from lake.sandbox import QueryRefused, run_query

FORMATS = ("table", "csv", "json", "parquet")
SHELL_TIMEOUT_S = 600.0
EXPORT_TIMEOUT_S = 3600.0


def parse_duration(text: str) -> dt.timedelta:
    """'30d', '12h', '90m', '45s' (or bare seconds, '60') -> a timedelta."""
    try:
        return duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-20, got {text!r}") from None


def write_result(table: pa.Table, fmt: str, output: Path) -> None:
    """Write a result with DuckDB's own writers, from a connection that holds only the result."""
    con = duckdb.connect()
    con.register("result", table)
    options = {"csv": "FORMAT csv, HEADER true", "json": "FORMAT json", "parquet": "FORMAT parquet"}[fmt]
    con.execute(f"COPY result TO '{str(output).replace(chr(39), chr(39) * 2)}' ({options})")
    con.close()


def print_table(table: pa.Table, max_rows: int) -> None:
    con = duckdb.connect()
    con.register("result", table)
    con.sql("SELECT * FROM result").show(max_rows=max_rows, max_width=200)
    con.close()


def _run(con: duckdb.DuckDBPyConnection, sql: str, *, max_rows: int, timeout_s: float) -> pa.Table | None:
    try:
        result = run_query(con, sql, max_rows=max_rows, timeout_s=timeout_s)
    except QueryRefused as exc:
        print(f"lake: {exc}", file=sys.stderr)
        return None
    if result.truncated:
        print(f"lake: the result was cut at {max_rows:,} rows (--max-rows)", file=sys.stderr)
    return result.table


def cmd_sql(args: argparse.Namespace, lake: Path) -> int:
    to_file = args.format != "table"
    if args.format == "parquet" and args.output is None:
        print("lake: --format parquet needs --output FILE (csv and json can go to standard output)", file=sys.stderr)
        return 2
    max_rows = args.max_rows if args.max_rows is not None else (10**9 if to_file else 100)
    table = _run(connect(lake, as_of=args.as_of), args.query, max_rows=max_rows, timeout_s=args.timeout)
    if table is None:
        return 1
    if to_file and args.output is None:  # CSV or JSON lines to standard output, for pipes (as `duckdb -csv`)
        sys.stdout.flush()
        write_result(table, args.format, Path("/dev/stdout"))
    elif to_file:
        write_result(table, args.format, args.output)
        print(f"lake: wrote {table.num_rows:,} rows to {args.output}", file=sys.stderr)
    else:
        print_table(table, max_rows)
    return 0


def _time(text: str) -> dt.datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_export(args: argparse.Namespace, lake: Path) -> int:
    if any(v is not None for v in (args.start, args.end, args.symbol, args.exchange)):
        return cmd_export_range(args, lake)
    where = f" WHERE {args.where}" if args.where else ""
    table = _run(
        connect(lake, as_of=args.as_of),
        f"SELECT * FROM {args.table}{where}",
        max_rows=10**10,
        timeout_s=EXPORT_TIMEOUT_S,
    )
    if table is None:
        return 1
    fmt = args.format or (args.output.suffix.lstrip(".") if args.output.suffix.lstrip(".") in FORMATS else "parquet")
    write_result(table, fmt, args.output)
    print(f"lake: exported {table.num_rows:,} rows of {args.table} to {args.output} ({fmt})", file=sys.stderr)
    return 0


def cmd_export_range(args: argparse.Namespace, lake: Path) -> int:
    misuse = (
        "needs both --start and --end" if args.start is None or args.end is None
        else "filters by --symbol and --exchange, not --where" if args.where
        else "writes Parquet only" if args.format not in (None, "parquet")
        else None
    )  # fmt: skip
    if misuse:
        print(f"lake: a range export {misuse}", file=sys.stderr)
        return 2
    r = TimeRange(args.table, args.start, args.end, args.symbol, args.exchange)
    try:
        done = export_range(lake, r, args.output, as_of=args.as_of, progress=_progress_bar)
    except ExportError as exc:
        print(f"lake: {exc}", file=sys.stderr)
        return 1
    print(f"lake: exported {done.rows:,} rows of {r.describe()} to {done.path} ({done.bytes:,} bytes)", file=sys.stderr)
    return 0


def _progress_bar(total: int) -> tqdm:
    return tqdm(total=total, unit=" rows", unit_scale=True, file=sys.stderr)


def cmd_info(args: argparse.Namespace, lake: Path) -> int:
    print(f"lake: {lake}")
    listed = list_tables(lake)
    print(format_info(lake_info(connect(lake, listed=listed), lake, listed), dt.datetime.now(dt.UTC)))
    return 0


def cmd_shell(args: argparse.Namespace, lake: Path, stdin: TextIO = sys.stdin) -> int:
    """A small REPL: statements end with `;`. `.tables` lists the views, `.quit` leaves."""
    interactive = stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())
    con = connect(lake, as_of=args.as_of)
    print(f"lake shell over {lake}: views {', '.join(VIEWS)}; .tables, .quit")
    buffer: list[str] = []
    while True:
        try:
            line = input("lake> " if not buffer else "  ..> ") if interactive else stdin.readline()
        except EOFError:
            break
        if not interactive and line == "":
            break
        stripped = line.strip()
        if not buffer and stripped in (".quit", ".exit"):
            break
        if not buffer and stripped == ".tables":
            print("  ".join(VIEWS) + "   (macros: candles, realized_volatility)")
            continue
        buffer.append(line)
        if stripped.endswith(";"):
            table = _run(con, "\n".join(buffer), max_rows=args.max_rows or 1000, timeout_s=SHELL_TIMEOUT_S)
            buffer.clear()
            if table is not None:
                print_table(table, args.max_rows or 1000)
    return 0


def cmd_views(args: argparse.Namespace, lake: Path) -> int:
    sys.stdout.write(views_sql(lake, as_of=args.as_of))
    return 0


def _tables(choice: str) -> list[str]:
    return list(TABLES) if choice == "all" else [choice]


def cmd_compact(args: argparse.Namespace, lake: Path) -> int:
    with maintenance.exclusive(lake):  # one maintainer at a time (lake.maintenance)
        return _compact(args, lake)


def _compact(args: argparse.Namespace, lake: Path) -> int:
    for table in _tables(args.table):
        r = compact(lake, table, args.before)
        print(f"{table}: {r.partitions} partitions before {r.cutoff} optimized, "
              f"{r.files_before:,} files -> {r.files_after:,}, {r.seconds:.1f}s")  # fmt: skip
    return 0


def cmd_vacuum(args: argparse.Namespace, lake: Path) -> int:
    with maintenance.exclusive(lake):
        return _vacuum(args, lake)


def _vacuum(args: argparse.Namespace, lake: Path) -> int:
    for table in _tables(args.table):
        r = vacuum(lake, table, args.older_than, grace_s=args.grace.total_seconds())
        print(f"{table}: {r.retired_partitions} partitions retired, {r.deleted_files:,} files deleted")
    return 0


def cmd_maintain(args: argparse.Namespace, lake: Path) -> int:
    settings = Settings()
    retention = args.retention or (duration(settings.lake.retention) if settings.lake.retention else None)
    ticks = args.trades_retention or (
        duration(settings.lake.trades_retention) if settings.lake.trades_retention else None
    )
    grace = args.grace if args.grace is not None else duration(settings.lake.grace)
    return maintenance.run(lake, args.every, retention, grace, sys.stdout, {"trades": ticks} if ticks else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lake", description="Query and maintain the Delta lake.")
    parser.add_argument("--lake", help="lake folder (default: LAKE_PATH or ./data/lake)")
    parser.add_argument("--as-of", help="time travel: an ohlc version number, or an ISO time (every table as of then)")
    sub = parser.add_subparsers(dest="command", required=True)
    sql = sub.add_parser("sql", help="run one SELECT and print or save the result")
    sql.add_argument("query")
    sql.add_argument("--format", choices=FORMATS, default="table")
    sql.add_argument("--output", type=Path)
    sql.add_argument("--max-rows", type=int, help="rows printed (default 100) or written (default all)")
    sql.add_argument("--timeout", type=float, default=SHELL_TIMEOUT_S, help="seconds before the query is stopped")
    sql.set_defaults(run=cmd_sql)
    sub.add_parser("info", help="tables, files, bytes, rows, symbols, time range, freshness").set_defaults(run=cmd_info)
    shell = sub.add_parser("shell", help="interactive SQL prompt with the views loaded")
    shell.add_argument("--max-rows", type=int)
    shell.set_defaults(run=cmd_shell)
    export = sub.add_parser("export", help="write a table (or a filtered part, or a time range) to a file")
    export.add_argument("table", choices=[*TABLES, *DERIVED_VIEWS])
    export.add_argument("--output", "--out", type=Path, required=True)
    export.add_argument("--format", choices=FORMATS[1:])
    export.add_argument("--where", help="a SQL condition, e.g. \"symbol = 'BTCUSDT'\"")
    export.add_argument("--start", type=_time, help="a time range's start (ISO; UTC unless it has an offset)")
    export.add_argument("--end", type=_time, help="its end, exclusive: the range streams to Parquet, in time order")
    export.add_argument("--symbol", help="with a range: this symbol only")
    export.add_argument("--exchange", help="with a range: this exchange only")
    export.set_defaults(run=cmd_export)
    sub.add_parser("views", help="print SQL that creates the views, for `duckdb -init`").set_defaults(run=cmd_views)
    comp = sub.add_parser("compact", help="OPTIMIZE closed partitions (one file each)")
    comp.add_argument("--table", choices=[*TABLES, "all"], default="ohlc")
    comp.add_argument("--before", type=_date, help="compact dates before this one (default: the watermark's date)")
    comp.set_defaults(run=cmd_compact)
    vac = sub.add_parser("vacuum", help="DELETE old partitions, VACUUM files no reader needs")
    vac.add_argument("--table", choices=[*TABLES, "all"], default="all")
    vac.add_argument("--older-than", type=parse_duration, help="retention, e.g. 30d (default: keep all dates)")
    vac.add_argument("--grace", type=parse_duration, default=dt.timedelta(seconds=DEFAULT_GRACE_S))
    vac.set_defaults(run=cmd_vacuum)
    maint = sub.add_parser("maintain", help="compact (today by hour) and vacuum every table, once or repeatedly")
    maint.add_argument("--every", type=parse_duration, help="repeat at this interval until interrupted, e.g. 5m")
    maint.add_argument(
        "--retention",
        type=parse_duration,
        help="keep partitions this long, e.g. 30d (default: LAKE_RETENTION, else all)",
    )
    maint.add_argument(
        "--trades-retention",
        type=parse_duration,
        help="keep lake/trades' partitions this long (default: LAKE_TRADES_RETENTION, else as --retention)",
    )
    maint.add_argument("--grace", type=parse_duration, help="delete replaced files after this (default: LAKE_GRACE)")
    maint.set_defaults(run=cmd_maintain)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    lake = Path(args.lake or Settings().lake.path).resolve()
    try:
        return int(args.run(args, lake))
    except duckdb.Error as exc:
        print(f"lake: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except maintenance.Busy as exc:
        print(f"lake: {exc}: another maintainer is at work; try again when it is done", file=sys.stderr)
        return 1
    except OldLakeFormat as exc:
        print(f"lake: {exc}", file=sys.stderr)
        return 2
