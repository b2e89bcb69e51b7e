"""Normalization against the real recorded Binance frames, and refusal of bad ones."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from core.schema import WIRE_TRADE, column_names
from core.trade import Trade
from ingest.captures import read_hftbacktest
from ingest.errors import BadMessage
from ingest.frames import frames_to_records
from ingest.venues import binance
from tests.support.data import DATA
from tests.support.exchange_data import frame_trades

BTC = DATA / "binance" / "btcusdt_20240808.gz"
FIRST = {
    "e": "trade",
    "E": 1723161255343,
    "s": "BTCUSDT",
    "t": 3735683259,
    "p": "61837.63000000",
    "q": "0.02000000",
    "T": 1723161255342,
    "m": True,
    "M": True,
}


def test_real_capture_normalizes_every_trade() -> None:
    frames = ((ts, "binance", text) for ts, text in read_hftbacktest(BTC))
    trades = list(frames_to_records(frames, lambda frame, exc: pytest.fail(f"bad frame: {exc}")))
    assert len(trades) == 9757
    ids = [t["trade_id"] for t in trades]
    assert ids == list(range(3735683259, 3735693016))  # contiguous, no gaps, in order
    first = Trade.from_dict(trades[0])
    assert first == Trade(
        "binance", "BTCUSDT", Decimal("61837.63"), Decimal("0.02"), 1723161255342, 3735683259, True, 1723161254087
    )
    assert trades[0]["price"] == "61837.63000000"  # the exchange's digits, unchanged


def test_trade_round_trips_through_dict_and_json() -> None:
    trade = binance.parse_trade(FIRST, ingest_ts=5)
    assert Trade.from_dict(trade.to_dict()) == trade
    assert Trade.from_dict(json.loads(trade.to_json())) == trade
    assert list(trade.to_dict()) == column_names(WIRE_TRADE)
    assert trade.key == b"binance:BTCUSDT"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"e": "aggTrade"}, "unknown_message_type"),
        ({"p": "0.00000000"}, "nonpositive_price"),
        ({"p": "abc"}, "bad_price"),
        ({"q": None}, "missing_quantity"),
        ({"q": "0.000000001"}, "quantity_precision"),
        ({"p": "1e12"}, "price_overflow"),
        ({"T": 12}, "absurd_timestamp"),
        ({"t": "x"}, "bad_trade_id"),
        ({"s": ""}, "missing_symbol"),
        ({"m": "yes"}, "bad_is_buyer_maker"),
    ],
)
def test_bad_trade_events_raise_with_reason(change: dict[str, object], reason: str) -> None:
    with pytest.raises(BadMessage) as info:
        binance.parse_trade({**FIRST, **change})
    assert info.value.reason == reason


def test_frames_other_than_trades_are_not_trades() -> None:
    assert frame_trades("binance", '{"stream":"btcusdt@bookTicker","data":{}}', 0) == []
    with pytest.raises(BadMessage, match="malformed_json"):
        frame_trades("binance", "{oops", 0)
    # A frame without `stream` is a dead letter on replay, as it is live.
    with pytest.raises(BadMessage, match="unknown_message_type"):
        frame_trades("binance", '{"data":{"e":"trade"}}', 0)
