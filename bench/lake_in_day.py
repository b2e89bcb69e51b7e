"""The in-day case of `bench/lake_query.py`: today's partition as the live job leaves it, before
and after `python -m lake maintain`.

    .venv/bin/python bench/lake_query.py --in-day [--symbols 10] [--runs 5]

Today (UTC), 10 symbols, one 1-second bar per second per symbol, committed to a Delta table as
the stream job's sink commits it (`lake.delta.append`, one commit per batch with the batch as
its app transaction, a file per symbol):
- hours 00-22 one commit per *minute* (the job makes one per second: 60x fewer commits and
  files here, so the "before" figures below are kinder than reality), and
- the open hour 23:00-23:59:59 one commit per *second*, as the job makes them: 3,600 commits.

Three lakes, each query on a new `lake.connect()` (best of `--runs`; `connect` timed on its own,
the queries without it, their rows fetched as Python objects and, marked "(Arrow)", as Arrow):
- **before**: no maintenance;
- **maintained, open hour as written**: `maintain` ran at 23:00 (after hour 22), so hours
  00-22 are OPTIMIZEd and the open hour is 3,600 files per symbol;
- **maintained live**: `maintain` ran after each of hours 00-22 and every 30 s through the open
  hour, the last pass 30 s before the end (`LAKE_MAINTAIN_EVERY=30s`), so only the last 30 s
  are single files. `--live-only` (of `bench/lake_query.py --in-day`) builds only this lake.
The bench commits the day in minutes, so by itself nothing would expire (LAKE_GRACE and
LAKE_LOG_RETENTION, 1 h, count wall-clock time). At the point that stands for 22:00 it expires
what a live table would have expired by 23:59 (`expire_before_now`: tombstones and commits of
before then), so the log is the one a live hour leaves. The data lies after now: the bench
needs a full day of today's partition.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from tqdm import tqdm

import lake
from core.schema import OHLC, OHLC_TABLE, to_arrow
from lake import delta
from lake.maintenance import maintain_once

TARGETS_MS = {"connect": 150, "open ohlc table": 100, "last 15 min, 1 s bars": 50, "24 h of 1 min candles": 150,
              "latest_bars": 50, "dashboard market page (cold)": 300}  # fmt: skip
ARROW = " (Arrow)"
FILE_SCHEMA = to_arrow(tuple(c for c in OHLC if c.name not in ("symbol", "date")))


def day_bars(day: dt.date, symbols: int) -> dict[str, pa.Table]:
    """A random walk of 1-second bars per symbol over the whole day, in the lake's types."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SELECT setseed(0.17)").fetchall()
    start = dt.datetime.combine(day, dt.time(), dt.UTC).isoformat()
    out = {}
    for k in range(symbols):
        table = con.sql(f"""
            SELECT 'binance' AS exchange, t AS window_start, t + INTERVAL 1 SECOND AS window_end,
                   p::DECIMAL(18,8) AS open, (p * 1.0002)::DECIMAL(18,8) AS high, (p * 0.9998)::DECIMAL(18,8) AS low,
                   p::DECIMAL(18,8) AS close, (n * 0.01)::DECIMAL(28,8) AS volume,
                   (p * n * 0.01)::DECIMAL(38,16) AS quote_volume, p::DOUBLE AS vwap, n::BIGINT AS trade_count,
                   (n * 0.006)::DECIMAL(28,8) AS buy_volume, (n * 0.004)::DECIMAL(28,8) AS sell_volume,
                   ({k} * 1e9 + i)::BIGINT AS first_trade_id, ({k} * 1e9 + i)::BIGINT AS last_trade_id
            FROM (SELECT i, TIMESTAMPTZ '{start}' + to_seconds(i) AS t, 1 + i % 7 AS n,
                         round({100 * (k + 1)} * exp(sum((random() - 0.5) * 0.002) OVER (ORDER BY i)), 8) AS p
                  FROM range(86400) r(i))
            ORDER BY i""").to_arrow_table()
        assert table is not None
        out[f"SYM{k}USDT"] = table.cast(FILE_SCHEMA)
    return out


