"""What a 1 s trigger does to a Delta table's log, and the checkpoint interval and log retention
chosen from it (`LAKE_CHECKPOINT_INTERVAL`, `LAKE_LOG_RETENTION`).

    .venv/bin/python bench/delta_log.py [--commits 600] [--symbols 10] [--plot bench/delta_log.png]

1. Commits as the job's sink makes them at a 1 s trigger (`lake.delta.append`: one commit per
   batch with its app transaction, one file per symbol, a second of bars each), into a table
   with `delta.checkpointInterval` 10 (ours) and 100 (delta-rs's default), in the same run:
   the commit's p50/p99, and what opening the table then costs (a new `DeltaTable` and its add
   actions, as `lake.connect()` takes them: best of 9).
2. Opening cost against the log's length. Delta lists the whole `_delta_log` folder to find
   the newest version: the table of part 1 is opened again with 1,000 to 100,000 more files in
   its log folder (files it lists and skips, as it would skip the commits older than its newest
   checkpoint that log retention has not deleted yet). A 1 s trigger leaves ~3,960 files an
   hour (3,600 commits and 360 checkpoints at interval 10): 1 h of retention is ~4 k files, a
   day ~95 k, Delta's default 30 days ~2.9 M.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shutil
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import deltalake
import pyarrow as pa
from tqdm import tqdm

from core.schema import OHLC, OHLC_TABLE, to_arrow
from lake import delta

EXTRA_FILES = (0, 1_000, 4_000, 10_000, 30_000, 100_000)
FILES_PER_HOUR = 3_600 + 360


def batches(symbols: int, seconds: int) -> list[pa.Table]:
    """One 1-second bar per symbol per batch, in the lake's types."""
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    schema = to_arrow(OHLC)
    out = []
    for i in range(seconds):
        t = start + dt.timedelta(seconds=i)
        rows = []
        for k in range(symbols):
            p = Decimal(100 * (k + 1)) + Decimal(i) / 100
            rows.append({
                "exchange": "binance", "symbol": f"SYM{k}USDT", "window_start": t,
                "window_end": t + dt.timedelta(seconds=1), "open": p, "high": p, "low": p, "close": p,
                "volume": Decimal(1), "quote_volume": p, "vwap": float(p), "trade_count": 1,
                "buy_volume": Decimal(1), "sell_volume": Decimal(0), "first_trade_id": i, "last_trade_id": i,
                "date": t.date(),
            })  # fmt: skip
        out.append(pa.Table.from_pylist(rows, schema=schema))
    return out


def open_ms(path: Path, runs: int = 9) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        delta.add_actions(deltalake.DeltaTable(str(path)))
        times.append((time.perf_counter() - t) * 1000)
    return min(times)


def commit_run(root: Path, interval: int, data: list[pa.Table]) -> tuple[Path, list[float]]:
    lake_dir = root / f"interval-{interval}"
    settings = delta.LogSettings(interval, 3600, 3600)
    table = delta.create_table(lake_dir, "ohlc", OHLC_TABLE, settings)
    times = []
    for batch, rows in enumerate(tqdm(data, desc=f"checkpointInterval {interval}", unit="commit", leave=False)):
        t = time.perf_counter()
        delta.append(table, rows, txn=("bench", batch), sort_by="window_start")
        times.append((time.perf_counter() - t) * 1000)
    return lake_dir / "ohlc", times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=600)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, deltalake {deltalake.__version__}; "
          f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")  # fmt: skip
    data = batches(args.symbols, args.commits)
    root = Path(tempfile.mkdtemp(prefix="delta-log-"))
    try:
        print(f"\n1. {args.commits} commits of {args.symbols} symbols x 1 s of bars (a file per symbol each)")
        print(f"{'checkpointInterval':<20}{'commit p50':>12}{'commit p99':>12}{'log files':>11}{'open':>10}")
        tables = {}
        for interval in (10, 100):
            path, times = commit_run(root, interval, data)
            tables[interval] = path
            files = len(list((path / delta.LOG_DIR).iterdir()))
            print(f"{interval:<20}{pct(times, 0.5):>9.1f} ms{pct(times, 0.99):>9.1f} ms{files:>11,}"
                  f"{open_ms(path):>7.1f} ms")  # fmt: skip
        print("\n2. opening the interval-10 table with more files in its _delta_log (best of 9)")
        print(f"{'extra log files':>16}{'~ retention at 1 s':>20}{'open':>10}")
        path, made, points = tables[10], 0, []
        for extra in EXTRA_FILES:
            while made < extra:
                (path / delta.LOG_DIR / f"zz-padding-{made:08d}.tmp").touch()
                made += 1
            ms = open_ms(path)
            points.append((extra, ms))
            hours = extra / FILES_PER_HOUR
            print(f"{extra:>16,}{f'{hours:.1f} h':>20}{ms:>7.1f} ms")
        per_file = (points[-1][1] - points[0][1]) / EXTRA_FILES[-1] * 1000
        hour_ms = per_file * FILES_PER_HOUR / 1000
        print(f"\nlisting costs {per_file:.1f} us per log file: 1 h of retention adds {hour_ms:.0f} ms to "
              f"every open, a day {hour_ms * 24:.0f} ms")  # fmt: skip
        if args.plot:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(7, 4))
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
            ax.axhline(100, color="grey", linestyle="--", label="target: open < 100 ms")
            ax.set_xlabel("files in _delta_log beyond the table's own")
            ax.set_ylabel("open a table, ms (best of 9)")
            ax.set_title("Opening a Delta table against the length of its log (delta-rs)")
            ax.legend()
            fig.tight_layout()
            fig.savefig(args.plot, dpi=110)
            print(f"plot: {args.plot}")
        print(f"median commit, interval 10: {statistics.median(commit_run(root / 'again', 10, data[:100])[1]):.1f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
