"""Features from the lake at a regular step, each computed from data up to t only.

Bars come from `lake.connect()` (ohlc and the job's volatility table). They are put on a
regular grid of `step_s` seconds per (exchange, symbol): a step without trades keeps the last
close and has zero volume. Every feature at t is a trailing computation (shift/rolling that
ends at t), which `tests/test_models.py` checks by perturbing everything after t.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

RETURN_STEPS = (1, 5, 30, 60)
MA_STEPS = (5, 10, 30)
FLOW_STEPS = 30
VOL_WINDOWS = (60, 300)

FEATURES: tuple[str, ...] = (
    *(f"ret_{n}" for n in RETURN_STEPS),
    *(f"ma_ratio_{n}" for n in MA_STEPS),
    *(f"volatility_{w}s" for w in VOL_WINDOWS),
    *(f"realized_vol_{w}s" for w in VOL_WINDOWS),
    "range_pct",
    f"range_pct_{FLOW_STEPS}",
    f"volume_{FLOW_STEPS}",
    f"trades_{FLOW_STEPS}",
    f"imbalance_{FLOW_STEPS}",
    f"vwap_dist_{FLOW_STEPS}",
    "tod_sin",
    "tod_cos",
)


def load_bars(
    con: duckdb.DuckDBPyConnection, symbol: str, exchange: str | None = None,
    start: dt.datetime | None = None, end: dt.datetime | None = None,
) -> pd.DataFrame:  # fmt: skip
    """1-second bars of one symbol joined with the job's volatility, as floats, by time."""
    vol_cols = ", ".join(f"v.volatility_{w}s, v.realized_vol_{w}s" for w in VOL_WINDOWS)
    where = ["o.symbol = ?"]
    params: list[object] = [symbol]
    if exchange:
        where.append("o.exchange = ?")
        params.append(exchange)
    if start:
        where.append("o.window_start >= ?")
        params.append(start)
    if end:
        where.append("o.window_start < ?")
        params.append(end)
    sql = f"""
        SELECT o.exchange, o.window_start AS time, CAST(o.open AS DOUBLE) AS open, CAST(o.high AS DOUBLE) AS high,
               CAST(o.low AS DOUBLE) AS low, CAST(o.close AS DOUBLE) AS close, CAST(o.volume AS DOUBLE) AS volume,
               CAST(o.quote_volume AS DOUBLE) AS quote_volume, CAST(o.buy_volume AS DOUBLE) AS buy_volume,
               CAST(o.sell_volume AS DOUBLE) AS sell_volume, o.trade_count, v.log_return, {vol_cols}
        FROM ohlc o LEFT JOIN volatility v USING (exchange, symbol, window_start)
        WHERE {" AND ".join(where)} ORDER BY o.exchange, o.window_start"""
    return con.sql(sql, params=params).to_arrow_table().to_pandas()


def on_grid(bars: pd.DataFrame, step_s: int) -> pd.DataFrame:
    """One row per `step_s` seconds from the first bar to the last (one exchange's bars)."""
    if bars.empty:
        return bars
    b = bars.set_index("time").sort_index()
    rule = f"{step_s}s"
    agg = b.resample(rule, label="right", closed="left")  # a row at t holds the bars of (t - step, t]
    out = pd.DataFrame({
        "open": agg["open"].first(), "high": agg["high"].max(), "low": agg["low"].min(), "close": agg["close"].last(),
        "volume": agg["volume"].sum(), "quote_volume": agg["quote_volume"].sum(),
        "buy_volume": agg["buy_volume"].sum(), "sell_volume": agg["sell_volume"].sum(),
        "trade_count": agg["trade_count"].sum(),
        **{f"volatility_{w}s": agg[f"volatility_{w}s"].last() for w in VOL_WINDOWS},
        **{f"realized_vol_{w}s": agg[f"realized_vol_{w}s"].last() for w in VOL_WINDOWS},
    })  # fmt: skip
    out["close"] = out["close"].ffill()
    for column in ("open", "high", "low"):
        out[column] = out[column].fillna(out["close"])
    vol_columns = [c for c in out.columns if c.startswith(("volatility_", "realized_vol_"))]
    out[vol_columns] = out[vol_columns].ffill()
    return out


def features(grid: pd.DataFrame) -> pd.DataFrame:
    """The FEATURES columns at each grid time, from rows up to and including it."""
    close = grid["close"]
    log_close = np.log(close)
    f = pd.DataFrame(index=grid.index)
    for n in RETURN_STEPS:
        f[f"ret_{n}"] = log_close - log_close.shift(n)
    for n in MA_STEPS:
        f[f"ma_ratio_{n}"] = close / close.rolling(n).mean() - 1
    for w in VOL_WINDOWS:
        f[f"volatility_{w}s"] = grid[f"volatility_{w}s"]
        f[f"realized_vol_{w}s"] = grid[f"realized_vol_{w}s"]
    f["range_pct"] = (grid["high"] - grid["low"]) / close
    n = FLOW_STEPS
    f[f"range_pct_{n}"] = (grid["high"].rolling(n).max() - grid["low"].rolling(n).min()) / close
    volume = grid["volume"].rolling(n).sum()
    f[f"volume_{n}"] = volume
    f[f"trades_{n}"] = grid["trade_count"].rolling(n).sum()
    f[f"imbalance_{n}"] = (grid["buy_volume"] - grid["sell_volume"]).rolling(n).sum() / volume.replace(0, np.nan)
    vwap = grid["quote_volume"].rolling(n).sum() / volume.replace(0, np.nan)
    f[f"vwap_dist_{n}"] = close / vwap - 1
    seconds = (grid.index.hour * 3600 + grid.index.minute * 60 + grid.index.second).to_numpy()
    f["tod_sin"] = np.sin(2 * np.pi * seconds / 86400)
    f["tod_cos"] = np.cos(2 * np.pi * seconds / 86400)
    return f[list(FEATURES)]


def warmed_up(X: pd.DataFrame) -> pd.Series:
    """Rows whose longest lookbacks are filled: earlier rows lack history, not data."""
    return X[[f"ret_{max(RETURN_STEPS)}", f"ma_ratio_{max(MA_STEPS)}"]].notna().all(axis=1)
