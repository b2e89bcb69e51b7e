"""A tail of `crypto.bars.live`: the forming 1-second bars the lake does not hold yet.

The Spark job writes a final bar to the lake some 15-25 s after its second ends; until then
the bar exists only on the live topic. One daemon thread per (bootstrap, topic) reads every
partition (no consumer group: nothing is committed, every reader process reads alone) from
KEEP_S back, and keeps the newest update of each (exchange, symbol, window_start) for
`snapshot`. Pages never wait on Kafka: a missing broker or topic becomes a one-line `status`
and the thread retries every RETRY_S. A reader that falls behind skips ahead rather than
blocking, and counts what it skipped in `counts.dropped`.

The dashboard (`dashboard.live_feed`) reads `snapshot`; the HTTP API (`api.stream`) also
registers a listener, called on the feed's thread with every update it keeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.live_bars import decode, to_frame

log = logging.getLogger(__name__)

KEEP_S = 300.0  # the lake has a bar ~25 s after it ends; five minutes covers a slow or restarted job
RETRY_S = 3.0
POLL_MS = 200
FETCH_MAX_WAIT_MS = 50  # latency over batching: the default waits up to 500 ms for data
CHECK_EVERY_S = 2.0  # how often the broker is asked for end offsets (also notices a lost broker)
KAFKA_TIMEOUT_MS = 5000  # generous: a busy broker must not read as a lost one
MAX_LAG_RECORDS = 200_000  # more unread records than this in a partition: skip ahead
SKIP_GRACE_MS = 10_000  # the start offset is KEEP_S old already; without a grace every poll would skip

Key = tuple[str, str]  # (exchange, symbol)


def newer(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `new` supersedes `old` (same window). A final update beats a provisional one whatever
    their order: a provisional update after the final can only be a re-read of an earlier state.
    A final bar with a higher `revision` (late trades, `jobs.revision_feed`) beats a lower one.
    Otherwise the later emission wins."""
    if old["final"] != new["final"]:
        return bool(new["final"])
    if old.get("revision", 0) != new.get("revision", 0):  # the job's revision of a final bar
        return bool(new.get("revision", 0) > old.get("revision", 0))
    return bool(new["emitted_at"] >= old["emitted_at"])


class LiveBars:
    """The newest update per (exchange, symbol, window_start), for the last `keep_ms` of emissions.

    Pruning goes by `emitted_at` (wall clock), not by window time, so a replayed tape's old
    windows stay visible while they are being published.
    """

    def __init__(self, keep_ms: int) -> None:
        self.keep_ms = keep_ms
        self._lock = threading.Lock()
        self._bars: dict[Key, dict[int, dict[str, Any]]] = {}

    def add(self, bar: dict[str, Any]) -> bool:
        """Keep `bar` unless a newer update of its window is already kept; True if kept."""
        with self._lock:
            windows = self._bars.setdefault((bar["exchange"], bar["symbol"]), {})
            old = windows.get(bar["window_start"])
            if old is not None and not newer(old, bar):
                return False
            windows[bar["window_start"]] = bar
            return True

    def prune(self, now_ms: int) -> int:
        """Forget updates emitted more than `keep_ms` before `now_ms`; how many were forgotten."""
        cutoff = now_ms - self.keep_ms
        removed = 0
        with self._lock:
            for key in list(self._bars):
                windows = self._bars[key]
                old = [start for start, bar in windows.items() if bar["emitted_at"] < cutoff]
                for start in old:
                    del windows[start]
                removed += len(old)
                if not windows:
                    del self._bars[key]
        return removed

    def bars(self, exchange: str, symbol: str) -> list[dict[str, Any]]:
        with self._lock:
            windows = self._bars.get((exchange, symbol), {})
            return [windows[start] for start in sorted(windows)]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._bars.values())


def behind(newest_record_ms: int | None, now_ms: int, lag_records: int | None, keep_ms: int) -> bool:
    """The reader has fallen behind: its newest record is older than it keeps, or too much is unread."""
    too_old = newest_record_ms is not None and newest_record_ms < now_ms - keep_ms - SKIP_GRACE_MS
    return too_old or (lag_records is not None and lag_records > MAX_LAG_RECORDS)


def skip_target(position: int, by_time: int | None, end: int) -> int:
    """Where a behind reader resumes: the first record within KEEP_S (`by_time`, None when there is
    none: the end), and at most MAX_LAG_RECORDS before the end; never backwards."""
    target = end if by_time is None else by_time
    return max(position, target, end - MAX_LAG_RECORDS)


@dataclass
class FeedCounts:
    updates: int = 0  # decoded messages read
    undecodable: int = 0  # skipped: not a live bar
    dropped: int = 0  # offsets skipped while behind


class Unavailable(RuntimeError):
    """Why the topic cannot be read, in one line."""


_INTS = ("window_start", "window_end", "emitted_at", "last_trade_ts", "trade_count")


def live_bar(value: bytes | None) -> dict[str, Any] | None:
    """`core.live_bars.decode`, plus the types a page relies on; None for anything else."""
    try:
        bar = decode(value or b"")
    except (ValueError, ArithmeticError, TypeError):  # bad JSON, or a Decimal field that is not a number
        return None
    ints_ok = all(isinstance(bar[name], int) and not isinstance(bar[name], bool) for name in _INTS)
    names_ok = isinstance(bar["exchange"], str) and isinstance(bar["symbol"], str)
    return bar if ints_ok and names_ok and isinstance(bar["final"], bool) else None


