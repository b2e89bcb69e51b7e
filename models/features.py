"""Features from the lake at a regular step, each computed from data up to t only.

Bars come from `lake.connect()` (ohlc and the job's volatility table, whose windows are the
ones recorded with the table: `core.tables`, read here from the view's columns). They are put on a
regular grid of `step_s` seconds per (exchange, symbol): a step without trades keeps the last
close and has zero volume. Every feature at t is a trailing computation (shift/rolling that
ends at t), which `tests/test_models.py` checks by perturbing everything after t.
"""

from __future__ import annotations

import datetime as dt
import re

import duckdb
import numpy as np
import pandas as pd

from core.schema import DEFAULT_VOLATILITY_WINDOWS_S
from core.tables import volatility_column

RETURN_STEPS = (1, 5, 30, 60)
MA_STEPS = (5, 10, 30)
FLOW_STEPS = 30
VOL_KINDS = ("volatility", "realized_vol")
_VOL_COLUMN = re.compile(r"volatility_(\d+)s")


def feature_names(windows_s: tuple[int, ...]) -> tuple[str, ...]:
    """The model's inputs over a lake whose volatility has these windows."""
    return (
        *(f"ret_{n}" for n in RETURN_STEPS),
        *(f"ma_ratio_{n}" for n in MA_STEPS),
        *(volatility_column(kind, w) for kind in VOL_KINDS for w in windows_s),
        "range_pct",
        f"range_pct_{FLOW_STEPS}",
        f"volume_{FLOW_STEPS}",
        f"trades_{FLOW_STEPS}",
        f"imbalance_{FLOW_STEPS}",
        f"vwap_dist_{FLOW_STEPS}",
        "tod_sin",
        "tod_cos",
    )


FEATURES = feature_names(DEFAULT_VOLATILITY_WINDOWS_S)  # over a lake with the default windows


def windows_in(columns: list[str] | tuple[str, ...] | pd.Index) -> tuple[int, ...]:
    """The volatility windows named by some columns (`volatility_60s` -> 60)."""
    return tuple(sorted(int(m[1]) for c in columns if (m := _VOL_COLUMN.fullmatch(str(c)))))


def lake_windows(con: duckdb.DuckDBPyConnection) -> tuple[int, ...]:
    """The windows of the lake's volatility view (as recorded with the table)."""
    return windows_in(con.sql("SELECT * FROM volatility LIMIT 0").columns)


def load_bars(
    con: duckdb.DuckDBPyConnection, symbol: str, exchange: str | None = None,
    start: dt.datetime | None = None, end: dt.datetime | None = None,
) -> pd.DataFrame:  # fmt: skip
    """1-second bars of one symbol joined with the job's volatility, as floats, by time."""
    vol_cols = ", ".join(f"v.{volatility_column(kind, w)}" for kind in VOL_KINDS for w in lake_windows(con))
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
        **{c: agg[c].last() for kind in VOL_KINDS for w in windows_in(b.columns) if (c := volatility_column(kind, w))},
    })  # fmt: skip
    out["close"] = out["close"].ffill()
    for column in ("open", "high", "low"):
        out[column] = out[column].fillna(out["close"])
    vol_columns = [c for c in out.columns if c.startswith(("volatility_", "realized_vol_"))]
    out[vol_columns] = out[vol_columns].ffill()
    return out


def features(grid: pd.DataFrame) -> pd.DataFrame:
    """The `feature_names` columns (for the grid's volatility windows) at each grid time, from rows
    up to and including it."""
    windows = windows_in(grid.columns)
    close = grid["close"]
    log_close = np.log(close)
    f = pd.DataFrame(index=grid.index)
    for n in RETURN_STEPS:
        f[f"ret_{n}"] = log_close - log_close.shift(n)
    for n in MA_STEPS:
        f[f"ma_ratio_{n}"] = close / close.rolling(n).mean() - 1
    for kind in VOL_KINDS:
        for w in windows:
            f[volatility_column(kind, w)] = grid[volatility_column(kind, w)]
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
    return f[list(feature_names(windows))]


def warmed_up(X: pd.DataFrame) -> pd.Series:
    """Rows whose longest lookbacks are filled: earlier rows lack history, not data."""
    return X[[f"ret_{max(RETURN_STEPS)}", f"ma_ratio_{max(MA_STEPS)}"]].notna().all(axis=1)
