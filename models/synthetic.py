"""Synthetic 1-second bars for model tests and the README's numbers, written as the job writes the lake.

`garch` gives volatility clustering (GARCH(1,1) step returns); `random_walk` gives i.i.d.
returns of constant volatility. Bars go to lake/ohlc and their volatility (same definitions
as the job: log return to the previous bar, sample std and sqrt(sum r^2) over (t - W, t]) to
lake/volatility as Delta commits (`lake.delta`), as the job's sink makes them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from core.schema import DEFAULT_VOLATILITY_WINDOWS_S, OHLC_TABLE, VOLATILITY, Column, to_arrow
from core.tables import record_windows
from lake import delta

BASE_VOL = 1e-4  # per-second return std, about a busy BTC market


def garch_returns(n: int, rng: np.random.Generator, alpha: float = 0.025, beta: float = 0.97) -> np.ndarray:
    omega = BASE_VOL**2 * (1 - alpha - beta)
    r = np.empty(n)
    var = BASE_VOL**2
    shocks = rng.standard_normal(n)
    for i in range(n):
        r[i] = np.sqrt(var) * shocks[i]
        var = omega + alpha * r[i] ** 2 + beta * var
    return r


def random_walk_returns(n: int, rng: np.random.Generator) -> np.ndarray:
    return BASE_VOL * rng.standard_normal(n)


def bars(symbol: str, start: dt.datetime, returns: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    n = len(returns)
    close = np.round(30_000 * np.exp(np.cumsum(returns)), 2)
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.standard_normal(n)) * np.abs(returns) * close
    high = np.round(np.maximum(open_, close) + wick, 2)
    low = np.round(np.minimum(open_, close) - wick, 2)
    qty = np.round(rng.lognormal(-2, 1, n), 6) + 0.000001
    buy = np.round(qty * rng.uniform(0, 1, n), 6)
    times = pd.date_range(start, periods=n, freq="s")
    return pd.DataFrame({
        "exchange": "synthetic", "symbol": symbol, "window_start": times, "window_end": times + pd.Timedelta(seconds=1),
        "open": open_, "high": high, "low": low, "close": close, "volume": qty, "quote_volume": qty * close,
        "vwap": close, "trade_count": rng.poisson(5, n) + 1, "buy_volume": buy, "sell_volume": np.round(qty - buy, 6),
        "first_trade_id": np.arange(n) * 10, "last_trade_id": np.arange(n) * 10 + 9, "date": times.date,
    })  # fmt: skip


def volatility(b: pd.DataFrame, windows: tuple[int, ...] = (60, 300)) -> pd.DataFrame:
    r = np.log(b["close"] / b["close"].shift(1))
    out = b[["exchange", "symbol", "window_start", "close", "date"]].copy()
    out["log_return"] = r
    for w in windows:  # one bar per second: the (t - W, t] window is the last W rows
        count = r.rolling(w, min_periods=1).count()
        out[f"volatility_{w}s"] = r.rolling(w, min_periods=2).std(ddof=1).where(count >= 2)
        out[f"realized_vol_{w}s"] = np.sqrt((r * r).rolling(w, min_periods=1).sum()).where(count >= 1)
        out[f"returns_{w}s"] = count.astype(int)
    return out


def write_table(lake: Path, table: str, frame: pd.DataFrame, columns: tuple[Column, ...]) -> int:
    """Append `frame` as one Delta commit (`lake.delta`), typed by `columns`; returns rows written."""
    arrays = {}
    for c in columns:
        if c.name not in frame.columns and (c.default is not None or c.nullable):
            continue  # `revision` and `revised_at`: as the job's first write has them (`lake.delta.conform`)
        values = frame[c.name]
        if c.type.startswith("decimal"):
            scale = int(c.type.split(",")[1].rstrip(")"))
            values = [
                None if pd.isna(v) else Decimal(repr(float(v))).quantize(Decimal(1).scaleb(-scale)) for v in values
            ]
        arrays[c.name] = pa.array(values, type=to_arrow((c,)).field(0).type, from_pandas=True)
    return delta.append_rows(lake, table, pa.table(arrays), columns)


def write_lake(lake: Path, symbol: str, kind: str, hours: float, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = int(hours * 3600)
    returns = garch_returns(n, rng) if kind == "garch" else random_walk_returns(n, rng)
    start = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    b = bars(symbol, start, returns, rng)
    write_table(lake, "ohlc", b, OHLC_TABLE)
    write_table(lake, "volatility", volatility(b), VOLATILITY)
    record_windows(lake, DEFAULT_VOLATILITY_WINDOWS_S)
    return b
