"""Coinbase normalization against the real recorded frames of both feeds."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from core.trade import Trade
from ingest.captures import read_cryptofeed_jsonl, read_cryptofeed_raw
from ingest.errors import BadMessage
from ingest.venues import coinbase
from tests.support.data import DATA
from tests.support.exchange_data import frame_trades

EXCHANGE_FEED = DATA / "coinbase" / "COINBASE.ws.28.0"
ADVANCED = DATA / "coinbase" / "COINBASE.jsonl.zst"


def coinbase_frame(text: str, ingest_ts: int | None) -> list[Trade]:
    return frame_trades("coinbase", text, ingest_ts)


def _all(frames: list[tuple[int, str]]) -> list[Trade]:
    return [t for ts, text in frames for t in coinbase_frame(text, ts)]


def test_exchange_feed_matches() -> None:
    trades = _all(list(read_cryptofeed_raw(EXCHANGE_FEED)))
    assert len(trades) == 107  # 97 match + 10 last_match
    assert Counter(t.symbol for t in trades)["SKLUSD"] == 53
    first = next(t for t in trades if t.trade_id == 1568268)
    assert first == Trade(
        "coinbase", "SKLUSD", Decimal("0.791"), Decimal("450"), 1618677817121, 1568268, False, first.ingest_ts
    )
    # Trade ids are contiguous per product in this recording.
    for symbol in {t.symbol for t in trades}:
        ids = sorted({t.trade_id for t in trades if t.symbol == symbol})
        assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_advanced_trade_market_trades() -> None:
    trades = _all(list(read_cryptofeed_jsonl(ADVANCED)))
    assert Counter(t.symbol for t in trades) == {"BTCUSD": 147, "ETHUSD": 132}
    first = trades[0]
    assert (first.trade_id, first.price, first.quantity, first.is_buyer_maker) == (
        1068572090,
        Decimal("65083.67"),
        Decimal("0.002186"),
        False,
    )
    assert first.timestamp == 1786309542514  # 2026-08-09T21:05:42.514318Z, truncated to the ms


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            '{"type":"match","trade_id":1,"side":"sell","size":"1","price":"-1","product_id":"A-B",'
            '"time":"2021-04-17T16:43:37.1Z"}',
            "nonpositive_price",
        ),
        (
            '{"type":"match","trade_id":1,"side":"up","size":"1","price":"1","product_id":"A-B",'
            '"time":"2021-04-17T16:43:37.1Z"}',
            "bad_side",
        ),
        (
            '{"type":"match","trade_id":1,"side":"buy","size":"1","price":"1","product_id":"A-B","time":"yesterday"}',
            "bad_timestamp",
        ),
        ('{"type":"wat"}', "unknown_message_type"),
        ('{"channel":"market_trades","events":"x"}', "missing_events"),
        ('{"type":"error","message":"Failed to subscribe"}', "subscription_rejected"),  # as live
        ("[]", "malformed_json"),
    ],
)
def test_bad_frames_raise_with_reason(text: str, reason: str) -> None:
    with pytest.raises(BadMessage) as info:
        coinbase_frame(text, 0)
    assert info.value.reason == reason


def test_symbol_mapping_is_configurable() -> None:
    assert coinbase.canonical_symbol("BTC-USD") == "BTCUSD"
    assert coinbase.canonical_symbol("BTC-USD", {"BTC-USD": "XBTUSD"}) == "XBTUSD"


def test_normalize_cli_writes_tapes_from_both_feeds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from ingest.tape import read_tape

    for fmt, src, count in (("cryptofeed", EXCHANGE_FEED, 107), ("cryptofeed-jsonl", ADVANCED, 279)):
        out = tmp_path / f"{fmt}.ndjson.gz"
        subprocess.run(
            [sys.executable, "-m", "ingest", "normalize", "--format", fmt, str(src), "-o", str(out)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        records = list(read_tape(out))
        assert len(records) == count
        assert all(Trade.from_dict(r).exchange == "coinbase" for r in records)
