"""What the lake holds: per table files, bytes, rows, symbols, exchanges, time range, freshness."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb

from core.tables import TABLES
from lake.reader import Listing, list_tables


@dataclass(frozen=True)
class TableInfo:
    table: str
    files: int
    bytes: int
    version: int | None  # the Delta table's version (None: no table yet)
    rows: int
    symbols: int | None
    exchanges: int | None
    first: dt.datetime | None
    last: dt.datetime | None

    def age_s(self, now: dt.datetime) -> float | None:
        """Seconds since the newest row's time (for ohlc: the newest bar's end)."""
        return None if self.last is None else (now - self.last).total_seconds()


def table_info(con: duckdb.DuckDBPyConnection, listed: Listing, table: str) -> TableInfo:
    snapshot = listed[table]
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
        files=len(snapshot.files),
        bytes=snapshot.bytes,
        version=snapshot.version,
        rows=int(rows),
        symbols=n_sym,
        exchanges=n_ex,
        first=first,
        last=last,
    )


def lake_info(con: duckdb.DuckDBPyConnection, lake: Path, listed: Listing | None = None) -> list[TableInfo]:
    """`con`: a `lake.connect` over `listed` (the same snapshot; taken here when not given)."""
    listed = listed if listed is not None else list_tables(lake)
    return [table_info(con, listed, table) for table in TABLES]


def _span(i: TableInfo) -> str:
    if i.first is None or i.last is None:
        return "-"
    return f"{i.first:%Y-%m-%d %H:%M:%S} .. {i.last:%Y-%m-%d %H:%M:%S}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def format_info(infos: list[TableInfo], now: dt.datetime) -> str:
    lines = [f"{'table':<12} {'files':>7} {'MB':>9} {'version':>9} {'rows':>12} {'symbols':>7} {'exch':>4}  range"]
    for i in infos:
        age = i.age_s(now)
        fresh = "" if age is None else f"  (newest {age:,.0f} s ago)"
        version = "-" if i.version is None else f"{i.version:,}"
        lines.append(
            f"{i.table:<12} {i.files:>7,} {i.bytes / 1e6:>9.2f} {version:>9} {i.rows:>12,} "
            f"{_count(i.symbols):>7} {_count(i.exchanges):>4}  {_span(i)}{fresh}"
        )
    return "\n".join(lines)
