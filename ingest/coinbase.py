"""Coinbase trades to `Trade`: the Exchange feed's `matches` channel and Advanced Trade's `market_trades`.

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
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping
from typing import Any

from ingest.errors import BadMessage
from ingest.fields import integer, positive_decimal, timestamp_ms
from lake.trade import Trade

EXCHANGE = "coinbase"


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
    product = raw.get("product_id")
    if not isinstance(product, str) or not product:
        raise BadMessage("missing_symbol")
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