class DayWriter:
    """Commits as the job's sink makes them: one per batch, with the batch as its app transaction."""

    def __init__(self, lake_dir: Path, day: dt.date, bars: dict[str, pa.Table]) -> None:
        self.table = delta.ensure_table(lake_dir, "ohlc", OHLC_TABLE)
        self.day = day
        self.bars = {
            symbol: t.append_column("symbol", pa.array([symbol] * t.num_rows)).append_column(
                "date", pa.array([day] * t.num_rows, pa.date32())
            )
            for symbol, t in bars.items()
        }
        self.batch = 0
        self.commit_ms: list[float] = []

    def write(self, first_s: int, last_s: int, step_s: int, desc: str) -> None:
        """Batches of `step_s` seconds over [first_s, last_s) of the day, one commit each."""
        for lo in tqdm(range(first_s, last_s, step_s), desc=desc, unit="commit", leave=False):
            n = min(step_s, last_s - lo)
            rows = pa.concat_tables([t.slice(lo, n) for t in self.bars.values()])
            started = time.perf_counter()
            delta.append(self.table, rows, txn=("bench", self.batch), sort_by="window_start")
            self.commit_ms.append((time.perf_counter() - started) * 1000)
            self.batch += 1


def expire_before_now(lake_dir: Path, name: str = "ohlc") -> None:
    """What an hour of wall-clock time does to a table's log, done at once: this bench commits the day
    in minutes, so nothing it wrote would have expired by its end, where at 23:59 of a live day
    everything removed or committed before 22:59 has (LAKE_GRACE and LAKE_LOG_RETENTION, 1 h).
    - Tombstones: a checkpoint written with the table's deleted-file retention at 1 s leaves out
      every file removed so far (delta-rs drops expired tombstones from a checkpoint); the
      retention is then set back. Those files are still vacuumed: they are an hour old by then.
    - Commits: every log file is dated two days back, then `cleanup_metadata` deletes those
      older than the retention up to the newest checkpoint, as it does on a live table."""
    table = delta.open_table(lake_dir, name)
    assert table is not None
    wanted = delta.LogSettings.from_settings().properties()
    table.alter.set_table_properties({"delta.deletedFileRetentionDuration": "interval 1 seconds"})
    time.sleep(1.1)
    table.update_incremental()
    table.create_checkpoint()
    table.alter.set_table_properties(wanted)
    table.create_checkpoint()
    old = time.time() - 2 * 86400
    for f in (lake_dir / name / delta.LOG_DIR).iterdir():
        os.utime(f, (old, old))
    table.update_incremental()
    table.cleanup_metadata()


def build(root: Path, day: dt.date, bars: dict[str, pa.Table], case: str) -> tuple[Path, list[float]]:
    lake_dir = root / case.split(",")[0].split(" ")[0]
    writer = DayWriter(lake_dir, day, bars)
    quiet: list[str] = []
    live = case.startswith("maintained live")
    for hour in range(23):
        writer.write(hour * 3600, (hour + 1) * 3600, 60, f"{case}: hour {hour:02d}")
        if live:  # the live stack maintains all day: a pass after each hour here
            maintain_once(lake_dir, None, 3600, quiet.append)
        if hour == 21:  # by 23:59, what was removed or committed before 22:59 has expired
            expire_before_now(lake_dir)
    if case == "before":
        writer.write(23 * 3600, 86400, 1, f"{case}: open hour")
    elif case == "maintained, open hour as written":
        maintain_once(lake_dir, None, 3600, quiet.append)
        writer.write(23 * 3600, 86400, 1, f"{case}: open hour")
    else:
        maintain_once(lake_dir, None, 3600, quiet.append)
        for lo in range(23 * 3600, 86400 - 30, 30):  # the live stack: a pass every 30 s
            writer.write(lo, lo + 30, 1, f"{case}: {lo // 60 % 60:02d} min")
            maintain_once(lake_dir, None, 3600, quiet.append)
        writer.write(86400 - 30, 86400, 1, f"{case}: last 30 s")
    return lake_dir, writer.commit_ms[-3600:]


