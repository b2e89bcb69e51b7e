"""The per-venue pipeline on real frames, with an in-memory sink: dead letters, gaps, heartbeats, health."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.schema import DEAD_LETTER, FEED_EVENT, column_names
from core.settings import load
from ingest.pipeline import FeedPipeline, percentile
from ingest.venues import SubscriptionRejected
from ingest.venues.binance import Binance
from ingest.venues.coinbase import Coinbase
from tests.support.exchange_data import binance_trade_frames, coinbase_advanced_frames, coinbase_match_frames

SETTINGS = load(kafka_topic="t", kafka_dlq_topic="dlq", kafka_feed_events_topic="fe", ingest_health_interval_s=1)


class ListSink:
    def __init__(self) -> None:
        self.records: list[tuple[str, str | None, dict[str, Any]]] = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.records.append((topic, key.decode() if key else None, json.loads(value)))

    @property
    def pending(self) -> int:
        return 0

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [v for t, _k, v in self.records if t == topic]


class Clock:
    def __init__(self, now: int = 1_800_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _pipeline(venue: Any, symbols: list[str]) -> tuple[FeedPipeline, ListSink, Clock]:
    sink, clock = ListSink(), Clock()
    return FeedPipeline(venue, symbols, sink, SETTINGS, now_ms=clock), sink, clock


GOOD = json.loads(binance_trade_frames(1)[0])


def _binance(**data: Any) -> str:
    return json.dumps({"stream": "btcusdt@trade", "data": {**GOOD["data"], **data}})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "malformed_json"),
        ("[1, 2]", "malformed_json"),
        ('{"hello": "world"}', "unknown_message_type"),
        (_binance(p=None), "missing_price"),
        (_binance(q="abc"), "bad_quantity"),
        (_binance(p="0"), "nonpositive_price"),
        (_binance(q="-1.5"), "nonpositive_quantity"),
        (_binance(T=99), "absurd_timestamp"),
        (_binance(T=99_999_999_999_999), "absurd_timestamp"),
        (_binance(t="x"), "bad_trade_id"),
        (_binance(e="aggTrade"), "unknown_message_type"),
    ],
)
def test_bad_frames_become_dead_letters_with_their_reason(raw: str, reason: str) -> None:
    pipeline, sink, clock = _pipeline(Binance("ws://x"), ["BTCUSDT"])
    assert pipeline.on_frame(raw, clock.now) is None
    [letter] = sink.on("dlq")
    assert set(letter) == set(column_names(DEAD_LETTER))
    assert (letter["reason"], letter["raw"], letter["source"], letter["ingest_ts"]) == (
        reason,
        raw,
        "binance:ws",
        clock.now,
    )
    assert sink.on("t") == [] and pipeline.counters.dead_letters == 1


def test_real_binance_frames_publish_each_trade_once_keyed_by_instrument() -> None:
    frames = binance_trade_frames(500)
    pipeline, sink, clock = _pipeline(Binance("ws://x"), ["BTCUSDT", "ETHUSDT"])
    for text in frames + frames[100:200]:  # a reconnect replays 100 frames
        pipeline.on_frame(text, clock.now)
    trades = [(k, v) for t, k, v in sink.records if t == "t"]
    assert len(trades) == 500 and pipeline.counters.duplicates == 100
    assert {k for k, _v in trades} == {"binance:BTCUSDT", "binance:ETHUSDT"}
    assert all(k == f"binance:{v['symbol']}" for k, v in trades)
    assert sink.on("fe") == [] and sink.on("dlq") == []


def test_skipped_frames_are_reported_as_gaps_with_the_missing_range() -> None:
    frames = [f for f in binance_trade_frames(400) if '"s":"BTCUSDT"' in f]
    pipeline, sink, clock = _pipeline(Binance("ws://x"), ["BTCUSDT"])
    for text in frames[:50] + frames[60:]:
        pipeline.on_frame(text, clock.now)
    missing = [json.loads(f)["data"] for f in frames[50:60]]
    [gap] = sink.on("fe")
    assert set(gap) == set(column_names(FEED_EVENT))
    assert (gap["kind"], gap["symbol"], gap["from_trade_id"], gap["to_trade_id"], gap["count"]) == (
        "gap",
        "BTCUSDT",
        missing[0]["t"],
        missing[-1]["t"],
        10,
    )
    assert gap["from_ts"] == json.loads(frames[49])["data"]["T"] and gap["to_ts"] == json.loads(frames[60])["data"]["T"]


def test_coinbase_heartbeat_last_trade_id_reveals_trades_never_received() -> None:
    pipeline, sink, clock = _pipeline(Coinbase("ws://x"), ["SKL-USD"])
    matches = [f for f in coinbase_match_frames() if '"SKL-USD"' in f and "match" in f]
    for text in matches[:5]:
        pipeline.on_frame(text, clock.now)
    last = json.loads(matches[4])["trade_id"]
    beat = {
        "type": "heartbeat",
        "sequence": 1,
        "last_trade_id": last + 3,
        "product_id": "SKL-USD",
        "time": "2021-04-17T16:43:40.000000Z",
    }
    pipeline.on_frame(json.dumps(beat), clock.now)
    [gap] = sink.on("fe")
    assert (gap["symbol"], gap["from_trade_id"], gap["to_trade_id"]) == ("SKL-USD".replace("-", ""), last + 1, last + 3)
    pipeline.on_frame(matches[5], clock.now)  # id last+1 arrives late: accepted, fills the gap
    assert len(sink.on("t")) == 6


def test_advanced_trade_sequence_gaps_and_newest_first_snapshots() -> None:
    frames = coinbase_advanced_frames()
    pipeline, sink, clock = _pipeline(Coinbase("ws://x", feed="market_trades"), ["BTC-USD", "ETH-USD"])
    for n, text in enumerate(frames):
        frame = json.loads(text)
        frame["sequence_num"] = n + (3 if n >= 10 else 0)  # three messages lost after the 10th
        pipeline.on_frame(json.dumps(frame), clock.now)
    [seq_gap] = [e for e in sink.on("fe") if e["kind"] == "sequence_gap"]
    assert (seq_gap["from_trade_id"], seq_gap["to_trade_id"]) == (10, 12)
    assert len(sink.on("t")) == 279 and pipeline.counters.gaps == 0  # snapshot ids sorted before gap checks


def test_subscription_errors_are_not_retried() -> None:
    with pytest.raises(SubscriptionRejected):
        Binance("ws://x").decode('{"error":{"code":2,"msg":"Invalid request"},"id":1}', None)
    with pytest.raises(SubscriptionRejected):
        Coinbase("ws://x").decode('{"type":"error","message":"Failed to subscribe","reason":"x"}', None)


def test_binance_confirms_once_every_subscribe_request_is_answered() -> None:
    venue = Binance("ws://x")
    venue.max_streams_per_message = 2
    messages = [json.loads(m) for m in venue.subscribe_messages(["BTCUSDT", "ETHUSDT", "BNBUSDT"])]
    assert [m["params"] for m in messages] == [["btcusdt@trade", "ethusdt@trade"], ["bnbusdt@trade"]]
    assert not venue.decode(json.dumps({"result": None, "id": messages[0]["id"]}), None).subscribed
    assert venue.decode(json.dumps({"result": None, "id": messages[1]["id"]}), None).subscribed


def test_heartbeats_follow_the_exchange_clock_only_while_data_flows() -> None:
    pipeline, sink, clock = _pipeline(Binance("ws://x"), ["BTCUSDT"])
    frame = binance_trade_frames(1)[0]
    exchange_ts = json.loads(frame)["data"]["E"]
    pipeline.tick()
    assert sink.on("t") == []  # not connected yet
    pipeline.on_connected()
    pipeline.on_frame(frame, clock.now)
    clock.now += 1500
    pipeline.tick()
    beats = [v for v in sink.on("t") if v["type"] == "heartbeat"]
    assert [b["timestamp"] for b in beats] == [exchange_ts + 1500]
    pipeline.on_disconnected("test")
    clock.now += 5000
    pipeline.tick()
    assert len([v for v in sink.on("t") if v["type"] == "heartbeat"]) == 1  # none while down
    pipeline.on_connected()
    [down] = [e for e in sink.on("fe") if e["kind"] == "disconnect"]
    assert (down["symbol"], down["from_ts"], down["to_ts"], down["detail"]) == (
        "BTCUSDT",
        clock.now - 6500,
        clock.now,
        "test",
    )


def test_health_records_report_lag_percentiles_and_message_rate() -> None:
    pipeline, sink, clock = _pipeline(Binance("ws://x"), ["BTCUSDT"])
    frames = binance_trade_frames(100)
    for text in frames:
        pipeline.on_frame(text, json.loads(text)["data"]["T"] + 40)
    clock.now += 2000
    pipeline.tick()
    [health] = [e for e in sink.on("fe") if e["kind"] == "health"]
    assert health["lag_p50_ms"] == 40.0 and health["lag_p99_ms"] == 40.0
    assert health["msgs_per_s"] == 50.0  # 100 frames in 2 s
    assert percentile([1, 2, 3, 4], 0.5) == 2.0 and percentile([], 0.5) is None


def test_a_quiet_market_keeps_its_heartbeats_while_the_venue_pings() -> None:
    pipeline, sink, clock = _pipeline(Binance("ws://x"), ["BTCUSDT"])
    pipeline.on_connected()
    pipeline.on_frame(binance_trade_frames(1)[0], clock.now)
    for _ in range(3):  # 3 x 20 s without trades, a ping each time
        clock.now += 20_000
        pipeline.on_alive(clock.now)
        pipeline.tick()
    beats = [v["timestamp"] for v in sink.on("t") if v["type"] == "heartbeat"]
    assert len(beats) == 3 and beats == sorted(beats) and beats[-1] - beats[0] == 40_000


def test_the_symbol_map_renames_canonical_symbols() -> None:
    venue = Binance("ws://x", {"BTCUSDT": "XBTUSDT"})
    pipeline, sink, clock = _pipeline(venue, ["BTCUSDT"])
    pipeline.on_frame(binance_trade_frames(1)[0], clock.now)
    [(_topic, key, value)] = sink.records
    assert (key, value["symbol"]) == ("binance:XBTUSDT", "XBTUSDT")
    assert pipeline.exchange_symbols == {"XBTUSDT": "BTCUSDT"}  # REST backfill asks for the venue's name
    assert Coinbase("ws://x", {"BTC-USD": "XBTUSD"}).canonical("BTC-USD") == "XBTUSD"
