"""Live bars, all real: replay -> Kafka -> `python -m jobs.forming_bars_service` -> crypto.bars.live,
beside the Spark job.

Once a window is final, its last live update must equal the lake's final bar, column by
column. The real tape (made messy: neighbours swapped, repeats, invalid records) is replayed
at 40x real time while the live-bar consumer runs; two demo loops follow on the same topic.
The Spark job then builds the lake from the same topic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

import lake
from core.live_bars import decode
from core.schema import OHLC, column_names
from core.settings import REPO_ROOT, Settings
from infra.kafka_local import LocalKafka
from ingest.demo import DEMO_EXCHANGE
from ingest.tape import read_tape, write_tape
from tests.support.job import job_args, run_job
from tests.support.kafka_helpers import fresh_topics
from tests.support.messy_tape import messy_tape
from tests.support.reference import expected_loops

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"
BAR_COLUMNS = [c for c in column_names(OHLC) if c != "date"]


def _cli(settings: Settings, *args: str) -> list[str]:
    return [*args, "--bootstrap-servers", settings.kafka.bootstrap_servers, "--topic", settings.kafka.topic]


def live_updates(settings: Settings, idle_s: float = 8.0, timeout_s: float = 120) -> list[tuple[int, dict[str, Any]]]:
    """Every update on the live topic, with its Kafka timestamp, once none has arrived for `idle_s`."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False)
    topic = settings.kafka.live_bars_topic
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out: list[tuple[int, dict[str, Any]]] = []
    deadline, last_new = time.monotonic() + timeout_s, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_new < idle_s:
        for records in consumer.poll(timeout_ms=200).values():
            out += [(r.timestamp, decode(r.value)) for r in records]
            last_new = time.monotonic()
    consumer.close()
    return out


