"""Catch-up throughput against a Python peer: the stream job and a Quix Streams app on one topic.

    .venv/bin/python bench/peer_quix.py [--trades 1000000] [--symbols 10] [--bootstrap-servers H:P]

1. N synthetic trades go to a fresh 4-partition topic, with a closing heartbeat.
2. The peer (`bench/peer_quix_app.py`, Quix Streams 3.28 in its own virtualenv `.venv-peer`,
   created here on first use: quixstreams is a bench-only extra) computes the 1 s bars. Its rate
   is records over the time from its first record to its last.
3. The job (`spark-submit jobs/stream_ohlc.py --trigger available-now`, 200,000 offsets per
   batch) computes them from the same topic. Its rate is the trades over its first data
   batch's start to its last one's end (lake/_progress); the whole process is printed too.
4. Every bar both computed is compared field by field (exact: prices, volumes and quote
   volume as integers of their smallest unit). The peer's last seconds per key stay open (a
   Quix window closes when later data for its key arrives), so the job has a few more bars.

Target (issue 12): job rate >= 3x the peer's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
from common import broker, new_topic
from e2e import BATCH, _env, batch_seconds, job_args, new_topic_named, publish, span_rate

import lake
from core.settings import REPO_ROOT

PEER_VENV = REPO_ROOT / ".venv-peer"
PEER_PACKAGES = ["quixstreams==3.28.1", "pyarrow==26.0.1"]
SCALE = 10**8


def peer_python() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PEER_VENV} with {' '.join(PEER_PACKAGES)} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def _units(value: Decimal, scale: int = SCALE) -> int:
    return int(value * scale)


def job_bars(lake_dir: Path) -> dict[tuple[str, str, int], tuple[object, ...]]:
    rows = (
        lake.connect(lake_dir)
        .sql(
            "SELECT exchange, symbol, epoch_ms(window_start), open, high, low, close, volume, quote_volume, "
            "trade_count, buy_volume, sell_volume, first_trade_id, last_trade_id FROM ohlc"
        )
        .fetchall()
    )
    return {
        (e, s, t): (_units(o), _units(h), _units(lo), _units(c), _units(v), _units(q, SCALE * SCALE), n,
                    _units(b), _units(sl), f, la)
        for e, s, t, o, h, lo, c, v, q, n, b, sl, f, la in rows
    }  # fmt: skip


def peer_bars(path: Path) -> dict[tuple[str, str, int], tuple[object, ...]]:
    table = pq.read_table(path).to_pylist()
    return {
        (r["exchange"], r["symbol"], r["window_start_ms"]): (
            r["open"], r["high"], r["low"], r["close"], r["volume"], int(r["quote"]), r["count"],
            r["buy"], r["sell"], r["first_id"], r["last_id"],
        )
        for r in table
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args()
    python = peer_python()
    with tempfile.TemporaryDirectory() as tmp, broker(args.bootstrap_servers, Path(tmp)) as bootstrap:
        work = Path(tmp)
        topic = new_topic(bootstrap, work)
        new_topic_named(bootstrap, work, f"{topic}.none")
        sent = publish(bootstrap, topic, args.trades, args.symbols, rate=5000, speed=0)
        print(f"published {sent:,} trades to {topic}", flush=True)

        print("peer: Quix Streams app ...", flush=True)
        started = time.perf_counter()
        peer = subprocess.run(
            [str(python), str(REPO_ROOT / "bench" / "peer_quix_app.py"), bootstrap, topic,
             str(work / "peer.parquet"), str(work / "peer-state")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        peer_wall = time.perf_counter() - started - 5.0  # it stops after 5 s without input
        if peer.returncode != 0:
            raise SystemExit(f"peer failed:\n{peer.stderr[-3000:]}")
        stats = json.loads(peer.stdout.strip().splitlines()[-1])
        peer_rate = stats["records"] / stats["seconds"]

        print("job: spark-submit jobs/stream_ohlc.py --trigger available-now ...", flush=True)
        started = time.perf_counter()
        job = subprocess.run(
            [*job_args(bootstrap, topic, work / "job"), "--trigger", "available-now",
             "--max-offsets-per-trigger", str(BATCH)],
            env=_env(), capture_output=True, text=True, check=False,
        )  # fmt: skip
        job_wall = time.perf_counter() - started
        if job.returncode != 0:
            raise SystemExit(f"job failed:\n{job.stdout[-3000:]}")
        rows, seconds = span_rate(work / "job" / "lake", "ohlc")
        job_rate = rows / seconds

        ours, theirs = job_bars(work / "job" / "lake"), peer_bars(work / "peer.parquet")
        both = ours.keys() & theirs.keys()
        differ = [k for k in both if ours[k] != theirs[k]]
        print(f"peer (Quix Streams, 1 process): {stats['records']:,} records in {stats['seconds']:.1f}s = "
              f"{peer_rate:,.0f} records/s; whole process {peer_wall:.1f}s")  # fmt: skip
        print(f"job (Spark, local[2]):          {rows:,} records in {seconds:.1f}s = {job_rate:,.0f} records/s; "
              f"whole process {job_wall:.1f}s")  # fmt: skip
        durations = batch_seconds(work / "job" / "lake", "ohlc")
        print(f"job batches of {BATCH:,}: first {durations[0]:.1f}s (JVM warm-up), then median "
              f"{statistics.median(durations[1:] or durations):.2f}s")  # fmt: skip
        print(f"ratio job/peer: {job_rate / peer_rate:.2f} (target >= 3); whole process: {peer_wall / job_wall:.2f}")
        print(f"bars: job {len(ours):,}, peer {len(theirs):,}, both {len(both):,}, differing {len(differ)}; "
              f"only in the peer: {len(theirs.keys() - ours.keys())}")  # fmt: skip
        if differ or theirs.keys() - ours.keys():
            example = differ[0] if differ else next(iter(theirs.keys() - ours.keys()))
            print(f"  e.g. {example}: job {ours.get(example)} peer {theirs.get(example)}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
