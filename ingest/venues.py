"""What each exchange's WebSocket protocol needs: URL, subscribe messages, frame decoding.

A venue turns one received frame into a `Decoded`: the trades it carries and the
protocol facts the connection and the gap tracker need (subscription confirmed,
exchange time, feed sequence number, the venue's last trade id). Transport,
retries and publishing live elsewhere (`ingest.connection`, `ingest.pipeline`).

Protocols, as documented by the venues:
- Binance spot combined stream (`/stream`): `{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}`
  is confirmed by `{"result":null,"id":1}`. At most 5 messages/s per connection and 1024
  streams per connection. The server pings every 20 s and closes a connection after 24 h.
- Coinbase Exchange feed: `{"type":"subscribe","product_ids":[...],"channels":["matches","heartbeat"]}`
  within 5 s of connecting, confirmed by `{"type":"subscriptions",...}`; the `heartbeat` channel
  sends each product's `last_trade_id` every second.
- Coinbase Advanced Trade: one channel per subscribe message (`market_trades`, `heartbeats`),
  confirmed on the `subscriptions` channel; `sequence_num` counts every message on the connection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ingest import binance, coinbase
from ingest.errors import BadMessage
from ingest.normalize import COINBASE_NON_TRADE_CHANNELS, COINBASE_NON_TRADE_TYPES, json_object
from lake.settings import Settings
from lake.trade import Trade, mapped


class SubscriptionRejected(RuntimeError):
    """The venue refused our subscription (unknown symbol, bad request): retrying cannot help."""


@dataclass
class Decoded:
    trades: list[Trade] = field(default_factory=list)
    exchange_ts: int | None = None  # exchange time the frame carries, epoch ms
    sequence: int | None = None  # the connection's message sequence, where the venue has one
    last_trade_ids: dict[str, int] = field(default_factory=dict)  # symbol -> venue's last trade id
    subscribed: bool = False  # this frame confirms our subscription


class Venue(Protocol):
    exchange: str

    def url(self, symbols: list[str]) -> str: ...

    def canonical(self, symbol: str) -> str: ...

    def subscribe_messages(self, symbols: list[str]) -> list[str]: ...

    def decode(self, text: str, ingest_ts: int | None) -> Decoded: ...


class _Venue:
    def __init__(self, base_url: str, symbol_map: Mapping[str, str] | None = None) -> None:
        self.base_url = base_url
        self.symbol_map = dict(symbol_map or {})

    def url(self, symbols: list[str]) -> str:
        return self.base_url


class _Coinbase(_Venue):
    exchange = coinbase.EXCHANGE

    def canonical(self, symbol: str) -> str:
        return coinbase.canonical_symbol(symbol, self.symbol_map)


class Binance(_Venue):
    exchange = binance.EXCHANGE
    max_streams_per_message = 200

    def __init__(self, base_url: str, symbol_map: Mapping[str, str] | None = None) -> None:
        super().__init__(base_url, symbol_map)
        self._next_id = 1
        self._pending: set[int] = set()

    def canonical(self, symbol: str) -> str:
        return self.symbol_map.get(symbol.upper(), symbol.upper())

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        streams = [f"{s.lower()}@trade" for s in symbols]
        messages = []
        self._pending.clear()
        for start in range(0, len(streams), self.max_streams_per_message):
            request_id = self._next_id
            self._next_id += 1
            self._pending.add(request_id)
            chunk = streams[start : start + self.max_streams_per_message]
            messages.append(json.dumps({"method": "SUBSCRIBE", "params": chunk, "id": request_id}))
        return messages

    def decode(self, text: str, ingest_ts: int | None) -> Decoded:
        frame = json_object(text)
        if "id" in frame and ("result" in frame or "error" in frame):
            if "error" in frame:
                raise SubscriptionRejected(f"binance refused request {frame.get('id')}: {frame['error']}")
            self._pending.discard(frame["id"])
            return Decoded(subscribed=not self._pending)
        stream = frame.get("stream")
        if not isinstance(stream, str):
            raise BadMessage("unknown_message_type", text[:80])
        data = frame.get("data")
        if not isinstance(data, dict):
            raise BadMessage("missing_data")
        event_time = data.get("E")
        exchange_ts = event_time if isinstance(event_time, int) and not isinstance(event_time, bool) else None
        if not stream.endswith("@trade"):
            return Decoded(exchange_ts=exchange_ts)  # a stream we did not ask for
        trade = binance.parse_trade(data, ingest_ts)
        trade = mapped(trade, self.symbol_map)
        return Decoded(trades=[trade], exchange_ts=exchange_ts or trade.timestamp)


class CoinbaseExchange(_Coinbase):
    """The Exchange feed's `matches` channel, with `heartbeat` for last_trade_id and liveness."""

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [json.dumps({"type": "subscribe", "product_ids": symbols, "channels": ["matches", "heartbeat"]})]

    def decode(self, text: str, ingest_ts: int | None) -> Decoded:
        frame = json_object(text)
        kind = frame.get("type")
        if kind in ("match", "last_match"):
            trade = coinbase.parse_match(frame, ingest_ts, self.symbol_map)
            return Decoded(trades=[trade], exchange_ts=trade.timestamp)
        if kind == "heartbeat":
            product = frame.get("product_id")
            last = frame.get("last_trade_id")
            decoded = Decoded(exchange_ts=coinbase.iso_to_ms(frame.get("time")))
            if isinstance(product, str) and isinstance(last, int) and last > 0:
                decoded.last_trade_ids[coinbase.canonical_symbol(product, self.symbol_map)] = last
            return decoded
        if kind == "subscriptions":
            return Decoded(subscribed=True)
        if kind == "error":
            raise SubscriptionRejected(f"coinbase: {frame.get('message')}: {frame.get('reason')}")
        if kind in COINBASE_NON_TRADE_TYPES:
            return Decoded()
        raise BadMessage("unknown_message_type", repr(kind))


