"""The trades table's files, written where the trades are: in Spark's tasks, not on the driver.

`jobs.lake_sink` maps each micro-batch through `write_ticks` (`DataFrame.mapInArrow`): a task
passes the batch's other rows on untouched and writes its share of the accepted trades as
Parquet files into lake/trades, one file per (symbol, date) partition, returning one small row
per file (its path, size, partition and Delta statistics). The driver then commits those files,
with the batch's other tables, as one Delta commit through delta-rs (`commit_files`). No trade
crosses to the driver, so the tick volume scales with the executors.

Each trade is stored once per (exchange, symbol, trade_id), the first on the topic (lowest
Kafka partition and offset), whenever its repeat arrives:
- within the batch: the job's shuffle is by that key (`jobs.trades.read_once`), so all copies
  of a trade are in one task, which keeps the first;
- against the table: the task reads the ids of the table's files whose trade-id range (Delta
  statistics, from the snapshot the driver planned with) overlaps its own, and drops those.

A trade is `late` when the bars cannot hold it as written: Spark's watermark for the batch had
passed it (Spark's stateful operators drop it), or its 1-second window had already been
released to lake/ohlc (`jobs.bar_closer`).

Pure logic and file I/O only: no Spark here; `tests/test_tick_writer.py` runs it on Arrow tables.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.schema import BAR_MS, TRADES, to_arrow
from core.tables import TABLES

TRADES_TABLE = "trades"
TRADE_FILES = "trade_files"  # the mapped batch's column: one row per file a task wrote
KEY = ("exchange", "symbol", "trade_id")
PARTITION_BY = TABLES[TRADES_TABLE].partition_by  # ("symbol", "date")
FILE_COLUMNS = TABLES[TRADES_TABLE].file_columns()
FILE_SCHEMA = to_arrow(FILE_COLUMNS)
# What the job's branch hands over: every column but `late`, which the task decides.
INCOMING = tuple(c for c in TRADES if c.name != "late")
TRADE_FILE = pa.struct(
    [
        pa.field("path", pa.string()),  # relative to the table, as on disk (delta-rs encodes it for the log)
        pa.field("size", pa.int64()),
        pa.field("symbol", pa.string()),
        pa.field("date", pa.string()),  # ISO, as Delta partition values are
        pa.field("stats", pa.string()),  # Delta's statistics JSON
        pa.field("rows", pa.int64()),
        pa.field("late", pa.int64()),
        pa.field("late_windows", pa.string()),  # JSON [[exchange, window_start µs], ...] of its late trades
    ]
)
STORED = pa.schema(
    [("path", pa.string()), ("symbol", pa.string()), ("date", pa.string()), ("min_id", pa.int64()),
     ("max_id", pa.int64())]
)  # fmt: skip
COMPRESSION = "zstd"


@dataclass(frozen=True)
class TickPlan:
    """What a task needs to write its trades of one batch (made on the driver, pickled to tasks)."""

    table_dir: str
    batch_id: int
    write: bool  # False: the table already holds this batch (a re-run): write nothing
    spark_watermark_ms: int  # Spark drops the batch's trades at or before it (`spark_watermark_ms`)
    released_us: int | None  # windows ending at or before this were in lake/ohlc before the batch
    stored: pa.Table = field(default_factory=lambda: STORED.empty_table())  # files of recent partitions
    stored_from: str = ""  # ISO date: `stored` holds every file of the partitions from this date on
    version: int | None = None  # the snapshot `stored` came from (older partitions are read at it)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)  # this attempt's file names


# -- the task -------------------------------------------------------------------------------


def write_ticks(plan: TickPlan, column: str, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """`mapInArrow` body: every row without `column` passes on (with TRADE_FILES null); the
    trades in `column` are written to the table, one output row per file."""
    trades: list[pa.Table] = []
    schema: pa.Schema | None = None
    for batch in batches:
        values = batch.column(column)
        present = pc.is_valid(values)
        others = batch.drop_columns([column])
        schema = others.schema.append(pa.field(TRADE_FILES, TRADE_FILE))
        rest = others.filter(pc.invert(present))
        if rest.num_rows:
            yield _with_files(rest, pa.nulls(rest.num_rows, TRADE_FILE), schema)
        if pc.any(present).as_py():
            trades.append(pa.Table.from_struct_array(values.filter(present)))
    if not trades or not plan.write or schema is None:
        return
    files = write_files(plan, pa.concat_tables(trades))
    if files:
        row_nulls = [pa.nulls(len(files), f.type) for f in schema if f.name != TRADE_FILES]
        yield pa.RecordBatch.from_arrays([*row_nulls, pa.array(files, TRADE_FILE)], schema=schema)


def _with_files(rows: pa.RecordBatch, files: pa.Array, schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([*rows.columns, files], schema=schema)


def write_files(plan: TickPlan, incoming: pa.Table) -> list[dict[str, Any]]:
    """Keep each trade's first copy, drop what the table holds, mark the late ones, and write a
    file per partition; returns each file's TRADE_FILE row."""
    trades = first_of_each(incoming)
    trades = unseen(trades, stored_keys(plan, trades))
    if not trades.num_rows:
        return []
    trades = trades.append_column("late", late_mask(trades, plan.spark_watermark_ms, plan.released_us))
    trades = trades.select([c.name for c in TRADES]).cast(to_arrow(TRADES))
    files = []
    for (symbol, date), part in partitions(trades):
        files.append(write_file(plan, symbol, date, part))
    return files


