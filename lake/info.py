"""What the lake holds: per table files, bytes, rows, symbols, exchanges, time range, freshness."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb

from lake.manifest import live_files, read_manifest
from lake.tables import TABLES


@dataclass(frozen=True)
class TableInfo:
    table: str
    files: int
    bytes: int
    compacted_partitions: int
    rows: int
    symbols: int | None
    exchanges: int | None
    first: dt.datetime | None
    last: dt.datetime | None

    def age_s(self, now: dt.datetime) -> float | None:
        """Seconds since the newest row's time (for ohlc: the newest bar's end)."""
        return None if self.last is None else (now - self.last).total_seconds()


def table_info(con: duckdb.DuckDBPyConnection, lake: Path, table: str) -> TableInfo:
    files = live_files(lake / table)
    spec = TABLES[table]
    columns = {c.name for c in spec.columns}
    symbols = "count(DISTINCT symbol)" if "symbol" in columns else "NULL"
    exchanges = "count(DISTINCT exchange)" if "exchange" in columns else "NULL"
    time_col = spec.time_column
    rows, n_sym, n_ex, first, last = con.sql(
        f"SELECT count(*), {symbols}, {exchanges}, min({time_col}), max({time_col}) FROM {table}"
    ).fetchall()[0]
    return TableInfo(
        table=table,
        files=len(files),
        bytes=sum(f.stat().st_size for f in files if f.exists()),
        compacted_partitions=len(read_manifest(lake / table).partitions),
        rows=int(rows),
        symbols=n_sym,
        exchanges=n_ex,
        first=first,
        last=last,
    )


def lake_info(con: duckdb.DuckDBPyConnection, lake: Path) -> list[TableInfo]:
    return [table_info(con, lake, table) for table in TABLES]


def _span(i: TableInfo) -> str:
    if i.first is None or i.last is None:
        return "-"
    return f"{i.first:%Y-%m-%d %H:%M:%S} .. {i.last:%Y-%m-%d %H:%M:%S}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def format_info(infos: list[TableInfo], now: dt.datetime) -> str:
    lines = [f"{'table':<12} {'files':>7} {'MB':>9} {'compacted':>9} {'rows':>12} {'symbols':>7} {'exch':>4}  range"]
    for i in infos:
        age = i.age_s(now)
        fresh = "" if age is None else f"  (newest {age:,.0f} s ago)"
        lines.append(
            f"{i.table:<12} {i.files:>7,} {i.bytes / 1e6:>9.2f} {i.compacted_partitions:>9,} {i.rows:>12,} "
            f"{_count(i.symbols):>7} {_count(i.exchanges):>4}  {_span(i)}{fresh}"
        )
    return "\n".join(lines)
