"""`WS /v1/stream/bars`: live 1 s bars, provisional updates then the final bar, pushed as they come.

One `LiveFeed` (`core.live_tail`) tails `crypto.bars.live` on its own thread. Each update it
keeps is encoded once and handed to the event loop, which puts it in the queue of every
client subscribed to that market; each client has its own sender task, so none waits for
another. A client is slow, and is closed with code 1008 and the reason, when more than
`limit` updates wait for it and either it has taken none for STALL_S or more than
HARD_FACTOR x `limit` wait (a burst from the topic, such as a catch-up, is not slowness by
itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket

from api.encoding import dumps, from_ms
from core.live_tail import LiveFeed

log = logging.getLogger(__name__)

SLOW_CLOSE_CODE = 1008  # policy violation: the client did not keep up
BAD_REQUEST_CODE = 1008
CLOSE_WAIT_S = 1.0  # a slow client's close frame may never get through: don't wait longer
STALL_S = 2.0
HARD_FACTOR = 10
WATCH_EVERY_S = 0.5
_MARKET = re.compile(r"^(?:([a-z0-9]{1,32}):)?([A-Za-z0-9][A-Za-z0-9-]{0,31})$")
MAX_MARKETS = 100


class BadSubscription(ValueError):
    pass


def parse_markets(text: str) -> frozenset[tuple[str | None, str]]:
    """'binance:BTCUSDT,ETHUSDT' -> {('binance', 'BTCUSDT'), (None, 'ETHUSDT')}: None is any exchange."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise BadSubscription("symbols= names no market: give e.g. binance:BTCUSDT,ETHUSDT")
    if len(items) > MAX_MARKETS:
        raise BadSubscription(f"at most {MAX_MARKETS} markets per connection, got {len(items)}")
    out = set()
    for item in items:
        m = _MARKET.match(item)
        if not m:
            raise BadSubscription(f"{item[:40]!r} is not a market: EXCHANGE:SYMBOL or SYMBOL (letters, digits, '-')")
        out.add((m[1], m[2]))
    return frozenset(out)


def bar_message(bar: dict[str, Any]) -> str:
    """A live bar as the stream sends it: decimals as strings, window times ISO, the rest as on the topic."""
    message: dict[str, Any] = {"type": "bar"}
    for name, value in bar.items():
        if name == "v":
            continue
        message[name] = from_ms(value) if name in ("window_start", "window_end") else value
    return dumps(message).decode()  # text once, for every client's send_text


@dataclass(eq=False)
class Subscriber:
    markets: frozenset[tuple[str | None, str]]
    limit: int
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    slow: asyncio.Event = field(default_factory=asyncio.Event)
    last_sent: float = field(default_factory=time.monotonic)  # when a send last completed

    def wants(self, exchange: str, symbol: str) -> bool:
        return (exchange, symbol) in self.markets or (None, symbol) in self.markets

    def behind(self, now: float) -> bool:
        waiting = self.queue.qsize()
        if waiting <= self.limit:
            return False
        return waiting > HARD_FACTOR * self.limit or now - self.last_sent > STALL_S


@dataclass
class StreamCounts:
    connected: int = 0
    dropped_slow: int = 0
    sent: int = 0


class Broadcaster:
    """Fans the feed's updates out to subscribers; lives on the event loop's thread."""

    def __init__(self, feed: LiveFeed, limit: int) -> None:
        self.feed, self.limit = feed, limit
        self.counts = StreamCounts()
        self._subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: asyncio.Task[None] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start receiving the feed's updates on `loop` (call once, from the loop)."""
        self._loop = loop
        self.feed.add_listener(self._from_feed)
        self._watchdog = loop.create_task(self._watch())

    async def _watch(self) -> None:
        """A stuck client gets no new updates to trip over: look at every client periodically."""
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            now = time.monotonic()
            for sub in list(self._subscribers):
                if not sub.slow.is_set() and sub.behind(now):
                    self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        sub.slow.set()
        self.counts.dropped_slow += 1

    def _from_feed(self, bar: dict[str, Any]) -> None:  # on the feed's thread
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.publish, bar)

    def publish(self, bar: dict[str, Any]) -> None:
        message: str | None = None
        for sub in list(self._subscribers):
            if sub.slow.is_set() or not sub.wants(bar["exchange"], bar["symbol"]):
                continue
            message = message or bar_message(bar)
            sub.queue.put_nowait(message)
            if sub.behind(time.monotonic()):
                self._drop(sub)

    def subscribe(self, markets: frozenset[tuple[str | None, str]]) -> Subscriber:
        sub = Subscriber(markets, self.limit)
        self._subscribers.add(sub)
        self.counts.connected = len(self._subscribers)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)
        self.counts.connected = len(self._subscribers)


async def _pump(ws: WebSocket, sub: Subscriber, counts: StreamCounts) -> None:
    while True:
        message = await sub.queue.get()
        await ws.send_text(message)
        sub.last_sent = time.monotonic()
        counts.sent += 1


async def _until_closed(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it closes."""
    while True:
        event = await ws.receive()
        if event["type"] == "websocket.disconnect":
            return


SERVER_SEND = "api.server_send"  # scope key: the server's own send callable (`RawSend`)


class RawSend:
    """ASGI middleware: keep the server's send callable in the scope, so `abort` can find its transport."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


def abort(ws: WebSocket) -> bool:
    """Cut a stuck client's connection at once (its unread data is discarded); True if done.

    Closing a transport waits until its buffer drains, which a client that does not read
    never lets happen. uvicorn's send is a method of its protocol, which holds the transport.
    """
    protocol = getattr(ws.scope.get(SERVER_SEND), "__self__", None)
    transport = getattr(protocol, "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        log.warning("could not abort a stuck stream client: no transport under %r", protocol)
        return False
    transport.abort()
    return True


async def serve(ws: WebSocket, broadcaster: Broadcaster, symbols: str) -> None:
    """One client: accept, confirm the subscription, then push until it leaves or falls behind."""
    await ws.accept()
    try:
        markets = parse_markets(symbols)
    except BadSubscription as exc:
        await ws.close(BAD_REQUEST_CODE, str(exc)[:120])
        return
    sub = broadcaster.subscribe(markets)
    tasks: list[asyncio.Task[None]] = []
    try:
        listed = sorted(f"{e}:{s}" if e else s for e, s in markets)
        hello = {"type": "subscribed", "symbols": listed, "live_stream": broadcaster.feed.status}
        await ws.send_text(dumps(hello).decode())
        tasks = [
            asyncio.create_task(_pump(ws, sub, broadcaster.counts)),
            asyncio.create_task(_until_closed(ws)),
            asyncio.create_task(sub.slow.wait()),  # type: ignore[arg-type]
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for task in done:  # a send to a client that left fails: that is its way of leaving
            if not task.cancelled() and task.exception() is not None:
                log.debug("stream client gone: %r", task.exception())
        if sub.slow.is_set():
            reason = f"too slow: {sub.queue.qsize()} updates unread (API_STREAM_QUEUE={sub.limit})"
            log.info("stream client dropped: %s", reason)
            try:
                await asyncio.wait_for(ws.close(SLOW_CLOSE_CODE, reason), CLOSE_WAIT_S)
            except Exception:  # the close frame is stuck behind what the client did not read
                abort(ws)
    finally:
        for task in tasks:
            task.cancel()
        broadcaster.unsubscribe(sub)