def first_of_each(trades: pa.Table) -> pa.Table:
    """One row per (exchange, symbol, trade_id): the first on the topic (partition, offset)."""
    if trades.num_rows < 2:
        return trades
    order = trades.sort_by([(k, "ascending") for k in (*KEY, "kafka_partition", "kafka_offset")])
    keys = [order.column(k) for k in KEY]
    # a row starts a new key where any key column differs from the row before it
    new = pa.array([True], pa.bool_())
    if order.num_rows > 1:
        differs = None
        for key in keys:
            d = pc.not_equal(key.slice(1), key.slice(0, order.num_rows - 1))
            differs = d if differs is None else pc.or_(differs, d)
        assert differs is not None
        new = pa.concat_arrays([new, *pc.fill_null(differs, True).chunks])
    return order.filter(new)


def late_mask(trades: pa.Table, spark_watermark_ms: int, released_us: int | None) -> pa.Array:
    """Late: at or before Spark's watermark for the batch, or in a window released before it."""
    micros = pc.cast(pc.cast(trades.column("event_time"), pa.timestamp("us", "UTC")), pa.int64())
    passed = pc.less_equal(micros, spark_watermark_ms * 1000)
    if released_us is None:
        return pc.fill_null(passed, False).combine_chunks()
    bar_us = BAR_MS * 1000
    window_end = pc.add(pc.multiply(pc.floor(pc.divide(pc.cast(micros, pa.float64()), bar_us)), bar_us), bar_us)
    released = pc.less_equal(window_end, float(released_us))
    return pc.fill_null(pc.or_(passed, released), False).combine_chunks()


def partitions(trades: pa.Table) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """The rows of each (symbol, date) partition, sorted by (event_time, trade_id)."""
    dates = pc.cast(trades.column("date"), pa.string())
    keys = sorted(set(zip(trades.column("symbol").to_pylist(), dates.to_pylist(), strict=True)))
    for symbol, date in keys:
        mask = pc.and_(pc.equal(trades.column("symbol"), symbol), pc.equal(dates, date))
        part = trades.filter(mask).sort_by([("event_time", "ascending"), ("exchange", "ascending"),
                                            ("trade_id", "ascending")])  # fmt: skip
        yield (symbol, date), part


def partition_dir(symbol: str, date: str) -> str:
    """The partition's folder, as delta-rs names it (values percent-encoded)."""
    return f"symbol={quote(symbol, safe='')}/date={quote(date, safe='')}"


