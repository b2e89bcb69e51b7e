"""Freshness against revisions at several watermarks, ticks on (issue 26).

    .venv/bin/python bench/watermark.py [--watermarks 5,2,1] [--rate 500] [--seconds 60] [--warmup 30]
        [--tape ingest/tapes/sample.ndjson.gz [--tape-seconds 180]] [--late-every 5] [--plot bench/watermark.png]

For each watermark the real job runs continuously (its default trigger) on a fresh topic with
`--watermark`, while the source arrives in real time:
- synthetic load at `--rate` trades per second over 10 symbols (`ingest.synth`), or
- a real tape (`--tape`), sent by its own receipt times (speed 1) and restamped to now: each
  trade keeps its place in the arrival order and its trade time relative to the others, so the
  tape's own disorder reaches the job as it reached the recorder. (The recorder's clock ran
  behind the exchange's: arrivals are shifted so that no trade goes out before its own time.)

Measured for each bar of the measured span (after `--warmup`), through `lake.connect()` as a
long-lived reader polls it (a new connection when ohlc's log changed, every 0.1 s):
- window end -> the bar first visible (its final bar, revision 0);
- the share of bars revised afterwards (revision >= 1): what a shorter watermark costs.

With `--late-every S`, every S seconds one more trade is sent for a window 20-60 s in the past
(as from a slow venue, or a REST backfill after a gap). A revision's latency is its send -> its
window's bar visible with revision >= 1. Those windows are left out of the revised share.
The job's log for each run is kept in .logs/watermark-<w>s.log.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from common import broker, new_topic
from e2e import _env, _log_marker, job_args, new_topic_named, pct

import lake
from core.settings import REPO_ROOT, load
from ingest.producer import Publisher
from ingest.replay import pacing_time, replay
from ingest.synth import synth_trades

LATE_ID_BASE = 10**12  # injected trades' ids: far above any real or synthetic id
LATE_RANGE_S = (20.0, 60.0)
Window = tuple[str, int]  # symbol, window start in epoch ms


@dataclass
class Run:
    watermark_s: int
    first_seen: dict[Window, float] = field(default_factory=dict)  # wall time a bar was first visible
    revised_seen: dict[Window, float] = field(default_factory=dict)  # wall time it first showed revision >= 1
    injected: dict[Window, float] = field(default_factory=dict)  # late trade's window -> its send time
    revisions: dict[Window, int] = field(default_factory=dict)  # the bar's revision at the end
    late_trades: int = 0  # lake/trades' late rows, the injected ones left out
    batch_ms: list[float] = field(default_factory=list)


def tape_records(path: Path, seconds: float, start_ms: int) -> list[dict[str, Any]]:
    """The tape's trades of its first `seconds` of arrivals, restamped so the first goes out at
    `start_ms`; each trade's arrival is at or after its own (shifted) trade time."""
    with gzip.open(path, "rb") as f:
        records = [r for line in f if (r := orjson.loads(line)).get("type", "trade") == "trade"]
    records.sort(key=pacing_time)  # a tape is in arrival order already; stable if so
    skew = min(pacing_time(r) - r["timestamp"] for r in records)  # the recorder's clock offset
    first = pacing_time(records[0]) - skew
    shift = start_ms - first
    out = []
    for r in records:
        arrival = pacing_time(r) - skew
        if arrival - first > seconds * 1000:
            break
        out.append({**r, "timestamp": r["timestamp"] + shift, "ingest_ts": arrival + shift})
    return out