class LiveFeed:
    """The tail of one live-bars topic; `start()` runs it in a daemon thread."""

    def __init__(
        self, bootstrap: str, topic: str, keep_s: float = KEEP_S, retry_s: float = RETRY_S, client_id: str = "dashboard"
    ) -> None:
        self.bootstrap, self.topic, self.retry_s = bootstrap, topic, retry_s
        self.client_id = f"crypto-lakehouse-{client_id}"
        self.keep_ms = int(keep_s * 1000)
        self.store = LiveBars(self.keep_ms)
        self.counts = FeedCounts()
        self._status = f"live stream: connecting to {bootstrap}"
        self._ok = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener(bar)` on the feed's thread with each update it keeps; it must not block."""
        with self._lock:
            self._listeners.append(listener)

    @property
    def status(self) -> str:
        """One line: what is read from where, or why nothing is."""
        with self._lock:
            return self._status

    @property
    def available(self) -> bool:
        with self._lock:
            return self._ok

    def snapshot(self, exchange: str, symbol: str) -> pd.DataFrame:
        """The kept live bars of one market, oldest first (`core.live_bars.to_frame` columns)."""
        return to_frame(self.store.bars(exchange, symbol))

    def ingest(self, value: bytes | None) -> None:
        """One message: kept if it is a live bar, counted and skipped if not."""
        bar = live_bar(value)
        if bar is None:
            with self._lock:
                self.counts.undecodable += 1
            log.debug("undecodable message on %s: %r", self.topic, (value or b"")[:200])
            return
        with self._lock:
            self.counts.updates += 1
            listeners = list(self._listeners)
        if self.store.add(bar):
            for listener in listeners:
                listener(bar)

    def start(self) -> LiveFeed:
        self._thread = threading.Thread(target=self._run, name=f"live-feed {self.topic}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _set_status(self, text: str, ok: bool) -> None:
        with self._lock:
            changed = text != self._status
            self._status, self._ok = text, ok
        if changed:
            (log.info if ok else log.warning)("%s", text)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except Unavailable as exc:
                self._set_status(f"live stream unavailable: {exc}", ok=False)
            except Exception as exc:  # the thread must outlive any failure: it becomes the status line
                log.debug("live feed of %s on %s failed", self.topic, self.bootstrap, exc_info=True)
                detail = type(exc).__name__ + (f": {str(exc).splitlines()[0]}" if str(exc) else "")
                self._set_status(f"live stream unavailable: lost {self.topic} on {self.bootstrap} ({detail})", ok=False)
            self._stop.wait(self.retry_s)

    def _consume(self) -> None:
        from kafka import KafkaConsumer, TopicPartition
        from kafka.errors import KafkaConnectionError, KafkaTimeoutError

        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap.split(","),
                client_id=self.client_id,
                group_id=None,  # no commits: every dashboard process reads on its own
                enable_auto_commit=False,
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
                bootstrap_timeout_ms=KAFKA_TIMEOUT_MS,
                request_timeout_ms=KAFKA_TIMEOUT_MS + 1000,
            )
        except (KafkaTimeoutError, KafkaConnectionError) as exc:
            raise Unavailable(f"no broker answers at {self.bootstrap}") from exc
        try:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                raise Unavailable(f"topic {self.topic} does not exist on {self.bootstrap}")
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            # The end offsets first: a partition with nothing within KEEP_S starts there, and so
            # still reads what is published after this point (seek_to_end resolves only at the next poll).
            ends = consumer.end_offsets(tps, KAFKA_TIMEOUT_MS)
            since = int(time.time() * 1000) - self.keep_ms
            for tp, found in consumer.offsets_for_times({tp: since for tp in tps}, KAFKA_TIMEOUT_MS).items():
                consumer.seek(tp, ends[tp] if found is None else found.offset)
            self._set_status(f"live stream: {self.topic} on {self.bootstrap}", ok=True)
            next_check = 0.0
            while not self._stop.is_set():
                newest: dict[Any, int] = {}
                for tp, records in consumer.poll(timeout_ms=POLL_MS).items():
                    for record in records:
                        self.ingest(record.value)
                    newest[tp] = records[-1].timestamp
                now_ms = int(time.time() * 1000)
                self.store.prune(now_ms)
                if time.monotonic() >= next_check:
                    # Also the liveness probe: a lost broker times out here instead of going unnoticed.
                    ends = consumer.end_offsets(tps, KAFKA_TIMEOUT_MS)
                    next_check = time.monotonic() + CHECK_EVERY_S
                else:
                    ends = {}
                self.catch_up(consumer, newest, ends, now_ms)
        finally:
            consumer.close(autocommit=False, timeout_ms=KAFKA_TIMEOUT_MS)

    def catch_up(self, consumer: Any, newest: dict[Any, int], ends: dict[Any, int], now_ms: int) -> None:
        """Skip each partition that is `behind` to its first record within KEEP_S; count the skipped offsets."""
        for tp in set(newest) | set(ends):
            position = consumer.position(tp)
            end = ends.get(tp)
            if end is None:
                end = consumer.highwater(tp)
            lag = None if end is None else end - position
            if not behind(newest.get(tp), now_ms, lag, self.keep_ms):
                continue
            found = consumer.offsets_for_times({tp: now_ms - self.keep_ms}, KAFKA_TIMEOUT_MS).get(tp)
            target = skip_target(
                position, None if found is None else found.offset, end if end is not None else position
            )
            if target > position:
                consumer.seek(tp, target)
                with self._lock:
                    self.counts.dropped += target - position
                log.warning(
                    "live feed behind on %s partition %d: skipped offsets %d..%d", tp.topic, tp.partition, position,
                    target - 1,
                )  # fmt: skip
