"""The API's view of the lake: a `lake.connect(read_only=True)` snapshot, renewed in the background.

`lake.connect()` lists the committed files once, so a connection is a snapshot. A daemon
thread takes a new one every `refresh_s` and swaps it in; requests never wait for it. Each
request runs on its own cursor (a DuckDB connection is not shared between threads; its
cursors are). If the lake cannot be read, the last good snapshot keeps serving and `error`
says why; with no snapshot at all, requests get `LakeUnavailable` (503).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

import lake
from core.tables import recorded_windows
from lake.reader import change_marker, files_by_partition, list_tables, select_files_sql

log = logging.getLogger(__name__)

REFRESH_S = 2.0
FORCE_REFRESH_S = 60.0  # a new snapshot at least this often, changed or not (a safety net)

Market = tuple[str, str]  # (exchange, symbol)


class LakeUnavailable(RuntimeError):
    """The lake cannot be read; the message says why."""


@dataclass(frozen=True)
class Newest:
    start: dt.datetime
    end: dt.datetime


@dataclass
class Snapshot:
    con: duckdb.DuckDBPyConnection
    taken_at: float  # time.time()
    newest: dict[Market, Newest]  # each market's newest final bar
    windows: tuple[int, ...]  # the volatility windows recorded with the table
    partitions: dict[tuple[str, str], tuple[str, ...]]  # ohlc's committed files per (symbol, date)
    # lake/trades' committed date partitions per symbol, oldest first: `GET /v1/trades` reads a
    # page a day at a time and skips days without trades, however wide the range.
    trade_days: dict[str, tuple[dt.date, ...]] = field(default_factory=dict)
    _firsts: dict[Market, dt.datetime] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def firsts(self) -> dict[Market, dt.datetime]:
        """Each market's first bar, once per snapshot: from each symbol's oldest date partitions
        only (usually one), read as the `ohlc` view reads them, not a scan of the whole table."""
        with self._lock:
            if self._firsts is None:
                found: dict[Market, dt.datetime] = {}
                cur = self.con.cursor()
                try:
                    for (symbol, _day), files in sorted(self.partitions.items()):
                        wanted = {m for m in self.newest if m[1] == symbol}
                        if wanted <= found.keys():
                            continue  # this symbol's first bars are in an older partition
                        bars = select_files_sql("ohlc", list(files))
                        for exchange, first in cur.execute(
                            f"SELECT exchange, min(window_start) FROM ({bars}) GROUP BY 1"
                        ).fetchall():
                            found.setdefault((exchange, symbol), first)
                finally:
                    cur.close()
                self._firsts = found
            return self._firsts


def take_snapshot(path: Path) -> Snapshot:
    if not path.is_dir():
        raise LakeUnavailable(f"the lake folder {path} does not exist (LAKE_PATH)")
    try:
        listed = list_tables(path)
        con = lake.connect(path, read_only=True, listed=listed, threads=1)  # requests run side by side
        rows = con.execute("SELECT exchange, symbol, window_start, window_end FROM latest_bars").fetchall()
        windows = recorded_windows(path)
    except (duckdb.Error, OSError, ValueError, RuntimeError) as exc:  # DeltaError and OldLakeFormat too
        raise LakeUnavailable(f"the lake at {path} cannot be read: {str(exc).splitlines()[0]}") from exc
    newest = {(e, s): Newest(a, b) for e, s, a, b in rows}
    partitions = files_by_partition(listed["ohlc"].files)
    return Snapshot(con, time.time(), newest, windows, partitions, days_by_symbol(listed["trades"].files))


def days_by_symbol(files: list[str]) -> dict[str, tuple[dt.date, ...]]:
    """The dates a symbol-partitioned table holds per symbol, oldest first, from the paths alone."""
    days: dict[str, set[dt.date]] = {}
    for symbol, day in files_by_partition(files):
        days.setdefault(symbol, set()).add(dt.date.fromisoformat(day))
    return {symbol: tuple(sorted(dates)) for symbol, dates in days.items()}


class LakeAccess:
    def __init__(
        self, path: str | Path, refresh_s: float = REFRESH_S, on_snapshot: Callable[[Snapshot], None] | None = None
    ) -> None:
        """`on_snapshot(snap)` is called (on the refreshing thread) with each new snapshot."""
        self.path = Path(path).resolve()
        self.on_snapshot = on_snapshot
        self.refresh_s = refresh_s
        self._snapshot: Snapshot | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._marker: tuple[tuple[str, int], ...] | None = None

    def refresh(self) -> None:
        """A new snapshot if the lake changed (`lake.reader.change_marker`) or the last is old."""
        marker = change_marker(self.path)
        with self._lock:
            current, error = self._snapshot, self._error
        fresh = current is not None and time.time() - current.taken_at < FORCE_REFRESH_S
        if marker == self._marker and fresh and error is None:
            return
        try:
            snap = take_snapshot(self.path)
        except LakeUnavailable as exc:
            with self._lock:
                changed = self._error != str(exc)
                self._error = str(exc)
            if changed:
                log.warning("%s", exc)
            return
        with self._lock:
            self._snapshot, self._error = snap, None
        self._marker = marker
        if self.on_snapshot is not None:
            self.on_snapshot(snap)

    def start(self) -> LakeAccess:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="lake snapshots", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    @property
    def error(self) -> str | None:
        """Why the newest attempt to read the lake failed (None: it worked)."""
        with self._lock:
            return self._error

    def snapshot(self) -> Snapshot:
        with self._lock:
            snap, error = self._snapshot, self._error
        if snap is None:
            raise LakeUnavailable(error or f"the lake at {self.path} has not been read yet")
        return snap

    @contextmanager
    def cursor(self) -> Iterator[tuple[Snapshot, duckdb.DuckDBPyConnection]]:
        snap = self.snapshot()
        cur = snap.con.cursor()
        try:
            yield snap, cur
        except (duckdb.IOException, duckdb.InvalidInputException) as exc:
            raise LakeUnavailable(f"the lake at {self.path} cannot be read: {str(exc).splitlines()[0]}") from exc
        finally:
            cur.close()
