"""Coinbase: the Exchange feed's `matches` channel or Advanced Trade's `market_trades`, and REST backfill.

Protocols, as documented:
- Exchange feed: `{"type":"subscribe","product_ids":[...],"channels":["matches","heartbeat"]}` within
  5 s of connecting, confirmed by `{"type":"subscriptions",...}`; the `heartbeat` channel sends each
  product's `last_trade_id` every second.
- Advanced Trade: one channel per subscribe message (`market_trades`, `heartbeats`), confirmed on
  the `subscriptions` channel; `sequence_num` counts every message on the connection.

One decoder reads both feeds (Advanced Trade frames have a `channel`, the Exchange feed's a
`type`), so a recording of either replays as it was received; `COINBASE_FEED` picks what live
subscribes to.

A real Exchange-feed frame (tests/data/coinbase/COINBASE.ws.28.0, 2021-04-17):

    {"type":"match","trade_id":1568268,"maker_order_id":"cac01d6d-…","taker_order_id":"3dec64e4-…",
     "side":"sell","size":"450","price":"0.791","product_id":"SKL-USD","sequence":201390075,
     "time":"2021-04-17T16:43:37.121358Z"}

A real Advanced Trade frame (tests/data/coinbase/COINBASE.jsonl.zst, 2026-08-09):

    {"channel":"market_trades","timestamp":"2026-08-09T21:05:48.228568804Z","sequence_num":0,
     "events":[{"type":"snapshot","trades":[{"product_id":"BTC-USD","trade_id":"1068572090",
     "price":"65083.67","size":"0.002186","time":"2026-08-09T21:05:42.514318Z","side":"SELL"}, …]}]}

In both feeds `side` is the maker's side: "sell" means a resting sell was hit by a buyer, so
`is_buyer_maker` is true exactly when side is buy. Symbols are canonical: BTC-USD -> BTCUSD.

Backfill (Exchange feed): GET /products/BTC-USD/trades?after=<last + 1>&limit=1000 returns trades
with smaller ids, newest first; page down with `after` = the smallest id returned. Advanced Trade
has no id-addressable trade history, so a `market_trades` gap is reported, not filled.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal

from core.settings import Settings, VenueSettings
from core.trade import Trade
from ingest.backfill import PAGE, Backfiller, BackfillFailed, RestClient, get_json
from ingest.errors import BadMessage
from ingest.fields import integer, positive_decimal, symbol_text, timestamp_ms
from ingest.tracking import Gap
from ingest.venues.base import Decoded, SubscriptionRejected, VenueSpec, json_object

log = logging.getLogger(__name__)

EXCHANGE = "coinbase"
EXCHANGE_FEED_URL = "wss://ws-feed.exchange.coinbase.com"
ADVANCED_TRADE_URL = "wss://advanced-trade-ws.coinbase.com"
REST_URL = "https://api.exchange.coinbase.com"

# Frames that carry no trade and need no action here: Exchange feed types, Advanced Trade channels.
NON_TRADE_TYPES = {
    "subscriptions",
    "heartbeat",
    "l2update",
    "snapshot",
    "ticker",
    "received",
    "open",
    "done",
    "change",
    "activate",
}
NON_TRADE_CHANNELS = {
    "subscriptions",
    "heartbeats",
    "l2_data",
    "ticker",
    "ticker_batch",
    "candles",
    "status",
    "level2",
}


def canonical_symbol(product_id: str, overrides: Mapping[str, str] | None = None) -> str:
    """BTC-USD -> BTCUSD, unless `overrides` maps the product to another name."""
    if overrides and product_id in overrides:
        return overrides[product_id]
    return product_id.replace("-", "").upper()


def iso_to_ms(text: Any) -> int:
    """'2021-04-17T16:43:37.089723Z' -> epoch ms, truncating below the millisecond."""
    if not isinstance(text, str) or not text.endswith("Z"):
        raise BadMessage("bad_timestamp", repr(text))
    head, _, fraction = text[:-1].partition(".")
    try:
        moment = dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise BadMessage("bad_timestamp", repr(text)) from None
    if fraction and not fraction.isdigit():
        raise BadMessage("bad_timestamp", repr(text))
    millis = int((fraction + "000")[:3])
    return timestamp_ms(calendar.timegm(moment.timetuple()) * 1000 + millis)


def _maker_is_buyer(side: Any) -> bool:
    if not isinstance(side, str) or side.lower() not in ("buy", "sell"):
        raise BadMessage("bad_side", repr(side))
    return side.lower() == "buy"


def _trade(raw: dict[str, Any], ingest_ts: int | None, overrides: Mapping[str, str] | None) -> Trade:
    product = symbol_text(raw.get("product_id"))
    return Trade(
        exchange=EXCHANGE,
        symbol=canonical_symbol(product, overrides),
        price=positive_decimal(raw, "price", "price"),
        quantity=positive_decimal(raw, "size", "quantity"),
        timestamp=iso_to_ms(raw.get("time")),
        trade_id=integer(raw, "trade_id", "trade_id"),
        is_buyer_maker=_maker_is_buyer(raw.get("side")),
        ingest_ts=ingest_ts,
    )


def parse_match(msg: dict[str, Any], ingest_ts: int | None = None, overrides: Mapping[str, str] | None = None) -> Trade:
    """An Exchange-feed `match` or `last_match` message."""
    if msg.get("type") not in ("match", "last_match"):
        raise BadMessage("unknown_message_type", repr(msg.get("type")))
    return _trade(msg, ingest_ts, overrides)


def parse_market_trades(
    msg: dict[str, Any], ingest_ts: int | None = None, overrides: Mapping[str, str] | None = None
) -> list[Trade]:
    """Every trade of an Advanced Trade `market_trades` message (snapshot or update)."""
    events = msg.get("events")
    if not isinstance(events, list):
        raise BadMessage("missing_events")
    trades: list[Trade] = []
    for event in events:
        raw_trades = event.get("trades") if isinstance(event, dict) else None
        if not isinstance(raw_trades, list):
            raise BadMessage("missing_trades")
        trades.extend(_trade(raw, ingest_ts, overrides) for raw in raw_trades if isinstance(raw, dict))
    return trades


def parse_rest_trade(
    row: dict[str, Any], product_id: str, ingest_ts: int | None = None, overrides: Mapping[str, str] | None = None
) -> Trade:
    """One row of the Exchange REST API's GET /products/{product_id}/trades:

    {"time":"2014-11-07T22:19:28.578544Z","trade_id":74,"price":"10.00000000","size":"0.01000000","side":"buy"}

    `side` is the maker's side here too.
    """
    return _trade({**row, "product_id": product_id}, ingest_ts, overrides)


class Coinbase:
    """Subscribes to one feed (`matches`: the Exchange feed; `market_trades`: Advanced Trade), decodes both."""

    exchange = EXCHANGE
    keepalive: str | None = None

    def __init__(self, base_url: str, symbol_map: Mapping[str, str] | None = None, feed: str = "matches") -> None:
        self.base_url = base_url
        self.symbol_map = dict(symbol_map or {})
        self.feed = feed

    def url(self, symbols: list[str]) -> str:
        return self.base_url

    def canonical(self, symbol: str) -> str:
        return canonical_symbol(symbol, self.symbol_map)

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        if self.feed == "market_trades":
            return [
                json.dumps({"type": "subscribe", "product_ids": symbols, "channel": channel})
                for channel in ("market_trades", "heartbeats")
            ]
        return [json.dumps({"type": "subscribe", "product_ids": symbols, "channels": ["matches", "heartbeat"]})]

    def decode(self, text: str, ingest_ts: int | None) -> Decoded:
        frame = json_object(text)
        if frame.get("type") == "error":
            raise SubscriptionRejected(f"coinbase: {frame.get('message')}: {frame.get('reason')}")
        if "channel" in frame:
            return self._advanced(frame, ingest_ts)
        return self._exchange_feed(frame, ingest_ts)

    def _exchange_feed(self, frame: dict[str, Any], ingest_ts: int | None) -> Decoded:
        kind = frame.get("type")
        if kind in ("match", "last_match"):
            trade = parse_match(frame, ingest_ts, self.symbol_map)
            return Decoded(trades=[trade], exchange_ts=trade.timestamp)
        if kind == "heartbeat":
            product = frame.get("product_id")
            last = frame.get("last_trade_id")
            decoded = Decoded(exchange_ts=iso_to_ms(frame.get("time")))
            if isinstance(product, str) and isinstance(last, int) and last > 0:
                decoded.last_trade_ids[canonical_symbol(product, self.symbol_map)] = last
            return decoded
        if kind == "subscriptions":
            return Decoded(subscribed=True)
        if kind in NON_TRADE_TYPES:
            return Decoded()
        raise BadMessage("unknown_message_type", repr(kind))

    def _advanced(self, frame: dict[str, Any], ingest_ts: int | None) -> Decoded:
        channel = frame.get("channel")
        sequence = frame.get("sequence_num")
        decoded = Decoded(sequence=sequence if isinstance(sequence, int) else None)
        if isinstance(frame.get("timestamp"), str):
            decoded.exchange_ts = iso_to_ms(frame["timestamp"])
        if channel == "market_trades":
            decoded.trades = parse_market_trades(frame, ingest_ts, self.symbol_map)
        elif channel == "subscriptions":
            events = frame.get("events") or [{}]
            subscriptions = events[0].get("subscriptions", {}) if isinstance(events[0], dict) else {}
            decoded.subscribed = "market_trades" in subscriptions
        elif channel not in NON_TRADE_CHANNELS:
            raise BadMessage("unknown_channel", repr(channel))
        return decoded


class CoinbaseRest(RestClient):
    def fetch(self, exchange_symbol: str, gap: Gap) -> list[Trade]:
        trades: list[Trade] = []
        after = gap.last + 1
        while after > gap.first:
            query = urllib.parse.urlencode({"after": after, "limit": PAGE})
            product = urllib.parse.quote(exchange_symbol)
            rows = get_json(f"{self.base_url}/products/{product}/trades?{query}", self.timeout)
            if not isinstance(rows, list) or not rows:
                break
            received = self.now_ms()
            for row in rows:
                try:
                    trade = parse_rest_trade(row, exchange_symbol, received, self.symbol_map)
                except (BadMessage, AttributeError) as exc:
                    raise BackfillFailed(f"coinbase {exchange_symbol}: bad REST row {row!r}: {exc}") from exc
                if gap.first <= trade.trade_id <= gap.last:
                    trades.append(trade)
            smallest = min(int(row.get("trade_id", after)) for row in rows)
            if smallest >= after:
                break  # the server ignored `after`; stop rather than loop
            after = smallest
        return sorted(trades, key=lambda t: t.trade_id)


class CoinbaseSettings(VenueSettings):
    ws_url: str = ""  # empty: the feed's public endpoint
    rest_url: str = REST_URL
    feed: Literal["matches", "market_trades"] = "matches"  # the Exchange feed, or Advanced Trade


def _group(settings: Settings) -> CoinbaseSettings:
    group = settings.venue(EXCHANGE)
    assert isinstance(group, CoinbaseSettings)
    return group


def _venue(settings: Settings) -> Coinbase:
    group = _group(settings)
    url = group.ws_url or (ADVANCED_TRADE_URL if group.feed == "market_trades" else EXCHANGE_FEED_URL)
    return Coinbase(url, settings.ingest.symbol_map, group.feed)


def _backfiller(settings: Settings) -> Backfiller | None:
    group = _group(settings)
    if group.feed == "market_trades":
        log.warning("backfill: Advanced Trade has no trade history by id; gaps will be reported, not filled")
        return None
    return CoinbaseRest(group.rest_url, settings.ingest.symbol_map)


SPEC = VenueSpec(
    EXCHANGE,
    "Coinbase, the Exchange feed's matches or Advanced Trade (COINBASE_FEED)",
    _venue,
    _backfiller,
    CoinbaseSettings,
)
