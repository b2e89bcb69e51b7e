"""A fake exchange on loopback that replays real recorded frames, with scripted faults.

It speaks the subscribe handshake of Binance's combined stream, Coinbase's Exchange
feed, Coinbase Advanced Trade and OKX's v5 public stream, then plays the recorded frames. Each connection
follows the next `Plan` in the list; the frame cursor carries over between
connections, as the market goes on while a client is away:

    ("send", n)      send the next n recorded frames
    ("skip", n)      move the cursor over n frames without sending them (trades missed)
    ("repeat", n)    move the cursor back n frames (a replay after reconnect)
    ("garbage", s)   send the text s
    ("drop",)        close the TCP socket without a close frame
    ("close",)       a clean WebSocket close
    ("silence",)     send nothing more (no close), until the client goes away
    ("quiet", s)     for s seconds send nothing, not even pings, but answer OKX's `ping` text
    ("reject",)      answer the subscribe with the venue's error message

After its plan, a connection sends whatever frames are left and then stays open, with a
ping every 0.3 s ("silence" sends no pings: a dead peer); it answers OKX's `ping` text with `pong`.
Once the client answers a ping sent after the last frame, it has read every frame: `caught_up` is set.
It also serves the venues' REST trade history for backfill, from the same frames; with a
`rest_hold` event, each REST answer waits until the test sets it (a slow REST API, at a moment
the test chooses; the ingestor's client gives up after 10 s).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

Plan = Sequence[tuple[Any, ...]]


@dataclass
class RestTrade:
    symbol: str  # the venue's spelling: BTCUSDT, BTC-USD
    row: dict[str, Any]  # as the venue's REST API returns it
    trade_id: int


@dataclass
class FakeExchange:
    protocol: str  # "binance" | "coinbase" | "coinbase-advanced" | "okx"
    frames: list[str]
    plans: list[Plan] = field(default_factory=list)
    rest_trades: list[RestTrade] = field(default_factory=list)
    rest_hold: threading.Event | None = None  # REST answers wait until it is set
    host: str = "127.0.0.1"
    subscriptions: list[list[dict[str, Any]]] = field(default_factory=list)  # per connection
    rest_requests: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # every frame text sent, in order
    cursor: int = 0
    _server: Server | None = None
    _thread: threading.Thread | None = None
    _connections: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _sequence: int = 0
    keepalives: int = 0  # OKX `ping` texts received
    quiet_over: threading.Event = field(default_factory=threading.Event)
    caught_up: threading.Event = field(default_factory=threading.Event)  # the client read every frame

    # lifecycle ---------------------------------------------------------------

    def start(self) -> FakeExchange:
        self._server = serve(
            self._handle, self.host, 0, process_request=self._rest, compression=None, ping_interval=None
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.socket.getsockname()[1])

    @property
    def ws_url(self) -> str:
        path = {"binance": "/stream", "okx": "/ws/v5/public"}.get(self.protocol, "")
        return f"ws://{self.host}:{self.port}{path}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        return self._connections

    # WebSocket side ------------------------------------------------------------

    def _handle(self, ws: ServerConnection) -> None:
        index = self._connections
        self._connections += 1
        plan = list(self.plans[index]) if index < len(self.plans) else []
        received: list[dict[str, Any]] = []
        self.subscriptions.append(received)
        self._sequence = 0
        try:
            if not self._handshake(ws, received, reject=("reject",) in plan):
                return
            for step in plan:
                if not self._step(ws, step):
                    return
            self._send_frames(ws, len(self.frames) - self.cursor)
            pong: threading.Event | None = None
            while not self._stop.is_set():  # stay open, pinging as Binance does; the client decides
                if pong is not None and pong.is_set():
                    self.caught_up.set()  # it answered a ping sent after the last frame
                pong = ws.ping()
                try:
                    message = ws.recv(timeout=0.3)
                except TimeoutError:
                    continue
                if message == "ping" and self.protocol == "okx":
                    self.keepalives += 1
                    ws.send("pong")
        except ConnectionClosed:
            return

    def _handshake(self, ws: ServerConnection, received: list[dict[str, Any]], *, reject: bool) -> bool:
        expected = 2 if self.protocol == "coinbase-advanced" else 1
        for _ in range(expected):
            message = json.loads(ws.recv(timeout=10))
            received.append(message)
            if reject:
                ws.send(json.dumps(self._rejection(message)))
                return False
            if self.protocol == "okx":  # one confirmation per argument
                for arg in message["args"]:
                    ws.send(json.dumps({"event": "subscribe", "arg": arg, "connId": "a4d3ae55"}))
                continue
            reply = self._confirmation(message)
            if reply is not None:
                ws.send(json.dumps(reply))
        return True

    def _confirmation(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if self.protocol == "binance":
            return {"result": None, "id": message["id"]}
        if self.protocol == "coinbase":
            return {
                "type": "subscriptions",
                "channels": [{"name": c, "product_ids": message["product_ids"]} for c in message["channels"]],
            }
        self._sequence += 1
        return {
            "channel": "subscriptions",
            "client_id": "",
            "timestamp": "2026-08-09T21:05:48.228846629Z",
            "sequence_num": self._sequence - 1,
            "events": [{"subscriptions": {message["channel"]: message["product_ids"]}}],
        }

    def _rejection(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.protocol == "binance":
            return {"error": {"code": 2, "msg": "Invalid request: unknown symbol"}, "id": message.get("id")}
        if self.protocol == "okx":
            return {"event": "error", "code": "60018", "msg": "Wrong URL or channel:trades,instId:NOPE doesn't exist"}
        return {"type": "error", "message": "Failed to subscribe", "reason": "NOPE-USD is not a valid product"}

    def _step(self, ws: ServerConnection, step: tuple[Any, ...]) -> bool:
        action = step[0]
        if action == "send":
            self._send_frames(ws, step[1])
        elif action == "skip":
            skipped = min(len(self.frames), self.cursor + step[1]) - self.cursor
            self.cursor += skipped
            self._sequence += skipped  # lost in transit: their sequence numbers were used
        elif action == "repeat":
            self.cursor = max(0, self.cursor - step[1])
        elif action == "garbage":
            ws.send(step[1])
        elif action == "drop":
            ws.socket.close()  # no close frame: the client sees a reset or EOF
            return False
        elif action == "close":
            ws.close()
            return False
        elif action == "silence":
            self._stop.wait(3600)
            return False
        elif action == "reject":
            pass
        elif action == "quiet":
            end = time.monotonic() + step[1]
            while time.monotonic() < end:
                try:
                    message = ws.recv(timeout=0.05)
                except TimeoutError:
                    continue
                if message == "ping":
                    self.keepalives += 1
                    ws.send("pong")
            self.quiet_over.set()
        else:
            raise ValueError(f"unknown step {step!r}")
        return True

    def _send_frames(self, ws: ServerConnection, count: int) -> None:
        end = min(len(self.frames), self.cursor + count)
        while self.cursor < end:
            text = self.frames[self.cursor]
            if self.protocol == "coinbase-advanced":
                text = self._renumbered(text)
            ws.send(text)
            self.sent.append(text)
            self.cursor += 1

    def _renumbered(self, text: str) -> str:
        """Advanced Trade numbers each connection's messages 0, 1, 2, ... as a real server would."""
        frame = json.loads(text)
        frame["sequence_num"] = self._sequence
        self._sequence += 1
        return json.dumps(frame)

    # REST side ---------------------------------------------------------------------

    def _rest(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urllib.parse.urlsplit(request.path)
        if url.path in ("/", "/stream", "/ws/v5/public"):
            return None  # a WebSocket handshake
        self.rest_requests.append(request.path)
        while self.rest_hold is not None and not self.rest_hold.wait(0.05) and not self._stop.is_set():
            pass
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        body: Any
        if url.path == "/api/v3/historicalTrades":
            rows = [t for t in self.rest_trades if t.symbol == query["symbol"] and t.trade_id >= int(query["fromId"])]
            rows.sort(key=lambda t: t.trade_id)
            body = [t.row for t in rows[: int(query.get("limit", 500))]]
        elif url.path.startswith("/products/") and url.path.endswith("/trades"):
            product = urllib.parse.unquote(url.path.split("/")[2])
            after = int(query.get("after", 2**62))
            rows = [t for t in self.rest_trades if t.symbol == product and t.trade_id < after]
            rows.sort(key=lambda t: -t.trade_id)
            body = [t.row for t in rows[: int(query.get("limit", 100))]]
        elif url.path == "/api/v5/market/history-trades":  # {"code": "0", "data": [...]}, newest first
            after = int(query.get("after", 2**62))
            rows = [t for t in self.rest_trades if t.symbol == query["instId"] and t.trade_id < after]
            rows.sort(key=lambda t: -t.trade_id)
            body = {"code": "0", "msg": "", "data": [t.row for t in rows[: min(100, int(query.get("limit", 100)))]]}
        else:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        response = connection.respond(HTTPStatus.OK, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response
