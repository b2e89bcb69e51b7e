"""`python -m ingest` as users run it: live with SIGTERM, record, replay of every format, synth."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import REPO_ROOT
from ingest.frames import FrameDecoder, detect_format, read_frames
from ingest.tape import read_tape, write_tape
from tests.support.data import DATA
from tests.support.exchange_data import binance_trade_frames, trade_ids
from tests.support.fake_exchange import FakeExchange
from tests.support.kafka_helpers import consume, fresh_topics
from tests.support.ports import free_port

pytestmark = pytest.mark.integration
SAMPLE = REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ingest", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def binance_fake() -> Iterator[FakeExchange]:
    fake = FakeExchange("binance", binance_trade_frames(2000), [[("send", 1000), ("drop",)], []]).start()
    yield fake
    fake.stop()


def test_live_flushes_everything_on_sigterm(kafka: str, tmp_path: Path, binance_fake: FakeExchange) -> None:
    settings = fresh_topics(kafka, tmp_path)
    proc = _cli(
        "live",
        "--exchange",
        "binance",
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--url",
        binance_fake.ws_url,
        "--topic",
        settings.kafka.topic,
        "--bootstrap-servers",
        kafka,
        env={
            "KAFKA_DLQ_TOPIC": settings.kafka.dlq_topic,
            "KAFKA_FEED_EVENTS_TOPIC": settings.kafka.feed_events_topic,
            "WS_BACKOFF_INITIAL_S": "0.05",
        },
    )
    deadline = time.monotonic() + 60
    while binance_fake.cursor < len(binance_fake.frames) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == "binance: 2000 trades, 0 dead letters, 0 gaps"
    trades = [r.value for r in consume(kafka, settings.kafka.topic) if r.value["type"] == "trade"]
    assert Counter((t["symbol"], t["trade_id"]) for t in trades) == Counter(trade_ids(binance_fake.frames, "binance"))
    assert "signal SIGTERM: stopping" in err and "final status exchange=binance" in err


def test_a_refused_subscription_exits_2_with_the_venue_message(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    fake = FakeExchange("binance", [], [[("reject",)]]).start()
    try:
        proc = _cli(
            "live", "--exchange", "binance", "--symbols", "NOPE", "--url", fake.ws_url, "--bootstrap-servers", kafka,
            "--topic", settings.kafka.topic, env={"KAFKA_DLQ_TOPIC": settings.kafka.dlq_topic},
        )  # fmt: skip
        _out, err = proc.communicate(timeout=60)
    finally:
        fake.stop()
    assert proc.returncode == 2
    assert "binance refused request" in err and "unknown symbol" in err
    # The refusal is also a dead letter, as the same frame is on replay of a recording.
    dead = [m.value for m in consume(kafka, settings.kafka.dlq_topic)]
    assert [d["reason"] for d in dead] == ["subscription_rejected"]


def test_an_unreachable_broker_is_a_clear_error(tmp_path: Path) -> None:
    tape = tmp_path / "t.ndjson"
    write_tape(tape, list(read_tape(SAMPLE))[:10])
    port = free_port()
    proc = _cli(
        "replay", str(tape), "--bootstrap-servers", f"127.0.0.1:{port}", env={"KAFKA_BOOTSTRAP_TIMEOUT_MS": "2000"}
    )
    started = time.monotonic()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert f"no Kafka broker answered at 127.0.0.1:{port}" in err and "Traceback" not in err
    assert time.monotonic() - started < 30


def test_a_missing_topic_is_named_within_seconds_or_created(kafka: str, tmp_path: Path) -> None:
    tape = tmp_path / "t.ndjson"
    write_tape(tape, list(read_tape(SAMPLE))[:10])
    topic = f"nope.{time.monotonic_ns()}"
    started = time.monotonic()
    proc = _cli("replay", str(tape), "--topic", topic, "--bootstrap-servers", kafka)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and time.monotonic() - started < 15, err
    assert f"topic {topic} does not exist" in err and "--create-topics" in err and "Traceback" not in err
    created = _cli("replay", str(tape), "--topic", topic, "--bootstrap-servers", kafka, "--create-topics")
    out, err = created.communicate(timeout=60)
    assert created.returncode == 0, err
    assert f"created topic {topic}" in err and "replayed 10 trades" in out
    assert len([r for r in consume(kafka, topic) if r.value["type"] == "trade"]) == 10


def test_a_bad_tape_line_is_dead_lettered_and_the_replay_goes_on(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    good = [json.dumps(r) for r in list(read_tape(SAMPLE))[:5]]
    tape = tmp_path / "bad.ndjson"
    tape.write_text("\n".join([good[0], "{not json", *good[1:3], '{"exchange": "binance"}', *good[3:]]) + "\n")
    env = {"KAFKA_DLQ_TOPIC": settings.kafka.dlq_topic}
    args = ("replay", str(tape), "--topic", settings.kafka.topic, "--bootstrap-servers", kafka)
    strict = _cli(*args, "--strict", env=env)
    _out, err = strict.communicate(timeout=60)
    assert strict.returncode == 2 and f"{tape}:2: malformed_json" in err and f"{tape}:5: not_wire_record" in err
    assert consume(kafka, settings.kafka.topic, timeout_s=5) == []  # --strict sent nothing

    proc = _cli(*args, env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "replayed 5 trades" in out
    assert "2 of 7 lines are not wire records (malformed_json 1, not_wire_record 1)" in err
    dead = [r.value for r in consume(kafka, settings.kafka.dlq_topic)]
    assert sorted((d["source"], d["reason"]) for d in dead) == [
        ("replay:bad.ndjson:2", "malformed_json"),
        ("replay:bad.ndjson:5", "not_wire_record"),
    ]
    assert {d["raw"] for d in dead} == {"{not json", '{"exchange": "binance"}'}


def test_a_first_format_tape_of_seven_fields_is_read_as_version_1_trades(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    fields = ("exchange", "symbol", "price", "quantity", "timestamp", "trade_id", "is_buyer_maker")
    records = [{k: r[k] for k in fields} for r in list(read_tape(SAMPLE))[:50]]
    tape = tmp_path / "v0.ndjson"
    write_tape(tape, records)
    proc = _cli("replay", str(tape), "--topic", settings.kafka.topic, "--bootstrap-servers", kafka)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "50 of 50 records had no type and v: read as version-1 trades" in out
    sent = [r.value for r in consume(kafka, settings.kafka.topic) if r.value["type"] == "trade"]
    assert len(sent) == 50 and all(r["v"] == 1 for r in sent)
    from core.wire import Accepted, judge

    assert all(isinstance(judge(r), Accepted) for r in sent)  # the job's own rules accept them


def test_record_rotates_files_and_replays_them_to_the_same_trades(
    kafka: str, tmp_path: Path, binance_fake: FakeExchange
) -> None:
    out_dir = tmp_path / "rec"
    proc = _cli(
        "record",
        "--exchange",
        "binance",
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--url",
        binance_fake.ws_url,
        "--out",
        str(out_dir),
        "--rotate-bytes",
        "100000",
        "--duration",
        "6",
        env={"WS_BACKOFF_INITIAL_S": "0.05"},
    )
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    files = sorted(out_dir.glob("*.ndjson.gz"))
    assert len(files) >= 5 and not list(out_dir.glob("*.part"))
    assert all(detect_format(f) == "recording" for f in files)
    raw = [text for f in files for _ts, _ex, text in read_frames(f, "recording")]
    data = [t for t in raw if '"stream"' in t]
    assert data == binance_fake.sent  # every frame, in order, byte for byte
    assert len(raw) - len(data) == 2  # one subscription reply per connection

    settings = fresh_topics(kafka, tmp_path)
    rep = _cli("replay", *map(str, files), "--topic", settings.kafka.topic, "--bootstrap-servers", kafka)
    _out, err = rep.communicate(timeout=120)
    assert rep.returncode == 0, err
    trades = [r.value for r in consume(kafka, settings.kafka.topic) if r.value["type"] == "trade"]
    assert Counter((t["symbol"], t["trade_id"]) for t in trades) == Counter(trade_ids(binance_fake.frames, "binance"))


@pytest.mark.parametrize(
    ("source", "fmt"),
    [
        (DATA / "binance" / "ethusdt_20240808.gz", "hftbacktest"),
        (DATA / "coinbase" / "COINBASE.ws.28.0", "cryptofeed"),
        (DATA / "coinbase" / "COINBASE.jsonl.zst", "cryptofeed-jsonl"),
    ],
)
def test_replay_reads_third_party_captures_and_dead_letters_bad_frames(
    kafka: str, tmp_path: Path, source: Path, fmt: str
) -> None:
    assert detect_format(source) == fmt
    frames = list(read_frames(source, fmt))
    decoder = FrameDecoder()  # one for the capture, as replay uses (settings read once, not per frame)
    expected = Counter((t.symbol, t.trade_id) for ts, ex, text in frames for t in decoder.trades(ex, text, ts))
    files = [source]
    if fmt == "hftbacktest":  # and one corrupted copy: a bad line among real ones
        bad = tmp_path / "bad.gz"
        with gzip.open(bad, "wt") as out:
            out.write(f"{frames[0][0] * 1_000_000} {{not json\n")
        files.append(bad)
    settings = fresh_topics(kafka, tmp_path)
    proc = _cli(
        "replay",
        *map(str, files),
        "--topic",
        settings.kafka.topic,
        "--bootstrap-servers",
        kafka,
        env={"KAFKA_DLQ_TOPIC": settings.kafka.dlq_topic},
    )
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    trades = [r.value for r in consume(kafka, settings.kafka.topic) if r.value["type"] == "trade"]
    assert Counter((t["symbol"], t["trade_id"]) for t in trades) == expected
    dlq = [r.value for r in consume(kafka, settings.kafka.dlq_topic)]
    assert [(d["reason"], d["source"]) for d in dlq] == (
        [("malformed_json", "replay:bad.gz")] if len(files) > 1 else []
    )


@pytest.mark.parametrize(("speed", "tape_seconds"), [(1.0, 3.0), (10.0, 30.0)])
def test_replay_keeps_inter_arrival_times_at_speed(
    kafka: str, tmp_path: Path, speed: float, tape_seconds: float
) -> None:
    """Kafka's CreateTime of each record, against the tape's receipt times / speed."""
    records = list(read_tape(SAMPLE))
    start = records[0]["ingest_ts"]
    window = [r for r in records if r["ingest_ts"] - start <= tape_seconds * 1000]
    tape = tmp_path / "window.ndjson"
    write_tape(tape, window)
    settings = fresh_topics(kafka, tmp_path, partitions=1)
    proc = _cli(
        "replay", str(tape), "--speed", str(speed), "--topic", settings.kafka.topic, "--bootstrap-servers", kafka
    )
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    got = [r for r in consume(kafka, settings.kafka.topic) if r.value["type"] == "trade"]
    assert len(got) == len(window)
    t0, s0 = got[0].timestamp_ms, got[0].value["ingest_ts"]
    errors = sorted(abs((r.timestamp_ms - t0) - (r.value["ingest_ts"] - s0) / speed) for r in got)
    p50, p99, worst = errors[len(errors) // 2], errors[int(len(errors) * 0.99)], errors[-1]
    print(
        f"speed {speed}: {len(got)} trades over {tape_seconds / speed:.1f}s, "
        f"error p50={p50:.1f}ms p99={p99:.1f}ms max={worst:.1f}ms"
    )
    assert p50 <= 5 and p99 <= 50 and worst <= 200


def test_synth_publishes_the_requested_count(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    proc = _cli(
        "synth",
        "--rate",
        "2000",
        "--symbols",
        "3",
        "--count",
        "3000",
        "--speed",
        "0",
        "--topic",
        settings.kafka.topic,
        "--bootstrap-servers",
        kafka,
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.strip() == f"published 3000 synthetic trades to {settings.kafka.topic}"
    records = [r.value for r in consume(kafka, settings.kafka.topic)]
    assert Counter(r["type"] for r in records) == {"trade": 3000, "heartbeat": 1}
    assert {r["symbol"] for r in records if r["type"] == "trade"} == {"SYN0USD", "SYN1USD", "SYN2USD"}
    assert all(json.loads(json.dumps(r)) == r for r in records)
