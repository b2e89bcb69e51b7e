"""OKX spot: the v5 public WebSocket's `trades` channel, and REST trade history for backfill.

Protocol, as documented: `{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}` on
`/ws/v5/public` is confirmed per argument by `{"event":"subscribe","arg":{...}}`, refused by
`{"event":"error","code":"60018","msg":"..."}`. The server closes a connection that has been
quiet for 30 s, unless the client sends the text `ping` (answered by `pong`).

A real frame (tests/data/okx/OKX.ws.1.0, 2022-05-13):

    {"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",
     "tradeId":"338476307","px":"29270.1","sz":"0.00035","side":"sell","ts":"1652459225499"}]}

`side` is the taker's side, so the buyer is the maker exactly when side is sell. Prices, sizes,
ids and times are strings. Symbols are canonical: BTC-USDT -> BTCUSDT.

Rules:
- The lake's bars are spot: a trade of a future (`BTC-USD-220527`), swap (`-SWAP`) or option
  (instrument ids of more than two parts) is a dead letter, `not_spot_instrument`.
- Other known channels (tickers, books, ...) carry no trades and are ignored, as Binance's other
  streams; an unknown channel is a dead letter (`unknown_channel`).
- Since 2023 a push may aggregate trades of one taker order at one price: `count` trades whose
  last id is `tradeId`. The row is one trade of the summed size; its span of ids is not a gap.

Backfill: GET /api/v5/market/history-trades?instId=BTC-USDT&type=1&after=<id>&limit=100 returns
trades with smaller ids, newest first; page down with `after` = the smallest id returned.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from core.settings import Settings, VenueSettings
from core.trade import Trade
from ingest.backfill import Backfiller, BackfillFailed, RestClient, get_json
from ingest.errors import BadMessage
from ingest.fields import integer, positive_decimal, symbol_text, timestamp_ms
from ingest.tracking import Gap
from ingest.venues.base import Decoded, SubscriptionRejected, VenueSpec, json_object

EXCHANGE = "okx"
WS_URL = "wss://ws.okx.com:8443/ws/v5/public"
REST_URL = "https://www.okx.com"
REST_PAGE = 100  # history-trades' largest page
ARGS_PER_MESSAGE = 100
QUIET_EVENTS = {"unsubscribe", "notice", "channel-conn-count"}
# Public channels other than trades (captures hold them): not trades, not errors.
OTHER_CHANNELS = ("tickers", "books", "bbo-tbt", "candle", "index-", "mark-price", "funding-rate", "open-interest",
                  "price-limit", "opt-summary", "estimated-price", "liquidation", "status", "instruments")  # fmt: skip


def canonical_symbol(inst_id: str, overrides: Mapping[str, str] | None = None) -> str:
    """BTC-USDT -> BTCUSDT, unless `overrides` maps the instrument to another name."""
    if overrides and inst_id in overrides:
        return overrides[inst_id]
    return inst_id.replace("-", "").upper()


def is_spot(inst_id: str) -> bool:
    return len(inst_id.split("-")) == 2


def parse_trade(row: dict[str, Any], ingest_ts: int | None = None, overrides: Mapping[str, str] | None = None) -> Trade:
    """One trade row, as the WebSocket's `data` and the REST history list them."""
    inst_id = row.get("instId")
    if not isinstance(inst_id, str) or not inst_id:
        raise BadMessage("missing_symbol")
    if not is_spot(inst_id):
        raise BadMessage("not_spot_instrument", inst_id[:60])
    symbol_text(inst_id)
    side = row.get("side")
    if side not in ("buy", "sell"):
        raise BadMessage("bad_side", repr(side))
    return Trade(
        exchange=EXCHANGE,
        symbol=canonical_symbol(inst_id, overrides),
        price=positive_decimal(row, "px", "price"),
        quantity=positive_decimal(row, "sz", "quantity"),
        timestamp=timestamp_ms(integer(row, "ts", "timestamp")),
        trade_id=integer(row, "tradeId", "trade_id"),
        is_buyer_maker=side == "sell",
        ingest_ts=ingest_ts,
    )


def _aggregated(row: dict[str, Any]) -> int:
    count = row.get("count")
    if count is None:
        return 1
    try:
        value = int(count)
    except (TypeError, ValueError):
        raise BadMessage("bad_count", repr(count)) from None
    if value < 1:
        raise BadMessage("bad_count", repr(count))
    return value


