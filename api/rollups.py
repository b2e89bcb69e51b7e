"""One-minute candles per (symbol, date) partition of `ohlc`, kept while the partition's files are.

A day of 1 s bars is 86,400 rows; its 1-minute candles are 1,440. Candles of 1 m and coarser
over minute-aligned ranges are rolled up from these instead of from the bars, with the same
aggregates (`lake.macros.candle_aggregates`), so they are equal to the `candles()` macro's
digit for digit (tests/test_api.py checks it on every interval).

The key is the partition's committed file list in the snapshot: files are immutable, so the
same list means the same rows, and a partition that gains a batch or is compacted gets a new
list and a new entry. At most `max_partitions` are kept, least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import duckdb
import pyarrow as pa

from lake.macros import candle_aggregates
from lake.reader import select_files_sql

MAX_PARTITIONS = 4096  # ~1,440 rows each: about 0.3 GB when full


def minute_candles_sql(files: tuple[str, ...]) -> str:
    """The partition's 1-minute candles, read as the `ohlc` view reads those files."""
    return (
        "SELECT bars.exchange AS exchange, time_bucket(INTERVAL 60 SECOND, bars.window_start) AS bucket_start,"
        f"{candle_aggregates()} FROM ({select_files_sql('ohlc', list(files))}) AS bars GROUP BY ALL"
    )


class MinuteRollups:
    def __init__(self, max_partitions: int = MAX_PARTITIONS) -> None:
        self.max_partitions = max_partitions
        self._cache: OrderedDict[tuple[str, ...], pa.Table] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, cur: duckdb.DuckDBPyConnection, files: tuple[str, ...]) -> pa.Table:
        """The partition's 1-minute candles per exchange (exchange, bucket_start, candle columns)."""
        with self._lock:
            table = self._cache.get(files)
            if table is not None:
                self._cache.move_to_end(files)
                self.hits += 1
                return table
        table = cur.sql(minute_candles_sql(files)).to_arrow_table()
        with self._lock:
            self.misses += 1
            self._cache[files] = table
            while len(self._cache) > self.max_partitions:
                self._cache.popitem(last=False)
        return table
