"""Lake queries through `lake.connect()` against hand-written DuckDB over the same files.

    .venv/bin/python bench/lake_query.py [--days 30] [--symbols 10] [--batch-minutes 10]
        [--cache bench/.cache/lake-30d] [--regenerate] [--generate-only] [--runs 5] [--workers 2]

1. A synthetic lake: table `ohlc` with one 1-second bar per second per symbol for `--days`
   closed UTC days ending yesterday (30 days x 10 symbols = 25.9 M rows), laid out exactly
   as the stream job's Spark file sink writes it: one Parquet file per micro-batch of
   `--batch-minutes` per partition (`symbol=S/date=D/part-<task>-<batch uuid>.c000.snappy.parquet`,
   without the partition columns, with Hadoop's `.crc` side files), and the sink's commit log
   `_spark_metadata/<N>`, compacted every 10 batches into `<N>.compact`, older log files
   deleted as Spark does (`spark.sql.streaming.minBatchesToRetain` = 100). It is kept in
   `--cache` and reused while `--days`, `--symbols` and `--batch-minutes` match.
2. The cached lake is copied to a scratch folder, and each query is timed both ways (best of
   `--runs` after one warm-up): `lake.connect(lake)` with SQL against its views and macros,
   and a fresh `duckdb.connect()` with `read_parquet('<lake>/ohlc/*/*/*.parquet',
   hive_partitioning = true)`. Both sides must return the same rows.
     (a) one symbol, one day, 1-minute candles (the `candles` macro)
     (b) all symbols, all days, daily candles
     (c) the newest bar of each symbol
     (d) start-up: `lake.connect()` against `duckdb.connect()` plus the view over the glob
   The copy is made a Delta table in place first (delta-rs's CONVERT TO DELTA over the same
   files), which is what `lake.connect()` reads.
3. `lake.maintenance.compact(copy, table="ohlc")` (Delta's OPTIMIZE), then the `lake.connect()`
   side again. The baseline was timed on the per-batch files before.
4. A table of the timings and the targets after compaction: (a) and (c) < 100 ms, (b) < 2 s,
   and no query slower than the baseline.

`--in-day` runs the in-day case instead (`bench/lake_in_day.py`): today's partition as the
live job writes it, before and after `python -m lake maintain`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import platform
import shutil
import struct
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

import lake
from core.schema import OHLC_TABLE, to_arrow
from core.settings import REPO_ROOT
from core.tables import TABLES

T = TypeVar("T")

# --- the synthetic lake -------------------------------------------------------------------

CACHE_FORMAT = 1  # bump when the generated layout or data changes
MARKER = "lake-query.json"  # in the cache folder: parameters and generation stats
SEED = 20261121
EXCHANGE = "binance"
SECONDS_PER_DAY = 86_400
SCALE = 10**8  # decimal(18, 8) units
SIGMA_PER_DAY = 0.03  # log-price volatility
SIGMA_PER_SECOND = SIGMA_PER_DAY / math.sqrt(SECONDS_PER_DAY)
MEAN_TRADES_PER_SECOND = 15
TRADE_IDS_PER_DAY = 5_000_000  # room for a day's trades: ids never overlap between days

# The layout Spark's file sink wrote for the job before the lake was Delta (2 shuffle partitions
# then), with Spark's defaults; the bench converts it to Delta in place (CONVERT TO DELTA).
SHUFFLE_PARTITIONS = 2  # task ids 00000 and 00001
COMPACT_INTERVAL = 10  # spark.sql.streaming.fileSink.log.compactInterval
MIN_BATCHES_TO_RETAIN = 100  # spark.sql.streaming.minBatchesToRetain
BLOCK_SIZE = 33_554_432  # the local file system's block size in the log entries
BYTES_PER_CHECKSUM = 512  # Hadoop's ChecksumFileSystem: one CRC32 per 512 bytes
COMMIT_DELAY_S = 6  # a batch commits after its bars close: watermark 5 s + a trigger
LOG_DIR = "_spark_metadata"
TABLE = "ohlc"

FILE_COLUMNS = tuple(c for c in OHLC_TABLE if c.name not in TABLES[TABLE].partition_by)


def _spark_type(type_: str) -> str:
    return {"string": "string", "int64": "long", "double": "double", "timestamp": "timestamp"}.get(type_, type_)


def _file_schema() -> pa.Schema:
    """The Parquet files' schema: `ohlc` without its partition columns."""
    schema = to_arrow(OHLC_TABLE)
    for name in TABLES[TABLE].partition_by:
        schema = schema.remove(schema.get_field_index(name))
    return schema