def with_late_trades(
    records: Iterable[dict[str, Any]], every_s: float, run: Run, seed: int = 11
) -> Iterator[dict[str, Any]]:
    """`records` with a late trade every `every_s` s of arrivals, each in a window of its own;
    its send time goes into `run.injected` (replay sends a record before it asks for the next)."""
    rng = random.Random(seed)
    last: dict[str, dict[str, Any]] = {}  # symbol -> its newest trade
    next_at: int | None = None
    pending: Window | None = None
    ids = itertools.count(LATE_ID_BASE)
    for record in records:
        if pending is not None:
            run.injected[pending] = time.time()
            pending = None
        now = pacing_time(record)
        next_at = now + int(every_s * 1000) if next_at is None else next_at
        if now >= next_at and last:
            next_at += int(every_s * 1000)
            symbol = rng.choice(sorted(last))
            start = (now - int(rng.uniform(*LATE_RANGE_S) * 1000)) // 1000 * 1000
            if (symbol, start) not in run.injected:
                trade_id = next(ids)
                yield {**last[symbol], "trade_id": trade_id, "timestamp": start + 500, "ingest_ts": now}
                pending = (symbol, start)
        last[record["symbol"]] = record
        yield record
    if pending is not None:
        run.injected[pending] = time.time()


def publish(bootstrap: str, topic: str, records: Iterable[dict[str, Any]], watermark_s: int) -> None:
    settings = load(kafka_bootstrap_servers=bootstrap, kafka_topic=topic)
    with Publisher(settings) as publisher:
        replay(records, publisher, topic, speed=1.0, closing_heartbeat_after_ms=watermark_s * 1000 + 1000,
               progress=False)  # fmt: skip


