"""A time range of one lake table to one Parquet file: `python -m lake export TABLE --start --end`.

    python -m lake export trades --symbol BTCUSDT --start 2026-11-20T23:00 --end 2026-11-21T01:00 --out t.parquet

Rows come through `lake.connect()`, so from the files of one Delta version (never a glob): those
with `start <= row_time < end` (trades: event_time), of one symbol and exchange if asked, in time
order and, within one time, by the table's `row_order` (trades: trade_id, the order the bars take
trades in). Each query names its `date` (and `symbol`) partition, so only those files are opened.

The file has the table's own schema (`core.schema`: exact decimals, UTC timestamps), zstd. Rows
stream from DuckDB (`to_arrow_reader`) into a `ParquetWriter` one batch at a time, and a day is
queried at a time (a `date` partition holds a UTC day of row_time, so the days in order are the
range in order): memory holds a batch and one day's sort, however long the range. The file is
written under a temporary name beside the target and renamed when complete, so a failed or
interrupted export leaves nothing under the target's name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from core.schema import Column, to_arrow
from core.tables import TABLES, TableSpec
from lake.reader import AsOf, connect, list_tables

# Rows per batch at most, and so per row group: as the compacted trade files hold them (core.tables).
BATCH_ROWS = 131_072


class ExportError(ValueError):
    """The export cannot be done; the message says why."""


@dataclass(frozen=True)
class TimeRange:
    """What to export: `table`'s rows with start <= row_time < end (UTC), of one symbol and
    exchange when given."""

    table: str
    start: dt.datetime
    end: dt.datetime
    symbol: str | None = None
    exchange: str | None = None

    def describe(self) -> str:
        which = ", ".join(f"{k} {v}" for k, v in (("symbol", self.symbol), ("exchange", self.exchange)) if v)
        span = f"{self.start.isoformat()} <= {self.spec.row_time} < {self.end.isoformat()}"
        return f"{self.table} ({which}; {span})" if which else f"{self.table} ({span})"

    @property
    def spec(self) -> TableSpec:
        return TABLES[self.table]

    def days(self) -> list[dt.date]:
        """The `date` partitions the range touches, in order (the end is exclusive)."""
        first, last = self.start.date(), (self.end - dt.timedelta(microseconds=1)).date()
        return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


@dataclass(frozen=True)
class ExportResult:
    rows: int
    bytes: int
    path: Path


def parse_time(text: str) -> dt.datetime:
    """An ISO date or time ('2026-11-20', '2026-11-20T23:59:58.5', '...Z', '...+01:00'); UTC when
    no offset is given."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected an ISO time like 2026-11-20T23:59:58Z, got {text!r}") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def check(r: TimeRange, columns: tuple[Column, ...] | None = None) -> None:
    """ExportError unless `r` is a range of a lake table (with a symbol or exchange column if it
    filters by one: of `columns`, the table's as the lake holds it)."""
    if r.table not in TABLES:
        raise ExportError(f"{r.table!r} is not a lake table: a range export reads one of {', '.join(TABLES)}")
    if r.start.tzinfo is None or r.end.tzinfo is None:
        raise ExportError("start and end need a time zone (parse_time gives UTC)")
    if r.start >= r.end:
        raise ExportError(f"the start ({r.start.isoformat()}) must be before the end ({r.end.isoformat()})")
    names = {c.name for c in columns or r.spec.columns}
    for column, value in (("symbol", r.symbol), ("exchange", r.exchange)):
        if value is not None and column not in names:
            raise ExportError(f"{r.table} has no {column} column to filter by")


def day_query(r: TimeRange, columns: tuple[Column, ...], day: dt.date | None) -> tuple[str, list[object]]:
    """The SELECT of the range's rows, in order, and its parameters: of one `date` partition, or
    (day None) of all of them, unordered, for counting."""
    spec = r.spec
    where = [f"{spec.row_time} >= ?", f"{spec.row_time} < ?"]
    params: list[object] = [r.start, r.end]
    if day is None:
        where.append("date BETWEEN ? AND ?")
        params += [r.days()[0], r.days()[-1]]
    else:
        where.append("date = ?")
        params.append(day)
    for column, value in (("symbol", r.symbol), ("exchange", r.exchange)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    names = [c.name for c in columns]
    ties = spec.row_order or tuple(n for n in names if n != spec.row_time)
    order = "" if day is None else f" ORDER BY {', '.join((spec.row_time, *ties))}"
    return f"SELECT {', '.join(names)} FROM {r.table} WHERE {' AND '.join(where)}{order}", params


class Progress(Protocol):
    def update(self, n: int) -> object: ...


def _batches(con: duckdb.DuckDBPyConnection, r: TimeRange, columns: tuple[Column, ...]) -> Iterator[pa.RecordBatch]:
    for day in r.days():
        sql, params = day_query(r, columns, day)
        yield from con.sql(sql, params=params).to_arrow_reader(BATCH_ROWS)


@contextlib.contextmanager
def _replacing(output: Path) -> Iterator[pa.NativeFile]:
    """A file to write that becomes `output` when the block ends without an error."""
    partial = output.with_name(f".{output.name}.partial")
    try:
        sink = pa.OSFile(str(partial), "wb")
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # pyarrow's own text repeats the path
        raise ExportError(f"cannot write {output}: {reason}") from None
    try:
        yield sink
        sink.close()
        os.replace(partial, output)
    except BaseException:
        sink.close()
        partial.unlink(missing_ok=True)
        raise


def export_range(
    lake: Path,
    r: TimeRange,
    output: Path,
    *,
    as_of: AsOf = None,
    progress: Callable[[int], contextlib.AbstractContextManager[Progress]] | None = None,
) -> ExportResult:
    """Write `r`'s rows to the Parquet file `output`. `progress(total)`: a context whose
    `update(rows)` is called as batches are written (a tqdm bar); `as_of`: time travel."""
    check(r)
    listed = list_tables(lake, as_of)
    snapshot = listed[r.table]
    check(r, snapshot.columns)
    if snapshot.version is None:
        raise ExportError(f"the lake at {lake} has no {r.table} table")
    if output.is_dir():
        raise ExportError(f"cannot write {output}: it is a directory")
    schema = to_arrow(snapshot.columns)
    con = connect(lake, listed=listed)
    written = 0
    try:
        with _replacing(output) as sink:  # opened first: an unwritable path fails before any query
            sql, params = day_query(r, snapshot.columns, None)
            ((total,),) = con.execute(f"SELECT count(*) FROM ({sql})", params).fetchall()
            if total == 0:
                raise ExportError(f"no rows of {r.describe()}")
            bar = progress(total) if progress is not None else contextlib.nullcontext(None)
            with bar as shown, pq.ParquetWriter(sink, schema, compression="zstd") as writer:
                for batch in _batches(con, r, snapshot.columns):
                    writer.write_batch(batch.cast(schema))  # DuckDB's "Etc/UTC" as the schema's "UTC": same values
                    written += batch.num_rows
                    if shown is not None:
                        shown.update(batch.num_rows)
    finally:
        con.close()
    return ExportResult(written, output.stat().st_size, output)
