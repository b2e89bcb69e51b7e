"""End to end: trades through Kafka and the stream job into the lake, against Spark merely reading.

    .venv/bin/python bench/e2e.py [--trades 2000000] [--symbols 10] [--rate 5000] [--seconds 60] [--warmup 10]

1. Throughput. N synthetic trades are published to a fresh 4-partition topic, then
   `spark-submit jobs/stream_ohlc.py --trigger available-now` processes them with
   `--max-offsets-per-trigger` 200,000. Its sustained rate is the ohlc query's input rows over
   the time from its first batch's start to its last batch's end (lake/_progress), so Spark's
   start-up is not counted. In the same run, `bench/spark_read_only.py` reads the same topic
   with the same settings into a `noop` sink: the ratio is our overhead (target >= 0.5).
2. Freshness. The job runs continuously (default trigger) on a new topic while synthetic
   trades arrive at `--rate` per second in real time for `--seconds`. The lake is polled
   through `lake.connect()`; for each bar, freshness is the time it became
   visible minus its window start (its first possible trade) and minus its window end (its
   last). The poll connects again only when the lake's logs changed (the folder's mtime), every
   0.1 s. Target: p99 (window end -> visible) <= watermark + 3 s. The bars of the first
   `--warmup` seconds (at least 10) are not measured: the job's JVM compiles its batch code
   then, and those from 10 s on are reported apart.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from common import broker, new_topic

import lake
from core.settings import REPO_ROOT, interval_ms, load
from ingest.producer import Publisher
from ingest.replay import replay
from ingest.synth import synth_trades

SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")
SINK_LINE = re.compile(r"batch \d+: computed in (\d+) ms, written in (\d+) ms")
# The job's progress line for a bars batch: Spark's own phase durations (`ms=addBatch:7785,...`).
PHASES_LINE = re.compile(r"query=ohlc batch=\d+ input_rows=(\d+).* ms=(\S+)")
BATCH = 200_000


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "SPARK_CONF_DIR": str(REPO_ROOT),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }


def publish(
    bootstrap: str, topic: str, trades: int, symbols: int, rate: float, speed: float,
    sent: list[tuple[int, float]] | None = None,
) -> int:  # fmt: skip
    """Synthetic trades stamped from now on, at `rate` per second (`speed` 1) or at once (0).

    `sent`, if given, gets each trade's (timestamp ms, wall time it was handed to the producer).
    """
    settings = load(kafka_bootstrap_servers=bootstrap, kafka_topic=topic)
    records: Iterable[dict[str, Any]] = synth_trades(rate, symbols, start_ms=int(time.time() * 1000), count=trades)
    if sent is not None:
        records = _timed(records, sent)
    closing = interval_ms(settings.stream.watermark) + 1000
    with Publisher(settings) as publisher:
        stats = replay(records, publisher, topic, speed=speed, closing_heartbeat_after_ms=closing, total=trades)
    return stats.trades


def _timed(records: Iterable[dict[str, Any]], sent: list[tuple[int, float]]) -> Iterator[dict[str, Any]]:
    """`records`, noting when each was sent: replay sends a record before it asks for the next."""
    previous: dict[str, Any] | None = None
    for record in records:
        if previous is not None:
            sent.append((previous["timestamp"], time.time()))
        previous = record
        yield record
    if previous is not None:
        sent.append((previous["timestamp"], time.time()))


def send_lag(sent: list[tuple[int, float]], at_ms: int) -> float | None:
    """How late, in s, the first trade stamped at or after `at_ms` went out (None: none did)."""
    i = bisect.bisect_left(sent, (at_ms, -math.inf))
    return None if i == len(sent) else sent[i][1] - at_ms / 1000


def _log_marker(table: Path) -> tuple[int, ...]:
    """What changes when a commit lands in `table`: its log folder's mtime (a new file changes it).
    Delta's `_delta_log`, or `_spark_metadata` for the format before it (the A/B's old side)."""
    return tuple(p.stat().st_mtime_ns for p in (table / "_delta_log", table / "_spark_metadata") if p.is_dir())


def job_args(bootstrap: str, topic: str, work: Path) -> list[str]:
    return [
        SPARK_SUBMIT, str(REPO_ROOT / "jobs" / "stream_ohlc.py"),
        "--bootstrap-servers", bootstrap, "--topic", topic,
        "--feed-events-topic", f"{topic}.none",
        "--lake", str(work / "lake"), "--checkpoints", str(work / "checkpoints"),
    ]  # fmt: skip


def batch_seconds(lake_dir: Path, query: str) -> list[float]:
    """Each data batch's duration, in batch order."""
    lines = [json.loads(x) for p in (lake_dir / "_progress").glob(f"date=*/{query}.ndjson") for x in p.open()]
    batches = sorted((r for r in lines if r["input_rows"] > 0), key=lambda r: int(r["batch_id"]))
    return [float(r["batch_duration_ms"]) / 1000 for r in batches]


