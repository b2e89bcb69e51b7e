"""The live stack as a user runs it (`make live`), at a steady synthetic rate: how fresh are the bars?

    .venv/bin/python bench/live.py [--rates 500,5000] [--seconds 120] [--symbols 10] [--plot bench/live.png]

For each rate, `python -m infra.live --source synth:RATE:SYMBOLS` starts everything on this
machine (its own broker, the stream job, the live-bar stream, the ingestor, the dashboard with
no browser open) in a temporary folder. After a warm-up (until the newest final bar is under
30 s old: the job's first batches catch up after its start),
for `--seconds` it measures:

- trade -> provisional bar: for every trade, the Kafka time of the first `crypto.bars.live`
  update whose window holds it (its rank in its window's arrival order <= the update's
  trade_count) minus the trade's own Kafka time on `crypto.trades` (both set by producers on
  this machine's clock);
- window end -> final bar visible through `lake.connect()`, polled every second (each poll
  costs ~0.15 s of CPU, which the stack would otherwise have), until 45 s past the window;
- CPU per component: user + system time of each component's whole process group over the
  window, as a share of one core (the machine has two).

Prints a side-by-side table; with --plot, draws the latency distributions.
"""

from __future__ import annotations

import argparse
import bisect
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import orjson
from common import free_port
from kafka import KafkaConsumer, TopicPartition

