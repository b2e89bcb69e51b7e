"""Compare: several symbols normalized to 100 (or as returns), and their return correlations."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, repositories, services
from dashboard.controls import lake_path, run_every, stop_until_bars

st.header("Compare")
LAKE = lake_path()
markets = repositories.markets(LAKE)
if markets.empty:
    stop_until_bars(lambda: not repositories.markets(LAKE).empty)
labels = [f"{e}:{s}" for e, s in zip(markets["exchange"], markets["symbol"], strict=True)]
if len(labels) < 2:
    st.info(f"Only {labels[0]} is in the lake: comparing needs two symbols or more.")
    st.stop()

chosen = st.multiselect("Symbols", labels, default=labels[: min(4, len(labels))], key="compare_symbols")
left, middle, right = st.columns(3)
timeframe = left.selectbox("Timeframe", list(services.TIMEFRAMES_S), index=2, key="compare_timeframe")
range_choice = middle.radio("Range", [r for r in services.RANGES if r != "custom"], key="compare_range")
mode = right.radio("Show", ["normalized to 100", "cumulative return %"], key="compare_mode")


@st.fragment(run_every=run_every())
def live_compare() -> None:
    if len(chosen) < 2:
        st.info("Pick two symbols or more.")
        return
    fresh = repositories.markets(LAKE)
    newest = fresh["newest_start"].max().to_pydatetime()
    start, end = services.time_range(range_choice, newest)
    step = services.TIMEFRAMES_S[timeframe]
    try:
        services.check_candle_count(start, end, step)
    except services.BadRange as exc:
        st.warning(str(exc))
        return
    pairs = [label.split(":", 1) for label in chosen]
    wide = services.closes_wide({f"{e}:{s}": repositories.candles(LAKE, e, s, step, start, end) for e, s in pairs})
    if wide.empty:
        st.info("No bars for these symbols in this range.")
        return
    norm = services.normalized(wide)
    shown, title = (norm, "price, first = 100") if mode.startswith("normalized") else (norm - 100, "return %")
    st.plotly_chart(charts.lines_figure(shown, title), width="stretch")
    minute = services.closes_wide({f"{e}:{s}": repositories.candles(LAKE, e, s, 60, start, end) for e, s in pairs})
    corr = services.returns_correlation(minute)
    st.subheader("Correlation of 1-minute log returns")
    if corr.dropna(how="all").empty:
        st.info("Too few 1-minute returns in this range for a correlation: pick a longer range.")
    else:
        st.plotly_chart(charts.correlation_figure(corr), width="stretch")


live_compare()
