"""The dashboard's pure pandas services."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core import live_bars
from core.ages import format_age
from core.broker_offsets import progress_offsets
from dashboard import services

T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


def test_last_n_ranges_count_back_from_the_newest_bar() -> None:
    start, end = services.time_range("last 15 m", T0)
    assert end == T0 + dt.timedelta(seconds=1) and end - start == dt.timedelta(minutes=15)


def test_custom_range_is_checked() -> None:
    assert services.time_range("custom", T0, (T0, T0 + dt.timedelta(hours=1))) == (T0, T0 + dt.timedelta(hours=1))
    with pytest.raises(services.BadRange, match="before the end"):
        services.time_range("custom", T0, (T0, T0))
    with pytest.raises(services.BadRange, match="pick a start"):
        services.time_range("custom", T0)
    with pytest.raises(services.BadRange, match="unknown range"):
        services.time_range("last week", T0)


def test_too_many_candles_is_refused_with_advice() -> None:
    assert services.check_candle_count(T0, T0 + dt.timedelta(hours=1), 1) == 3600
    with pytest.raises(services.BadRange, match="larger timeframe"):
        services.check_candle_count(T0, T0 + dt.timedelta(days=1), 1)


def test_price_metrics() -> None:
    candles = pd.DataFrame({"open": [100.0, 101.0], "close": [101.0, 110.0]})
    m = services.price_metrics(candles, T0, T0 + dt.timedelta(seconds=30))
    assert m is not None and (m.last, m.change, m.change_pct, m.bar_age_s) == (110.0, 10.0, 10.0, 30.0)
    assert services.price_metrics(candles.iloc[:0], T0, T0) is None


def test_annualize_scales_each_measure_by_its_own_horizon() -> None:
    vol = pd.DataFrame({"volatility_60s": [0.001], "realized_vol_60s": [0.002]})
    out = services.annualize(vol, (60,))
    year = 365 * 24 * 3600
    assert out["volatility_60s"].iloc[0] == pytest.approx(0.001 * math.sqrt(year))
    assert out["realized_vol_60s"].iloc[0] == pytest.approx(0.002 * math.sqrt(year / 60))
    assert vol["volatility_60s"].iloc[0] == 0.001  # the input is left alone


def test_normalized_and_correlation() -> None:
    times = pd.date_range(T0, periods=50, freq="min")
    rng = np.random.default_rng(1)
    base = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 50)))
    frames = {
        "a": pd.DataFrame({"time": times, "close": base}),
        "b": pd.DataFrame({"time": times, "close": base * 3}),  # the same returns
        "c": pd.DataFrame({"time": times, "close": 10_000 / base}),  # opposite returns
    }
    wide = services.closes_wide(frames)
    norm = services.normalized(wide)
    assert np.allclose(norm.iloc[0], 100) and np.allclose(norm["a"], norm["b"])
    corr = services.returns_correlation(wide)
    assert corr.loc["a", "b"] == pytest.approx(1.0) and corr.loc["a", "c"] == pytest.approx(-1.0)
    assert services.closes_wide({"x": frames["a"].iloc[:0]}).empty


def test_kafka_lag_from_progress_offsets() -> None:
    sources = json.dumps(
        [
            {"description": "KafkaV2[t]", "end_offset": json.dumps({"t": {"0": 10, "1": 7}}), "input_rows": 3},
            {"description": "FileStreamSource", "end_offset": json.dumps({"logOffset": 3}), "input_rows": 1},
        ]
    )
    job = progress_offsets(sources)
    assert job == {"t": {"0": 10, "1": 7}}
    lag = services.consumer_lag(job, {"t": {"0": 12, "1": 7}})
    assert list(lag["lag"]) == [2, 0]


def test_freshness_sorts_by_age() -> None:
    markets = pd.DataFrame({"symbol": ["A", "B"], "newest_end": [T0, T0 - dt.timedelta(seconds=90)]})
    out = services.freshness(markets, T0 + dt.timedelta(seconds=10))
    assert list(out["symbol"]) == ["A", "B"] and list(out["age_s"]) == [10.0, 100.0]


# Live bars: 1-second bars as `crypto.bars.live` carries them, merged with the lake's candles.


def one_second_bars(start: dt.datetime, seconds: int, seed: int = 7) -> list[dict[str, Any]]:
    """Random but consistent 1-second bars (LIVE_BAR fields; exact decimals, epoch-ms times)."""
    rng = np.random.default_rng(seed)
    bars, price, trade_id = [], Decimal("100"), 0
    for i in range(seconds):
        moves = [Decimal(int(m)) / 100 for m in rng.integers(-30, 31, size=3)]
        open_, close = price + moves[0], price + moves[1]
        high, low = max(open_, close) + abs(moves[2]), min(open_, close) - abs(moves[2])
        volume = Decimal(int(rng.integers(1, 500))) / 100
        buy = (volume * Decimal(int(rng.integers(0, 101))) / 100).quantize(Decimal("1e-8"))
        vwap = (low + high) / 2
        count = int(rng.integers(1, 20))
        ms = int((start + dt.timedelta(seconds=i)).timestamp() * 1000)
        bars.append({
            "exchange": "binance", "symbol": "AAAUSDT", "window_start": ms, "window_end": ms + 1000,
            "open": open_, "high": high, "low": low, "close": close, "volume": volume,
            "quote_volume": vwap * volume, "vwap": float(vwap), "trade_count": count, "buy_volume": buy,
            "sell_volume": volume - buy, "first_trade_id": trade_id, "last_trade_id": trade_id + count - 1,
            "final": True, "emitted_at": ms + 1100, "last_trade_ts": ms + 900,
        })  # fmt: skip
        price, trade_id = close, trade_id + count
    return bars


def direct_candles(bars: list[dict[str, Any]], step_s: int) -> pd.DataFrame:
    """Candles computed straight from 1-second bars, as the lake's `candles` macro defines them."""
    buckets: dict[int, list[dict[str, Any]]] = {}
    for bar in sorted(bars, key=lambda b: b["window_start"]):
        buckets.setdefault(int(bar["window_start"]) // (step_s * 1000), []).append(bar)
    rows = []
    for bucket, group in sorted(buckets.items()):
        volume = sum(Decimal(b["volume"]) for b in group)
        quote = sum(Decimal(b["quote_volume"]) for b in group)
        rows.append({
            "time": pd.Timestamp(bucket * step_s * 1000, unit="ms", tz="UTC"),
            "open": float(group[0]["open"]), "high": max(float(b["high"]) for b in group),
            "low": min(float(b["low"]) for b in group), "close": float(group[-1]["close"]),
            "volume": float(volume), "buy_volume": float(sum(Decimal(b["buy_volume"]) for b in group)),
            "sell_volume": float(sum(Decimal(b["sell_volume"]) for b in group)),
            "vwap": float(quote) / float(volume), "trade_count": float(sum(int(b["trade_count"]) for b in group)),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=services.CANDLE_COLUMNS)


def live_frame(bars: list[dict[str, Any]]) -> pd.DataFrame:
    """Bars through the wire encoding, as the live feed hands them to a page."""
    return live_bars.to_frame([live_bars.decode(live_bars.encode(b)) for b in bars])


def start_of(bar: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(bar["window_start"]) / 1000, dt.UTC)


@pytest.mark.parametrize("step_s", [1, 5, 60])
def test_live_bars_complete_the_lakes_candles(step_s: int) -> None:
    bars = one_second_bars(T0, 150)  # 12:00:00 .. 12:02:29
    k = 97  # the lake holds 12:00:00 .. 12:01:36; the live feed still has a few of those too
    lake = direct_candles(bars[:k], step_s)
    final, provisional = services.with_live_bars(lake, live_frame(bars[k - 5 :]), start_of(bars[k - 1]), step_s)
    expected = direct_candles(bars, step_s)
    shown = services.joined(final, provisional)
    pd.testing.assert_frame_equal(shown, expected, check_dtype=False, rtol=1e-12)
    assert provisional["time"].iloc[0] > final["time"].iloc[-1]


def test_the_current_minute_is_one_provisional_candle_of_its_final_and_live_seconds() -> None:
    bars = one_second_bars(T0, 150)
    lake = direct_candles(bars[:97], 60)  # 12:00 complete, 12:01 up to second 36
    live = live_frame(bars[90:])
    final, provisional = services.with_live_bars(lake, live, start_of(bars[96]), 60)
    assert list(final["time"]) == [pd.Timestamp(T0)]  # the partial minute moved to the provisional side
    assert list(provisional["time"]) == [pd.Timestamp(T0 + dt.timedelta(minutes=m)) for m in (1, 2)]
    minute = direct_candles(bars[60:120], 60).iloc[0]
    for column in services.CANDLE_COLUMNS[1:]:
        assert provisional[column].iloc[0] == pytest.approx(minute[column], rel=1e-12), column


def test_live_bars_without_a_shared_bucket_or_outside_the_range() -> None:
    bars = one_second_bars(T0, 120)
    lake = direct_candles(bars[:60], 60)
    final, provisional = services.with_live_bars(lake, live_frame(bars[60:]), start_of(bars[59]), 60)
    pd.testing.assert_frame_equal(final, lake)
    assert len(provisional) == 1 and provisional["open"].iloc[0] == float(bars[60]["open"])
    span = (T0, T0 + dt.timedelta(seconds=75))  # a range that ends before most live bars
    _, clipped = services.with_live_bars(lake, live_frame(bars[60:]), start_of(bars[59]), 60, span)
    assert clipped["trade_count"].iloc[0] == sum(int(b["trade_count"]) for b in bars[60:75])
    final, provisional = services.with_live_bars(lake, live_frame([]), start_of(bars[59]), 60)
    assert final.equals(lake) and provisional.empty and list(provisional.columns) == services.CANDLE_COLUMNS


def test_live_age_and_newest_live_start() -> None:
    bars = one_second_bars(T0, 3)
    live = live_frame(bars)
    now = T0 + dt.timedelta(seconds=5)
    assert services.live_age_s(live, now) == pytest.approx(5 - 2.9)  # the newest trade at 12:00:02.900
    assert services.live_age_s(live, T0) == 0.0  # a venue clock ahead of ours
    assert services.newest_live_start(live) == T0 + dt.timedelta(seconds=2)
    assert services.live_age_s(live_frame([]), now) is None and services.newest_live_start(live_frame([])) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0.0 s"), (-2, "0.0 s"), (2.14, "2.1 s"), (9.96, "10 s"), (45.4, "45 s"), (59.6, "1 min 0 s"),
        (12 * 60 + 5, "12 min 5 s"), (3 * 3600 + 4 * 60 + 59, "3 h 4 min"), (3 * 86400 + 4 * 3600 + 7, "3 d 4 h"),
        (float("nan"), "n/a"),
    ],
)  # fmt: skip
def test_format_age(seconds: float, text: str) -> None:
    assert format_age(seconds) == text


