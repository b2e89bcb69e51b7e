"""The broker killed (`kill -9`) and restarted while the live ingestor publishes: no accepted trade
lost, none duplicated. The producer must buffer through the outage (or fail loudly), never drop.

The fake exchange plays real Binance frames in bursts over ~15 s; the broker is killed at random
moments, stays down a moment, and is started again on the same data and port.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from infra.kafka_local import LocalKafka, ensure_project_topics
from ingest.live import run_feed
from lake.settings import REPO_ROOT, load
from tests.conftest import free_port
from tests.exchange_data import binance_trade_frames, trade_ids
from tests.fake_exchange import FakeExchange
from tests.faults import FaultRow
from tests.kafka_helpers import consume


def _kill(broker: LocalKafka) -> None:
    pid = broker.running_pid()
    assert pid is not None, "no broker to kill"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while broker.running_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)


def kill_during_ingest(work: Path, kills: int = 3, seed: int = 7, down_s: float = 2.0) -> FaultRow:
    rng = random.Random(seed)
    broker = LocalKafka(
        work / "kafka", "127.0.0.1", free_port(), controller_port=free_port(), jars_dir=REPO_ROOT / ".kafka" / "jars"
    )
    broker.start(die_with_parent=True)
    settings = load(
        kafka_bootstrap_servers=broker.bootstrap, ws_silence_timeout_s=30.0, ws_backoff_initial_s=0.05,
        ingest_status_interval_s=1.0,
    )  # fmt: skip
    ensure_project_topics(broker, settings)
    frames = binance_trade_frames(3000)
    bursts = 12
    plan = [step for _ in range(bursts) for step in (("send", len(frames) // bursts + 1), ("quiet", 1.2))]
    fake = FakeExchange("binance", frames, [plan]).start()
    stop = threading.Event()
    errors: list[BaseException] = []

    def feed() -> None:
        try:
            run_feed("binance", ["BTCUSDT", "ETHUSDT"], settings, stop, url=fake.ws_url)
        except BaseException as exc:  # surfaced in the row
            errors.append(exc)

    thread = threading.Thread(target=feed)
    thread.start()
    moments = sorted(rng.uniform(1.0, bursts * 1.2 - down_s - 1) for _ in range(kills))
    started = time.monotonic()
    recoveries = []
    try:
        for at in moments:
            time.sleep(max(0.0, started + at - time.monotonic()))
            _kill(broker)
            time.sleep(down_s)
            back = time.monotonic()
            broker.start(die_with_parent=True)
            recoveries.append(time.monotonic() - back + down_s)
        deadline = time.monotonic() + 90
        while fake.cursor < len(frames) and time.monotonic() < deadline and not errors:
            time.sleep(0.1)
        time.sleep(3.0)  # the last frames, and the producer's retries
    finally:
        stop.set()
        thread.join(150)
        fake.stop()
    got = Counter(
        (r.value["symbol"], r.value["trade_id"]) for r in consume(broker.bootstrap, settings.kafka.topic)
        if r.value.get("type") == "trade"
    )  # fmt: skip
    broker.stop()
    expected = trade_ids(frames, "binance")
    lost = len(expected - set(got))
    duplicated = sum(n - 1 for n in got.values() if n > 1)
    when = ", ".join(f"{m:.1f}" for m in moments)
    return FaultRow(
        f"broker kill -9 x{kills} during live ingest", len(expected), not errors, lost, duplicated,
        recover_s=max(recoveries) if recoveries else None,
        detail=f"trades {len(expected):,}; broker down {down_s:.0f} s at {when} s"
        + (f"; ingestor failed: {errors[0]}" if errors else ""),
    )  # fmt: skip