def _spark_footer() -> dict[str, str]:
    """The key-value metadata Spark puts in every Parquet footer."""
    row = {
        "type": "struct",
        "fields": [
            {"name": c.name, "type": _spark_type(c.type), "nullable": c.nullable, "metadata": {}} for c in FILE_COLUMNS
        ],
    }
    return {
        "org.apache.spark.version": "4.0.0",
        "org.apache.spark.sql.parquet.row.metadata": json.dumps(row, separators=(",", ":")),
    }


FILE_SCHEMA = _file_schema()
SPARK_FOOTER = _spark_footer()


@dataclass(frozen=True)
class LakeSpec:
    days: int
    symbols: int
    batch_minutes: int
    last_day: date  # the newest partition date: a closed day

    @property
    def first_day(self) -> date:
        return self.last_day - timedelta(days=self.days - 1)

    @property
    def t0(self) -> int:
        """Epoch seconds of the first bar."""
        return int(datetime(*self.first_day.timetuple()[:3], tzinfo=UTC).timestamp())

    @property
    def batch_seconds(self) -> int:
        return self.batch_minutes * 60

    @property
    def batches(self) -> int:
        return math.ceil(self.days * SECONDS_PER_DAY / self.batch_seconds)

    @property
    def rows(self) -> int:
        return self.days * self.symbols * SECONDS_PER_DAY

    def commit_ms(self, batch: int) -> int:
        """When micro-batch `batch` committed: after its last bar closed."""
        return (self.t0 + (batch + 1) * self.batch_seconds + COMMIT_DELAY_S) * 1000

    def same_shape(self, other: LakeSpec) -> bool:
        return (self.days, self.symbols, self.batch_minutes) == (other.days, other.symbols, other.batch_minutes)


def symbol_name(index: int) -> str:
    return f"SYM{index}USDT"


