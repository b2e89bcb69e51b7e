"""One-minute candles per (symbol, date) partition of `ohlc`, kept while the partition's files are.

A day of 1 s bars is 86,400 rows; its 1-minute candles are 1,440. Candles of 1 m and coarser
over minute-aligned ranges are rolled up from these instead of from the bars, with the same
aggregates (`lake.macros.candle_aggregates`), so they are equal to the `candles()` macro's
digit for digit (tests/test_api.py checks it on every interval).

A request for 1-minute candles as JSON is served from each candle's JSON object, made once
per partition: the bytes are spliced into the response.

The key is the partition's committed file list in the snapshot: files are immutable, so the
same list means the same rows, and a partition that gains a batch or is compacted gets a new
list and a new entry. At most `max_partitions` are kept, least recently used first out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from api.candles import candle_json_objects
from lake.macros import candle_aggregates
from lake.reader import select_files_sql

if TYPE_CHECKING:
    from api.lake_access import Snapshot

log = logging.getLogger(__name__)

MAX_PARTITIONS = 2048  # ~1,440 rows and their JSON each (~0.6 MB): about 1.2 GB when full


def minute_candles_sql(files: tuple[str, ...]) -> str:
    """The partition's 1-minute candles, read as the `ohlc` view reads those files. Minutes are
    grouped by epoch microseconds (a third faster than `time_bucket`; the same UTC minutes)."""
    bars = select_files_sql("ohlc", list(files))
    return (
        "SELECT exchange, CAST(make_timestamp(minute * 60000000) AS TIMESTAMPTZ) AS bucket_start, "
        "* EXCLUDE (exchange, minute) FROM (SELECT bars.exchange AS exchange, "
        f"epoch_us(bars.window_start) // 60000000 AS minute,{candle_aggregates()} FROM ({bars}) AS bars "
        "GROUP BY ALL) ORDER BY 1, 2"
    )


@dataclass
class Rollup:
    """A partition's 1-minute candles, and each one's JSON object once a request needed them."""

    table: pa.Table
    _json: list[bytes] | None = None

    def json_objects(self) -> list[bytes]:
        """Row i's candle as JSON bytes (`api.candles.candle_json_objects`)."""
        if self._json is None:
            names = ["time" if n == "bucket_start" else n for n in self.table.column_names]
            self._json = candle_json_objects(self.table.rename_columns(names))
        return self._json


class MinuteRollups:
    def __init__(self, max_partitions: int = MAX_PARTITIONS) -> None:
        self.max_partitions = max_partitions
        self._cache: OrderedDict[tuple[str, ...], Rollup] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[tuple[str, ...], threading.Lock] = {}
        self.hits = self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def get(self, cur: duckdb.DuckDBPyConnection, files: tuple[str, ...]) -> Rollup:
        """The partition's 1-minute candles, ordered by exchange and time (exchange, bucket_start, candle columns)."""
        with self._lock:
            rollup = self._cache.get(files)
            if rollup is not None:
                self._cache.move_to_end(files)
                self.hits += 1
                return rollup
            computing = self._computing.setdefault(files, threading.Lock())
        with computing:  # one computation per partition: concurrent requests for it wait for that one
            with self._lock:
                rollup = self._cache.get(files)
                if rollup is not None:
                    self.hits += 1
                    return rollup
            rollup = Rollup(cur.sql(minute_candles_sql(files)).to_arrow_table())
            with self._lock:
                self.misses += 1
                self._cache[files] = rollup
                self._computing.pop(files, None)
                while len(self._cache) > self.max_partitions:
                    self._cache.popitem(last=False)
        return rollup


class Warmer:
    """Computes the rollups (and their JSON) of the newest `days` of partitions, newest first, in a
    daemon thread after each new snapshot, so that requests find them ready. A newer snapshot
    restarts the pass; partitions whose files did not change are already cached."""

    def __init__(self, rollups: MinuteRollups, days: int) -> None:
        self.rollups, self.days = rollups, days
        self._latest: Snapshot | None = None
        self._event = threading.Event()
        self._stop = threading.Event()
        self.warm_for: float | None = None  # taken_at of the snapshot whose partitions are all warm
        self.seconds: float | None = None  # how long the last complete pass took
        self._thread: threading.Thread | None = None

    def start(self) -> Warmer:
        """Start the thread (again, after `stop`: an app's lifespan may run more than once)."""
        if self.days > 0 and not (self._thread and self._thread.is_alive()):
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="rollup warmer", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._event.set()

    def offer(self, snap: Snapshot) -> None:
        """A new snapshot: warm its partitions."""
        self._latest = snap
        self._event.set()

    @property
    def warm(self) -> bool:
        snap = self._latest
        return self.days == 0 or (snap is not None and self.warm_for == snap.taken_at)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._event.wait()
            self._event.clear()
            snap = self._latest
            if snap is None or self._stop.is_set():
                continue
            started = time.perf_counter()
            dates = sorted({day for _, day in snap.partitions}, reverse=True)[: self.days]
            keys = sorted((k for k in snap.partitions if k[1] in set(dates)), key=lambda k: (k[1], k[0]), reverse=True)
            cur = snap.con.cursor()
            try:
                for key in keys:
                    if self._event.is_set() or self._stop.is_set():
                        break  # a newer snapshot: start over with it
                    self.rollups.get(cur, snap.partitions[key]).json_objects()
                else:
                    self.warm_for, self.seconds = snap.taken_at, time.perf_counter() - started
                    log.info("rollups warm: %d partitions in %.1f s", len(keys), self.seconds)
            except Exception:  # a damaged file: requests for it will say so; keep the thread
                log.warning("warming the rollups failed", exc_info=True)
            finally:
                cur.close()