def write_file(plan: TickPlan, symbol: str, date: str, part: pa.Table) -> dict[str, Any]:
    folder = partition_dir(symbol, date)
    name = f"part-{plan.batch_id:08d}-{plan.token}-{uuid.uuid4().hex[:8]}.{COMPRESSION}.parquet"
    local = os.path.join(plan.table_dir, folder, name)  # on disk the values stay percent-encoded
    os.makedirs(os.path.dirname(local), exist_ok=True)
    body = part.select([c.name for c in FILE_COLUMNS]).cast(FILE_SCHEMA)
    pq.write_table(body, local, compression=COMPRESSION)
    return {
        "path": f"{folder}/{name}",
        "size": os.path.getsize(local),
        "symbol": symbol,
        "date": date,
        "stats": stats_json(body),
        "rows": body.num_rows,
        "late": pc.sum(body.column("late").cast(pa.int64())).as_py() or 0,
        "late_windows": json.dumps(late_windows(part)),
    }


def late_windows(part: pa.Table) -> list[list[Any]]:
    """The (exchange, window_start µs) of the 1-second windows of `part`'s late trades, sorted."""
    late = part.filter(part.column("late"))
    micros = pc.cast(pc.cast(late.column("event_time"), pa.timestamp("us", "UTC")), pa.int64()).to_pylist()
    bar_us = BAR_MS * 1000
    starts = {(e, t - t % bar_us) for e, t in zip(late.column("exchange").to_pylist(), micros, strict=True)}
    return [list(w) for w in sorted(starts)]


# -- Delta statistics -----------------------------------------------------------------------


def stats_json(rows: pa.Table) -> str:
    """Delta's per-file statistics (numRecords, minValues, maxValues, nullCount) as delta-rs
    writes them: decimals as JSON numbers in their exact digits, timestamps in UTC truncated to
    milliseconds (readers allow for it), no statistics for all-null columns."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name in rows.column_names:
        column = rows.column(name)
        nulls[name] = column.null_count
        if column.null_count == rows.num_rows:
            continue
        bounds = pc.min_max(column)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is None:
            continue
        mins[name], maxs[name] = _stat(low), _stat(high)
    body = json.dumps(
        {"numRecords": rows.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls},
        separators=(",", ":"),
        default=_raw,
    )
    return _DECIMAL_MARK.sub(r"\1", body)


# A decimal statistic goes into the JSON as a marked string, then loses its quotes and marks.
_DECIMAL_MARK = re.compile(r'"\\u0000(-?[0-9.]+)\\u0000"')


def _stat(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        utc = value.astimezone(dt.UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"\x00{_plain(value)}\x00"  # a JSON number with these exact digits (see stats_json)
    return value


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def _raw(value: Any) -> Any:
    raise TypeError(f"no Delta statistic for {value!r}")


# -- the table's ids, for repeats -----------------------------------------------------------


def stored_keys(plan: TickPlan, trades: pa.Table) -> pa.Table:
    """(exchange, symbol, trade_id) of the table's rows that may repeat one of `trades`: those of
    the files in the same partition whose id range overlaps the trades' there."""
    empty = pa.table({"exchange": pa.array([], pa.string()), "symbol": pa.array([], pa.string()),
                      "trade_id": pa.array([], pa.int64())})  # fmt: skip
    if not trades.num_rows:
        return empty
    dates = pc.cast(trades.column("date"), pa.string())
    wanted = pa.table({"symbol": trades.column("symbol"), "date": dates, "trade_id": trades.column("trade_id")})
    ranges = wanted.group_by(["symbol", "date"]).aggregate([("trade_id", "min"), ("trade_id", "max")])
    files = candidate_files(plan, ranges)
    parts = [empty]
    for path, symbol in files:
        ids = pq.read_table(path, columns=["exchange", "trade_id"])
        parts.append(
            pa.table(
                {
                    "exchange": ids.column("exchange").cast(pa.string()),
                    "symbol": pa.array([symbol] * ids.num_rows, pa.string()),
                    "trade_id": ids.column("trade_id").cast(pa.int64()),
                }
            )
        )
    return pa.concat_tables(parts)


