"""The API as users run it: `python -m api` (real uvicorn) over a lake the real job wrote from a
real recorded tape, and live bars from the real broker's `crypto.bars.live` over WebSockets."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from kafka import KafkaProducer
from websockets.sync.client import connect as ws_connect

import lake
from api.encoding import from_ms
from core.live_bars import encode
from core.settings import REPO_ROOT, Settings, interval_ms
from infra.kafka_local import LocalKafka
from ingest.producer import Publisher
from ingest.replay import replay
from ingest.tape import read_tape
from tests.support.api_helpers import live_bar
from tests.support.kafka_helpers import fresh_topics
from tests.support.ports import free_port
from tests.support.reference import reference_candles

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"
AMOUNTS = ("open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "sell_volume")
QUEUE = 2500  # API_STREAM_QUEUE for the server: a client 2,500 behind that takes nothing for 2 s is dropped


@pytest.fixture(scope="module")
def job_lake(spark: Any, kafka: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[dict[str, Any]]]:
    """The real job's lake from 3,000 trades of the recorded sample tape, and a live-bars topic."""
    from jobs.progress import ProgressListener, drain_events
    from jobs.stream_ohlc import QUERY, build_queries, lake_sink

    tmp = tmp_path_factory.mktemp("api-live")
    live_topic = f"bars.live.{uuid.uuid4().hex[:8]}"
    settings = fresh_topics(kafka, tmp).with_overrides(
        lake_path=str(tmp / "lake"), checkpoint_path=str(tmp / "checkpoints"), stream_trigger="available-now",
        kafka_live_bars_topic=live_topic,
    )  # fmt: skip
    host, port = kafka.split(":")
    LocalKafka(tmp, host, int(port)).ensure_topics([live_topic], partitions=2)
    tape = list(read_tape(SAMPLE))[:3000]
    with Publisher(settings) as publisher:
        closing = interval_ms(settings.stream.watermark) + 1000
        replay(tape, publisher, settings.kafka.topic, closing_heartbeat_after_ms=closing, progress=False)
    sink = lake_sink(settings)
    listener = ProgressListener(settings.lake.path, sink.late_trades)
    spark.streams.addListener(listener)
    try:
        query = build_queries(spark, settings, sink)[QUERY].start()
        query.awaitTermination(300)
        assert query.exception() is None
        drain_events(spark)
    finally:
        spark.streams.removeListener(listener)
    return settings, tape


