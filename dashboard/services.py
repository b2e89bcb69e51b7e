"""Pure pandas logic behind the pages: time ranges, metrics, normalization, correlation, health."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lake.macros import SECONDS_PER_YEAR

TIMEFRAMES_S: dict[str, int] = {"1s": 1, "5s": 5, "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
RANGES: dict[str, dt.timedelta | None] = {
    "last 15 m": dt.timedelta(minutes=15),
    "last 1 h": dt.timedelta(hours=1),
    "last 24 h": dt.timedelta(hours=24),
    "custom": None,
}
MAX_CANDLES = 5_000


class BadRange(ValueError):
    """A time range the charts cannot show; the message says what to change."""


def time_range(
    choice: str, newest: dt.datetime, custom: tuple[dt.datetime, dt.datetime] | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) for a range choice. "last N" counts back from the newest bar, not the clock,
    so a replayed or stalled lake still shows data (the stale notice says how old it is)."""
    span = RANGES.get(choice)
    if choice not in RANGES:
        raise BadRange(f"unknown range {choice!r}")
    if span is not None:
        end = newest + dt.timedelta(seconds=1)
        return end - span, end
    if custom is None:
        raise BadRange("pick a start and an end")
    start, end = custom
    if start >= end:
        raise BadRange("the start must be before the end")
    return start, end


def check_candle_count(start: dt.datetime, end: dt.datetime, step_s: int) -> int:
    count = math.ceil((end - start).total_seconds() / step_s)
    if count > MAX_CANDLES:
        raise BadRange(f"{count:,} candles is too many to draw; choose a larger timeframe or a shorter range")
    return count


@dataclass(frozen=True)
class PriceMetrics:
    last: float
    change: float
    change_pct: float
    bar_age_s: float


def price_metrics(candles: pd.DataFrame, newest_end: dt.datetime, now: dt.datetime) -> PriceMetrics | None:
    if candles.empty:
        return None
    first_open, last_close = float(candles["open"].iloc[0]), float(candles["close"].iloc[-1])
    change = last_close - first_open
    return PriceMetrics(
        last=last_close,
        change=change,
        change_pct=100.0 * change / first_open if first_open else float("nan"),
        bar_age_s=(now - newest_end).total_seconds(),
    )


def is_stale(bar_age_s: float, expected_s: float) -> bool:
    """The newest bar is older than the pipeline should ever let it get."""
    return bar_age_s > expected_s


def annualize(vol: pd.DataFrame, windows: tuple[int, ...]) -> pd.DataFrame:
    """Per-second volatility and W-second realized volatility, both scaled to a 365-day year."""
    out = vol.copy()
    for w in windows:
        out[f"volatility_{w}s"] = out[f"volatility_{w}s"] * math.sqrt(SECONDS_PER_YEAR)
        out[f"realized_vol_{w}s"] = out[f"realized_vol_{w}s"] * math.sqrt(SECONDS_PER_YEAR / w)
    return out


def closes_wide(series: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """{label: candles} -> one close column per label, on the union of times, forward-filled."""
    columns = {label: df.set_index("time")["close"] for label, df in series.items() if not df.empty}
    if not columns:
        return pd.DataFrame()
    return pd.DataFrame(columns).sort_index().ffill()


def normalized(wide: pd.DataFrame) -> pd.DataFrame:
    """Each column as 100 x price / its first price in the range."""
    if wide.empty:
        return wide
    first = wide.bfill().iloc[0]
    return 100.0 * wide / first


def log_returns(wide: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(np.log(wide / wide.shift(1))).iloc[1:]


def returns_correlation(wide_1m: pd.DataFrame) -> pd.DataFrame:
    """Correlation matrix of 1-minute log returns (pairs need 3 common returns)."""
    return log_returns(wide_1m).corr(min_periods=3)


def throughput(progress: pd.DataFrame) -> pd.DataFrame:
    """Per query and batch: input vs processed rows/s, duration, watermark delay, state."""
    if progress.empty:
        return progress
    out = progress.copy()
    out["watermark_delay_s"] = (out["timestamp"] - out["watermark"]).dt.total_seconds()
    return out


def freshness(markets: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    """Seconds since each (exchange, symbol)'s newest bar ended."""
    if markets.empty:
        return markets.assign(age_s=pd.Series(dtype=float))
    return markets.assign(age_s=(now - markets["newest_end"]).dt.total_seconds()).sort_values("age_s")


def end_offsets(sources_json: str) -> dict[str, dict[str, int]]:
    """Spark's per-source `end_offset` (JSON text, Kafka sources only) -> {topic: {partition: offset}}."""
    import json

    out: dict[str, dict[str, int]] = {}
    for source in json.loads(sources_json or "[]"):
        end = source.get("end_offset")
        parsed = json.loads(end) if isinstance(end, str) else end
        if isinstance(parsed, dict):
            for topic, partitions in parsed.items():
                if isinstance(partitions, dict):
                    out.setdefault(topic, {}).update({str(p): int(o) for p, o in partitions.items()})
    return out


def consumer_lag(job: dict[str, dict[str, int]], broker: dict[str, dict[str, int]]) -> pd.DataFrame:
    """Per topic partition: the broker's end offset minus the job's."""
    rows = [
        {"topic": t, "partition": int(p), "job_offset": job.get(t, {}).get(p), "broker_offset": o}
        for t, parts in broker.items()
        for p, o in parts.items()
    ]
    frame = pd.DataFrame(rows, columns=["topic", "partition", "job_offset", "broker_offset"])
    frame["lag"] = frame["broker_offset"] - frame["job_offset"]
    return frame.sort_values(["topic", "partition"]).reset_index(drop=True)
