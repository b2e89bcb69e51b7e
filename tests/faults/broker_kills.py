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

from core.settings import REPO_ROOT, load
from infra.kafka_local import LocalKafka, ensure_project_topics
from ingest.live import run_feed
from tests.faults import FaultRow
from tests.support.exchange_data import binance_trade_frames, trade_ids
from tests.support.fake_exchange import FakeExchange
from tests.support.kafka_helpers import consume
from tests.support.ports import free_port


def _trades(broker: LocalKafka, topic: str) -> Counter[tuple[str, int]]:
    records = consume(broker.bootstrap, topic, idle_s=1.0)
    return Counter((r.value["symbol"], r.value["trade_id"]) for r in records if r.value.get("type") == "trade")


def _own_broker(work: Path) -> LocalKafka:
    broker = LocalKafka(
        work / "kafka", "127.0.0.1", free_port(), controller_port=free_port(), jars_dir=REPO_ROOT / ".kafka" / "jars"
    )
    broker.start(die_with_parent=True)
    return broker


def _kill_and_restart(broker: LocalKafka, started: float, moments: list[float], down_s: float) -> list[float]:
    """At each moment (seconds after `started`): kill -9, `down_s` down, start again on the same data.
    Returns the seconds from each kill to the broker answering again."""
    recoveries = []
    for at in moments:
        time.sleep(max(0.0, started + at - time.monotonic()))
        _kill(broker)
        time.sleep(down_s)
        back = time.monotonic()
        broker.start(die_with_parent=True)
        recoveries.append(time.monotonic() - back + down_s)
    return recoveries


def _kill(broker: LocalKafka) -> None:
    pid = broker.running_pid()
    assert pid is not None, "no broker to kill"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while broker.running_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)


def kill_during_ingest(work: Path, kills: int = 3, seed: int = 7, down_s: float = 2.0) -> FaultRow:
    rng = random.Random(seed)
    broker = _own_broker(work)
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
    recoveries: list[float] = []
    try:
        recoveries = _kill_and_restart(broker, started, moments, down_s)
        # Until every trade is on the topic (the ingestor reads on while the producer catches up), or 2 minutes.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not errors:
            if len(_trades(broker, settings.kafka.topic)) >= len(frames):
                break
            time.sleep(2.0)
    finally:
        stop.set()
        thread.join(150)
        fake.stop()
    got = _trades(broker, settings.kafka.topic)
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


def kill_during_job(work: Path, kills: int = 3, seed: int = 7, down_s: float = 2.0) -> FaultRow:
    """The broker killed and restarted under the running stream job (0 s trigger, small batches):
    the lake must equal an uninterrupted run's. A job that stops is started again (counted)."""
    import lake
    from ingest.tape import read_tape, write_tape
    from tests.support.data import SAMPLE
    from tests.support.job import job_args, replay, run_job, snapshot, start_job, stop_job
    from tests.support.messy_tape import messy_tape

    rng = random.Random(seed)
    broker = _own_broker(work)
    settings = load(kafka_bootstrap_servers=broker.bootstrap)
    ensure_project_topics(broker, settings)
    tape, _ = messy_tape(list(read_tape(SAMPLE)))
    write_tape(work / "tape.ndjson", tape)
    replay(work / "tape.ndjson", broker.bootstrap, settings.kafka.topic)
    clean = run_job(*job_args(broker.bootstrap, settings, work / "clean" / "lake", work / "clean" / "cp",
                              max_offsets=1500))  # fmt: skip
    assert clean.returncode == 0, clean.stdout[-2000:]
    expected = snapshot(work / "clean" / "lake")
    trades = sum(row[-1] for row in lake.connect(work / "clean" / "lake").sql(
        "SELECT 0, sum(trade_count) FROM ohlc").fetchall())  # fmt: skip

    args = job_args(broker.bootstrap, settings, work / "run" / "lake", work / "run" / "cp", "0 seconds", 1500)
    job = start_job(*args)
    restarts, recoveries = 0, []
    started = time.monotonic()
    moments = sorted(rng.uniform(8.0, 30.0) for _ in range(kills))
    try:
        recoveries = _kill_and_restart(broker, started, moments, down_s)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if job.poll() is not None:  # the job stopped: start it again from its checkpoint
                restarts += 1
                job = start_job(*args)
            try:
                done = lake.connect(work / "run" / "lake").sql("SELECT sum(trade_count) FROM ohlc").fetchall()[0][0]
            except Exception:
                done = None
            if done is not None and done >= trades:
                time.sleep(5)  # let volatility and rejects of the last batch land
                break
            time.sleep(2)
    finally:
        if job.poll() is None:
            stop_job(job)
    got = snapshot(work / "run" / "lake")
    broker.stop()
    lost = sum(len(set(map(repr, expected[t])) - set(map(repr, got[t]))) for t in expected)
    extra = sum(len(got[t]) - len(set(map(repr, got[t]))) + len(set(map(repr, got[t])) - set(map(repr, expected[t])))
                for t in expected)  # fmt: skip
    when = ", ".join(f"{m:.1f}" for m in moments)
    return FaultRow(
        f"broker kill -9 x{kills} during the stream job", sum(len(v) for v in expected.values()), restarts == 0,
        lost, extra,
        recover_s=max(recoveries) if recoveries else None,
        detail=f"lake rows (ohlc, volatility, rejects) vs an uninterrupted run; broker down {down_s:.0f} s at "
        f"{when} s; job restarts {restarts}",
    )  # fmt: skip
