"""One venue's received frames -> trades, dead letters and feed events on Kafka.

The connection (`ingest.connection`) calls `on_frame` for every text frame,
`tick` about once a second, and `on_connected` / `on_disconnected` around each
connection. Everything here is single-threaded per venue and does no network
I/O of its own except through the publisher and the optional backfiller.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from core.settings import Settings
from core.trade import Trade, heartbeat
from ingest import side_records
from ingest.backfill import Backfiller, BackfillFailed
from ingest.errors import BadMessage
from ingest.recorder import Recorder
from ingest.tracking import Gap, TradeIdTracker
from ingest.venues import Decoded, SubscriptionRejected, Venue

log = logging.getLogger(__name__)

BACKFILL_MAX_IDS = 10_000  # a bigger gap is reported, not fetched: REST weight limits


class Sink(Protocol):
    def send(self, topic: str, key: bytes | None, value: bytes) -> None: ...

    @property
    def pending(self) -> int: ...


@dataclass
class Counters:
    frames: int = 0
    trades: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    gaps: int = 0
    missing_ids: int = 0
    backfilled: int = 0
    sequence_gaps: int = 0
    reconnects: int = 0
    heartbeats: int = 0
    feed_events: int = 0


def percentile(sorted_values: list[int], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not sorted_values:
        return None
    rank = min(max(1, math.ceil(fraction * len(sorted_values))), len(sorted_values))
    return float(sorted_values[rank - 1])


class FeedPipeline:
    def __init__(
        self,
        venue: Venue,
        symbols: list[str],
        sink: Sink,
        settings: Settings,
        *,
        recorder: Recorder | None = None,
        backfiller: Backfiller | None = None,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.venue = venue
        self.exchange = venue.exchange
        self.sink = sink
        self.settings = settings
        self.recorder = recorder
        self.backfiller = backfiller
        self.now_ms = now_ms
        self.source = f"{self.exchange}:ws"
        # canonical symbol -> the venue's own spelling, for REST calls
        self.exchange_symbols = {venue.canonical(s): s for s in symbols}
        self.tracker = TradeIdTracker(settings.ingest.dedup_max_open_gaps)
        self.counters = Counters()
        self._last_trade_ts: dict[str, int] = {}
        self._connected = False
        self._down_since: int | None = None
        self._down_reason = ""
        self._last_frame_ms: int | None = None
        self._last_alive_ms: int | None = None
        self._clock_offset: int | None = None  # exchange time - receipt time, latest frame
        self._last_heartbeat_ts = 0
        self._next_heartbeat = 0.0
        self._next_health = now_ms() + settings.ingest.health_interval_s * 1000
        self._next_status = now_ms() + settings.ingest.status_interval_s * 1000
        self._health_frames = 0
        self._health_lags: list[int] = []
        self._health_since = now_ms()
        self._sequence: int | None = None

    # connection lifecycle ------------------------------------------------

    def on_connected(self) -> None:
        now = self.now_ms()
        self._connected = True
        self._sequence = None  # sequence numbers count per connection
        if self._down_since is not None:
            for symbol in sorted(self.exchange_symbols):
                self._feed_event(
                    side_records.disconnect(
                        self.exchange, symbol, self.tracker.high(symbol), self._down_since, now, self._down_reason, now
                    ),
                    symbol,
                )
            self._down_since = None
        log.info("subscribed exchange=%s symbols=%s", self.exchange, ",".join(sorted(self.exchange_symbols)))

    def on_disconnected(self, reason: str, *, reconnecting: bool = True) -> None:
        if self._connected or self._down_since is None:
            self._down_since = self._last_frame_ms or self.now_ms()
            self._down_reason = reason
        self._connected = False
        if reconnecting:
            self.counters.reconnects += 1
        log.warning("disconnected exchange=%s reason=%s", self.exchange, reason)

    # frames -----------------------------------------------------------------

    def on_alive(self, now: int) -> None:
        """Any frame, a ping included: the venue is there, even if its market is quiet."""
        self._last_alive_ms = now

    def on_frame(self, text: str, ingest_ts: int) -> Decoded | None:
        """Handle one received frame; the Decoded frame, or None for a dead letter."""
        self.counters.frames += 1
        self._health_frames += 1
        self._last_frame_ms = self._last_alive_ms = ingest_ts
        if self.recorder is not None:
            self.recorder.write(self.exchange, ingest_ts, text)
        try:
            decoded = self.venue.decode(text, ingest_ts)
        except BadMessage as exc:
            self.dead_letter(text, exc.reason, exc.detail, ingest_ts)
            if isinstance(exc, SubscriptionRejected):
                raise  # retrying cannot help: the feed ends, with this reason
            return None
        if decoded.exchange_ts is not None:
            self._clock_offset = decoded.exchange_ts - ingest_ts
        if decoded.sequence is not None:
            self._check_sequence(decoded.sequence, ingest_ts)
        # Advanced Trade snapshots list trades newest first; gaps are judged in id order.
        for trade in sorted(decoded.trades, key=lambda t: (t.symbol, t.trade_id)):
            self.on_trade(trade, first_id=decoded.first_ids.get((trade.symbol, trade.trade_id)))
        for symbol, last_id in decoded.last_trade_ids.items():
            gap = self.tracker.expect(symbol, last_id)
            if gap is not None:
                self._on_gap(symbol, gap, self._last_trade_ts.get(symbol), decoded.exchange_ts)
        return decoded

    def on_trade(self, trade: Trade, *, backfilled: bool = False, first_id: int | None = None) -> None:
        seen = self.tracker.observe(trade.symbol, trade.trade_id, first_id)
        if seen.duplicate:
            self.counters.duplicates += 1
            return
        if seen.gap is not None:
            self._on_gap(trade.symbol, seen.gap, self._last_trade_ts.get(trade.symbol), trade.timestamp)
        self._last_trade_ts[trade.symbol] = max(trade.timestamp, self._last_trade_ts.get(trade.symbol, 0))
        if trade.ingest_ts is not None and not backfilled:
            self._health_lags.append(trade.ingest_ts - trade.timestamp)
        self.sink.send(self.settings.kafka.topic, trade.key, trade.to_json())
        self.counters.trades += 1
        if backfilled:
            self.counters.backfilled += 1

    def dead_letter(self, raw: str, reason: str, detail: str, ingest_ts: int | None) -> None:
        record = side_records.dead_letter(self.source, reason, detail, raw, ingest_ts)
        self.sink.send(self.settings.kafka.dlq_topic, self.source.encode(), side_records.to_json(record))
        self.counters.dead_letters += 1
        log.warning("dead letter source=%s reason=%s detail=%.200s raw=%.200s", self.source, reason, detail, raw)

    def _check_sequence(self, sequence: int, now: int) -> None:
        previous, self._sequence = self._sequence, sequence
        if previous is not None and sequence > previous + 1:
            self.counters.sequence_gaps += 1
            self._feed_event(side_records.sequence_gap(self.exchange, previous + 1, sequence - 1, now), None)
            log.warning("sequence gap exchange=%s missing=%d..%d", self.exchange, previous + 1, sequence - 1)

    def _on_gap(self, symbol: str, gap: Gap, before_ts: int | None, after_ts: int | None) -> None:
        self.counters.gaps += 1
        self.counters.missing_ids += gap.count
        now = self.now_ms()
        log.warning(
            "gap exchange=%s symbol=%s missing=%d..%d (%d trades)",
            self.exchange,
            symbol,
            gap.first,
            gap.last,
            gap.count,
        )
        self._feed_event(side_records.gap(self.exchange, symbol, gap.first, gap.last, before_ts, after_ts, now), symbol)
        if self.backfiller is not None:
            self._backfill(symbol, gap)

    def _backfill(self, symbol: str, gap: Gap) -> None:
        assert self.backfiller is not None
        wanted = Gap(gap.first, min(gap.last, gap.first + BACKFILL_MAX_IDS - 1))
        exchange_symbol = self.exchange_symbols.get(symbol, symbol)
        try:
            trades = self.backfiller.fetch(exchange_symbol, wanted)
        except BackfillFailed as exc:
            log.error(
                "backfill failed exchange=%s symbol=%s ids=%d..%d: %s",
                self.exchange,
                symbol,
                *asdict(gap).values(),
                exc,
            )
            self._feed_event(
                side_records.backfill(self.exchange, symbol, gap.first, gap.last, 0, str(exc), self.now_ms()), symbol
            )
            return
        before = self.counters.backfilled
        for trade in trades:
            self.on_trade(trade, backfilled=True)
        fetched = self.counters.backfilled - before
        detail = "complete" if fetched == gap.count else f"{gap.count - fetched} of {gap.count} ids not returned"
        log.info(
            "backfill exchange=%s symbol=%s ids=%d..%d fetched=%d", self.exchange, symbol, gap.first, gap.last, fetched
        )
        self._feed_event(
            side_records.backfill(self.exchange, symbol, gap.first, gap.last, fetched, detail, self.now_ms()), symbol
        )

    def _feed_event(self, record: dict[str, object], symbol: str | None) -> None:
        key = f"{self.exchange}:{symbol or ''}".encode()
        self.sink.send(self.settings.kafka.feed_events_topic, key, side_records.to_json(record))
        self.counters.feed_events += 1

    # periodic work ------------------------------------------------------------

    def tick(self, now: int | None = None) -> None:
        now = self.now_ms() if now is None else now
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.settings.ingest.heartbeat_interval_s * 1000
            self._heartbeat(now)
        if now >= self._next_health:
            self._health(now)
        if now >= self._next_status:
            self._next_status = now + self.settings.ingest.status_interval_s * 1000
            log.info("status exchange=%s %s", self.exchange, self.status_line())

    def exchange_now(self, now: int) -> int | None:
        """Our estimate of the venue's clock: now, shifted by the latest frame's lag."""
        if self._clock_offset is None:
            return None
        return now + self._clock_offset

    def _heartbeat(self, now: int) -> None:
        # Only while the venue is there (a quiet market's pings count): a heartbeat during
        # an outage would close bars that a reconnect or a backfill may still fill.
        alive = self._last_alive_ms
        fresh = alive is not None and now - alive <= self.settings.ws.silence_timeout_s * 1000
        estimate = self.exchange_now(now)
        if not (self._connected and fresh) or estimate is None:
            return
        timestamp = max(self._last_heartbeat_ts, estimate)
        self._last_heartbeat_ts = timestamp
        record = heartbeat(self.exchange, timestamp, now)
        self.sink.send(self.settings.kafka.topic, f"{self.exchange}:heartbeat".encode(), side_records.to_json(record))
        self.counters.heartbeats += 1

    def _health(self, now: int) -> None:
        elapsed_s = max((now - self._health_since) / 1000, 1e-3)
        lags = sorted(self._health_lags)
        record = side_records.health(
            self.exchange,
            percentile(lags, 0.5),
            percentile(lags, 0.99),
            self._health_frames / elapsed_s,
            self.counters.reconnects,
            now,
        )
        self._feed_event(record, None)
        self._health_frames, self._health_lags, self._health_since = 0, [], now
        self._next_health = now + self.settings.ingest.health_interval_s * 1000

    def status_line(self) -> str:
        c = self.counters
        return (
            f"frames={c.frames} trades={c.trades} dlq={c.dead_letters} dups={c.duplicates} "
            f"reconnects={c.reconnects} gaps={c.gaps} missing={c.missing_ids} backfilled={c.backfilled} "
            f"heartbeats={c.heartbeats} producer_pending={self.sink.pending}"
        )
