"""The HTTP API under load, over the compacted 30-day, 10-symbol lake (`bench/api_lake.py`).

    .venv/bin/python bench/api.py [--requests 300] [--clients 50] [--stream-clients 100]
                                  [--stream-seconds 30] [--bootstrap HOST:PORT]

Starts a broker of its own (or uses --bootstrap) and `python -m api` on a free port, as a
user runs it, then measures on this machine (server and load share its two cores):

1. `GET /v1/candles`, one symbol, one day, 1-minute candles (a random symbol and day per
   request, seeded): latency p50/p99 at 1 client (`--requests`; reported also split into
   cold requests, a partition's first, when the API computes its 1-minute rollup from the
   bars, and warm ones) and at `--clients` concurrent clients (`--concurrent-requests`). The
   baseline is the same `candles()` query in-process on a `lake.connect()` connection (no
   HTTP), timed in the same run; one response is checked digit for digit against it.
2. `WS /v1/stream/bars`: `--stream-clients` clients, each subscribed to one of the 10 symbols;
   every symbol gets a live-bar update every 50 ms (the live-bars job's emit interval) on the
   live topic for `--stream-seconds`. Latency = client receipt - the update's `emitted_at`
   (set when it is produced), so it covers the topic, the API's tail, the fan-out and the
   WebSocket. The peer: a plain Kafka consumer on the same topic, same clock, same run.

Two servers in turn: A with no rollups made ahead (API_WARM_DAYS=0), so each partition's first
request computes its 1-minute rollup from the bars (the worst case: 1 client, then the
`--clients` phase from where 1 client left off); B as `make api` runs it, measured once its
rollups of the newest 30 days are made (the warm-up time is printed), then the stream.

Targets: candles p99 < 100 ms at 1 client (A) and < 500 ms at 50 (B); stream p99 < 200 ms.
The server's log goes to the printed path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
from kafka import KafkaConsumer, KafkaProducer

# This file is bench/api.py: with bench/ on the path, `import api` would find it before the
# project's package (installed editable, found after the path). The project's root goes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import api_lake
import common
import lake_query

import lake
from api import queries
from core.live_bars import encode
from core.schema import SCHEMA_VERSION
from core.settings import REPO_ROOT

SEED = 20261202
EMIT_EVERY_S = 0.05


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(name: str, values: list[float], target: float | None = None) -> str:
    p50, p99 = pct(values, 50), pct(values, 99)
    verdict = "" if target is None else f"  target p99 < {target:g} ms: {'PASS' if p99 < target else 'FAIL'}"
    return f"{name:<52} n={len(values):>6,}  p50 {p50:8.1f} ms  p99 {p99:8.1f} ms  max {max(values):8.1f} ms{verdict}"


def start_server(
    lake_path: Path, bootstrap: str, live_topic: str, work: Path, warm_days: int
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m api` as a user runs it; returns once its lake and live stream are up."""
    port = common.free_port()
    env = {**os.environ, "LAKE_PATH": str(lake_path), "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "KAFKA_LIVE_BARS_TOPIC": live_topic, "PYTHONPATH": str(REPO_ROOT),
           "API_WARM_DAYS": str(warm_days)}  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    log = (work / "api.out").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "api", "--port", str(port)], cwd=work, env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            sys.exit(f"the API exited: {(work / 'api.out').read_text()[-2000:]}")
        try:
            health = httpx2.get(f"{url}/v1/health", timeout=10).json()
            if health["live_stream"]["ok"] and health["lake"]["ok"]:
                return proc, url
        except (httpx2.HTTPError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            sys.exit("the API did not come up within 90 s")
        time.sleep(0.5)


def wait_warm(url: str) -> float:
    """Seconds until the server reports every rollup of its warm days made."""
    started = time.monotonic()
    while not (lake := httpx2.get(f"{url}/v1/health", timeout=30).json()["lake"])["rollups_warm"]:
        time.sleep(0.5)
        if time.monotonic() - started > 600:
            sys.exit("the rollups were not warm after 10 minutes")
    print(
        f"  rollups warm: {lake['rollups_cached']} partitions in {lake['rollups_warmed_in_s']:.1f} s (server's count)"
    )
    return time.monotonic() - started


def candle_requests(spec: lake_query.LakeSpec, n: int, seed: int = SEED) -> list[tuple[str, date]]:
    rng = random.Random(seed)
    days = [spec.first_day + timedelta(days=d) for d in range(spec.days)]
    return [(lake_query.symbol_name(rng.randrange(spec.symbols)), rng.choice(days)) for _ in range(n)]


def params(symbol: str, day: date) -> dict[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {"exchange": lake_query.EXCHANGE, "symbol": symbol, "interval": "1m", "start": start.isoformat(),
            "end": (start + timedelta(days=1)).isoformat()}  # fmt: skip


def direct(lake_path: Path, requests: list[tuple[str, date]]) -> tuple[list[float], Any]:
    con = lake.connect(lake_path, threads=1)
    out: list[float] = []
    first = None
    for i, (symbol, day) in enumerate(requests):
        p = params(symbol, day)
        t = time.perf_counter()
        rows = queries.candles(con, p["exchange"], symbol, 60, datetime.fromisoformat(p["start"]),
                               datetime.fromisoformat(p["end"]), 100_000)  # fmt: skip
        out.append((time.perf_counter() - t) * 1000)
        if i == 0:
            first = rows
    return out, first


def one_client(url: str, requests: list[tuple[str, date]]) -> tuple[list[float], list[float], dict[str, Any]]:
    """Latencies of requests whose (symbol, day) the server has not served yet (cold: its
    1-minute rollup is computed from the bars) and of the rest (warm), and the first body."""
    out: list[float] = []
    cold: list[float] = []
    first: dict[str, Any] = {}
    seen: set[tuple[str, date]] = set()
    with httpx2.Client(base_url=url, timeout=60) as client:
        client.get("/v1/symbols")  # connection and lake snapshot warm
        for i, (symbol, day) in enumerate(requests):
            t = time.perf_counter()
            r = client.get("/v1/candles", params=params(symbol, day))
            (out if (symbol, day) in seen else cold).append((time.perf_counter() - t) * 1000)
            seen.add((symbol, day))
            assert r.status_code == 200, r.text
            if i == 0:
                first = r.json()
    return out, cold, first


async def many_clients(url: str, requests: list[tuple[str, date]], clients: int) -> tuple[list[float], float]:
    queue: asyncio.Queue[tuple[str, date]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    out: list[float] = []
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def worker(client: httpx2.AsyncClient) -> None:
        while not queue.empty():
            symbol, day = queue.get_nowait()
            t = time.perf_counter()
            r = await client.get("/v1/candles", params=params(symbol, day))
            out.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text

    async with httpx2.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await asyncio.gather(*(client.get("/v1/symbols") for _ in range(clients)))  # open the connections
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return out, elapsed


def check_exact(api_body: dict[str, Any], table: Any) -> None:
    """The API's candles equal the macro's, digit for digit."""
    candles, rows = api_body["candles"], table.to_pylist()
    assert len(candles) == len(rows) == 1440, (len(candles), len(rows))
    for c, r in zip(candles, rows, strict=True):
        for k in ("open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "sell_volume"):
            assert c[k] == format(r[k], "f"), (k, c[k], r[k])
        assert [c[k] for k in ("trade_count", "first_trade_id", "last_trade_id", "bars")] == [
            r["trade_count"], r["first_trade_id"], r["last_trade_id"], r["bars"]]  # fmt: skip


# --- the stream ----------------------------------------------------------------------------


def bar(symbol: str, second: int, n: int) -> dict[str, Any]:
    price = Decimal(100) + Decimal(n % 1000) / 100
    now = int(time.time() * 1000)
    return {
        "v": SCHEMA_VERSION, "exchange": lake_query.EXCHANGE, "symbol": symbol, "window_start": second * 1000,
        "window_end": second * 1000 + 1000, "open": price, "high": price, "low": price, "close": price,
        "volume": Decimal("0.5"), "quote_volume": price / 2, "vwap": float(price), "trade_count": n,
        "buy_volume": Decimal("0.5"), "sell_volume": Decimal(0), "first_trade_id": n, "last_trade_id": n,
        "final": False, "emitted_at": now, "last_trade_ts": now,
    }  # fmt: skip


def produce(bootstrap: str, topic: str, symbols: list[str], seconds: float, sent: list[int]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    end = time.monotonic() + seconds
    tick = time.monotonic()
    n = 0
    while time.monotonic() < end:
        second = int(time.time())
        for s in symbols:
            n += 1
            producer.send(topic, key=f"{lake_query.EXCHANGE}:{s}".encode(), value=encode(bar(s, second, n)))
        producer.flush()
        tick += EMIT_EVERY_S
        time.sleep(max(0.0, tick - time.monotonic()))
    sent.append(n)
    producer.close()


def peer_consumer(bootstrap: str, topic: str, stop: threading.Event, out: list[float], ready: threading.Event) -> None:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=50,
                             group_id=None)  # fmt: skip
    while not consumer.assignment():
        consumer.poll(100)
    consumer.seek_to_end()
    consumer.poll(0)
    ready.set()
    while not stop.is_set():
        for records in consumer.poll(timeout_ms=200).values():
            now = time.time() * 1000
            out.extend(now - json.loads(r.value)["emitted_at"] for r in records)
    consumer.close()


async def stream_clients(
    url: str, symbols: list[str], clients: int, seconds: float, bootstrap: str, topic: str
) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    received = [0] * clients
    closed: list[str] = []

    async def client(i: int, ready: asyncio.Event, stop: asyncio.Event) -> None:
        ws_url = (
            url.replace("http", "ws") + f"/v1/stream/bars?symbols={lake_query.EXCHANGE}:{symbols[i % len(symbols)]}"
        )
        async with connect(ws_url, max_queue=None) as ws:
            await ws.recv()  # subscribed
            ready.set()
            while not stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                except Exception as exc:
                    closed.append(f"client {i}: {exc}")
                    return
                now = time.time() * 1000
                latencies.append(now - json.loads(message)["emitted_at"])
                received[i] += 1

    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = [asyncio.create_task(client(i, readies[i], stop)) for i in range(clients)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    peer: list[float] = []
    peer_stop, peer_ready = threading.Event(), threading.Event()
    peer_thread = threading.Thread(target=peer_consumer, args=(bootstrap, topic, peer_stop, peer, peer_ready))
    peer_thread.start()
    peer_ready.wait(30)
    sent: list[int] = []
    producer = threading.Thread(target=produce, args=(bootstrap, topic, symbols, seconds, sent))
    producer.start()
    last = time.monotonic()
    while producer.is_alive():
        await asyncio.sleep(0.5)
        if time.monotonic() - last >= 5:
            print(f"  stream: {sum(received):,} updates received by {clients} clients", flush=True)
            last = time.monotonic()
    await asyncio.sleep(3)  # the last updates arrive
    stop.set()
    peer_stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    peer_thread.join(10)
    return {"latencies": latencies, "peer": peer, "sent": sent[0], "received": received, "closed": closed}


def plot(path: Path, candles: dict[str, list[float]], stream: dict[str, list[float]]) -> None:
    """Latency distributions: the candles phases, and the stream against the plain consumer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, series in zip(axes, (candles, stream), strict=True):
        for label, values in series.items():
            xs = sorted(values)
            ax.plot(xs, [i / len(xs) for i in range(len(xs))], label=label)
        ax.set(xlabel="ms", ylabel="share of requests", xscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("GET /v1/candles (1 symbol, 1 day, 1 m)")
    axes[1].set_title("live bar: publish -> receiver")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--concurrent-requests", type=int, default=2000, help="requests in the --clients phase")
    parser.add_argument("--stream-clients", type=int, default=100)
    parser.add_argument("--stream-seconds", type=float, default=30.0)
    parser.add_argument("--bootstrap", help="an existing broker (default: start one)")
    parser.add_argument("--plot", type=Path, help="write the latency distributions to this PNG")
    args = parser.parse_args()
    print(lake_query.machine_line())
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    lake_path, spec = api_lake.compacted_lake()
    work = Path(tempfile.mkdtemp(prefix="api-bench-"))
    symbols = [lake_query.symbol_name(i) for i in range(spec.symbols)]
    with common.broker(args.bootstrap, work) as bootstrap:
        topic = common.new_topic(bootstrap, work, partitions=4)
        requests = candle_requests(spec, args.requests)
        load = candle_requests(spec, args.concurrent_requests, seed=SEED + 1)
        base, rows = direct(lake_path, requests)
        # A: no rollups made ahead (API_WARM_DAYS=0): each partition's first request computes its own.
        server, url = start_server(lake_path, bootstrap, topic, work / "a", warm_days=0)
        print(f"A: API {url}, rollups made on demand; its log: {work / 'a' / '.logs' / 'api.log'}", flush=True)
        try:
            print(f"  candles: {len(requests)} requests, one symbol and day each (1 m), 1 client", flush=True)
            warm, cold, body = one_client(url, requests)
            single = warm + cold
            check_exact(body, rows)
            print("  the first response equals the in-process query digit for digit", flush=True)
            cold_many, elapsed = asyncio.run(many_clients(url, load, args.clients))
            print(f"  {args.clients} clients: {len(cold_many)} requests in {elapsed:.1f}s", flush=True)
        finally:
            server.terminate()
            server.wait(30)
        # B: as `make api` runs it, rollups of the newest 30 days made ahead.
        server, url = start_server(lake_path, bootstrap, topic, work / "b", warm_days=30)
        print(f"B: API {url}, rollups made ahead (API_WARM_DAYS=30); its log: {work / 'b' / '.logs' / 'api.log'}")
        try:
            warm_up = wait_warm(url)
            many, elapsed = asyncio.run(many_clients(url, load, args.clients))
            print(f"  {args.clients} clients: {len(many)} requests in {elapsed:.1f}s ({len(many) / elapsed:.0f} req/s)")
            print(f"stream: {args.stream_clients} clients over {len(symbols)} symbols, an update per symbol every "
                  f"{EMIT_EVERY_S * 1000:.0f} ms for {args.stream_seconds:g}s", flush=True)  # fmt: skip
            result = asyncio.run(
                stream_clients(url, symbols, args.stream_clients, args.stream_seconds, bootstrap, topic)
            )
            health = httpx2.get(f"{url}/v1/health", timeout=10).json()["live_stream"]
        finally:
            server.terminate()
            server.wait(30)
    expected = result["sent"] * (args.stream_clients // len(symbols))
    print("\n" + "-" * 120)
    print(summary("candles in-process (lake.connect, no HTTP): baseline", base))
    print(summary("GET /v1/candles, 1 client, rollups on demand (A)", single, 100))
    print(summary("  of which cold (a partition's first request)", cold))
    print(summary("  of which warm", warm))
    print(summary(f"GET /v1/candles, {args.clients} clients, rollups on demand (A)", cold_many))
    print(summary(f"GET /v1/candles, {args.clients} clients, rollups made ahead (B)", many, 500))
    print(f"{'':52} B's warm-up before it: {warm_up:.1f} s after start")
    print(f"{'':52} ratios p99: 1 client / in-process {pct(single, 99) / pct(base, 99):.2f}, "
          f"{args.clients} clients / 1 client {pct(many, 99) / pct(single, 99):.2f}")  # fmt: skip
    print(summary("Kafka consumer on crypto.bars.live (peer)", result["peer"]))
    print(summary(f"WS stream, {args.stream_clients} clients (publish -> client)", result["latencies"], 200))
    print(f"{'':52} updates sent {result['sent']:,}; deliveries expected {expected:,}, received "
          f"{sum(result['received']):,}; clients dropped as slow {health['clients_dropped_slow']}; "
          f"closed {len(result['closed'])}")  # fmt: skip
    print(f"{'':52} added by the API over the peer, p99: "
          f"{pct(result['latencies'], 99) - pct(result['peer'], 99):.1f} ms")  # fmt: skip
    if args.plot:
        candles = {
            "in-process query (baseline)": base,
            "1 client (A)": single,
            f"{args.clients} clients, on demand (A)": cold_many,
            f"{args.clients} clients, made ahead (B)": many,
        }
        stream = {
            "Kafka consumer (peer)": result["peer"],
            f"WebSocket, {args.stream_clients} clients": result["latencies"],
        }
        plot(args.plot, candles, stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
