"""Live and replay decode alike: the same real frames through the fake exchange and through a replay.

Each venue's real frames (and some bad ones) go to the live ingestor over a WebSocket, which
publishes to Kafka and records what it received; the recording is then replayed through the
replay path. Both give the same trade records and the same dead letters.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from ingest.frames import frames_to_records, read_frames
from ingest.live import run_feed
from tests.support.exchange_data import (
    binance_trade_frames,
    coinbase_advanced_frames,
    coinbase_match_frames,
    okx_frames,
)
from tests.support.fake_exchange import FakeExchange
from tests.support.kafka_helpers import consume, fresh_topics

pytestmark = pytest.mark.integration

GARBAGE = ["{oops", '{"unexpected":"shape"}', "[1, 2]"]
END = "{end"  # garbage after the last frame: once its dead letter is out, every frame before it was read
FAST = {"ws_backoff_initial_s": 0.05, "ws_silence_timeout_s": 5.0, "ingest_status_interval_s": 1.0}

# venue protocol (the fake's) -> (exchange, symbols, frames, extra settings)
CASES: dict[str, tuple[str, list[str], Callable[[], list[str]], dict[str, Any]]] = {
    "binance": ("binance", ["BTCUSDT", "ETHUSDT"], lambda: binance_trade_frames(300), {}),
    "coinbase": ("coinbase", ["SKL-USD"], coinbase_match_frames, {}),
    "coinbase-advanced": (
        "coinbase", ["BTC-USD", "ETH-USD"], coinbase_advanced_frames, {"coinbase_feed": "market_trades"}
    ),
    "okx": ("okx", ["BTC-USDT"], okx_frames, {}),
}  # fmt: skip


def _live(fake: FakeExchange, settings: Settings, exchange: str, symbols: list[str], record: Path, kafka: str) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_feed(exchange, symbols, settings, stop, url=fake.ws_url, record_dir=record)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not errors and fake.cursor < len(fake.frames):
        time.sleep(0.05)
    # Sent is not read: a loaded machine may still hold the last frames in the socket. The ingestor
    # reads in order, so it has read them all once END's dead letter is on the topic.
    dead_letters = len(GARBAGE) + 1
    while time.monotonic() < deadline and not errors:
        if len(consume(kafka, settings.kafka.dlq_topic, idle_s=0.1, timeout_s=1)) >= dead_letters:
            break
    stop.set()
    thread.join(30)
    assert not errors, errors
    assert fake.cursor == len(fake.frames)


def _key(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)


@pytest.mark.parametrize("protocol", list(CASES))
def test_live_and_replay_give_the_same_records_and_dead_letters(kafka: str, tmp_path: Path, protocol: str) -> None:
    exchange, symbols, frames_of, extra = CASES[protocol]
    frames = frames_of()
    half = len(frames) // 2
    plan = [("send", half), *[("garbage", g) for g in GARBAGE], ("send", len(frames) - half), ("garbage", END)]
    fake = FakeExchange(protocol, frames, [plan]).start()
    settings = fresh_topics(kafka, tmp_path, **FAST, **extra)
    try:
        _live(fake, settings, exchange, symbols, tmp_path / "rec", kafka)
    finally:
        fake.stop()
    live = [r.value for r in consume(kafka, settings.kafka.topic) if r.value["type"] == "trade"]
    live_dead = [r.value for r in consume(kafka, settings.kafka.dlq_topic)]

    (recording,) = sorted((tmp_path / "rec").rglob("*.ndjson.gz"))
    replay_dead: list[tuple[str, str, str]] = []
    replayed = list(
        frames_to_records(
            read_frames(recording, "recording"),
            lambda frame, exc: replay_dead.append((exc.reason, exc.detail, frame[2])),
            settings,
        )
    )
    assert len(live) > 0
    assert Counter(map(_key, replayed)) == Counter(map(_key, live))
    assert Counter(replay_dead) == Counter((d["reason"], d["detail"], d["raw"]) for d in live_dead)
    assert {d["reason"] for d in live_dead} >= {"malformed_json"}
