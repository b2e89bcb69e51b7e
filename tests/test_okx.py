"""OKX, the third venue: its decoder on the real capture, and its REST backfill's paging."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest

from core.trade import Trade
from ingest.captures import read_cryptofeed_raw
from ingest.errors import BadMessage
from ingest.frames import FrameDecoder, detect_format, frames_to_records, read_frames
from ingest.tracking import Gap
from ingest.venues import REGISTRY, SubscriptionRejected
from ingest.venues.okx import Okx, OkxRest
from tests.support.data import DATA

CAPTURE = DATA / "okx" / "OKX.ws.1.0"


def test_the_capture_replays_its_69_spot_trades_and_dead_letters_the_derivatives() -> None:
    assert detect_format(CAPTURE) == "cryptofeed"
    bad: list[tuple[str, str]] = []
    records = list(
        frames_to_records(read_frames(CAPTURE, "cryptofeed"), lambda frame, exc: bad.append((exc.reason, exc.detail)))
    )
    assert len(records) == 69
    assert {r["exchange"] for r in records} == {"okx"} and {r["symbol"] for r in records} == {"BTCUSDT"}
    assert [r["trade_id"] for r in records] == list(range(338476307, 338476376))  # contiguous, in order
    # The futures' and the swap's trade frames, by rule; tickers and books are not trades and not errors.
    derivatives = {("not_spot_instrument", "BTC-USD-220527"): 4, ("not_spot_instrument", "UNI-USD-SWAP"): 1}
    assert Counter(bad) == Counter(derivatives)


def test_a_real_frame_decodes_exactly() -> None:
    text = next(t for _ts, t in read_cryptofeed_raw(CAPTURE) if '"tradeId":"338476307"' in t)
    (trade,) = FrameDecoder().trades("okx", text, 1652459225600)
    row = json.loads(text)["data"][0]
    assert trade == Trade(
        exchange="okx",
        symbol="BTCUSDT",
        price=Decimal(row["px"]),
        quantity=Decimal(row["sz"]),
        timestamp=int(row["ts"]),
        trade_id=338476307,
        is_buyer_maker=row["side"] == "sell",  # side is the taker's
        ingest_ts=1652459225600,
    )


def test_subscription_is_confirmed_per_instrument_and_refusal_is_a_dead_letter_reason() -> None:
    venue = Okx("ws://x")
    (message,) = venue.subscribe_messages(["BTC-USDT", "ETH-USDT"])
    assert json.loads(message) == {
        "op": "subscribe",
        "args": [{"channel": "trades", "instId": "BTC-USDT"}, {"channel": "trades", "instId": "ETH-USDT"}],
    }
    confirm = '{{"event":"subscribe","arg":{{"channel":"trades","instId":"{}"}},"connId":"x"}}'
    assert not venue.decode(confirm.format("BTC-USDT"), None).subscribed
    assert venue.decode(confirm.format("ETH-USDT"), None).subscribed
    assert venue.decode("pong", None).trades == []  # the answer to our keepalive
    with pytest.raises(SubscriptionRejected) as info:
        venue.decode('{"event":"error","code":"60018","msg":"doesn\'t exist","connId":"x"}', None)
    assert info.value.reason == "subscription_rejected" and "60018" in info.value.detail


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"px": "-1"}, "nonpositive_price"),
        ({"sz": "abc"}, "bad_quantity"),
        ({"side": "up"}, "bad_side"),
        ({"ts": "yesterday"}, "bad_timestamp"),
        ({"tradeId": None}, "missing_trade_id"),
        ({"instId": "BTC-USDT-SWAP"}, "not_spot_instrument"),
        ({"count": "0"}, "bad_count"),
    ],
)
def test_bad_trades_are_dead_letters_with_a_reason(row: dict[str, object], reason: str) -> None:
    good = {"instId": "BTC-USDT", "tradeId": "5", "px": "1.5", "sz": "2", "side": "buy", "ts": "1652459225499"}
    frame = {"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [{**good, **row}]}
    with pytest.raises(BadMessage) as info:
        Okx().decode(json.dumps(frame), None)
    assert info.value.reason == reason


def test_an_aggregated_push_stands_for_its_span_of_ids() -> None:
    row = {"instId": "BTC-USDT", "tradeId": "130", "px": "1.5", "sz": "2", "side": "buy", "ts": "1652459225499"}
    decoded = Okx().decode(json.dumps({"arg": {"channel": "trades"}, "data": [{**row, "count": "3"}]}), None)
    assert decoded.first_ids == {("BTCUSDT", 130): 128}


def test_rest_backfill_pages_down_by_trade_id(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [
        {"instId": "BTC-USDT", "tradeId": str(i), "px": "1", "sz": "1", "side": "sell", "ts": str(1652459225000 + i)}
        for i in range(1, 351)
    ]
    asked: list[str] = []

    def fake_get(url: str, timeout: float) -> dict[str, object]:
        asked.append(url)
        after = int(url.split("after=")[1].split("&")[0])
        page = sorted((r for r in rows if int(r["tradeId"]) < after), key=lambda r: -int(r["tradeId"]))[:100]
        return {"code": "0", "msg": "", "data": page}

    monkeypatch.setattr("ingest.venues.okx.get_json", fake_get)
    trades = OkxRest("http://x", now_ms=lambda: 7).fetch("BTC-USDT", Gap(101, 280))
    assert [t.trade_id for t in trades] == list(range(101, 281))
    assert len(asked) == 2 and "type=1" in asked[0] and "instId=BTC-USDT" in asked[0]


def test_okx_is_registered() -> None:
    assert "okx" in REGISTRY
