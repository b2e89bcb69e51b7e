"""The dashboard's tail of `crypto.bars.live`: the pure parts without Kafka, then against a real broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer, TopicPartition

from core.live_bars import encode
from core.live_tail import MAX_LAG_RECORDS, SKIP_GRACE_MS, LiveBars, LiveFeed, behind, live_bar, skip_target
from dashboard import live_feed
from infra.kafka_local import LocalKafka
from tests.support.ports import free_port

T0_MS = 1_767_600_000_000  # 2026-01-05 08:00 UTC
KEEP_MS = 300_000


def bar(
    second: int = 0, close: str = "100", final: bool = False, emitted_at: int | None = None, **fields: Any
) -> dict[str, Any]:
    start = T0_MS + second * 1000
    price = Decimal(close)
    return {
        "exchange": "binance", "symbol": "BTCUSDT", "window_start": start, "window_end": start + 1000,
        "open": price, "high": price, "low": price, "close": price, "volume": Decimal("1"), "quote_volume": price,
        "vwap": float(price), "trade_count": 1, "buy_volume": Decimal("1"), "sell_volume": Decimal("0"),
        "first_trade_id": second, "last_trade_id": second, "final": final,
        "emitted_at": start + 100 if emitted_at is None else emitted_at, "last_trade_ts": start + 50, **fields,
    }  # fmt: skip


def test_the_newest_update_of_each_window_is_kept() -> None:
    store = LiveBars(KEEP_MS)
    assert store.add(bar(0, "100", emitted_at=T0_MS + 100))
    assert store.add(bar(0, "101", emitted_at=T0_MS + 200))
    assert not store.add(bar(0, "99", emitted_at=T0_MS + 150))  # an older update read late
    assert store.add(bar(0, "102", final=True, emitted_at=T0_MS + 1100))
    assert not store.add(bar(0, "98", emitted_at=T0_MS + 1200))  # provisional after final: a re-read
    assert store.add(bar(1, "103"))
    assert store.add(bar(0, "100", symbol="ETHUSDT"))
    kept = store.bars("binance", "BTCUSDT")
    assert [(b["window_start"], b["close"], b["final"]) for b in kept] == [
        (T0_MS, Decimal("102"), True),
        (T0_MS + 1000, Decimal("103"), False),
    ]
    assert len(store) == 3 and store.bars("coinbase", "BTCUSDT") == []


def test_updates_older_than_the_keep_window_are_pruned() -> None:
    store = LiveBars(KEEP_MS)
    for second in range(10):
        store.add(bar(second))  # emitted 100 ms after each window starts
    assert store.prune(T0_MS + KEEP_MS + 100) == 0  # the oldest is exactly KEEP_MS old
    assert store.prune(T0_MS + KEEP_MS + 3101) == 4  # seconds 0..3 are older than that
    assert store.bars("binance", "BTCUSDT")[0]["window_start"] == T0_MS + 4000
    assert store.prune(T0_MS + 10 * KEEP_MS) == 6 and len(store) == 0


def test_behind_and_where_to_skip() -> None:
    now = T0_MS + 10 * KEEP_MS
    assert not behind(None, now, None, KEEP_MS)
    assert not behind(now - KEEP_MS, now, 10, KEEP_MS)  # just read from where it started
    assert behind(now - KEEP_MS - SKIP_GRACE_MS - 1, now, 10, KEEP_MS)
    assert behind(now, now, MAX_LAG_RECORDS + 1, KEEP_MS)
    assert not behind(now, now, MAX_LAG_RECORDS, KEEP_MS)
    assert skip_target(100, 500, 900) == 500  # to the first record within KEEP_S
    assert skip_target(100, None, 900) == 900  # nothing that recent: to the end
    assert skip_target(600, 500, 900) == 600  # never backwards
    assert skip_target(0, 10, MAX_LAG_RECORDS + 50) == 50  # at most MAX_LAG_RECORDS behind the end


class FakeConsumer:
    """The few KafkaConsumer calls `catch_up` makes, over one partition of 1000 records, 1 per second."""

    def __init__(self, position: int, end: int, first_ms: int) -> None:
        self.at, self.end, self.first_ms = position, end, first_ms

    def position(self, tp: TopicPartition) -> int:
        return self.at

    def highwater(self, tp: TopicPartition) -> int:
        return self.end

    def offsets_for_times(self, times: dict[TopicPartition, int], timeout_ms: int) -> dict[TopicPartition, Any]:
        found = {tp: max(0, (t - self.first_ms + 999) // 1000) for tp, t in times.items()}
        return {tp: (type("Found", (), {"offset": o})() if o < self.end else None) for tp, o in found.items()}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.at = offset


def test_a_reader_that_falls_behind_skips_ahead_and_counts_it() -> None:
    feed = LiveFeed("127.0.0.1:9", "t")
    tp = TopicPartition("t", 0)
    now = T0_MS + 1000 * 1000  # record i was written at T0 + i s: the newest (999) is 1 s old
    consumer = FakeConsumer(position=100, end=1000, first_ms=T0_MS)
    feed.catch_up(consumer, {tp: T0_MS + 99_000}, {}, now)  # just read record 99: 901 s old
    assert consumer.at == 700 and feed.counts.dropped == 600  # resumes at the record from now - 300 s
    feed.catch_up(consumer, {tp: T0_MS + 700_000}, {tp: 1000}, now)  # caught up: no skip
    assert consumer.at == 700 and feed.counts.dropped == 600


def test_only_live_bars_are_kept() -> None:
    assert live_bar(encode(bar(0))) is not None
    garbage = [
        b"not json", b"", None, b"[1, 2]", encode(bar(0)).replace(b'"v":1', b'"v":9'),
        encode(bar(0)).replace(b'"close":"100.00000000"', b'"close":"abc"'),
        encode(bar(0)).replace(b'"final":false', b'"final":"no"'),
        encode(bar(0)).replace(str(T0_MS).encode(), b'"soon"', 1),
    ]  # fmt: skip
    feed = LiveFeed("127.0.0.1:9", "t")
    for value in garbage:
        assert live_bar(value) is None, value
        feed.ingest(value)
    feed.ingest(encode(bar(3, "105")))
    assert (feed.counts.undecodable, feed.counts.updates) == (len(garbage), 1)
    frame = feed.snapshot("binance", "BTCUSDT")
    assert list(frame["close"]) == [Decimal("105")] and str(frame["window_start"].dt.tz) == "UTC"


def _wait_for(check: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_no_broker_is_one_status_line_and_a_retry() -> None:
    address = f"127.0.0.1:{free_port()}"
    feed = LiveFeed(address, "crypto.bars.live", retry_s=0.2).start()
    try:
        assert feed.snapshot("binance", "BTCUSDT").empty  # never blocks, even before the first attempt ends
        _wait_for(lambda: "unavailable" in feed.status)
        assert feed.status == f"live stream unavailable: no broker answers at {address}" and not feed.available
    finally:
        feed.stop()


def test_the_page_accessor_reads_the_configured_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, str]] = []
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    monkeypatch.setattr(live_feed, "_feed", lambda bootstrap, topic: made.append((bootstrap, topic)))
    live_feed.current()
    assert made == [("10.0.0.1:9092", "crypto.bars.live")]


@pytest.mark.integration
def test_the_feed_tails_a_real_topic(kafka: str, tmp_path: Path) -> None:
    topic = f"bars.live.{uuid.uuid4().hex[:8]}"
    host, port = kafka.split(":")
    LocalKafka(tmp_path, host, int(port)).ensure_topics([topic], partitions=2)
    now = int(time.time() * 1000)
    second = now - now % 1000 - 5000

    def live(offset_s: int, close: str, final: bool, emitted_at: int) -> bytes:
        start = second + offset_s * 1000
        return encode({**bar(0, close, final, emitted_at), "window_start": start, "window_end": start + 1000})

    producer = KafkaProducer(bootstrap_servers=kafka)

    def publish(*values: bytes) -> None:
        for value in values:
            producer.send(topic, key=b"binance:BTCUSDT", value=value).get(timeout=30)

    publish(live(0, "100", False, now), live(0, "101", False, now + 1))  # before the feed starts: read back
    feed = LiveFeed(kafka, topic, retry_s=0.5).start()
    missing = LiveFeed(kafka, f"{topic}.missing", retry_s=0.5).start()
    try:
        _wait_for(lambda: feed.available)
        publish(b"{garbage", live(0, "102", True, now + 2), live(1, "103", False, now + 3))  # while it tails
        _wait_for(lambda: feed.counts.updates == 4)
        frame = feed.snapshot("binance", "BTCUSDT")
        assert list(frame["close"]) == [Decimal("102"), Decimal("103")] and list(frame["final"]) == [True, False]
        assert feed.counts.undecodable == 1 and feed.counts.dropped == 0
        assert feed.status == f"live stream: {topic} on {kafka}" and feed.available
        publish(live(2, "104", False, now + 4))
        _wait_for(lambda: len(feed.snapshot("binance", "BTCUSDT")) == 3)  # still reading after the garbage
        _wait_for(lambda: "unavailable" in missing.status)
        assert missing.status == f"live stream unavailable: topic {topic}.missing does not exist on {kafka}"
    finally:
        producer.close()
        feed.stop()
        missing.stop()


def test_a_revised_final_bar_replaces_the_final_one_whatever_the_clocks() -> None:
    from core.live_tail import newer

    final = {"final": True, "emitted_at": 5_000, "revision": 0}
    revised = {"final": True, "emitted_at": 4_000, "revision": 1}  # the job's host clock runs behind
    assert newer(final, revised) and not newer(revised, final)
    assert not newer(revised, {"final": False, "emitted_at": 9_000, "revision": 0})  # a re-read provisional
    assert newer(revised, {**revised, "revision": 2})
