"""Per-bar log returns and trailing volatility, with Spark's own per-key state.

For each bar at t (its window_start) of a key (exchange, symbol):
- log_return = ln(close / close of the key's previous bar), null for the key's first bar;
- for each window W: volatility_{W}s = sample stdev (ddof 1) of the log returns of the key's
  bars in (t - W, t], null with fewer than 2; realized_vol_{W}s = sqrt(sum r^2) over the same
  bars, null with none; returns_{W}s = how many returns that is.

The job computes these on its driver, in the same micro-batch that writes the bars
(`jobs.lake_sink`): a batch holds a few bars per symbol, and a second Spark stage for them
cost a query (or Python workers and a RocksDB state store) per batch. The state per key is
the last close and the (t, r) pairs younger than the longest window, so it stays bounded.
A key's bars arrive in time order across batches (a window is final once the watermark
passes it); within a batch they are sorted here.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd

from core.schema import column_names, volatility_values

log = logging.getLogger(__name__)


def trailing_stats(returns: list[float]) -> tuple[float | None, float | None]:
    """(sample stdev, sqrt of the sum of squares) of `returns`; None where undefined."""
    n = len(returns)
    realized = math.sqrt(math.fsum(r * r for r in returns)) if n else None
    if n < 2:
        return None, realized
    mean = math.fsum(returns) / n
    return math.sqrt(math.fsum((r - mean) ** 2 for r in returns) / (n - 1)), realized


def volatility_rows(
    bars: pd.DataFrame, state: tuple[Any, ...] | None, windows_s: tuple[int, ...]
) -> tuple[list[dict[str, Any]], tuple[Any, ...]]:
    """Pure core: one key's new bars (any order) and its state -> output rows and the new state."""
    last_t, last_close, times, returns = state if state is not None else (None, None, [], [])
    times, returns = list(times), list(returns)
    longest_ms = max(windows_s) * 1000
    rows = []
    for bar in bars.sort_values("window_start").itertuples(index=False):
        t = int(pd.Timestamp(bar.window_start).value // 1_000_000)
        close = float(bar.close)
        if last_t is not None and t <= last_t:
            log.warning("bar out of order exchange=%s symbol=%s t=%d last=%d", bar.exchange, bar.symbol, t, last_t)
        log_return = math.log(close / last_close) if last_close is not None else None
        last_t, last_close = t, close
        if log_return is not None:
            times.append(t)
            returns.append(log_return)
        keep = next((i for i, ti in enumerate(times) if ti > t - longest_ms), len(times))
        times, returns = times[keep:], returns[keep:]
        row: dict[str, Any] = {
            "exchange": bar.exchange,
            "symbol": bar.symbol,
            "window_start": bar.window_start,
            "close": bar.close,
            "log_return": log_return,
        }
        for w in windows_s:
            in_window = [r for ti, r in zip(times, returns, strict=True) if ti > t - w * 1000]
            row[f"volatility_{w}s"], row[f"realized_vol_{w}s"] = trailing_stats(in_window)
            row[f"returns_{w}s"] = len(in_window)
        row["date"] = bar.date
        rows.append(row)
    return rows, (last_t, last_close, times, returns)


Key = tuple[str, str]  # (exchange, symbol)


class VolatilityState:
    """Every key's `volatility_rows` state, carried by the job's driver from batch to batch.

    The bars of a batch are the windows the watermark closed, so each key's bars arrive in
    time order across batches. The state is saved with each batch (`to_json`) and read back
    on a restart (`from_json`): floats survive JSON exactly, so a restarted job computes the
    same rows as an uninterrupted one.
    """

    def __init__(self, windows_s: tuple[int, ...], keys: dict[Key, tuple[Any, ...]] | None = None) -> None:
        self.windows_s = windows_s
        self.names = column_names(volatility_values(windows_s))
        self.keys: dict[Key, tuple[Any, ...]] = dict(keys or {})

    def apply(self, bars: pd.DataFrame) -> pd.DataFrame:
        """One batch of lake/ohlc rows (any order) -> its lake/volatility rows; updates the state."""
        out: list[dict[str, Any]] = []
        if len(bars):
            for (exchange, symbol), group in bars.groupby(["exchange", "symbol"], sort=True):
                key = (str(exchange), str(symbol))
                rows, self.keys[key] = volatility_rows(group, self.keys.get(key), self.windows_s)
                out.extend(rows)
        return pd.DataFrame(out, columns=self.names)

    def to_json(self) -> dict[str, Any]:
        return {
            "windows_s": list(self.windows_s),
            "keys": [[exchange, symbol, *state] for (exchange, symbol), state in sorted(self.keys.items())],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], windows_s: tuple[int, ...]) -> VolatilityState:
        if tuple(data["windows_s"]) != tuple(windows_s):
            log.warning(
                "volatility windows changed from %s to %s: trailing returns kept up to the longer window",
                data["windows_s"],
                list(windows_s),
            )
        keys = {(e, s): (t, c, list(ts), list(rs)) for e, s, t, c, ts, rs in data["keys"]}
        return cls(windows_s, keys)
