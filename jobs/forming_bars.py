"""Forming 1-second bars in plain Python: the job's bar rules, applied one trade at a time.

Pure logic, no I/O: `jobs/forming_bars_service.py` feeds it Kafka records and publishes what it returns.
The rules are the Spark job's (`jobs/bars.py`, `jobs/trades.py`), with its names:

- records are accepted or refused by `core.wire.judge`, the job's parse rules in Python;
- the watermark is the newest event time seen (trades and heartbeats, every key) minus the
  watermark delay, and like Spark's it moves between batches, not within one;
- a trade at or before the watermark is late and ignored; a trade id already seen for its
  (exchange, symbol) within the watermark is a duplicate and ignored;
- open and close are the first and last trade by (timestamp, trade_id); sums are exact;
- a window is final once the watermark reaches its end: it is emitted once more, final, and
  forgotten.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

from core.schema import BAR_MS, RECORD_TRADE
from core.wire import Accepted


@dataclass(slots=True)
class Window:
    exchange: str
    symbol: str
    start_ms: int
    open_key: tuple[int, int]
    close_key: tuple[int, int]
    open: Decimal
    close: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal = Decimal(0)
    quote_volume: Decimal = Decimal(0)
    buy_volume: Decimal = Decimal(0)
    trade_count: int = 0
    last_trade_ts: int = 0

    def add(self, ts: int, trade_id: int, price: Decimal, quantity: Decimal, is_buyer_maker: bool) -> None:
        key = (ts, trade_id)
        if key < self.open_key:
            self.open_key, self.open = key, price
        if key > self.close_key:
            self.close_key, self.close = key, price
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        with localcontext() as ctx:
            ctx.prec = 80  # exact: DECIMAL(18,8) products and their sums
            self.volume += quantity
            self.quote_volume += price * quantity
            if not is_buyer_maker:
                self.buy_volume += quantity
        self.trade_count += 1
        self.last_trade_ts = max(self.last_trade_ts, ts)

    def bar(self, final: bool) -> dict[str, Any]:
        """The `core.schema.LIVE_BAR` fields but `v` and `emitted_at`."""
        with localcontext() as ctx:
            ctx.prec = 80
            sell = self.volume - self.buy_volume
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "window_start": self.start_ms,
            "window_end": self.start_ms + BAR_MS,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "quote_volume": self.quote_volume,
            # As the job: the two sums as doubles, divided.
            "vwap": float(self.quote_volume) / float(self.volume) if self.volume else None,
            "trade_count": self.trade_count,
            "buy_volume": self.buy_volume,
            "sell_volume": sell,
            "first_trade_id": self.open_key[1],
            "last_trade_id": self.close_key[1],
            "final": final,
            "last_trade_ts": self.last_trade_ts,
            "revision": 0,
        }


@dataclass
class Counts:
    trades: int = 0
    heartbeats: int = 0
    late: int = 0
    duplicates: int = 0
    before_start: int = 0  # trades of windows that began before the consumer's first record
    finals: int = 0


@dataclass
class FormingBars:
    """The open windows of every (exchange, symbol), and the watermark that closes them.

    `start_ms`: windows beginning before it are never emitted, because the consumer started
    reading after some of their trades (a restart reads back `LIVE_BARS_REWIND_S` only).
    """

    watermark_delay_ms: int
    start_ms: int | None = None
    watermark_ms: int | None = None
    max_event_ms: int | None = None
    counts: Counts = field(default_factory=Counts)
    _windows: dict[tuple[str, str, int], Window] = field(default_factory=dict)
    _changed: set[tuple[str, str, int]] = field(default_factory=set)
    _seen: dict[tuple[str, str, int], int] = field(default_factory=dict)  # trade key -> its event time
    _expiry: list[tuple[int, tuple[str, str, int]]] = field(default_factory=list)

    def add(self, record: Accepted) -> None:
        """One accepted record. The watermark does not move until `end_batch`."""
        ts = record.timestamp
        self.max_event_ms = ts if self.max_event_ms is None else max(self.max_event_ms, ts)
        if record.type != RECORD_TRADE:
            self.counts.heartbeats += 1
            return
        counts = self.counts
        if self.watermark_ms is not None and ts <= self.watermark_ms:  # Spark: event time <= watermark
            counts.late += 1
            return
        start = ts - ts % BAR_MS
        if self.start_ms is not None and start < self.start_ms:
            counts.before_start += 1
            return
        exchange, symbol, trade_id = record.exchange, record.symbol, record.trade_id
        assert symbol is not None and trade_id is not None and record.price is not None
        assert record.quantity is not None and record.is_buyer_maker is not None
        trade_key = (exchange, symbol, trade_id)
        if trade_key in self._seen:
            counts.duplicates += 1
            return
        self._seen[trade_key] = ts
        heapq.heappush(self._expiry, (ts + self.watermark_delay_ms, trade_key))
        key = (exchange, symbol, start)
        window = self._windows.get(key)
        if window is None:
            price = record.price
            window = Window(exchange, symbol, start, (ts, trade_id), (ts, trade_id), price, price, price, price)
            self._windows[key] = window
        window.add(ts, trade_id, record.price, record.quantity, record.is_buyer_maker)
        self._changed.add(key)
        counts.trades += 1

    def end_batch(self, event_cap_ms: int | None = None) -> list[dict[str, Any]]:
        """Move the watermark; return the bars that changed (final or not) since the last call.

        A window the watermark has reached is returned once with final=true and then dropped.
        `event_cap_ms` holds the watermark's event time back (to the newest event of a Kafka
        partition that still has unread records: see `jobs/forming_bars_service.py`).
        """
        out: list[dict[str, Any]] = []
        if self.max_event_ms is not None:
            newest = self.max_event_ms if event_cap_ms is None else min(self.max_event_ms, event_cap_ms)
            self.watermark_ms = max(self.watermark_ms or 0, newest - self.watermark_delay_ms)
        watermark = self.watermark_ms
        for key in sorted(self._changed):
            window = self._windows[key]
            if watermark is None or key[2] + BAR_MS > watermark:
                out.append(window.bar(final=False))
        self._changed.clear()
        if watermark is not None:
            closed = sorted(key for key in self._windows if key[2] + BAR_MS <= watermark)
            for key in closed:
                out.append(self._windows.pop(key).bar(final=True))
            self.counts.finals += len(closed)
            # As dropDuplicatesWithinWatermark: a trade id is remembered until the watermark
            # passes its first copy's event time plus the watermark delay.
            while self._expiry and self._expiry[0][0] < watermark:
                _ts, trade_key = heapq.heappop(self._expiry)
                self._seen.pop(trade_key, None)
        return out

    @property
    def open_windows(self) -> int:
        return len(self._windows)
