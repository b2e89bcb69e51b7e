"""The dashboard's pure pandas services."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

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


def test_price_metrics_and_staleness() -> None:
    candles = pd.DataFrame({"open": [100.0, 101.0], "close": [101.0, 110.0]})
    m = services.price_metrics(candles, T0, T0 + dt.timedelta(seconds=30))
    assert m is not None and (m.last, m.change, m.change_pct, m.bar_age_s) == (110.0, 10.0, 10.0, 30.0)
    assert services.price_metrics(candles.iloc[:0], T0, T0) is None
    assert services.is_stale(46, 45) and not services.is_stale(44, 45)


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
    job = services.end_offsets(sources)
    assert job == {"t": {"0": 10, "1": 7}}
    lag = services.consumer_lag(job, {"t": {"0": 12, "1": 7}})
    assert list(lag["lag"]) == [2, 0]


def test_freshness_sorts_by_age() -> None:
    markets = pd.DataFrame({"symbol": ["A", "B"], "newest_end": [T0, T0 - dt.timedelta(seconds=90)]})
    out = services.freshness(markets, T0 + dt.timedelta(seconds=10))
    assert list(out["symbol"]) == ["A", "B"] and list(out["age_s"]) == [10.0, 100.0]