def span_rate(lake_dir: Path, query: str) -> tuple[int, float]:
    """(input rows, seconds from the first data batch's start to the last one's end)."""
    lines = [json.loads(x) for p in (lake_dir / "_progress").glob(f"date=*/{query}.ndjson") for x in p.open()]
    batches = [r for r in lines if r["input_rows"] > 0]
    import datetime as dt

    def at(r: dict[str, object]) -> float:
        return dt.datetime.fromisoformat(str(r["timestamp"]).replace("Z", "+00:00")).timestamp()

    start = min(at(r) for r in batches)
    end = max(at(r) + float(r["batch_duration_ms"]) / 1000 for r in batches)  # type: ignore[arg-type]
    return sum(int(r["input_rows"]) for r in batches), end - start


def throughput(bootstrap: str, work: Path, trades: int, symbols: int) -> None:
    topic = new_topic(bootstrap, work)
    t = time.perf_counter()
    sent = publish(bootstrap, topic, trades, symbols, rate=5000, speed=0)
    print(f"published {sent:,} trades in {time.perf_counter() - t:.1f}s", flush=True)
    # Create the unused feed-events topic the job subscribes to.
    new_topic_named(bootstrap, work, f"{topic}.none")

    job = subprocess.run(
        [*job_args(bootstrap, topic, work / "job"), "--trigger", "available-now",
         "--max-offsets-per-trigger", str(BATCH)],
        env=_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if job.returncode != 0:
        raise SystemExit(f"job failed:\n{job.stdout[-3000:]}")
    rows, seconds = span_rate(work / "job" / "lake", "ohlc")
    in_bars = lake.connect(work / "job" / "lake").sql("SELECT sum(trade_count) FROM ohlc").fetchall()[0][0]
    assert in_bars == sent, f"the lake holds {in_bars} trades, {sent} were sent"

    read = subprocess.run(
        [SPARK_SUBMIT, str(REPO_ROOT / "bench" / "spark_read_only.py"), bootstrap, topic, str(BATCH),
         str(work / "read-only-checkpoint")],
        env=_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    line = next((x for x in read.stdout.splitlines() if x.startswith("read_only ")), None)
    if line is None:
        raise SystemExit(f"read-only run failed:\n{read.stdout[-3000:]}")
    fields = dict(part.split("=") for part in line.split()[1:])
    raw_rows, raw_seconds = int(fields["rows"]), float(fields["seconds"])
    job_rate, raw_rate = rows / seconds, raw_rows / raw_seconds
    print(f"job (ohlc query): {rows:,} rows in {seconds:.1f}s = {job_rate:,.0f} trades/s")
    print(f"Spark read-only:  {raw_rows:,} rows in {raw_seconds:.1f}s = {raw_rate:,.0f} trades/s")
    print(f"throughput ratio: {job_rate / raw_rate:.2f} (target >= 0.5)", flush=True)


def new_topic_named(bootstrap: str, work: Path, name: str) -> None:
    from infra.kafka_local import LocalKafka

    host, port = bootstrap.rsplit(":", 1)
    LocalKafka(work, host, int(port)).ensure_topics([name], partitions=1)


def pct(xs: list[float], q: float) -> float:
    """The q-quantile of sorted `xs` (nearest rank)."""
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _pct_of(phases: list[dict[str, int]], name: str, q: float) -> float:
    return pct(sorted(float(p.get(name, 0)) for p in phases), q)


def _median(phases: list[dict[str, int]], name: str) -> float:
    return statistics.median(p.get(name, 0) for p in phases)


def freshness(bootstrap: str, work: Path, symbols: int, rate: float, seconds: float, warmup: float) -> None:
    topic = new_topic(bootstrap, work)
    new_topic_named(bootstrap, work, f"{topic}.none")
    settings = load()
    out = work / "fresh"
    job = subprocess.Popen(
        job_args(bootstrap, topic, out), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    started = threading.Event()
    sink_ms: list[tuple[float, float]] = []  # per batch: (computed, written) in ms, from the sink's log line
    phases: list[dict[str, int]] = []  # per batch with input: Spark's phase durations in ms
    job_log = REPO_ROOT / ".logs" / "e2e-freshness-job.log"  # kept: the work folder is not
    job_log.parent.mkdir(exist_ok=True)
    print(f"  the job's log: {job_log}", flush=True)

    def watch() -> None:
        assert job.stdout is not None
        with job_log.open("w") as log_file:
            for line in job.stdout:
                log_file.write(line)
                _watch_line(line)

    def _watch_line(line: str) -> None:
        if "query started name=ohlc" in line:
            started.set()
        if m := SINK_LINE.search(line):
            sink_ms.append((float(m[1]), float(m[2])))
        if (m := PHASES_LINE.search(line)) and int(m[1]) > 0:
            phases.append({k: int(v) for k, v in (kv.split(":") for kv in m[2].split(","))})

    threading.Thread(target=watch, daemon=True).start()
    if not started.wait(180):
        raise SystemExit("the job did not start")
    time.sleep(3)
    seen: dict[tuple[str, int], float] = {}
    sent: list[tuple[int, float]] = []
    publisher = threading.Thread(
        target=publish, args=(bootstrap, topic, int(rate * (warmup + seconds)), symbols, rate, 1.0, sent), daemon=True
    )
    t0 = time.time()
    publisher.start()
    last_status = t0
    grace = (interval_ms(settings.stream.watermark) + interval_ms(settings.stream.trigger)) / 1000 + 15
    marker: tuple[int, ...] = ()
    while publisher.is_alive() or time.time() < t0 + warmup + seconds + grace:
        # As a long-lived reader does (the API): a new connection only when ohlc's log changed,
        # so that polling every 0.1 s costs the job next to no CPU. A bar counts as visible when
        # the query that first returns it has finished.
        if (changed := _log_marker(out / "lake" / "ohlc")) != marker:
            marker = changed
            rows = lake.connect(out / "lake").sql("SELECT symbol, epoch_ms(window_start) FROM ohlc").fetchall()
            now = time.time()
            for symbol, start_ms in rows:
                seen.setdefault((symbol, start_ms), now)
        if time.time() - last_status > 10:
            print(f"  freshness run: {time.time() - t0:.0f}s, {len(seen)} bars visible", flush=True)
            last_status = time.time()
        time.sleep(0.1)
    os.killpg(job.pid, signal.SIGTERM)
    job.wait(60)
    # The job's first batches run in a cold JVM (its JIT compiles the batch code for the first
    # tens of seconds): the first 10 s of trades are skipped, and the warm-up's bars are shown apart.
    end = t0 + warmup + seconds - 1
    warming = [(s / 1000, v) for (_sym, s), v in seen.items() if t0 + 10 <= s / 1000 < t0 + warmup]
    bars = [(s / 1000, v) for (_sym, s), v in seen.items() if t0 + warmup <= s / 1000 <= end]
    first = sorted(v - s for s, v in bars)
    close = sorted(v - (s + 1) for s, v in bars)

    target = interval_ms(settings.stream.watermark) / 1000 + 3  # issue 12: watermark + 3 s
    print(f"freshness at {rate:,.0f} trades/s, {symbols} symbols, {seconds:.0f}s after a {warmup:.0f}s warm-up:")
    if warming:
        cold = sorted(v - (s + 1) for s, v in warming)
        print(f"  warm-up, from 10 s ({len(warming)} bars): window end -> visible p50 {pct(cold, 0.5):.2f}s "
              f"p99 {pct(cold, 0.99):.2f}s")  # fmt: skip
    spanned = len({s for s, _ in bars})  # the synthetic tape can end before warm-up + seconds
    print(f"  {len(bars)} bars after the warm-up, over {spanned} s of trades:")
    print(f"  window start -> visible: p50 {pct(first, 0.5):.2f}s  p99 {pct(first, 0.99):.2f}s  max {first[-1]:.2f}s")
    print(f"  window end   -> visible: p50 {pct(close, 0.5):.2f}s  p99 {pct(close, 0.99):.2f}s")
    print(
        f"  target p99 (window end -> visible) <= watermark + 3 s = {target:.0f}s; mean {statistics.mean(first):.2f}s"
    )
    # The trades are stamped with their planned times: when this process's producer falls behind
    # them, the wait is counted above although no exchange would make it. The publisher's own lag
    # at each window's end, and the time from the window's end as it went out:
    sent.sort()
    lags = {s: lag for s, _ in bars if (lag := send_lag(sent, int((s + 1) * 1000))) is not None}
    if lags:
        lag = sorted(lags.values())
        as_sent = sorted(v - (s + 1) - lags[s] for s, v in bars if s in lags)
        print(f"  the publisher's lag at a window's end: p50 {pct(lag, 0.5):.2f}s p99 {pct(lag, 0.99):.2f}s; "
              f"window end as sent -> visible: p50 {pct(as_sent, 0.5):.2f}s p99 {pct(as_sent, 0.99):.2f}s")  # fmt: skip
    durations = sorted(
        int(d)
        for (d,) in lake.connect(out / "lake")
        .sql("SELECT batch_duration_ms FROM progress WHERE input_rows > 0 AND batch_duration_ms IS NOT NULL")
        .fetchall()
    )
    written = sorted(w for _, w in sink_ms)
    if written and durations:
        print(f"  batches: {len(durations)}, duration p50 {pct(durations, 0.5):.0f} ms "
              f"p99 {pct(durations, 0.99):.0f} ms; "
              f"the sink's commits p50 {pct(written, 0.5):.0f} ms p99 {pct(written, 0.99):.0f} ms "
              f"({pct(written, 0.5) / pct(durations, 0.5):.0%} of the median batch)")  # fmt: skip
    if phases:
        # Where a batch's time goes, by Spark's phases (addBatch holds the sink: Spark computing the
        # batch's bars, then the sink's commits), and the sink's own split of addBatch.
        names = sorted({k for p in phases for k in p} - {"triggerExecution"}, key=lambda k: -_median(phases, k))
        spread = ", ".join(f"{k} {_pct_of(phases, k, 0.5):.0f}/{_pct_of(phases, k, 0.99):.0f}" for k in names)
        print(f"  a batch's phases, p50 / p99 ms: {spread}")
        computed = sorted(c for c, _ in sink_ms)
        print(
            f"  inside addBatch: Spark computing the bars p50 {pct(computed, 0.5):.0f} / p99 {pct(computed, 0.99):.0f}"
            f" ms, the sink's commits p50 {pct(written, 0.5):.0f} / p99 {pct(written, 0.99):.0f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=2_000_000)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="of trades measured, after the warm-up")
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="seconds of trades before those measured (the first 10 never are)"
    )
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-freshness", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker(args.bootstrap_servers, Path(tmp)) as bootstrap:
        if not args.skip_throughput:
            throughput(bootstrap, Path(tmp), args.trades, args.symbols)
        if not args.skip_freshness:
            freshness(bootstrap, Path(tmp), args.symbols, args.rate, args.seconds, max(10.0, args.warmup))
    return 0


if __name__ == "__main__":
    sys.exit(main())