@pytest.fixture(scope="module")
def server(job_lake: tuple[Settings, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings, _ = job_lake
    port = free_port()
    env = {**os.environ, "LAKE_PATH": settings.lake.path, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
           "KAFKA_TOPIC": settings.kafka.topic, "KAFKA_FEED_EVENTS_TOPIC": settings.kafka.feed_events_topic,
           "KAFKA_LIVE_BARS_TOPIC": settings.kafka.live_bars_topic, "API_STREAM_QUEUE": str(QUEUE)}  # fmt: skip
    cwd = tmp_path_factory.mktemp("api-server")
    env["PYTHONPATH"] = str(REPO_ROOT)
    argv = [sys.executable, "-m", "api", "--port", str(port)]
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                health = httpx2.get(f"{url}/v1/health", timeout=5).json()
                if health["live_stream"]["ok"]:
                    break
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not come up with its live stream within 60 s"
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
        log = cwd / ".logs" / "api.log"
        assert "Traceback" not in (log.read_text() if log.exists() else ""), log.read_text()[-3000:]


def test_candles_over_http_equal_the_lake_and_the_trades(
    server: str, job_lake: tuple[Settings, list[dict[str, Any]]]
) -> None:
    settings, tape = job_lake
    markets = httpx2.get(f"{server}/v1/symbols").json()["markets"]
    assert len(markets) >= 1
    con = lake.connect(settings.lake.path)
    compared = 0
    for interval, step_s in (("1m", 60), ("1s", 1)):
        reference = reference_candles(tape, step_s)
        for m in markets:
            params = {"exchange": m["exchange"], "symbol": m["symbol"], "interval": interval, "start": m["first_bar"],
                      "end": m["newest_bar_end"]}  # fmt: skip
            body = httpx2.get(f"{server}/v1/candles", params=params).json()
            assert body["truncated"] is False
            start, end = (dt.datetime.fromisoformat(params[k]) for k in ("start", "end"))
            start = dt.datetime.fromtimestamp(start.timestamp() // step_s * step_s, dt.UTC)
            macro = con.execute(
                f"SELECT bucket_start, {', '.join(AMOUNTS)}, trade_count, first_trade_id, last_trade_id "
                "FROM candles(?, to_seconds(?), ?, ?, venue := ?) ORDER BY 1",
                [m["symbol"], step_s, start, end, m["exchange"]],
            ).fetchall()
            ref = reference[(reference["exchange"] == m["exchange"]) & (reference["symbol"] == m["symbol"])]
            assert len(body["candles"]) == len(macro) == len(ref) > 0
            for candle, row, (_, want) in zip(body["candles"], macro, ref.iterrows(), strict=True):
                assert dt.datetime.fromisoformat(candle["time"]) == row[0] == want["bucket_start"]
                for i, name in enumerate(AMOUNTS, start=1):
                    assert isinstance(candle[name], str)
                    assert Decimal(candle[name]) == row[i] == want[name], (name, candle["time"])
                    assert candle[name] == format(row[i], "f"), "the digits at the lake's scale, unrounded"
                ids = (candle["trade_count"], candle["first_trade_id"], candle["last_trade_id"])
                assert ids == tuple(row[9:12]) == (want["trade_count"], want["first_trade_id"], want["last_trade_id"])
                compared += 1
    assert compared > 100
    r = httpx2.get(f"{server}/v1/candles", params={"exchange": "binance", "symbol": "NOPE"})
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"


def _publish(bootstrap: str, topic: str, bars: list[dict[str, Any]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for bar in bars:
        producer.send(topic, key=f"{bar['exchange']}:{bar['symbol']}".encode(), value=encode(bar))
    producer.flush()
    producer.close()


def _bars(ws: Any, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == "bar":
            out.append(message)
    return out


def test_a_subscriber_gets_provisional_updates_then_the_final_bar(server: str, job_lake: tuple[Settings, Any]) -> None:
    settings, _ = job_lake
    ws_url = server.replace("http", "ws") + "/v1/stream/bars?symbols=binance:WSTUSDT"
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
    now = int(time.time() * 1000)
    with ws_connect(ws_url) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "subscribed" and hello["symbols"] == ["binance:WSTUSDT"]
        updates = []
        for second in range(2):
            for n, price in enumerate(["100.1", "100.3", "99.9"]):
                updates.append(live_bar("WSTUSDT", t0 + dt.timedelta(seconds=second), price, final=False,
                                        emitted_at=now + 10 * n + 100 * second))  # fmt: skip
            updates.append(live_bar("WSTUSDT", t0 + dt.timedelta(seconds=second), "99.9", final=True,
                                    emitted_at=now + 50 + 100 * second))  # fmt: skip
        other = [live_bar("OTHERUSDT", t0, "5", final=s == 3, emitted_at=now + s) for s in range(4)]
        mixed = [x for pair in zip(updates, other * 2, strict=True) for x in pair]
        _publish(settings.kafka.bootstrap_servers, settings.kafka.live_bars_topic, mixed)
        got = _bars(ws, len(updates))
    iso = [from_ms(u["window_start"]).isoformat().replace("+00:00", "Z") for u in updates]
    expected = [
        (t, u["final"], str(u["close"].quantize(Decimal("0.00000001")))) for t, u in zip(iso, updates, strict=True)
    ]
    assert [(m["window_start"], m["final"], m["close"]) for m in got] == expected
    assert all(m["symbol"] == "WSTUSDT" and m["exchange"] == "binance" for m in got)
    assert all(isinstance(m[k], str) for m in got for k in AMOUNTS)


def _raw_ws(url: str) -> socket.socket:
    """A WebSocket handshake on a socket with a tiny receive buffer, then never read from: a stuck client."""
    host, rest = url.removeprefix("ws://").split("/", 1)
    h, p = host.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((h, int(p)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /{rest} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())  # fmt: skip
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_a_client_that_stops_reading_is_dropped_and_the_others_keep_receiving(
    server: str, job_lake: tuple[Settings, Any]
) -> None:
    settings, _ = job_lake
    ws_url = server.replace("http", "ws") + "/v1/stream/bars?symbols=SLOWUSDT"
    stuck = _raw_ws(ws_url)
    count = 20_000
    received: list[dict[str, Any]] = []
    with ws_connect(ws_url, max_size=None) as fast:
        assert json.loads(fast.recv(timeout=10))["type"] == "subscribed"
        before = httpx2.get(f"{server}/v1/health").json()["live_stream"]
        assert before["clients"] == 2
        t0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
        now = int(time.time() * 1000)
        bars = [live_bar("SLOWUSDT", t0 + dt.timedelta(seconds=i), "1234.5", final=True, trade_id=i, emitted_at=now + i)
                for i in range(count)]  # fmt: skip
        reader = threading.Thread(target=lambda: received.extend(_bars(fast, count, timeout_s=120)))
        reader.start()
        _publish(settings.kafka.bootstrap_servers, settings.kafka.live_bars_topic, bars)
        reader.join(150)
        deadline = time.monotonic() + 10
        while (after := httpx2.get(f"{server}/v1/health").json()["live_stream"])["clients"] > 1:
            assert time.monotonic() < deadline, after
            time.sleep(0.2)
    assert len(received) == count, f"the reading client got {len(received)} of {count}"
    assert [m["first_trade_id"] for m in received] == list(range(count)), "in order, none lost"
    assert after["clients_dropped_slow"] == before["clients_dropped_slow"] + 1
    assert after["clients"] == 1, "the stuck client is no longer subscribed"
    # The stuck client finds the connection cut once it reads again.
    stuck.settimeout(30)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := stuck.recv(1 << 16):
            data += chunk
    assert len(data) < count * 300, "it was dropped long before it got everything"
    stuck.close()


def test_health_is_200_when_every_part_is_up_and_fresh(kafka: str, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from core.live_tail import LiveFeed
    from tests.support import dashboard_lake

    settings = fresh_topics(kafka, tmp_path)
    live_topic = f"bars.live.{uuid.uuid4().hex[:8]}"
    host, port = kafka.split(":")
    LocalKafka(tmp_path, host, int(port)).ensure_topics([live_topic], partitions=1)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    lake_dir = dashboard_lake.build(tmp_path / "lake", start_at=now - dt.timedelta(hours=3, seconds=5),
                                    written_after=dt.timedelta(seconds=1))  # fmt: skip
    settings = settings.with_overrides(lake_path=str(lake_dir), kafka_live_bars_topic=live_topic)
    feed = LiveFeed(kafka, live_topic, retry_s=0.5, client_id="api-test").start()
    deadline = time.monotonic() + 30
    while not feed.available:
        assert time.monotonic() < deadline, feed.status
        time.sleep(0.2)
    with TestClient(create_app(settings, feed=feed)) as c:
        r = c.get("/v1/health")
        body = r.json()
        assert r.status_code == 200, body["reasons"]
        assert body["status"] == "ok" and body["reasons"] == [] and body["kafka"]["ok"] and body["live_stream"]["ok"]
        assert {p["topic"] for p in body["kafka"]["lag"]} == {settings.kafka.topic, settings.kafka.feed_events_topic}
        assert all(not f["stale"] for f in body["freshness"]) and len(body["freshness"]) == 3
    feed.stop()
