"""Binance spot: the combined stream's `<symbol>@trade` events, and REST history for backfill.

Protocol, as documented: `{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}` on `/stream`
is confirmed by `{"result":null,"id":1}`. At most 5 messages/s per connection and 1024 streams
per connection. The server pings every 20 s and closes a connection after 24 h.

A real combined-stream frame (tests/data/binance, 2024-08-08):

    {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",
     "t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,
     "m":true,"M":true}}

`T` is the trade time and `m` is "buyer is the maker", i.e. the taker sold.

Backfill: GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=<first>&limit=1000, ascending ids.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from core.settings import Settings, VenueSettings
from core.trade import Trade, mapped
from ingest.backfill import PAGE, Backfiller, BackfillFailed, RestClient, get_json
from ingest.errors import BadMessage
from ingest.fields import integer, positive_decimal, symbol_text, timestamp_ms
from ingest.tracking import Gap
from ingest.venues.base import Decoded, SubscriptionRejected, VenueSpec, json_object

EXCHANGE = "binance"
# Streams other than trades that captures hold (and a connection may carry): not trades, not errors.
OTHER_STREAMS = ("bookTicker", "depth", "aggTrade", "kline", "ticker", "miniTicker", "avgPrice", "24hrTicker")
WS_URL = "wss://stream.binance.com:9443/stream"
REST_URL = "https://api.binance.com"


# The same trade's fields in the stream's event and in a REST history row.
_STREAM_KEYS = {"price": "p", "quantity": "q", "timestamp": "T", "trade_id": "t", "maker": "m"}
_REST_KEYS = {"price": "price", "quantity": "qty", "timestamp": "time", "trade_id": "id", "maker": "isBuyerMaker"}


def _trade(row: dict[str, Any], keys: dict[str, str], symbol: str, ingest_ts: int | None) -> Trade:
    maker = row.get(keys["maker"])
    if not isinstance(maker, bool):
        raise BadMessage("bad_is_buyer_maker", repr(maker))
    return Trade(
        exchange=EXCHANGE,
        symbol=symbol.upper(),
        price=positive_decimal(row, keys["price"], "price"),
        quantity=positive_decimal(row, keys["quantity"], "quantity"),
        timestamp=timestamp_ms(integer(row, keys["timestamp"], "timestamp")),
        trade_id=integer(row, keys["trade_id"], "trade_id"),
        is_buyer_maker=maker,
        ingest_ts=ingest_ts,
    )


def parse_trade(event: dict[str, Any], ingest_ts: int | None = None) -> Trade:
    """One raw `trade` event (the combined stream's `data`) as a Trade."""
    if event.get("e") != "trade":
        raise BadMessage("unknown_message_type", repr(event.get("e")))
    return _trade(event, _STREAM_KEYS, symbol_text(event.get("s")), ingest_ts)


def parse_rest_trade(row: dict[str, Any], symbol: str, ingest_ts: int | None = None) -> Trade:
    """One row of GET /api/v3/historicalTrades:

    {"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012",
     "time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}
    """
    return _trade(row, _REST_KEYS, symbol, ingest_ts)


class Binance:
    exchange = EXCHANGE
    keepalive: str | None = None  # the server pings; websocket-client answers
    max_streams_per_message = 200

    def __init__(self, base_url: str = WS_URL, symbol_map: Mapping[str, str] | None = None) -> None:
        self.base_url = base_url
        self.symbol_map = dict(symbol_map or {})
        self._next_id = 1
        self._pending: set[int] = set()

    def url(self, symbols: list[str]) -> str:
        return self.base_url

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
            if "lastUpdateId" in frame:
                return Decoded()  # a depth snapshot (REST), as capture tools record next to the stream
            raise BadMessage("unknown_message_type", text[:80])
        data = frame.get("data")
        if not isinstance(data, dict):
            raise BadMessage("missing_data")
        event_time = data.get("E")
        exchange_ts = event_time if isinstance(event_time, int) and not isinstance(event_time, bool) else None
        if not stream.endswith("@trade"):
            if stream.partition("@")[2].startswith(OTHER_STREAMS):
                return Decoded(exchange_ts=exchange_ts)  # a known stream we did not ask for
            raise BadMessage("unknown_stream", stream[:80])
        trade = mapped(parse_trade(data, ingest_ts), self.symbol_map)
        return Decoded(trades=[trade], exchange_ts=exchange_ts or trade.timestamp)


class BinanceRest(RestClient):
    def fetch(self, exchange_symbol: str, gap: Gap) -> list[Trade]:
        trades: list[Trade] = []
        next_id = gap.first
        while next_id <= gap.last:
            limit = min(PAGE, gap.last - next_id + 1)
            query = urllib.parse.urlencode({"symbol": exchange_symbol.upper(), "fromId": next_id, "limit": limit})
            rows = get_json(f"{self.base_url}/api/v3/historicalTrades?{query}", self.timeout)
            if not isinstance(rows, list) or not rows:
                break
            received = self.now_ms()
            for row in rows:
                try:
                    trade = parse_rest_trade(row, exchange_symbol, received)
                except (BadMessage, AttributeError) as exc:
                    raise BackfillFailed(f"binance {exchange_symbol}: bad REST row {row!r}: {exc}") from exc
                if gap.first <= trade.trade_id <= gap.last:
                    trades.append(trade)
            next_id = max(t.trade_id for t in trades) + 1 if trades else gap.last + 1
        return [mapped(t, self.symbol_map) for t in trades]


class BinanceSettings(VenueSettings):
    ws_url: str = WS_URL
    rest_url: str = REST_URL


def _venue(settings: Settings) -> Binance:
    return Binance(settings.venue(EXCHANGE).ws_url, settings.ingest.symbol_map)


def _backfiller(settings: Settings) -> Backfiller:
    return BinanceRest(settings.venue(EXCHANGE).rest_url, settings.ingest.symbol_map)


SPEC = VenueSpec(EXCHANGE, "Binance spot, <symbol>@trade", _venue, _backfiller, BinanceSettings)
