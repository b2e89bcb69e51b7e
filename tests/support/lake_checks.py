"""What the tests check of a lake the real job wrote, against the pandas reference."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from tests.support.reference import reference_volatility

WINDOWS = (60, 300)  # the job's default volatility windows


def assert_bars_and_volatility(con: duckdb.DuckDBPyConnection, bars: pd.DataFrame) -> None:
    """lake/ohlc equals `bars` (the reference) column by column, exactly, and lake/volatility
    equals the reference volatility over them."""
    bars = bars.sort_values(["exchange", "symbol", "window_start"]).reset_index(drop=True)
    actual = _frame(con, "SELECT * FROM ohlc ORDER BY exchange, symbol, window_start")
    assert len(actual) == len(bars)
    for column in bars.columns:
        left = list(actual[column])
        if column in ("window_start", "window_end"):
            left = [pd.Timestamp(x).tz_convert("UTC") for x in left]
        assert left == list(bars[column]), f"ohlc.{column} differs"
    vol = _frame(con, "SELECT * FROM volatility ORDER BY exchange, symbol, window_start")
    expected = reference_volatility(bars, WINDOWS).sort_values(["exchange", "symbol", "window_start"])
    assert len(vol) == len(expected)
    for column in ["log_return"] + [f"{k}_{w}s" for w in WINDOWS for k in ("volatility", "realized_vol")]:
        left, right = vol[column].astype(float).to_numpy(), expected[column].to_numpy()
        assert (np.isnan(left) == np.isnan(right)).all(), column
        assert np.allclose(left[~np.isnan(right)], right[~np.isnan(right)], rtol=1e-9, atol=0), column


def _frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """The result with Python values (decimals exact), not pandas' floats."""
    result = con.sql(sql)
    return pd.DataFrame(result.fetchall(), columns=[d[0] for d in result.description])