def candidate_files(plan: TickPlan, ranges: pa.Table) -> list[tuple[str, str]]:
    """(local path, symbol) of the stored files whose partition and id range meet `ranges`."""
    stored = plan.stored
    older = [d for d in ranges.column("date").to_pylist() if d < plan.stored_from]
    if older:
        stored = pa.concat_tables([stored, _stored_at(plan, set(older))])
    out = []
    by_partition: dict[tuple[str, str], tuple[int, int]] = {
        (s, d): (lo, hi)
        for s, d, lo, hi in zip(*(ranges.column(c).to_pylist() for c in ("symbol", "date", "trade_id_min",
                                                                            "trade_id_max")), strict=True)
    }  # fmt: skip
    for path, symbol, date, lo, hi in zip(*(stored.column(c).to_pylist() for c in STORED.names), strict=True):
        wanted = by_partition.get((symbol, date))
        if wanted is None:
            continue
        if lo is not None and hi is not None and (hi < wanted[0] or lo > wanted[1]):
            continue
        out.append((path, symbol))
    return out


def _stored_at(plan: TickPlan, dates: set[str]) -> pa.Table:
    """The files of older partitions, from the table at the planned version (a late trade's day)."""
    from deltalake import DeltaTable

    if not Path(plan.table_dir, "_delta_log").is_dir():
        return STORED.empty_table()
    table = DeltaTable(plan.table_dir, version=plan.version)
    return stored_files(table, lambda d: d in dates)


def stored_files(table: Any, keep: Any = None) -> pa.Table:
    """STORED rows of a delta-rs table's current files, for partitions whose date `keep` accepts."""
    from lake.delta import add_actions

    actions = add_actions(table)
    names = actions.column_names
    dates = pc.cast(actions.column("partition.date"), pa.string()).to_pylist()
    rows = {
        "path": actions.column("path").to_pylist(),
        "symbol": actions.column("partition.symbol").to_pylist(),
        "date": dates,
        "min_id": actions.column("min.trade_id").to_pylist() if "min.trade_id" in names else [None] * len(dates),
        "max_id": actions.column("max.trade_id").to_pylist() if "max.trade_id" in names else [None] * len(dates),
    }
    out = pa.table(rows, schema=STORED)
    if keep is None:
        return out
    return out.filter(pa.array([bool(keep(d)) for d in dates], pa.bool_()))


def unseen(trades: pa.Table, stored: pa.Table) -> pa.Table:
    """`trades` less those whose key `stored` holds."""
    if not stored.num_rows or not trades.num_rows:
        return trades
    kept = trades.join(stored.select(list(KEY)), keys=list(KEY), join_type="left anti")
    return kept.select(trades.column_names)


def now_ms() -> int:
    return int(time.time() * 1000)


# -- on the driver --------------------------------------------------------------------------


def trade_files(batch: pa.Table) -> pa.Table:
    """The TRADE_FILE rows the batch's tasks returned."""
    if TRADE_FILES not in batch.column_names:
        return pa.Table.from_struct_array(pa.array([], TRADE_FILE))
    column = batch.column(TRADE_FILES)
    return pa.Table.from_struct_array(column.filter(pc.is_valid(column)))


def spark_watermark_ms(checkpoint: Path, batch_id: int) -> int:
    """The event-time watermark Spark drops late rows of batch `batch_id` by: the watermark of
    the batch before it (its offset log entry). Spark runs a batch with two watermarks, one for
    late rows (the previous batch's) and one for evicting state (this batch's); its stateful
    operators drop a row at or before the former. 0 where the log has none (no Spark)."""
    path = checkpoint / "offsets" / str(batch_id - 1)
    try:
        return int(json.loads(path.read_text().splitlines()[1]).get("batchWatermarkMs", 0))
    except (OSError, IndexError, ValueError, TypeError, AttributeError):
        return 0
