"""Server-side time of a dashboard interaction over a 30-day, 10-symbol lake.

    .venv/bin/python bench/dashboard_interaction.py [--days 30] [--symbols 10] [--runs 5]

Builds (once, cached in bench/.cache/dashboard-lake) a lake of 1-second bars and their
volatility, one file per symbol per day as `python -m lake compact` leaves it, with a Spark
sink log listing them. Then times what the market page runs for each interaction, through the
dashboard's own repositories with their caches cleared (and, for a page load, a new
connection): the newest bars, candles and volatility. Target: every interaction < 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import streamlit.logger

streamlit.logger.set_log_level("error")  # no "no runtime" warnings: the repositories run bare here

from core.schema import OHLC_TABLE, VOLATILITY, duckdb_type  # noqa: E402
from dashboard import client, repositories, services  # noqa: E402
from lake import delta  # noqa: E402

CACHE = Path(__file__).parent / ".cache" / "dashboard-lake"
TARGET_S = 1.0


def _select(columns: tuple, exprs: dict[str, str]) -> str:  # type: ignore[type-arg]
    return ", ".join(f"CAST({exprs[c.name]} AS {duckdb_type(c.type)}) AS {c.name}" for c in columns)


def generate(lake: Path, days: int, symbols: int) -> None:
    """Bars from a random walk per symbol, and rolling volatility over them, with DuckDB."""
    start = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=days)
    lake.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'; SELECT setseed(0.42)")
    print(f"generating {days} days x {symbols} symbols of 1-second bars ...", flush=True)
    con.execute(f"""
        CREATE TABLE walk AS
        SELECT k, TIMESTAMPTZ '{start.isoformat()}' + to_seconds(i) AS t,
               round((100 * (k + 1)) * exp(sum((random() - 0.5) * 0.002) OVER (PARTITION BY k ORDER BY i)), 8) AS p,
               1 + (i % 7) AS n
        FROM range({days * 86400}) r(i), range({symbols}) s(k)""")
    ohlc = _select(OHLC_TABLE, {
        "exchange": "'binance'", "symbol": "'SYM' || k || 'USDT'", "window_start": "t",
        "window_end": "t + INTERVAL 1 SECOND", "open": "p", "high": "p * 1.0002", "low": "p * 0.9998", "close": "p",
        "volume": "n * 0.01", "quote_volume": "p * n * 0.01", "vwap": "p", "trade_count": "n",
        "buy_volume": "n * 0.006", "sell_volume": "n * 0.004", "first_trade_id": "k * 1e9 + i",
        "last_trade_id": "k * 1e9 + i", "revision": "0", "revised_at": "NULL",
        "date": "CAST(t AS DATE)",
    })  # fmt: skip
    con.execute(f"COPY (SELECT {ohlc} FROM (SELECT *, epoch(t)::BIGINT AS i FROM walk)) TO '{lake}/ohlc' "
                "(FORMAT parquet, PARTITION_BY (symbol, date), FILENAME_PATTERN 'part-{i}')")  # fmt: skip
    print("generating volatility ...", flush=True)
    returns = "ln(p / lag(p) OVER w)"
    vol = _select(VOLATILITY, {
        "exchange": "'binance'", "symbol": "'SYM' || k || 'USDT'", "window_start": "t", "close": "p",
        "log_return": "r", "volatility_60s": "stddev_samp(r) OVER w60", "realized_vol_60s": "sqrt(sum(r * r) OVER w60)",
        "returns_60s": "count(r) OVER w60", "volatility_300s": "stddev_samp(r) OVER w300",
        "realized_vol_300s": "sqrt(sum(r * r) OVER w300)", "returns_300s": "count(r) OVER w300",
        "revision": "0", "revised_at": "NULL", "date": "CAST(t AS DATE)",
    })  # fmt: skip
    con.execute(f"""
        COPY (SELECT {vol} FROM (SELECT *, {returns} AS r FROM walk WINDOW w AS (PARTITION BY k ORDER BY t))
              WINDOW w60 AS (PARTITION BY k ORDER BY t ROWS 59 PRECEDING),
                     w300 AS (PARTITION BY k ORDER BY t ROWS 299 PRECEDING))
        TO '{lake}/volatility' (FORMAT parquet, PARTITION_BY (symbol, date), FILENAME_PATTERN 'part-{{i}}')""")
    for table in ("ohlc", "volatility"):  # the folders become Delta tables in place (delta-rs's CONVERT)
        files = sorted((lake / table).glob("symbol=*/date=*/*.parquet"))
        delta.convert_parquet_folder(lake, table)
        print(f"{table}: {len(files)} files", flush=True)


def timed(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        for fn in (repositories.markets, repositories.candles, repositories.volatility):
            fn.clear()
        client._connection.clear()  # a cold interaction: a new lake.connect() too
        t = time.perf_counter()
        action()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def interaction(lake: str, symbol: str, timeframe: str, range_choice: str) -> Callable[[], object]:
    def run() -> object:
        markets = repositories.markets(lake)
        row = markets[markets["symbol"] == symbol].iloc[0]
        newest = row["newest_start"].to_pydatetime()
        custom = (newest - dt.timedelta(days=30), newest + dt.timedelta(seconds=1))
        start, end = services.time_range(range_choice, newest, custom)
        step = services.TIMEFRAMES_S[timeframe]
        services.check_candle_count(start, end, step)
        candles = repositories.candles(lake, "binance", symbol, step, start, end)
        repositories.volatility(lake, "binance", symbol, step, start, end)
        return len(candles)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args()
    lake = args.cache / f"{args.days}d-{args.symbols}s"
    if not (lake / "ohlc" / "_spark_metadata").exists():
        t = time.perf_counter()
        generate(lake, args.days, args.symbols)
        print(f"generated in {time.perf_counter() - t:.0f}s")
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, DuckDB {duckdb.__version__}")
    print(f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; lake {lake}; median of {args.runs} cold runs")
    other = f"SYM{args.symbols - 1}USDT"
    cases = [
        ("page load: SYM0USDT, 1m, last 15 m", "SYM0USDT", "1m", "last 15 m"),
        (f"symbol change: {other}", other, "1m", "last 15 m"),
        ("timeframe change: 1s", other, "1s", "last 15 m"),
        ("timeframe change: 5m, last 24 h", other, "5m", "last 24 h"),
        ("timeframe change: 1h, last 24 h", other, "1h", "last 24 h"),
        ("custom range: 1d over 30 days", other, "1d", "custom"),
    ]
    worst = 0.0
    for label, symbol, timeframe, range_choice in cases:
        seconds = timed(interaction(str(lake), symbol, timeframe, range_choice), args.runs)
        worst = max(worst, seconds)
        print(f"  {label:<40} {seconds * 1000:8.1f} ms")
    print(f"slowest interaction: {worst * 1000:.0f} ms (target < {TARGET_S * 1000:.0f} ms): "
          f"{'PASS' if worst < TARGET_S else 'MISS'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