class CoinbaseAdvanced(_Coinbase):
    """Advanced Trade `market_trades`, with `heartbeats` to keep the connection open."""

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [
            json.dumps({"type": "subscribe", "product_ids": symbols, "channel": channel})
            for channel in ("market_trades", "heartbeats")
        ]

    def decode(self, text: str, ingest_ts: int | None) -> Decoded:
        frame = json_object(text)
        if frame.get("type") == "error":
            raise SubscriptionRejected(f"coinbase: {frame.get('message')}")
        channel = frame.get("channel")
        sequence = frame.get("sequence_num")
        decoded = Decoded(sequence=sequence if isinstance(sequence, int) else None)
        if isinstance(frame.get("timestamp"), str):
            decoded.exchange_ts = coinbase.iso_to_ms(frame["timestamp"])
        if channel == "market_trades":
            decoded.trades = coinbase.parse_market_trades(frame, ingest_ts, self.symbol_map)
        elif channel == "subscriptions":
            events = frame.get("events") or [{}]
            subscriptions = events[0].get("subscriptions", {}) if isinstance(events[0], dict) else {}
            decoded.subscribed = "market_trades" in subscriptions
        elif channel not in COINBASE_NON_TRADE_CHANNELS:
            raise BadMessage("unknown_channel", repr(channel))
        return decoded


def make_venue(exchange: str, settings: Settings) -> Venue:
    """The venue for `exchange` with its URL and symbol map from settings."""
    if exchange == binance.EXCHANGE:
        return Binance(settings.binance_ws_url, settings.symbol_map)
    if exchange == coinbase.EXCHANGE:
        feed = CoinbaseAdvanced if settings.coinbase_feed == "market_trades" else CoinbaseExchange
        return feed(settings.coinbase_url, settings.symbol_map)
    raise ValueError(f"unknown exchange {exchange!r}; expected binance or coinbase")