def run_once(bootstrap: str, work: Path, args: argparse.Namespace, watermark_s: int) -> Run:
    run = Run(watermark_s)
    topic = new_topic(bootstrap, work)
    new_topic_named(bootstrap, work, f"{topic}.none")
    out = work / f"w{watermark_s}"
    log_path = REPO_ROOT / ".logs" / f"watermark-{watermark_s}s.log"
    log_path.parent.mkdir(exist_ok=True)
    with log_path.open("w") as log_file:
        job = subprocess.Popen(
            [*job_args(bootstrap, topic, out), "--watermark", f"{watermark_s} seconds"],
            env=_env(), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            _wait_started(log_path, job)
            time.sleep(3)
            _drive(bootstrap, topic, out, args, run)
        finally:
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(60)
    con = lake.connect(out / "lake")
    for symbol, start, revision in con.sql("SELECT symbol, epoch_ms(window_start), revision FROM ohlc").fetchall():
        run.revisions[(symbol, start)] = revision
    run.late_trades = con.sql(f"SELECT count(*) FROM late WHERE trade_id < {LATE_ID_BASE}").fetchall()[0][0]
    run.batch_ms = sorted(
        float(d)
        for (d,) in con.sql("SELECT batch_duration_ms FROM progress WHERE input_rows > 0 AND query = 'ohlc'").fetchall()
    )
    return run


def _wait_started(log_path: Path, job: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 180
    while time.time() < deadline:
        if "query started name=ohlc" in log_path.read_text(errors="replace"):
            return
        if job.poll() is not None:
            raise SystemExit(f"the job exited {job.returncode}: see {log_path}")
        time.sleep(0.5)
    raise SystemExit(f"the job did not start in 180 s: see {log_path}")


def _drive(bootstrap: str, topic: str, out: Path, args: argparse.Namespace, run: Run) -> None:
    t0_ms = int(time.time() * 1000)
    span = args.warmup + args.seconds
    records: Iterable[dict[str, Any]]
    if args.tape:
        records = tape_records(Path(args.tape), span, t0_ms)
    else:
        records = synth_trades(args.rate, args.symbols, start_ms=t0_ms, count=int(args.rate * span))
    if args.late_every:
        records = with_late_trades(records, args.late_every, run)
    sender = threading.Thread(target=publish, args=(bootstrap, topic, records, run.watermark_s), daemon=True)
    sender.start()
    grace = run.watermark_s + 15
    marker: tuple[int, ...] = ()
    last_status = time.time()
    while sender.is_alive() or time.time() < t0_ms / 1000 + span + grace:
        if (changed := _log_marker(out / "lake" / "ohlc")) != marker:
            marker = changed
            rows = lake.connect(out / "lake").sql("SELECT symbol, epoch_ms(window_start), revision FROM ohlc")
            now = time.time()
            for symbol, start, revision in rows.fetchall():
                run.first_seen.setdefault((symbol, start), now)
                if revision >= 1:
                    run.revised_seen.setdefault((symbol, start), now)
        if time.time() - last_status > 15:
            print(f"    {time.time() - t0_ms / 1000:.0f}s: {len(run.first_seen)} bars visible", flush=True)
            last_status = time.time()
        time.sleep(0.1)
    run.first_seen = {w: t for w, t in run.first_seen.items() if w[1] >= t0_ms + args.warmup * 1000}


def summary(run: Run) -> dict[str, float]:
    bars = {w: t for w, t in run.first_seen.items() if w not in run.injected}
    close = sorted(t - (start + 1000) / 1000 for (_sym, start), t in bars.items())
    revised = sum(1 for w in bars if run.revisions.get(w, 0) >= 1)
    latencies = sorted(run.revised_seen[w] - sent for w, sent in run.injected.items() if w in run.revised_seen)
    return {
        "bars": len(bars),
        "p50": pct(close, 0.5) if close else float("nan"),
        "p99": pct(close, 0.99) if close else float("nan"),
        "revised_share": revised / len(bars) if bars else float("nan"),
        "revised": revised,
        "late_trades": run.late_trades,
        "injected": len(run.injected),
        "injected_revised": len(latencies),
        "rev_p50": pct(latencies, 0.5) if latencies else float("nan"),
        "rev_p99": pct(latencies, 0.99) if latencies else float("nan"),
        "batch_p50": pct(run.batch_ms, 0.5) if run.batch_ms else float("nan"),
        "batch_p99": pct(run.batch_ms, 0.99) if run.batch_ms else float("nan"),
    }


def print_row(s: dict[str, float], watermark_s: int) -> None:
    line = (
        f"  watermark {watermark_s}s: {s['bars']:.0f} bars, window end -> first visible p50 {s['p50']:.2f}s "
        f"p99 {s['p99']:.2f}s; revised {s['revised']:.0f} ({s['revised_share']:.2%}), "
        f"late trades {s['late_trades']:.0f}; batches p50 {s['batch_p50']:.0f} / p99 {s['batch_p99']:.0f} ms"
    )
    if s["injected"]:
        line += (
            f"; late trades sent {s['injected']:.0f}, revised {s['injected_revised']:.0f}, "
            f"send -> revised bar visible p50 {s['rev_p50']:.2f}s p99 {s['rev_p99']:.2f}s"
        )
    print(line, flush=True)


def plot(results: list[tuple[int, dict[str, float]]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    marks = [w for w, _ in results]
    ax.plot(marks, [s["p50"] for _, s in results], "o-", label="window end -> visible, p50")
    ax.plot(marks, [s["p99"] for _, s in results], "s-", label="p99")
    ax.set_xlabel("watermark (s)")
    ax.set_ylabel("seconds")
    ax.invert_xaxis()
    share = ax.twinx()
    share.bar(marks, [100 * s["revised_share"] for _, s in results], width=0.3, alpha=0.3, color="red")
    share.set_ylabel("bars revised (%)", color="red")
    ax.legend(loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watermarks", default="5,2,1", help="seconds, comma-separated")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0, help="of trades measured, after the warm-up")
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--tape", help="a normalized tape (.ndjson.gz) instead of synthetic load")
    parser.add_argument("--late-every", type=float, default=0.0, help="send a late trade every S seconds")
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--plot")
    args = parser.parse_args()
    marks = [int(w) for w in args.watermarks.split(",")]
    source = f"tape {args.tape}" if args.tape else f"synthetic, {args.rate:,.0f} trades/s, {args.symbols} symbols"
    print(f"watermarks {marks}; {source}; {args.warmup:.0f}s warm-up + {args.seconds:.0f}s measured")
    results: list[tuple[int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp, broker(args.bootstrap_servers, Path(tmp)) as bootstrap:
        for w in marks:
            print(f"  run at watermark {w}s (job log: {REPO_ROOT / '.logs' / f'watermark-{w}s.log'})", flush=True)
            s = summary(run_once(bootstrap, Path(tmp), args, w))
            results.append((w, s))
            print_row(s, w)
    print("summary:")
    for w, s in results:
        print_row(s, w)
    if args.plot:
        plot(results, args.plot, source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
