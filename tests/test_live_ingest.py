"""The live ingestor against a fake exchange replaying real frames, into the real local Kafka.

The server drops connections, goes silent, sends garbage, repeats and skips trade
ids; a consumer then reads back exactly the expected records.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from ingest.connection import RetriesExhausted
from ingest.live import run_feed
from tests.support.exchange_data import (
    binance_rest,
    binance_trade_frames,
    coinbase_advanced_frames,
    coinbase_match_frames,
    coinbase_rest,
    trade_ids,
)
from tests.support.fake_exchange import FakeExchange, Plan
from tests.support.kafka_helpers import fresh_topics
from tests.support.live_ingest import FAST, ids, ingest, published, ranges, serve
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

BAD = [
    ("{not json", "malformed_json"),
    (
        '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"-1","q":"1","T":1723161255342,"m":true}}',
        "nonpositive_price",
    ),
    (
        '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":2,"q":"1","T":1723161255342,"m":true}}',
        "missing_price",
    ),
    (
        '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":3,"p":"1","q":"x","T":1723161255342,"m":true}}',
        "bad_quantity",
    ),
    (
        '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":4,"p":"1","q":"1","T":17,"m":true}}',
        "absurd_timestamp",
    ),
    ('{"something":"else"}', "unknown_message_type"),
]


def test_binance_drops_repeats_and_garbage_lose_and_duplicate_nothing(
    kafka: str, tmp_path: Path, exchange: list[FakeExchange]
) -> None:
    frames = binance_trade_frames(3000)
    plans: list[Plan] = [
        [("send", 800), ("drop",)],
        [("repeat", 150), ("send", 700), *[("garbage", raw) for raw, _ in BAD[:3]], ("close",)],
        [("repeat", 20), ("send", 500), *[("garbage", raw) for raw, _ in BAD[3:]]],
    ]
    fake = serve(exchange, "binance", frames, plans)
    settings = fresh_topics(kafka, tmp_path, **FAST)
    counters = ingest(fake, settings, "binance", ["BTCUSDT", "ETHUSDT"])

    trades, beats, side = published(settings)
    expected = trade_ids(frames, "binance")
    assert len(expected) == 3000
    assert ids(trades) == Counter(expected)  # every trade, exactly once
    assert counters.duplicates == 170 and counters.reconnects == 2 and counters.gaps == 0
    assert sorted(r["reason"] for r in side if "reason" in r) == sorted(reason for _, reason in BAD)
    assert all(r["source"] == "binance:ws" for r in side if "reason" in r)
    downs = [e for e in side if e.get("kind") == "disconnect"]
    assert sorted((e["symbol"], e["to_ts"] >= e["from_ts"]) for e in downs) == sorted(
        [("BTCUSDT", True), ("ETHUSDT", True)] * 2
    )
    assert [s["params"] for conn in fake.subscriptions for s in conn] == [["btcusdt@trade", "ethusdt@trade"]] * 3
    assert beats and [b["timestamp"] for b in beats] == sorted(b["timestamp"] for b in beats)
    assert any(e.get("kind") == "health" and e["msgs_per_s"] > 0 for e in side)


@pytest.mark.parametrize("backfill", [False, True], ids=["gaps-reported", "gaps-backfilled"])
def test_binance_skipped_trades_are_reported_or_backfilled(
    kafka: str, tmp_path: Path, exchange: list[FakeExchange], backfill: bool
) -> None:
    frames = binance_trade_frames(2000)
    plans: list[Plan] = [[("send", 500), ("skip", 30), ("send", 500), ("drop",)], [("skip", 25)]]
    fake = serve(exchange, "binance", frames, plans, rest_trades=binance_rest(frames))
    settings = fresh_topics(kafka, tmp_path, ingest_backfill=backfill, binance_rest_url=fake.rest_url, **FAST)
    counters = ingest(fake, settings, "binance", ["BTCUSDT", "ETHUSDT"])

    trades, _beats, side = published(settings)
    skipped = trade_ids(frames[500:530] + frames[1030:1055], "binance")
    gaps = {(e["symbol"], e["from_trade_id"], e["to_trade_id"]) for e in side if e.get("kind") == "gap"}
    assert gaps == ranges(skipped)
    assert all(e["count"] == e["to_trade_id"] - e["from_trade_id"] + 1 for e in side if e.get("kind") == "gap")
    everything = trade_ids(frames, "binance")
    if backfill:
        assert ids(trades) == Counter(everything)
        fills = [e for e in side if e.get("kind") == "backfill"]
        assert sum(e["count"] for e in fills) == len(skipped) and all(e["detail"] == "complete" for e in fills)
        assert fake.rest_requests and counters.backfilled == len(skipped)
    else:
        assert ids(trades) == Counter(everything - skipped)
        assert not fake.rest_requests


def test_a_silent_socket_is_replaced_by_the_watchdog(kafka: str, tmp_path: Path, exchange: list[FakeExchange]) -> None:
    frames = binance_trade_frames(1000)
    fake = serve(exchange, "binance", frames, [[("send", 400), ("silence",)], []])
    settings = fresh_topics(kafka, tmp_path, **{**FAST, "ws_silence_timeout_s": 1.0})
    counters = ingest(fake, settings, "binance", ["BTCUSDT", "ETHUSDT"])

    trades, _beats, side = published(settings)
    assert ids(trades) == Counter(trade_ids(frames, "binance"))
    assert counters.reconnects == 1
    assert {e["detail"].split(" (")[-1] for e in side if e.get("kind") == "disconnect"} == {"watchdog)"}


def test_coinbase_matches_reconnect_and_backfill_over_rest(
    kafka: str, tmp_path: Path, exchange: list[FakeExchange]
) -> None:
    frames = [f for f in coinbase_match_frames() if '"type":"l2update"' not in f]
    plans: list[Plan] = [[("send", 60), ("skip", 8), ("send", 40), ("drop",)], [("repeat", 10)]]
    fake = serve(exchange, "coinbase", frames, plans, rest_trades=coinbase_rest(frames))
    products = sorted({json.loads(f)["product_id"] for f in frames if '"match"' in f})
    settings = fresh_topics(kafka, tmp_path, ingest_backfill=True, coinbase_rest_url=fake.rest_url, **FAST)
    counters = ingest(fake, settings, "coinbase", products)

    trades, _beats, side = published(settings)
    assert ids(trades) == Counter(trade_ids(frames, "coinbase"))
    skipped = trade_ids(frames[60:68], "coinbase")
    assert {(e["symbol"], e["from_trade_id"], e["to_trade_id"]) for e in side if e.get("kind") == "gap"} == ranges(
        skipped
    )
    assert counters.backfilled == len(skipped) > 0
    assert all(
        s == {"type": "subscribe", "product_ids": products, "channels": ["matches", "heartbeat"]}
        for conn in fake.subscriptions
        for s in conn
    )


def test_coinbase_advanced_trade_sequence_and_id_gaps(kafka: str, tmp_path: Path, exchange: list[FakeExchange]) -> None:
    frames = coinbase_advanced_frames()
    plans: list[Plan] = [[("send", 30), ("skip", 3), ("send", 10), ("drop",)], []]
    fake = serve(exchange, "coinbase-advanced", frames, plans)
    settings = fresh_topics(kafka, tmp_path, coinbase_feed="market_trades", **FAST)
    ingest(fake, settings, "coinbase", ["BTC-USD", "ETH-USD"])

    trades, _beats, side = published(settings)
    skipped = trade_ids(frames[30:33], "coinbase")
    assert ids(trades) == Counter(trade_ids(frames, "coinbase") - skipped)
    seq = [(e["from_trade_id"], e["to_trade_id"]) for e in side if e.get("kind") == "sequence_gap"]
    assert seq == [(32, 34)]  # 2 subscription replies, then 30 messages numbered 2..31, 3 lost
    gaps = {(e["symbol"], e["from_trade_id"], e["to_trade_id"]) for e in side if e.get("kind") == "gap"}
    assert gaps == ranges(skipped)
    assert [[s["channel"] for s in conn] for conn in fake.subscriptions] == [["market_trades", "heartbeats"]] * 2


def test_retries_run_out_with_a_specific_error(tmp_path: Path) -> None:
    from core.settings import load

    settings = load(ws_max_retries=2, ws_backoff_initial_s=0.01, ws_subscribe_timeout_s=1)
    url = f"ws://127.0.0.1:{free_port()}/stream"  # nothing listens there
    with pytest.raises(RetriesExhausted, match="gave up after 2 retries"):
        run_feed("binance", ["BTCUSDT"], settings, threading.Event(), url=url, publish=False)


def test_connections_are_renewed_before_the_venue_cuts_them(
    kafka: str, tmp_path: Path, exchange: list[FakeExchange]
) -> None:
    """Binance closes a connection after 24 h; we renew first (here after 1 s) and lose nothing."""
    frames = binance_trade_frames(600)
    fake = serve(exchange, "binance", frames, [[("send", 300), ("silence",)], []])
    settings = fresh_topics(kafka, tmp_path, **{**FAST, "ws_max_connection_age_s": 1.0})
    # The first connection sends 300 frames, then nothing; renewal (1 s) comes before the watchdog (2 s).
    counters = ingest(fake, settings, "binance", ["BTCUSDT", "ETHUSDT"])
    trades, _beats, side = published(settings)
    assert ids(trades) == Counter(trade_ids(frames, "binance"))
    assert counters.reconnects >= 1
    assert "connection age limit; renewing" in {e["detail"] for e in side if e.get("kind") == "disconnect"}