import lake
from core.live_bars import decode
from core.settings import REPO_ROOT

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    """CPU seconds of every live process in the group, plus what its leader reaped."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            total += sum(int(x) for x in fields[11:15]) * TICK_S  # utime stime cutime cstime
    return total


class Tail(threading.Thread):
    """Reads a topic from its end: every record's (key, value, Kafka time)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
        tps = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or [])]
        self.consumer.assign(tps)
        self.consumer.seek_to_end(*tps)
        for tp in tps:
            self.consumer.position(tp)
        self.records: list[tuple[bytes, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=200).values():
                self.records += [(r.value, r.timestamp) for r in records]
        self.consumer.close()


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def trade_to_live(trades: list[tuple[bytes, int]], updates: list[tuple[bytes, int]], lo: int, hi: int) -> list[float]:
    """Per trade in windows starting in [lo, hi) ms: seconds until an update included it."""
    arrivals: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for value, ts in trades:
        r = orjson.loads(value)
        if r.get("type") == "trade" and lo <= (start := r["timestamp"] // 1000 * 1000) < hi:
            arrivals[(r["exchange"], r["symbol"], start)].append(ts)
    counts: dict[tuple[str, str, int], list[tuple[int, int]]] = defaultdict(list)
    for value, ts in updates:
        u = decode(value)
        counts[(u["exchange"], u["symbol"], u["window_start"])].append((u["trade_count"], ts))
    out = []
    for key, times in arrivals.items():
        seen = counts.get(key, [])
        # Updates of a window only grow, but may arrive out of Kafka-time order across partitions.
        seen.sort()
        levels = [c for c, _ in seen]
        for rank, arrived in enumerate(times, 1):
            i = bisect.bisect_left(levels, rank)
            if i == len(seen):
                out.append(float("inf"))  # never shown: counts as a miss
            else:
                out.append((min(t for _, t in seen[i:]) - arrived) / 1000)
    return sorted(out)


def run_rate(rate: int, symbols: int, seconds: float, work: Path) -> dict[str, object]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "KAFKA_HOME": str(work / "kafka"),
        "LAKE_PATH": str(work / "lake"), "CHECKPOINT_PATH": str(work / "checkpoints"),
        "LIVE_HOME": str(work / "live"), "DASHBOARD_PORT": str(free_port()),
    }  # fmt: skip
    cmd = [sys.executable, "-m", "infra.live", "--source", f"synth:{rate}:{symbols}", "--status-every", "5"]
    log = (work / "live.out").open("w")
    stack = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Warm-up: until the job has caught up after its start (newest final bar under 30 s old).
        deadline = time.monotonic() + 400
        while not re.search(r"newest final bar ([0-9]|[12][0-9])(\.\d)? s", (work / "live.out").read_text()):
            if time.monotonic() > deadline or stack.poll() is not None:
                raise SystemExit(f"the live stack did not catch up:\n{(work / 'live.out').read_text()}")
            time.sleep(1)
        print(f"  {rate:,} trades/s: stack up; measuring {seconds:.0f} s", flush=True)
        bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
        trades, live = Tail(bootstrap, "crypto.trades"), Tail(bootstrap, "crypto.bars.live")
        trades.start()
        live.start()
        pids = orjson.loads((work / "live" / "pids.json").read_bytes())
        cpu0 = {name: group_cpu_s(pid) for name, pid in pids.items() if pid}
        me0 = time.process_time()
        t0 = time.time()
        first_seen: dict[tuple[str, int], float] = {}
        polls = []
        next_status = t0 + 30
        cpu: dict[str, float] = {}
        while time.time() < t0 + seconds + 45:  # the final bars of the span's last windows lag behind
            p = time.perf_counter()
            rows = (
                lake.connect(work / "lake")
                .sql(
                    "SELECT symbol, epoch_ms(window_start) FROM ohlc WHERE window_start >= to_timestamp(?)", params=[t0]
                )
                .fetchall()
            )
            polls.append(time.perf_counter() - p)
            now = time.time()
            for key in rows:
                first_seen.setdefault(key, now)
            if not cpu and now >= t0 + seconds:
                wall = now - t0
                cpu = {name: (group_cpu_s(pid) - cpu0[name]) / wall for name, pid in pids.items() if name in cpu0}
                cpu["bench (measuring)"] = (time.process_time() - me0) / wall
                trades.stop.set()
                live.stop.set()
            if now >= next_status:
                print(f"  {rate:,} trades/s: {now - t0:.0f} s, {len(live.records):,} live updates, "
                      f"{len(first_seen):,} final bars", flush=True)  # fmt: skip
                next_status += 30
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - p)))
        trades.join()
        live.join()
    finally:
        stack.terminate()
        stack.wait(180)
        log.close()
    # Windows wholly inside the measured span (the tails stop reading at its end).
    lo, hi = int(t0 * 1000) // 1000 * 1000 + 2000, int((t0 + seconds) * 1000) // 1000 * 1000 - 2000
    to_live = trade_to_live(trades.records, live.records, lo, hi)
    to_final = sorted(seen - (start + 1000) / 1000 for (_s, start), seen in first_seen.items() if lo <= start < hi)
    return {
        "rate": rate,
        "to_live": to_live,
        "to_final": to_final,
        "cpu": cpu,
        "poll_ms": 1000 * pct(sorted(polls), 0.5),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="500,5000")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--plot", type=Path, help="write the latency distributions to this PNG")
    args = parser.parse_args()
    results = []
    for rate in (int(r) for r in args.rates.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
            print(f"live stack at {rate:,} trades/s ({args.symbols} symbols); logs in {tmp}/live/logs", flush=True)
            results.append(run_rate(rate, args.symbols, args.seconds, Path(tmp)))
    report(results)
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")
    return 0


def report(results: list[dict[str, object]]) -> None:
    head = "| measure | " + " | ".join(f"{r['rate']:,} trades/s" for r in results) + " |"
    print("\n" + head + "\n|---|" + "---|" * len(results))

    def row(name: str, cell) -> None:  # type: ignore[no-untyped-def]
        print(f"| {name} | " + " | ".join(cell(r) for r in results) + " |")

    row("trades measured", lambda r: f"{len(r['to_live']):,}")
    row("trade -> live bar p50 / p99", lambda r: f"{pct(r['to_live'], 0.5):.3f} / {pct(r['to_live'], 0.99):.3f} s")
    row("trades never shown live", lambda r: f"{sum(x == float('inf') for x in r['to_live'])}")
    row("final bars measured", lambda r: f"{len(r['to_final']):,}")
    row(
        "window end -> final bar p50 / p99",
        lambda r: f"{pct(r['to_final'], 0.5):.1f} / {pct(r['to_final'], 0.99):.1f} s",
    )
    names = sorted({n for r in results for n in r["cpu"]})  # type: ignore[attr-defined]
    for name in names:
        row(f"CPU {name} (share of one core)", lambda r, n=name: f"{100 * r['cpu'].get(n, 0):.0f}%")
    row("lake poll (lake.connect + query), median", lambda r: f"{r['poll_ms']:.0f} ms")


def plot(results: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        for ax, key in zip(axes, ("to_live", "to_final"), strict=True):
            xs = [x for x in r[key] if x != float("inf")]  # type: ignore[attr-defined]
            ax.plot(xs, [i / len(xs) for i in range(len(xs))], label=f"{r['rate']:,} trades/s")
    axes[0].set(title="trade -> provisional bar on crypto.bars.live", xlabel="seconds", ylabel="share", xscale="log")
    axes[1].set(title="window end -> final bar via lake.connect()", xlabel="seconds")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
