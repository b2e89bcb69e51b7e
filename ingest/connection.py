"""A venue's WebSocket connection kept alive for weeks: subscribe, read, reconnect.

- Exponential backoff with full jitter between attempts, reset once a
  subscription is confirmed; `RetriesExhausted` when `ws_max_retries` runs out.
- Subscribe messages are spaced to stay under the venues' message rate limits,
  and the subscription must be confirmed within `ws_subscribe_timeout_s`.
- A watchdog reconnects a socket that has been silent for `ws_silence_timeout_s`
  (server pings count as life: websocket-client answers them inside `recv`).
- A venue that wants client keepalives (OKX closes a connection quiet for 30 s) gets its
  `keepalive` text after `ws_keepalive_after_s` without a frame.
- Connections are renewed before `ws_max_connection_age_s` (Binance closes at 24 h).
- Reads time out every `_TICK_S`, so heartbeats, health and status keep their
  rhythm, and a stop request is seen within a second.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable

import websocket

from core.settings import Settings
from ingest.pipeline import FeedPipeline
from ingest.venues import SubscriptionRejected, Venue

log = logging.getLogger(__name__)

_TICK_S = 0.25
SUBSCRIBE_SPACING_S = 0.25  # Binance allows 5 messages/s per connection


class RetriesExhausted(RuntimeError):
    pass


class _Disconnect(Exception):
    """This connection is over; the reason says why."""


def backoff_delay(attempt: int, initial: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, initial * 2**(attempt-1))]."""
    return rand() * min(cap, initial * 2 ** max(attempt - 1, 0))


class FeedConnection:
    def __init__(
        self,
        venue: Venue,
        symbols: list[str],
        pipeline: FeedPipeline,
        settings: Settings,
        stop: threading.Event,
        *,
        url: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.venue = venue
        self.symbols = symbols
        self.pipeline = pipeline
        self.settings = settings
        self.stop = stop
        self.url = url or venue.url(symbols)
        self.monotonic = monotonic
        self.wall_ms = wall_ms
        self.connections = 0

    def run(self) -> None:
        """Until `stop` is set: connect, subscribe, read; reconnect on any failure."""
        attempt = 0
        while not self.stop.is_set():
            ws: websocket.WebSocket | None = None
            subscribed = False
            try:
                ws = websocket.create_connection(self.url, timeout=self.settings.ws.subscribe_timeout_s)
                self.connections += 1
                self._subscribe(ws)
                subscribed = True
                attempt = 0
                self.pipeline.on_connected()
                reason = self._read(ws)
            except SubscriptionRejected:
                raise
            except _Disconnect as exc:
                reason = str(exc)
            except (websocket.WebSocketException, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                if ws is not None:
                    _close_quietly(ws)
            stopping = self.stop.is_set()
            self.pipeline.on_disconnected(reason, reconnecting=not stopping)
            if stopping:
                break
            attempt += 1
            if self.settings.ws.max_retries is not None and attempt > self.settings.ws.max_retries:
                raise RetriesExhausted(f"{self.venue.exchange}: gave up after {attempt - 1} retries; last: {reason}")
            # A connection that was up and ended (server close, age limit) reconnects at once, jittered.
            delay = backoff_delay(attempt, self.settings.ws.backoff_initial_s, self.settings.ws.backoff_max_s)
            if subscribed:
                delay = min(delay, self.settings.ws.backoff_initial_s)
            log.info(
                "reconnecting exchange=%s in %.2fs attempt=%d after: %s", self.venue.exchange, delay, attempt, reason
            )
            self._idle(delay)

    def _idle(self, seconds: float) -> None:
        """Wait, still ticking the pipeline (status lines, health records)."""
        end = self.monotonic() + seconds
        while not self.stop.is_set():
            left = end - self.monotonic()
            if left <= 0:
                return
            self.pipeline.tick()
            self.stop.wait(min(left, _TICK_S))

    def _subscribe(self, ws: websocket.WebSocket) -> None:
        for i, message in enumerate(self.venue.subscribe_messages(self.symbols)):
            if i:
                time.sleep(SUBSCRIBE_SPACING_S)
            ws.send(message)
        deadline = self.monotonic() + self.settings.ws.subscribe_timeout_s
        ws.settimeout(_TICK_S)
        while self.monotonic() < deadline:
            text = self._receive(ws)
            if not text:
                if self.stop.is_set():
                    raise _Disconnect("stopped")
                continue
            decoded = self.pipeline.on_frame(text, self.wall_ms())
            if decoded is not None and decoded.subscribed:
                return
        raise _Disconnect(f"subscription not confirmed within {self.settings.ws.subscribe_timeout_s}s")

    def _read(self, ws: websocket.WebSocket) -> str:
        opened = last_frame = last_keepalive = self.monotonic()
        while not self.stop.is_set():
            text = self._receive(ws)
            now = self.monotonic()
            if text is not None:
                last_frame = now
            elif self.venue.keepalive and now - max(last_frame, last_keepalive) >= self.settings.ws.keepalive_after_s:
                ws.send(self.venue.keepalive)
                last_keepalive = now
                self.pipeline.on_alive(self.wall_ms())
            if text:
                self.pipeline.on_frame(text, self.wall_ms())
            self.pipeline.tick()
            if now - last_frame > self.settings.ws.silence_timeout_s:
                return f"silent for {now - last_frame:.1f}s (watchdog)"
            if now - opened > self.settings.ws.max_connection_age_s:
                return "connection age limit; renewing"
        return "stopped"

    def _receive(self, ws: websocket.WebSocket) -> str | None:
        """The next text frame; "" for a ping or pong (life, no data); None when the read timed out."""
        try:
            opcode, data = ws.recv_data(control_frame=True)  # pings are answered inside
        except websocket.WebSocketTimeoutException:
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise _Disconnect("closed by the server")
        if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            return ""  # alive, nothing to decode
        if isinstance(data, bytes):
            return data.decode("utf-8", errors="replace")
        return str(data)


def _close_quietly(ws: websocket.WebSocket) -> None:
    with contextlib.suppress(websocket.WebSocketException, OSError):
        ws.close(timeout=1)