def batch_uuid(batch: int) -> str:
    """Spark names a batch's files with one job UUID; derived from the batch id, so repeatable."""
    digest = hashlib.blake2b(f"{SEED}:{batch}".encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def hadoop_crc(data: bytes) -> bytes:
    """The `.<name>.crc` side file Hadoop's local file system writes next to every file."""
    sums = (zlib.crc32(data[i : i + BYTES_PER_CHECKSUM]) for i in range(0, len(data), BYTES_PER_CHECKSUM))
    return b"crc\0" + struct.pack(">i", BYTES_PER_CHECKSUM) + b"".join(struct.pack(">I", s) for s in sums)


def write_hadoop_file(path: Path, data: bytes, mtime_ms: int) -> None:
    """`data` at `path` plus its `.crc`, both modified at `mtime_ms` like the batch that wrote them."""
    crc = path.with_name(f".{path.name}.crc")
    path.write_bytes(data)
    crc.write_bytes(hadoop_crc(data))
    for p in (path, crc):
        os.utime(p, ns=(mtime_ms * 1_000_000, mtime_ms * 1_000_000))


def _units(values: np.ndarray) -> np.ndarray:
    """Decimal(18, 8) unscaled integers."""
    return np.rint(values * SCALE).astype(np.int64)


def _decimal(unscaled: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A decimal128 array from non-negative unscaled int64 values, without a Python loop."""
    words = np.zeros((len(unscaled), 2), dtype=np.int64)
    words[:, 0] = unscaled  # little-endian 128-bit: low word, high word 0
    return pa.Array.from_buffers(type_, len(unscaled), [None, pa.py_buffer(words)])


@dataclass(frozen=True)
class PartitionDay:
    """One worker task: one symbol's bars of one day, written as that day's micro-batch files."""

    table_dir: str
    spec: LakeSpec
    symbol: int
    day: int  # 0 = spec.first_day
    log_open: float  # ln(price) at the day's start
    log_next: float  # ln(price) at the next day's start

    @property
    def partition(self) -> str:
        return f"symbol={symbol_name(self.symbol)}/date={self.spec.first_day + timedelta(days=self.day)}"


def bars(task: PartitionDay) -> pa.Table:
    """A day of consistent 1-second bars: a random walk bridged to the next day's open."""
    n = SECONDS_PER_DAY
    rng = np.random.default_rng([SEED, task.symbol, task.day])
    walk = np.cumsum(rng.normal(0.0, SIGMA_PER_SECOND, n))
    walk -= np.arange(1, n + 1) / n * (walk[-1] - (task.log_next - task.log_open))
    close = _units(np.exp(task.log_open + walk))
    open_ = np.concatenate((_units(np.exp(np.array([task.log_open]))), close[:-1]))
    wicks = np.exp(np.abs(rng.normal(0.0, SIGMA_PER_SECOND / 2, (2, n))))
    high = np.maximum(_units(np.maximum(open_, close) / SCALE * wicks[0]), np.maximum(open_, close))
    low = np.minimum(_units(np.minimum(open_, close) / SCALE / wicks[1]), np.minimum(open_, close))
    vwap = (open_ + high + low + close) // 4  # a price inside [low, high]
    volume = np.maximum(1, _units(rng.lognormal(7.0, 1.0, n) / (vwap / SCALE)))  # ~$1,100 a second
    buy = np.minimum((volume * rng.random(n)).astype(np.int64), volume)
    trades = 1 + rng.poisson(MEAN_TRADES_PER_SECOND - 1, n)
    id_base = (task.symbol + 1) * 10**12 + task.day * TRADE_IDS_PER_DAY
    first_id = id_base + np.cumsum(trades) - trades
    start_us = (task.spec.t0 + task.day * SECONDS_PER_DAY + np.arange(n, dtype=np.int64)) * 1_000_000
    price_t, volume_t = FILE_SCHEMA.field("open").type, FILE_SCHEMA.field("volume").type
    quote = pc.multiply(_decimal(vwap, price_t), _decimal(volume, price_t))  # exact: decimal(37, 16)
    columns: dict[str, pa.Array] = {
        "exchange": pa.repeat(EXCHANGE, n),
        "window_start": pa.array(start_us, FILE_SCHEMA.field("window_start").type),
        "window_end": pa.array(start_us + 1_000_000, FILE_SCHEMA.field("window_end").type),
        "open": _decimal(open_, price_t),
        "high": _decimal(high, price_t),
        "low": _decimal(low, price_t),
        "close": _decimal(close, price_t),
        "volume": _decimal(volume, volume_t),
        "quote_volume": quote.cast(FILE_SCHEMA.field("quote_volume").type),
        "vwap": pa.array(vwap / SCALE),  # = quote_volume / volume
        "trade_count": pa.array(trades.astype(np.int64)),
        "buy_volume": _decimal(buy, volume_t),
        "sell_volume": _decimal(volume - buy, volume_t),
        "first_trade_id": pa.array(first_id),
        "last_trade_id": pa.array(first_id + trades - 1),
        "revision": pa.repeat(pa.scalar(0, pa.int64()), n),
        "revised_at": pa.nulls(n, FILE_SCHEMA.field("revised_at").type),
    }
    return pa.Table.from_arrays([columns[f.name] for f in FILE_SCHEMA], schema=FILE_SCHEMA)


def parquet_bytes(table: pa.Table) -> bytes:
    """One file as Spark writes it: snappy, decimals up to 18 digits as INT64, Spark's footer keys."""
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(
        sink, table.schema, compression="snappy", store_decimal_as_integer=True, store_schema=False
    ) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata(SPARK_FOOTER)
    return bytes(sink.getvalue().to_pybytes())


@dataclass(frozen=True, order=True)
class LogEntry:
    batch: int
    task: int
    relative: str  # below the table folder
    size: int
    mtime_ms: int


def generate_partition_day(task: PartitionDay) -> list[LogEntry]:
    """Write one partition-day's micro-batch files; return their commit log entries."""
    spec = task.spec
    table = bars(task)
    folder = Path(task.table_dir) / task.partition
    folder.mkdir(parents=True, exist_ok=True)
    spark_task = task.symbol % SHUFFLE_PARTITIONS
    day_start = task.day * SECONDS_PER_DAY  # seconds since spec.t0
    entries = []
    first, last = day_start // spec.batch_seconds, (day_start + SECONDS_PER_DAY - 1) // spec.batch_seconds
    for batch in range(first, last + 1):
        lo = max(0, batch * spec.batch_seconds - day_start)
        hi = min(SECONDS_PER_DAY, (batch + 1) * spec.batch_seconds - day_start)
        data = parquet_bytes(table.slice(lo, hi - lo))
        name = f"part-{spark_task:05d}-{batch_uuid(batch)}.c000.snappy.parquet"
        mtime_ms = spec.commit_ms(batch) - 1000 + 37 * task.symbol  # files land before the log commit
        write_hadoop_file(folder / name, data, mtime_ms)
        entries.append(LogEntry(batch, spark_task, f"{task.partition}/{name}", len(data), mtime_ms))
    return entries


def day_opens(spec: LakeSpec, symbol: int) -> np.ndarray:
    """ln(price) at each day's start (days + 1 values): a daily random walk from a base price."""
    rng = np.random.default_rng([SEED, symbol])
    base = rng.uniform(-1.0, 4.5) * math.log(10)  # 0.1 .. 30,000
    return base + np.concatenate(([0.0], np.cumsum(rng.normal(0.0, SIGMA_PER_DAY, spec.days))))


def first_retained_log(batches: int) -> int:
    """The oldest log file Spark keeps after the last batch (CompactibleFileStreamLog.deleteExpiredLog)."""
    last = batches - 1
    if last + 1 - MIN_BATCHES_TO_RETAIN < COMPACT_INTERVAL:
        return 0
    min_batch = last + 1 - MIN_BATCHES_TO_RETAIN
    return min_batch - min_batch % COMPACT_INTERVAL - 1


def log_line(uri_root: str, entry: LogEntry) -> str:
    record = {
        "path": f"{uri_root}/{quote(entry.relative, safe='/=')}",
        "size": entry.size,
        "isDir": False,
        "modificationTime": entry.mtime_ms,
        "blockReplication": 1,
        "blockSize": BLOCK_SIZE,
        "action": "add",
    }
    return json.dumps(record, separators=(",", ":"))


def write_commit_log(table_dir: Path, final_table_dir: Path, spec: LakeSpec, entries: list[LogEntry]) -> int:
    """`_spark_metadata/`: `N` per batch, `N.compact` (all entries so far) every 10th; returns files written."""
    log_dir = table_dir / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    uri_root = "file://" + quote(str(final_table_dir), safe="/")
    per_batch: list[list[str]] = [[] for _ in range(spec.batches)]
    for entry in sorted(entries):
        per_batch[entry.batch].append(log_line(uri_root, entry))
    so_far: list[str] = []
    keep_from = first_retained_log(spec.batches)
    written = 0
    for batch, lines in enumerate(per_batch):
        so_far.extend(lines)
        if batch < keep_from:
            continue  # Spark deleted it once a later compaction covered it
        compact = (batch + 1) % COMPACT_INTERVAL == 0
        body = so_far if compact else lines
        name = f"{batch}.compact" if compact else str(batch)
        write_hadoop_file(
            log_dir / name, ("v1" + "".join("\n" + line for line in body)).encode(), spec.commit_ms(batch)
        )
        written += 1
    return written


@dataclass(frozen=True)
class LakeStats:
    seconds: float
    data_files: int
    data_bytes: int
    log_files: int
    total_files: int  # with .crc side files
    total_bytes: int


def folder_totals(folder: Path) -> tuple[int, int]:
    files = size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(root, name))
    return files, size


def generate(cache: Path, spec: LakeSpec, workers: int) -> LakeStats:
    """Write the lake into `<cache>.partial`, then move it to `cache`."""
    started = time.perf_counter()
    partial = cache.with_name(cache.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    table_dir = partial / TABLE
    table_dir.mkdir(parents=True)
    opens = [day_opens(spec, s) for s in range(spec.symbols)]
    tasks = [
        PartitionDay(str(table_dir), spec, s, d, float(opens[s][d]), float(opens[s][d + 1]))
        for d in range(spec.days)
        for s in range(spec.symbols)
    ]
    entries: list[LogEntry] = []
    progress = tqdm(total=len(tasks), desc="generate ohlc", unit="partition-day")
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for result in pool.imap_unordered(generate_partition_day, tasks):
            entries.extend(result)
            progress.update()
    progress.close()
    log_files = write_commit_log(table_dir, cache.resolve() / TABLE, spec, entries)
    total_files, total_bytes = folder_totals(partial)
    stats = LakeStats(
        seconds=time.perf_counter() - started,
        data_files=len(entries),
        data_bytes=sum(e.size for e in entries),
        log_files=log_files,
        total_files=total_files,
        total_bytes=total_bytes,
    )
    marker = {"format": CACHE_FORMAT, "spec": {**asdict(spec), "last_day": str(spec.last_day)}, "stats": asdict(stats)}
    (partial / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    if cache.exists():
        shutil.rmtree(cache)
    partial.rename(cache)
    return stats


def read_marker(cache: Path) -> tuple[LakeSpec, LakeStats] | None:
    path = cache / MARKER
    if not path.is_file():
        return None
    marker = json.loads(path.read_text(encoding="utf-8"))
    if marker.get("format") != CACHE_FORMAT:
        return None
    spec = {**marker["spec"], "last_day": date.fromisoformat(marker["spec"]["last_day"])}
    return LakeSpec(**spec), LakeStats(**marker["stats"])


def ensure_lake(cache: Path, wanted: LakeSpec, regenerate: bool, workers: int) -> LakeSpec:
    """The cached lake if it has the wanted shape, else a new one; returns what the cache holds."""
    if cache.exists() and not (cache / MARKER).is_file():
        sys.exit(f"{cache} exists and is not a lake this benchmark wrote: choose another --cache")
    cached = read_marker(cache)
    if cached and not regenerate and cached[0].same_shape(wanted):
        spec, stats = cached
        print(f"reusing {cache}: {spec.first_day} .. {spec.last_day}, generated in {stats.seconds:.0f}s")
    else:
        reason = "--regenerate" if regenerate else ("other parameters" if cached else "no cache yet")
        print(f"generating {cache} ({reason}): {wanted.days} days x {wanted.symbols} symbols, "
              f"{wanted.batch_minutes}-minute batches, {wanted.first_day} .. {wanted.last_day}")  # fmt: skip
        spec, stats = wanted, generate(cache, wanted, workers)
        print(f"generated in {stats.seconds:.1f}s")
    print(
        f"lake: {spec.rows:,} rows; {stats.data_files:,} Parquet files, {stats.data_bytes / 2**20:,.0f} MiB; "
        f"{stats.log_files} commit log files; {stats.total_files:,} files and "
        f"{stats.total_bytes / 2**20:,.0f} MiB on disk with .crc files"
    )
    return spec


# --- the queries --------------------------------------------------------------------------

CANDLE_AGGREGATES = """
    arg_min(open, window_start) AS open, max(high) AS high, min(low) AS low,
    arg_max(close, window_start) AS close, sum(volume) AS volume, sum(quote_volume) AS quote_volume,
    CAST(sum(trade_count) AS BIGINT) AS trade_count,
    CAST(sum(quote_volume) AS DOUBLE) / CAST(sum(volume) AS DOUBLE) AS vwap"""

Result = tuple[list[str], list[tuple[Any, ...]]]
Timings = dict[str, tuple[float, Result]]  # query key -> (best ms, result)


@dataclass(frozen=True)
class Queries:
    symbol: str
    day: date

    @property
    def start(self) -> str:
        return f"{self.day} 00:00:00+00"

    @property
    def end(self) -> str:
        return f"{self.day + timedelta(days=1)} 00:00:00+00"

    def minute_candles(self, source: str) -> str:
        return f"""
            SELECT time_bucket(INTERVAL 1 MINUTE, window_start) AS window_start, {CANDLE_AGGREGATES}
            FROM {source}
            WHERE symbol = '{self.symbol}' AND date = DATE '{self.day}'
              AND window_start >= TIMESTAMPTZ '{self.start}' AND window_start < TIMESTAMPTZ '{self.end}'
            GROUP BY 1 ORDER BY 1"""

    def minute_candles_macro(self) -> str:
        return (
            f"SELECT * FROM candles('{self.symbol}', INTERVAL 1 MINUTE, "
            f"TIMESTAMPTZ '{self.start}', TIMESTAMPTZ '{self.end}')"
        )

    @staticmethod
    def daily_candles(source: str) -> str:
        return f"SELECT symbol, date, {CANDLE_AGGREGATES} FROM {source} GROUP BY symbol, date ORDER BY symbol, date"

    @staticmethod
    def newest_bars(source: str) -> str:
        return f"""
            SELECT symbol, max(window_start) AS window_start, arg_max(close, window_start) AS close,
                   arg_max(volume, window_start) AS volume, arg_max(trade_count, window_start) AS trade_count
            FROM {source} GROUP BY symbol ORDER BY symbol"""


QUERY_LABELS = {
    "a": "(a) 1 symbol, 1 day, 1-minute candles",
    "b": "(b) all symbols, all days, daily candles",
    "c": "(c) newest bar of each symbol",
    "d": "(d) connect / start-up",
}


def run(con: duckdb.DuckDBPyConnection, sql: str) -> Result:
    cursor = con.execute(sql)
    rows = cursor.fetchall()
    return [d[0] for d in cursor.description or []], rows


def best_of(action: Callable[[], T], runs: int, cleanup: Callable[[T], None] | None = None) -> tuple[float, T]:
    """Milliseconds of the fastest of `runs` calls after one warm-up, and the last call's result."""
    result = action()
    best = math.inf
    for _ in range(runs):
        if cleanup is not None:
            cleanup(result)
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best * 1000, result


def timed_query(con: duckdb.DuckDBPyConnection, sql: str, runs: int) -> tuple[float, Result]:
    return best_of(lambda: run(con, sql), runs)


def timed_connect(connect: Callable[[], duckdb.DuckDBPyConnection], runs: int) -> tuple[float, Result]:
    ms, con = best_of(connect, runs, cleanup=lambda c: c.close())
    con.close()
    return ms, ([], [])


def baseline_connect(lake_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    glob = str(lake_path / TABLE / "*" / "*" / "*.parquet")
    con.execute(f"CREATE VIEW {TABLE} AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
    return con


def has_candles_macro(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute(
        "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'candles' AND function_type = 'table_macro'"
    ).fetchall()
    return bool(found[0][0])


def check_rows(con: duckdb.DuckDBPyConnection, side: str, expected: int) -> None:
    rows = con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0]
    if rows != expected:
        raise Mismatch(f"{side}: {TABLE} has {rows:,} rows, expected {expected:,}")


def time_side(
    side: str,
    connect: Callable[[], duckdb.DuckDBPyConnection],
    queries: Callable[[duckdb.DuckDBPyConnection], dict[str, str]],
    runs: int,
    expected_rows: int,
) -> Timings:
    """Start-up, then each query on one connection; prints each timing as it is taken."""
    timings: Timings = {"d": timed_connect(connect, runs)}
    print(f"  {side}: (d) {timings['d'][0]:,.1f} ms", flush=True)
    con = connect()
    check_rows(con, side, expected_rows)
    for key, sql in queries(con).items():
        timings[key] = timed_query(con, sql, runs)
        print(f"  {side}: ({key}) {timings[key][0]:,.1f} ms", flush=True)
    con.close()
    return timings


def time_baseline(lake_path: Path, queries: Queries, runs: int, expected_rows: int) -> Timings:
    """The hand-written side: a plain DuckDB connection and a glob over the table folder."""

    def sqls(_: duckdb.DuckDBPyConnection) -> dict[str, str]:
        return {"a": queries.minute_candles(TABLE), "b": queries.daily_candles(TABLE), "c": queries.newest_bars(TABLE)}

    return time_side("baseline", lambda: baseline_connect(lake_path), sqls, runs, expected_rows)


def time_lake(lake_path: Path, queries: Queries, runs: int, expected_rows: int, phase: str) -> Timings:
    """The `lake.connect()` side: its views, and the `candles` macro when it exists."""

    def sqls(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
        if has_candles_macro(con):
            minute = queries.minute_candles_macro()
        else:
            print("candles macro missing: (a) runs the hand-written SQL over the ohlc view")
            minute = queries.minute_candles(TABLE)
        # (c): the `latest_bars` view reads each symbol's newest partition only.
        newest = "SELECT symbol, window_start, close, volume, trade_count FROM latest_bars ORDER BY symbol"
        return {"a": minute, "b": queries.daily_candles(TABLE), "c": newest}

    return time_side(f"lake.connect() {phase}", lambda: lake.connect(lake_path), sqls, runs, expected_rows)


# --- result checks ------------------------------------------------------------------------


class Mismatch(AssertionError):
    """The two sides returned different results."""


TIME_COLUMNS = ("window_start", "bucket_start", "bucket", "ts", "time", "start")
KEY_COLUMNS = ("symbol", "date")
VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume", "trade_count", "vwap")
REQUIRED_COLUMNS = ("open", "high", "low", "close", "volume")


def _time_column(columns: Sequence[str]) -> str | None:
    return next((c for c in TIME_COLUMNS if c in columns), None)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Decimal | int) and isinstance(b, Decimal | int):
        return a == b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return bool(a == b)


def check_equal(query: str, expected: Result, actual: Result) -> None:
    """Same rows: keyed by symbol, date and the time column where present, values compared by name."""
    (exp_cols, exp_rows), (act_cols, act_rows) = expected, actual
    if len(exp_rows) != len(act_rows):
        raise Mismatch(f"{query}: {len(act_rows)} rows from lake.connect(), {len(exp_rows)} from the baseline")
    missing = [c for c in REQUIRED_COLUMNS if c in exp_cols and c not in act_cols]
    if missing:
        raise Mismatch(f"{query}: lake.connect() result lacks columns {missing}: {act_cols}")
    exp_time, act_time = _time_column(exp_cols), _time_column(act_cols)
    keys = [(c, c) for c in KEY_COLUMNS if c in exp_cols and c in act_cols]
    if exp_time and act_time:
        keys.append((exp_time, act_time))
    values = [c for c in VALUE_COLUMNS if c in exp_cols and c in act_cols]

    def records(cols: list[str], rows: list[tuple[Any, ...]], side: int) -> list[dict[str, Any]]:
        out = [dict(zip(cols, row, strict=True)) for row in rows]
        return sorted(out, key=lambda r: tuple(r[k[side]] for k in keys))

    for i, (e, a) in enumerate(zip(records(exp_cols, exp_rows, 0), records(act_cols, act_rows, 1), strict=True)):
        for exp_key, act_key in keys:
            if e[exp_key] != a[act_key]:
                raise Mismatch(f"{query}: row {i} {exp_key}: baseline {e[exp_key]!r}, lake.connect() {a[act_key]!r}")
        for col in values:
            if not _same(e[col], a[col]):
                raise Mismatch(f"{query}: row {i} ({e.get('symbol')}) {col}: baseline {e[col]!r}, lake {a[col]!r}")


def check_phase(phase: str, baseline: Timings, lake_side: Timings) -> None:
    for key in ("a", "b", "c"):
        check_equal(f"{QUERY_LABELS[key]} ({phase})", baseline[key][1], lake_side[key][1])
    rows = ", ".join(f"({k}) {len(baseline[k][1][1])} rows" for k in ("a", "b", "c"))
    print(f"results equal {phase}: {rows}")


# --- compaction and the report ------------------------------------------------------------


def compact_copy(lake_path: Path) -> bool:
    """Maintain the working copy as `python -m lake maintain` does (OPTIMIZE, then a checkpoint
    and expired-log cleanup), and then as it stands an hour later: the OPTIMIZE's 43,200
    tombstones expired (`lake_in_day.expire_before_now`). A lake maintained daily never carries
    that many; a mass compaction like this one does for LAKE_GRACE, and `connect` is timed then too."""
    from lake_in_day import expire_before_now

    from lake.maintenance import compact, tidy_log

    started = time.perf_counter()
    report = compact(lake_path, table=TABLE)
    tidy_log(lake_path, TABLE)
    print(f"OPTIMIZE and checkpoint took {time.perf_counter() - started:.1f}s: {report!r}")
    ms, _ = timed_connect(lambda: lake.connect(lake_path), 5)
    print(f"  lake.connect() right after, with the {report.files_before:,} tombstones: {ms:,.1f} ms")
    expire_before_now(lake_path, TABLE)
    print("  an hour later (the tombstones expired, as at the next checkpoint): the 'after' column")
    return True


def to_delta(work: Path) -> None:
    """The copy's table becomes a Delta table in place (delta-rs's CONVERT TO DELTA over the same
    files): what `lake.connect()` reads. The sink's old log goes; the baseline's glob reads the
    same files."""
    from lake.delta import convert_parquet_folder

    started = time.perf_counter()
    shutil.rmtree(work / TABLE / "_spark_metadata", ignore_errors=True)
    for crc in (work / TABLE).rglob(".*.crc"):
        crc.unlink()
    convert_parquet_folder(work, TABLE)
    print(f"converted the copy to a Delta table in {time.perf_counter() - started:.1f}s")


def copy_lake(cache: Path, scratch: Path) -> Path:
    started = time.perf_counter()
    work = scratch / "lake"
    shutil.copytree(cache, work, ignore=shutil.ignore_patterns(MARKER))
    print(f"copied the lake to {work} in {time.perf_counter() - started:.1f}s")
    to_delta(work)
    return work


def machine_line() -> str:
    mem = ""
    if Path("/proc/meminfo").is_file():
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kib / 2**20:.0f} GiB"
    return (
        f"machine: {os.cpu_count()} cores{mem}, Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"pyarrow {pa.__version__}, {platform.system()} {platform.release()}"
    )


TARGET_MS = {"a": 100.0, "b": 2000.0, "c": 100.0}  # after compaction


def _ms(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:,.1f}"


def _ratio(ms: float | None, base: float) -> str:
    return "-" if ms is None else f"{ms / base:.2f}x"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def print_report(baseline: Timings, before: Timings, after: Timings | None) -> None:
    columns = ("baseline ms", "before ms", "after ms", "before/base", "after/base")
    header = f"{'query':<44}" + "".join(f"{c:>13}" for c in columns)
    print("\n" + header + "\n" + "-" * len(header))
    for key, label in QUERY_LABELS.items():
        base, bef, aft = baseline[key][0], before[key][0], after[key][0] if after else None
        cells = (_ms(base), _ms(bef), _ms(aft), _ratio(bef, base), _ratio(aft, base))
        print(f"{label:<44}" + "".join(f"{c:>13}" for c in cells))
    print("\ntargets after compaction:")
    for key, limit in TARGET_MS.items():
        aft = after[key][0] if after else None
        verdict = _verdict(None if aft is None else aft < limit)
        print(f"  {QUERY_LABELS[key]:<44} < {limit:>6,.0f} ms: {_ms(aft):>10}  {verdict}")
    for key, label in QUERY_LABELS.items():
        aft, base = (after[key][0] if after else None), baseline[key][0]
        verdict = _verdict(None if aft is None else aft <= base)
        print(f"  {label:<44} <= baseline {_ms(base):>8}: {_ms(aft):>10}  {verdict}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--batch-minutes", type=int, default=10, help="micro-batch length: one file per partition")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "bench" / ".cache" / "lake-30d")
    parser.add_argument("--regenerate", action="store_true", help="write the lake again even if cached")
    parser.add_argument("--generate-only", action="store_true", help="write or check the cached lake, then stop")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per query, after one warm-up")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="generator processes")
    parser.add_argument("--in-day", action="store_true", help="today's partition before and after maintenance instead")
    parser.add_argument("--live-only", action="store_true", help="with --in-day: only the lake maintained live")
    args = parser.parse_args()
    if min(args.days, args.symbols, args.batch_minutes, args.runs, args.workers) < 1:
        parser.error("--days, --symbols, --batch-minutes, --runs and --workers must be positive")
    return args


def main() -> int:
    args = parse_args()
    if args.in_day:
        import lake_in_day  # bench/lake_in_day.py: the in-day case

        cases = lake_in_day.CASES[-1:] if args.live_only else lake_in_day.CASES
        return lake_in_day.run(args.symbols, args.runs, cases)
    today = datetime.now(UTC).date()
    print(machine_line())
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    wanted = LakeSpec(args.days, args.symbols, args.batch_minutes, last_day=today - timedelta(days=1))
    cache = args.cache.resolve()
    spec = ensure_lake(cache, wanted, args.regenerate, args.workers)
    if args.generate_only:
        return 0
    queries = Queries(symbol_name(min(3, spec.symbols - 1)), spec.last_day)
    print(f"(a) is {queries.symbol} on {queries.day}; best of {args.runs} runs after one warm-up, in ms")
    scratch = Path(tempfile.mkdtemp(prefix="lake-query-", dir=cache.parent))
    try:
        work = copy_lake(cache, scratch)
        baseline = time_baseline(work, queries, args.runs, spec.rows)
        before = time_lake(work, queries, args.runs, spec.rows, "before")
        check_phase("before compaction", baseline, before)
        after = None
        if compact_copy(work):
            after = time_lake(work, queries, args.runs, spec.rows, "after")
            check_phase("after compaction", baseline, after)
        print_report(baseline, before, after)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