@pytest.fixture(scope="module")
def run(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("live_bars")
    settings = fresh_topics(kafka, work)
    settings = settings.with_overrides(kafka_live_bars_topic=f"{settings.kafka.topic}.live")
    host, port = kafka.split(":")
    LocalKafka(work, host, int(port)).ensure_topics([settings.kafka.live_bars_topic], partitions=4)
    tape, _ = messy_tape(list(read_tape(SAMPLE)))
    write_tape(work / "tape.ndjson", tape)
    env = {**os.environ, "KAFKA_LIVE_BARS_TOPIC": settings.kafka.live_bars_topic}
    live = subprocess.Popen(
        _cli(settings, sys.executable, "-m", "jobs.forming_bars_service", "--from-beginning"),
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        # Garbage on the trades topic first: the live stream must carry on past it.
        producer = KafkaProducer(bootstrap_servers=kafka)
        producer.send(settings.kafka.topic, key=b"binance:BTCUSDT", value=b"{not json").get(timeout=30)
        producer.send(settings.kafka.topic, key=b"binance:BTCUSDT", value=b'{"type":"trade","v":1}').get(timeout=30)
        producer.close()
        replay = _cli(settings, sys.executable, "-m", "ingest", "replay", str(work / "tape.ndjson"), "--speed", "40")
        done = subprocess.run(replay, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        demo = _cli(settings, sys.executable, "-m", "ingest", "demo", "--loops", "2", "--speed", "0")
        demo_start_ms = int(time.time() * 1000)
        done = subprocess.run(demo, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        updates = live_updates(settings)
    finally:
        os.killpg(live.pid, signal.SIGTERM)
        live_out, _ = live.communicate(timeout=60)
    job = run_job(*job_args(kafka, settings, work / "lake", work / "checkpoints"))
    assert job.returncode == 0, job.stdout[-5000:]
    yield {
        "tape": tape, "updates": updates, "lake": work / "lake", "live_out": live_out,
        "live_rc": live.returncode, "demo_start_ms": demo_start_ms,
    }  # fmt: skip


def exact_rows(lake_dir: Path, sql: str) -> list[Any]:
    """Rows with Decimal values as DuckDB returns them (a DataFrame would make them floats)."""
    result = lake.connect(lake_dir).execute(sql)
    names = [d[0] for d in result.description]
    return [pd.Series(row, index=names) for row in result.fetchall()]


def last_per_window(updates: list[tuple[int, dict[str, Any]]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    last: dict[tuple[str, str, int], dict[str, Any]] = {}
    for _ts, u in updates:
        last[(u["exchange"], u["symbol"], u["window_start"])] = u
    return last


def test_the_last_update_of_every_window_is_final_and_equals_the_lakes_bar(run: dict[str, Any]) -> None:
    assert run["live_rc"] == 0, run["live_out"][-3000:]
    last = last_per_window(run["updates"])
    assert all(u["final"] for u in last.values()), "a window never got its final update"
    bars = exact_rows(run["lake"], "SELECT * EXCLUDE (date) FROM ohlc")
    compared = 0
    for row in bars:
        key = (row.exchange, row.symbol, int(row.window_start.timestamp() * 1000))
        live = last.pop(key, None)
        assert live is not None, f"no live bar for the lake's {key}"
        for column in BAR_COLUMNS:
            want = getattr(row, column)
            got = live[column]
            if column in ("window_start", "window_end"):
                want = int(want.timestamp() * 1000)
            assert got == want, f"{key} {column}: live {got!r}, lake {want!r}"
        compared += 1
    assert not last, f"live final bars the lake does not have: {list(last)[:5]}"
    real = sum(1 for r in bars if r.exchange == "binance")
    print(f"\nlive/final parity: {compared} windows compared ({real} of the real tape, {compared - real} demo)")
    assert real == 665 and compared - real == 2 * 665
    # The two garbage values and the tape's 7 invalid records were counted, not fatal; repeats
    # were counted as duplicates.
    assert "invalid 9 " in run["live_out"] and "duplicates 150 " in run["live_out"], run["live_out"][-2000:]


def test_provisional_updates_come_before_the_final_one(run: dict[str, Any]) -> None:
    updates = [u for _ts, u in run["updates"]]
    finals = {(u["exchange"], u["symbol"], u["window_start"]): u for u in updates if u["final"]}
    assert len(finals) == 3 * 665
    # The real tape arrived paced (40x: a second of trades in 25 ms, about one emission interval),
    # so many of its windows were seen forming; the demo loops arrived all at once (speed 0).
    forming = [u for u in updates if not u["final"] and u["exchange"] == "binance"]
    windows = {(u["exchange"], u["symbol"], u["window_start"]) for u in forming}
    assert len(windows) > 200, len(windows)
    for u in forming:  # a provisional bar is a part of its final bar, never more
        final = finals[(u["exchange"], u["symbol"], u["window_start"])]
        assert u["trade_count"] <= final["trade_count"] and final["low"] <= u["low"] and u["high"] <= final["high"]
    # Each update carries the newest included trade's time, inside its window.
    for u in updates:
        assert u["window_start"] <= u["last_trade_ts"] < u["window_end"]


def test_two_demo_loops_in_the_lake_equal_the_tape_shifted_with_no_duplicates(run: dict[str, Any]) -> None:
    rows = exact_rows(
        run["lake"],
        "SELECT * EXCLUDE (date, window_end) FROM ohlc WHERE exchange = "
        f"'{DEMO_EXCHANGE}' ORDER BY symbol, window_start",
    )
    actual = pd.DataFrame(rows)
    tape = list(read_tape(SAMPLE))
    # The demo shifted the tape to the second after it started, which the test only knows within the run.
    first = actual["window_start"].min()
    for guess in range(run["demo_start_ms"] - 2000, run["demo_start_ms"] + 4000, 1000):
        expected = expected_loops(tape, 2, guess)
        if expected["window_start"].min() == first:
            break
    else:
        pytest.fail("no start time reproduces the demo's first bar")
    assert len(actual) == len(expected) == 2 * 665
    for column in expected.columns:
        left = list(actual[column])
        right = list(expected[column])
        if column == "window_start":
            left = [pd.Timestamp(x).tz_convert("UTC") for x in left]
        assert left == right, column
    duplicates = (
        lake.connect(run["lake"])
        .sql("SELECT sum(duplicates_dropped), sum(rows_dropped_by_watermark) FROM progress WHERE query = 'ohlc'")
        .fetchall()[0]
    )
    assert duplicates == (150, 0)  # the messy tape's 150 repeats; the demo's loops added none