DAY = 86400.0
F = services.Freshness


@pytest.mark.parametrize(
    ("bar_age", "live_age", "written_lag", "verdict"),
    [
        (20, 0.3, 20, F.LIVE),  # the lake is current and live bars flow
        (20, None, 20, F.FRESH),  # no live-bars job
        (20, 600, 20, F.FRESH),  # the live bars stopped long ago
        (300, None, 20, F.STALLED),  # written on time, then nothing: a stall
        (300, 1.0, None, F.STALLED),  # trades flow, the lake does not follow
        (2 * DAY, 1.0, 400 * DAY, F.STALLED),  # even an old lake: live trades mean the job is expected to write
        (2 * DAY, None, 400 * DAY, F.REPLAY),  # old bars written long after their time: a tape
        (2 * DAY, None, 20, F.STALLED),  # old, but it was live once: stalled for two days
        (2 * DAY, None, None, F.REPLAY),  # no progress records: a day-old lake is a tape
        (3600, None, None, F.STALLED),  # no progress records, an hour old: a stall
    ],
)  # fmt: skip
def test_freshness_verdict(bar_age: float, live_age: float | None, written_lag: float | None, verdict: F) -> None:
    assert services.freshness_verdict(bar_age, 45.0, live_age, written_lag) is verdict


def test_overlapping_keeps_the_buckets_that_reach_past_the_start() -> None:
    times = pd.date_range(T0, periods=5, freq="60s")
    candles = pd.DataFrame({"time": times, "close": range(5)})
    kept = services.overlapping(candles, T0 + dt.timedelta(seconds=90), 60)
    assert list(kept["close"]) == [1, 2, 3, 4]  # the bucket at +60 s runs to +120 s, past +90 s
    assert services.overlapping(candles.iloc[:0], T0, 60).empty
