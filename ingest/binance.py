"""Binance spot `<symbol>@trade` events to `Trade`.

A real combined-stream frame (tests/data/binance, 2024-08-08):

    {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",
     "t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,
     "m":true,"M":true}}

`T` is the trade time and `m` is "buyer is the maker", i.e. the taker sold.
"""

from __future__ import annotations

from typing import Any

from ingest.errors import BadMessage
from ingest.fields import integer, positive_decimal, timestamp_ms
from lake.trade import Trade

EXCHANGE = "binance"


def parse_trade(event: dict[str, Any], ingest_ts: int | None = None) -> Trade:
    """One raw `trade` event (the combined stream's `data`) as a Trade."""
    if event.get("e") != "trade":
        raise BadMessage("unknown_message_type", repr(event.get("e")))
    symbol = event.get("s")
    if not isinstance(symbol, str) or not symbol:
        raise BadMessage("missing_symbol")
    maker = event.get("m")
    if not isinstance(maker, bool):
        raise BadMessage("bad_is_buyer_maker", repr(maker))
    return Trade(
        exchange=EXCHANGE,
        symbol=symbol.upper(),
        price=positive_decimal(event, "p", "price"),
        quantity=positive_decimal(event, "q", "quantity"),
        timestamp=timestamp_ms(integer(event, "T", "timestamp")),
        trade_id=integer(event, "t", "trade_id"),
        is_buyer_maker=maker,
        ingest_ts=ingest_ts,
    )


def parse_rest_trade(row: dict[str, Any], symbol: str, ingest_ts: int | None = None) -> Trade:
    """One row of GET /api/v3/historicalTrades:

    {"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012",
     "time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}
    """
    maker = row.get("isBuyerMaker")
    if not isinstance(maker, bool):
        raise BadMessage("bad_is_buyer_maker", repr(maker))
    return Trade(
        exchange=EXCHANGE,
        symbol=symbol.upper(),
        price=positive_decimal(row, "price", "price"),
        quantity=positive_decimal(row, "qty", "quantity"),
        timestamp=timestamp_ms(integer(row, "time", "timestamp")),
        trade_id=integer(row, "id", "trade_id"),
        is_buyer_maker=maker,
        ingest_ts=ingest_ts,
    )
