"""Per-bar log returns and trailing volatility, with Spark's own per-key state.

For each bar at t (its window_start) of a key (exchange, symbol):
- log_return = ln(close / close of the key's previous bar), null for the key's first bar;
- for each window W: volatility_{W}s = sample stdev (ddof 1) of the log returns of the key's
  bars in (t - W, t], null with fewer than 2; realized_vol_{W}s = sqrt(sum r^2) over the same
  bars, null with none; returns_{W}s = how many returns that is.

The job runs this as a second query over lake/ohlc (a file stream source, which reads only
the bars the sink committed), grouped by key with `transformWithStateInPandas`
(`applyInPandasWithState` fails in pyspark 4.0.0 with this pyarrow: its state
column arrives with float offsets). The state per
key is the last close and the (t, r) pairs younger than the longest window, so it stays
bounded. The ohlc sink emits a key's bars in time order across batches (a window is final
once the watermark passes it); within a batch they are sorted here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql.streaming import StatefulProcessor, StatefulProcessorHandle

from lake.schema import column_names, to_spark, volatility_columns

log = logging.getLogger(__name__)

LAST_SCHEMA = "last_t LONG, last_close DOUBLE"  # the key's latest bar
RECENT_SCHEMA = "t LONG, r DOUBLE"  # (bar time, log return) younger than the longest window


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


class VolatilityProcessor(StatefulProcessor):
    """Spark's per-key state around `volatility_rows` (transformWithStateInPandas, no timers)."""

    def __init__(self, windows_s: tuple[int, ...]) -> None:
        self.windows_s = windows_s
        self.names = column_names(volatility_columns(windows_s))

    def init(self, handle: StatefulProcessorHandle) -> None:
        # Two states rather than one row with arrays: pyspark 4.0.0 cannot read back a
        # value state that holds arrays ("couldn't introspect javabean").
        self.last = handle.getValueState("last", LAST_SCHEMA)
        self.recent = handle.getListState("recent", RECENT_SCHEMA)

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any) -> Iterator[pd.DataFrame]:
        batch = pd.concat(list(rows), ignore_index=True)
        previous = None
        if self.last.exists():
            last = self.last.get()
            assert last is not None
            recent = list(self.recent.get()) if self.recent.exists() else []
            previous = (last[0], last[1], [t for t, _ in recent], [r for _, r in recent])
        out, (last_t, last_close, times, returns) = volatility_rows(batch, previous, self.windows_s)
        self.last.update((last_t, last_close))
        if times:
            self.recent.put(list(zip(times, returns, strict=True)))
        else:
            self.recent.clear()
        yield pd.DataFrame(out, columns=self.names)

    def close(self) -> None:
        pass


def bar_volatility(bars: DataFrame, windows_s: tuple[int, ...]) -> DataFrame:
    """A stream of lake/ohlc rows -> lake/volatility rows."""
    return (
        bars.select("exchange", "symbol", "window_start", "close", "date")
        .groupBy("exchange", "symbol")
        .transformWithStateInPandas(
            statefulProcessor=VolatilityProcessor(windows_s),
            outputStructType=to_spark(volatility_columns(windows_s)),
            outputMode="Append",
            timeMode="None",
        )
    )
