"""Pure pandas logic behind the pages: time ranges, metrics, live bars, normalization, correlation, health."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from core.broker_offsets import consumer_lag as lag_rows
from lake.macros import INTERVALS_S, SECONDS_PER_YEAR

TIMEFRAMES_S = INTERVALS_S
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


class Freshness(StrEnum):
    LIVE = "live"  # the lake is current and live bars flow
    FRESH = "fresh"  # the lake is current; no live bars (the live-bars job is not running)
    STALLED = "stalled"  # the lake's newest bar is older than the pipeline should let it get
    REPLAY = "replay"  # the lake holds a replayed tape: old bars, written long after their time


REPLAY_LAG_S = 600.0  # a live job writes a bar ~20 s after it ends; ten minutes later means a tape
REPLAY_AGE_S = 86400.0  # without progress records: a day-old newest bar is a tape, not a stall


def freshness_verdict(
    bar_age_s: float, stale_after_s: float, live_age_s: float | None, written_lag_s: float | None
) -> Freshness:
    """How current the lake is for one market.

    `live_age_s`: seconds since the newest trade in its live bars (None: no live bars).
    `written_lag_s`: how long after its end the lake's newest bar was written (None: unknown).
    """
    live = live_flowing(live_age_s, stale_after_s)
    if bar_age_s <= stale_after_s:
        return Freshness.LIVE if live else Freshness.FRESH
    if live:  # trades flow, the lake does not follow: the stream job stalled
        return Freshness.STALLED
    if written_lag_s is not None:
        return Freshness.REPLAY if written_lag_s > REPLAY_LAG_S else Freshness.STALLED
    return Freshness.REPLAY if bar_age_s > REPLAY_AGE_S else Freshness.STALLED


def live_flowing(live_age_s: float | None, stale_after_s: float) -> bool:
    """Live bars arrive: the newest trade in them is no older than the lake's own limit."""
    return live_age_s is not None and live_age_s <= stale_after_s


def live_age_s(live: pd.DataFrame, now: dt.datetime) -> float | None:
    """Seconds since the newest trade in the live bars (clipped at 0 for a venue clock ahead of ours)."""
    if live.empty:
        return None
    return max(0.0, now.timestamp() - int(live["last_trade_ts"].max()) / 1000)


def newest_live_start(live: pd.DataFrame) -> dt.datetime | None:
    return None if live.empty else live["window_start"].max().to_pydatetime()


CANDLE_COLUMNS = ["time", "open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "vwap", "trade_count"]
_AMOUNTS = ["open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "quote_volume", "trade_count"]


def live_candles(live: pd.DataFrame, step_s: int) -> pd.DataFrame:
    """1-second live bars -> candles of `step_s` seconds (CANDLE_COLUMNS and `quote`), as floats."""
    if live.empty:
        return pd.DataFrame(columns=[*CANDLE_COLUMNS, "quote"])
    bars = live.sort_values("window_start")
    floats = pd.DataFrame({c: bars[c].astype(float) for c in _AMOUNTS})
    # Buckets on the epoch, as DuckDB's time_bucket on whole days: every timeframe divides a day.
    floats["time"] = bars["window_start"].dt.floor(f"{step_s}s")
    out = floats.groupby("time", sort=True).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum"), buy_volume=("buy_volume", "sum"), sell_volume=("sell_volume", "sum"),
        quote=("quote_volume", "sum"), trade_count=("trade_count", "sum"),
    )  # fmt: skip
    out["vwap"] = out["quote"] / out["volume"].where(out["volume"] != 0)
    return out.reset_index()[[*CANDLE_COLUMNS, "quote"]]


def _merge_candle(final: pd.Series, provisional: pd.Series) -> dict[str, object]:
    """The lake's part of a bucket and the live part after it, as one candle."""
    final_quote = 0.0 if pd.isna(final["vwap"]) else float(final["vwap"]) * float(final["volume"])
    volume = float(final["volume"]) + float(provisional["volume"])
    quote = final_quote + float(provisional["quote"])
    return {
        "time": provisional["time"],
        "open": final["open"],
        "high": max(final["high"], provisional["high"]),
        "low": min(final["low"], provisional["low"]),
        "close": provisional["close"],
        **{c: float(final[c]) + float(provisional[c]) for c in ("buy_volume", "sell_volume", "trade_count")},
        "volume": volume,
        "vwap": quote / volume if volume else float("nan"),
    }


def with_live_bars(
    final: pd.DataFrame,
    live: pd.DataFrame,
    newest_final_start: dt.datetime | None,
    step_s: int,
    span: tuple[dt.datetime, dt.datetime] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(final candles without the bucket live bars complete, provisional candles) at `step_s`.

    Live bars count only after the lake's newest final bar of the market (`newest_final_start`;
    the lake has the rest), and within `span` [start, end). A bucket the lake holds in part,
    such as the current minute, becomes one provisional candle of both parts.
    """
    if not live.empty:
        keep = pd.Series(True, index=live.index)
        if newest_final_start is not None:
            keep &= live["window_start"] > pd.Timestamp(newest_final_start)
        if span is not None:
            keep &= (live["window_start"] >= pd.Timestamp(span[0])) & (live["window_start"] < pd.Timestamp(span[1]))
        live = live[keep]
    provisional = live_candles(live, step_s)
    if not final.empty and not provisional.empty and final["time"].iloc[-1] == provisional["time"].iloc[0]:
        merged = pd.DataFrame([_merge_candle(final.iloc[-1], provisional.iloc[0])])
        later = provisional.iloc[1:][CANDLE_COLUMNS]
        return final.iloc[:-1], pd.concat([merged, later], ignore_index=True) if len(later) else merged
    return final, provisional[CANDLE_COLUMNS]


def overlapping(candles: pd.DataFrame, start: dt.datetime, step_s: int) -> pd.DataFrame:
    """The candles whose bucket [time, time + step) reaches past `start`."""
    if candles.empty:
        return candles
    keep = candles["time"] + pd.Timedelta(seconds=step_s) > pd.Timestamp(start)
    return candles[keep].reset_index(drop=True)


def joined(final: pd.DataFrame, provisional: pd.DataFrame) -> pd.DataFrame:
    """Final then provisional candles, as one frame (for the price metrics)."""
    parts = [f for f in (final, provisional) if not f.empty]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts[0] if parts else final)


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


def consumer_lag(job: dict[str, dict[str, int]], broker: dict[str, dict[str, int]]) -> pd.DataFrame:
    """Per topic partition: the broker's end offset minus the job's (`core.broker_offsets.consumer_lag`)."""
    frame = pd.DataFrame(lag_rows(job, broker), columns=["topic", "partition", "job_offset", "broker_offset", "lag"])
    frame["lag"] = frame["broker_offset"] - frame["job_offset"]  # NaN, not None, where the job has no offset
    return frame