def best_ms(action: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        action()
        times.append((time.perf_counter() - t) * 1000)
    return min(times)


def measure(lake_dir: Path, day: dt.date, symbol: str, runs: int) -> dict[str, float]:
    end = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=1)
    since = end - dt.timedelta(minutes=15)
    recent = f"SELECT * FROM ohlc WHERE symbol = '{symbol}' AND window_start >= TIMESTAMPTZ '{since}'"
    day_ago = end - dt.timedelta(days=1)
    candles = f"SELECT * FROM candles('{symbol}', INTERVAL 1 MINUTE, TIMESTAMPTZ '{day_ago}', TIMESTAMPTZ '{end}')"
    checks = {
        "last 15 min, 1 s bars": (recent, 900),
        "24 h of 1 min candles": (candles, 1440),
        "latest_bars": ("SELECT * FROM latest_bars", None),
    }
    out = {"connect": best_ms(lambda: lake.connect(lake_dir), runs)}
    out["open ohlc table"] = best_ms(lambda: delta.add_actions(delta.open_table(lake_dir, "ohlc")), runs)  # type: ignore[arg-type]
    for name, (sql, rows) in checks.items():
        got = len(lake.connect(lake_dir).sql(sql).fetchall())
        assert rows is None or got == rows, f"{name}: {got} rows, expected {rows}"
        # Each run on a new connection, the connect itself not timed: rows as Python objects
        # (`fetchall`, what a notebook user gets) and as Arrow (what the API and dashboard take).
        out[name] = query_ms(lake_dir, sql, runs, lambda r: r.fetchall())
        out[name + ARROW] = query_ms(lake_dir, sql, runs, lambda r: r.to_arrow_table())
    from dashboard_interaction import interaction, timed

    out["dashboard market page (cold)"] = timed(interaction(str(lake_dir), symbol, "1m", "last 15 m"), runs) * 1000
    return out


def query_ms(lake_dir: Path, sql: str, runs: int, fetch: Callable[[duckdb.DuckDBPyRelation], Any]) -> float:
    times = []
    for _ in range(runs):
        con = lake.connect(lake_dir)
        started = time.perf_counter()
        fetch(con.sql(sql))
        times.append((time.perf_counter() - started) * 1000)
        con.close()
    return min(times)


def today_files(lake_dir: Path, day: dt.date, symbol: str) -> tuple[int, int]:
    files = [p for p in delta.open_table(lake_dir, "ohlc").file_uris() if f"/date={day}/" in p]  # type: ignore[union-attr]
    per_symbol = [p for p in files if f"/symbol={symbol}/" in p]
    return len(files), len(per_symbol)


def log_size(lake_dir: Path) -> tuple[int, int]:
    """Files and bytes in ohlc's `_delta_log`."""
    files = list((lake_dir / "ohlc" / delta.LOG_DIR).iterdir())
    return len(files), sum(f.stat().st_size for f in files)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


CASES = ("before", "maintained, open hour as written", "maintained live (every 30 s)")


def run(symbols: int, runs: int, cases: tuple[str, ...] = CASES) -> int:
    day = dt.datetime.now(dt.UTC).date()
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}, "
          f"DuckDB {duckdb.__version__}; date {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")  # fmt: skip
    print(f"in-day lake: {symbols} symbols, {day}, hours 00-22 a file per minute, 23:00- a file per second")
    bars = day_bars(day, symbols)
    results = {}
    with tempfile.TemporaryDirectory(prefix="lake-in-day-") as tmp:
        for case in cases:
            lake_dir, commits = build(Path(tmp), day, bars, case)
            symbol = f"SYM{min(3, symbols - 1)}USDT"
            results[case] = (measure(lake_dir, day, symbol, runs), today_files(lake_dir, day, symbol),
                             log_size(lake_dir), commits)  # fmt: skip
            shutil.rmtree(lake_dir)
            print(f"  {case}: done", flush=True)
    print(
        f"\n{'query (best of ' + str(runs) + ', new connection)':<34}"
        + "".join(f"{c:>34}" for c in cases)
        + "   target"
    )
    for name, target in TARGETS_MS.items():
        for label in (name, name + ARROW) if name + ARROW in results[cases[-1]][0] else (name,):
            cells = "".join(f"{results[c][0][label]:>31.0f} ms" for c in cases)
            verdict = "PASS" if results[cases[-1]][0][label] < target else "MISS"
            print(f"{label:<34}{cells}   < {target} ms ({verdict} maintained live)")
    files = "".join(f"{f'{t:,} ({s:,} per symbol)':>34}" for t, s in (results[c][1] for c in cases))
    print(f"{'files in today partition':<34}{files}")
    logs = "".join(f"{f'{n:,} files, {b / 1e6:.1f} MB':>34}" for n, b in (results[c][2] for c in cases))
    print(f"{'_delta_log of ohlc':<34}{logs}")
    commit = "".join(
        f"{f'p50 {pct(m, 0.5):.0f} / p99 {pct(m, 0.99):.0f} ms':>34}" for m in (results[c][3] for c in cases)
    )
    print(f"{'commit, open hour (1 s batches)':<34}{commit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(10, 5))
