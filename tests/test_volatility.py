"""The volatility core on small hand-checked cases; the job's output is held to pandas in test_pipeline."""

from __future__ import annotations

import math
from decimal import Decimal

import pandas as pd
import pytest

from jobs.volatility import trailing_stats, volatility_rows

T0 = pd.Timestamp("2024-08-09 00:00:00")


def _bars(*pairs: tuple[int, str]) -> pd.DataFrame:
    """(seconds after T0, close) -> ohlc rows as the job hands them over."""
    return pd.DataFrame(
        {
            "exchange": "binance",
            "symbol": "BTCUSDT",
            "window_start": [T0 + pd.Timedelta(seconds=s) for s, _ in pairs],
            "close": [Decimal(c) for _, c in pairs],
            "date": [T0.date()] * len(pairs),
        }
    )


def test_first_bar_has_no_return_and_windows_are_right_closed() -> None:
    rows, state = volatility_rows(_bars((0, "100"), (1, "110"), (3, "99"), (62, "100")), None, (2, 60))
    r1, r2, r3 = math.log(110 / 100), math.log(99 / 110), math.log(100 / 99)
    assert [row["log_return"] for row in rows] == [None, r1, r2, r3]
    # At t=3 the 2 s window is (1, 3]: only the bar at 3 (the bar at 1 is on the open edge).
    assert rows[2]["returns_2s"] == 1 and rows[2]["volatility_2s"] is None
    assert rows[2]["realized_vol_2s"] == pytest.approx(abs(r2))
    # At t=3 the 60 s window holds r1 and r2; at t=62 it is (2, 62]: r2 and r3.
    assert rows[2]["returns_60s"] == 2
    assert rows[2]["volatility_60s"] == pytest.approx(math.sqrt(((r1 - r2) ** 2) / 2))
    assert rows[3]["returns_60s"] == 2
    assert rows[3]["realized_vol_60s"] == pytest.approx(math.sqrt(r2 * r2 + r3 * r3))
    # State keeps only what the longest window can still use.
    assert state[0] == int((T0 + pd.Timedelta(seconds=62)).value // 1_000_000) and state[1] == 100.0
    assert len(state[2]) == 2


def test_batches_in_any_order_and_split_anywhere_give_the_same_rows() -> None:
    bars = _bars(*[(s, str(100 + (s * 7919) % 13)) for s in range(0, 400, 3)])
    whole, _ = volatility_rows(bars, None, (60, 300))
    state = None
    pieces = []
    for chunk in (bars.iloc[:40], bars.iloc[40:41], bars.iloc[41:]):
        rows, state = volatility_rows(chunk.sample(frac=1, random_state=1), state, (60, 300))
        pieces += rows
    assert pieces == whole


def test_trailing_stats_edges() -> None:
    assert trailing_stats([]) == (None, None)
    assert trailing_stats([0.5]) == (None, 0.5)
    stdev, realized = trailing_stats([1.0, 2.0, 3.0])
    assert stdev == 1.0 and realized == pytest.approx(math.sqrt(14))