class Okx:
    exchange = EXCHANGE
    keepalive: str | None = "ping"

    def __init__(self, base_url: str = WS_URL, symbol_map: Mapping[str, str] | None = None) -> None:
        self.base_url = base_url
        self.symbol_map = dict(symbol_map or {})
        self._pending: set[str] = set()

    def url(self, symbols: list[str]) -> str:
        return self.base_url

    def canonical(self, symbol: str) -> str:
        return canonical_symbol(symbol, self.symbol_map)

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        self._pending = set(symbols)
        args = [{"channel": "trades", "instId": s} for s in symbols]
        return [
            json.dumps({"op": "subscribe", "args": args[start : start + ARGS_PER_MESSAGE]})
            for start in range(0, len(args), ARGS_PER_MESSAGE)
        ]

    def decode(self, text: str, ingest_ts: int | None) -> Decoded:
        if text == "pong":
            return Decoded()  # the answer to our keepalive
        frame = json_object(text)
        event = frame.get("event")
        if event is not None:
            return self._event(event, frame)
        arg = frame.get("arg")
        if not isinstance(arg, dict):
            raise BadMessage("unknown_message_type", text[:80])
        data = frame.get("data")
        if not isinstance(data, list):
            raise BadMessage("missing_data")
        channel = arg.get("channel")
        if channel != "trades":
            if isinstance(channel, str) and channel.startswith(OTHER_CHANNELS):
                return Decoded()  # a known channel we did not ask for
            raise BadMessage("unknown_channel", repr(channel)[:80])
        decoded = Decoded()
        for row in data:
            if not isinstance(row, dict):
                raise BadMessage("bad_trade", repr(row)[:80])
            trade = parse_trade(row, ingest_ts, self.symbol_map)
            count = _aggregated(row)
            if count > 1:
                decoded.first_ids[(trade.symbol, trade.trade_id)] = trade.trade_id - count + 1
            decoded.trades.append(trade)
        if decoded.trades:
            decoded.exchange_ts = max(t.timestamp for t in decoded.trades)
        return decoded

    def _event(self, event: Any, frame: dict[str, Any]) -> Decoded:
        if event == "error":
            raise SubscriptionRejected(f"okx: {frame.get('code')}: {frame.get('msg')}")
        if event == "subscribe":
            arg = frame.get("arg")
            if isinstance(arg, dict) and arg.get("channel") == "trades":
                self._pending.discard(str(arg.get("instId")))
            return Decoded(subscribed=not self._pending)
        if event in QUIET_EVENTS:
            return Decoded()
        raise BadMessage("unknown_event", repr(event))


class OkxRest(RestClient):
    def fetch(self, exchange_symbol: str, gap: Gap) -> list[Trade]:
        trades: list[Trade] = []
        after = gap.last + 1
        while after > gap.first:
            query = urllib.parse.urlencode({"instId": exchange_symbol, "type": 1, "after": after, "limit": REST_PAGE})
            body = get_json(f"{self.base_url}/api/v5/market/history-trades?{query}", self.timeout)
            if not isinstance(body, dict) or str(body.get("code")) != "0":
                raise BackfillFailed(f"okx {exchange_symbol}: {str(body)[:200]}")
            rows = body.get("data")
            if not isinstance(rows, list) or not rows:
                break
            received = self.now_ms()
            smallest = after
            for row in rows:
                try:
                    trade = parse_trade(row, received, self.symbol_map)
                except (BadMessage, AttributeError) as exc:
                    raise BackfillFailed(f"okx {exchange_symbol}: bad REST row {row!r}: {exc}") from exc
                smallest = min(smallest, trade.trade_id)
                if gap.first <= trade.trade_id <= gap.last:
                    trades.append(trade)
            if smallest >= after:
                break  # the server ignored `after`; stop rather than loop
            after = smallest
        return sorted(trades, key=lambda t: t.trade_id)


class OkxSettings(VenueSettings):
    ws_url: str = WS_URL
    rest_url: str = REST_URL


def _venue(settings: Settings) -> Okx:
    return Okx(settings.venue(EXCHANGE).ws_url, settings.ingest.symbol_map)


def _backfiller(settings: Settings) -> Backfiller:
    return OkxRest(settings.venue(EXCHANGE).rest_url, settings.ingest.symbol_map)


SPEC = VenueSpec(EXCHANGE, "OKX spot, the v5 trades channel", _venue, _backfiller, OkxSettings)
