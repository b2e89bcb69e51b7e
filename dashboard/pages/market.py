"""Market: candles at any timeframe with volume and VWAP, volatility, and the latest price."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from dashboard import charts, repositories, services
from dashboard.controls import lake_path, run_every, stale_after_s, stop_until_bars

st.header("Market")
LAKE = lake_path()
markets = repositories.markets(LAKE)
if markets.empty:
    stop_until_bars(lambda: not repositories.markets(LAKE).empty)

left, middle, right, far = st.columns([1, 1, 1, 2])
exchange = left.selectbox("Exchange", sorted(markets["exchange"].unique()), key="market_exchange")
symbols = sorted(markets.loc[markets["exchange"] == exchange, "symbol"])
symbol = middle.selectbox("Symbol", symbols, key="market_symbol")
timeframe = right.selectbox("Timeframe", list(services.TIMEFRAMES_S), index=2, key="market_timeframe")
range_choice = far.radio("Range", list(services.RANGES), horizontal=True, key="market_range")
custom = None
if range_choice == "custom":
    a, b = st.columns(2)
    newest_day = markets["newest_end"].max().date()
    start_day = a.date_input("From (UTC)", newest_day - dt.timedelta(days=1), key="market_from")
    end_day = b.date_input("To (UTC, exclusive)", newest_day + dt.timedelta(days=1), key="market_to")
    custom = (
        dt.datetime.combine(start_day, dt.time(), dt.UTC),
        dt.datetime.combine(end_day, dt.time(), dt.UTC),
    )
annualized = st.toggle("Annualized volatility", key="market_annualized")


@st.fragment(run_every=run_every())
def live_market() -> None:
    fresh = repositories.markets(LAKE)
    row = fresh[(fresh["exchange"] == exchange) & (fresh["symbol"] == symbol)]
    if row.empty:
        st.warning(f"{exchange} {symbol} has no bars in the lake any more.")
        return
    newest_end = row["newest_end"].iloc[0].to_pydatetime()
    step = services.TIMEFRAMES_S[timeframe]
    try:
        start, end = services.time_range(range_choice, row["newest_start"].iloc[0].to_pydatetime(), custom)
        services.check_candle_count(start, end, step)
    except services.BadRange as exc:
        st.warning(str(exc))
        return
    candles = repositories.candles(LAKE, exchange, symbol, step, start, end)
    now = dt.datetime.now(dt.UTC)
    metrics = services.price_metrics(candles, newest_end, now)
    if metrics is None:
        st.info(f"No {symbol} bars between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC.")
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Last price", f"{metrics.last:,.8g}")
    c2.metric("Change over range", f"{metrics.change:+,.8g}", f"{metrics.change_pct:+.2f}%")
    c3.metric("Newest bar age", f"{metrics.bar_age_s:,.0f} s")
    limit = stale_after_s()
    if services.is_stale(metrics.bar_age_s, limit):
        st.warning(
            f"The newest {symbol} bar ended {metrics.bar_age_s:,.0f} s ago (expected under {limit:.0f} s): "
            "the pipeline may have stalled, or this is a replayed tape."
        )
    st.plotly_chart(charts.candles_figure(candles, f"{exchange} {symbol}"), width="stretch")
    vol = repositories.volatility(LAKE, exchange, symbol, step, start, end)
    windows = repositories.volatility_windows()
    if vol.empty:
        st.caption("No volatility rows for this range yet.")
    else:
        shown = services.annualize(vol, windows) if annualized else vol
        st.plotly_chart(charts.volatility_figure(shown, windows, annualized), width="stretch")
    st.caption(
        f"{len(candles):,} {timeframe} candles of {exchange} {symbol}, {start:%Y-%m-%d %H:%M:%S} to "
        f"{end:%Y-%m-%d %H:%M:%S} UTC; newest bar ends {newest_end:%Y-%m-%d %H:%M:%S} UTC."
    )


live_market()
