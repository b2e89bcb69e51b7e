"""Market: candles at any timeframe with volume and VWAP, volatility, and the latest price.

The lake's final candles are extended by provisional ones from the live bars on `crypto.bars.live`
(core/live_tail.py), which cover the ~20 s the stream job has not written yet.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from core.ages import format_age
from dashboard import charts, live_feed, repositories, services
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
    newest_start = row["newest_start"].iloc[0].to_pydatetime()
    newest_end = row["newest_end"].iloc[0].to_pydatetime()
    feed = live_feed.current()
    live = feed.snapshot(exchange, symbol)
    live_start = services.newest_live_start(live)
    step = services.TIMEFRAMES_S[timeframe]
    try:
        anchor = max(newest_start, live_start) if live_start is not None else newest_start
        start, end = services.time_range(range_choice, anchor, custom)
        services.check_candle_count(start, end, step)
    except services.BadRange as exc:
        st.warning(str(exc))
        return
    # Bars after the newest final one come from the live feed only: a lake snapshot newer than
    # `markets` must not count them twice. The lake is asked for a range anchored at its own
    # newest bar, which moves once a trigger, not once a second: every refresh and every tab
    # until the next batch then shares one cached query. The display range trims it.
    lake_start, lake_stop = services.time_range(range_choice, newest_start, custom)
    lake_end = min(lake_stop, newest_start + dt.timedelta(seconds=1))
    candles = services.overlapping(
        repositories.candles(LAKE, exchange, symbol, step, lake_start, lake_end), start, step
    )
    final, provisional = services.with_live_bars(candles, live, newest_start, step, (start, end))
    now = dt.datetime.now(dt.UTC)
    metrics = services.price_metrics(services.joined(final, provisional), newest_end, now)
    if metrics is None:
        st.info(f"No {symbol} bars between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC.")
        return
    limit = stale_after_s()
    live_age = services.live_age_s(live, now)
    written_lag = None
    if metrics.bar_age_s > limit:  # only a stale lake needs to know when its newest bar was written
        written = repositories.written_at(LAKE, newest_end)
        written_lag = None if written is None else (written - newest_end).total_seconds()
    verdict = services.freshness_verdict(metrics.bar_age_s, limit, live_age, written_lag)
    flowing = services.live_flowing(live_age, limit)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Last price", f"{metrics.last:,.8g}")
    c2.metric("Change over range", f"{metrics.change:+,.8g}", f"{metrics.change_pct:+.2f}%")
    c3.metric("Newest bar age", format_age(metrics.bar_age_s))
    if flowing and live_age is not None:
        c4.metric("Live bar age", format_age(live_age))
    if verdict is services.Freshness.STALLED:
        st.warning(
            f"The newest {symbol} bar ended {format_age(metrics.bar_age_s)} ago (expected under "
            f"{limit:.0f} s): the pipeline may have stalled"
            + (", though live bars still arrive: check the stream job." if flowing else ".")
        )
    elif verdict is services.Freshness.REPLAY:
        st.info(f"This lake holds a replayed tape; its newest bar is {newest_end:%Y-%m-%d %H:%M:%S} UTC.")
    st.plotly_chart(charts.candles_figure(final, f"{exchange} {symbol}", provisional), width="stretch")
    vol = repositories.volatility(LAKE, exchange, symbol, step, lake_start, lake_end)
    windows = repositories.volatility_windows(LAKE)
    if vol.empty:
        st.caption("No volatility rows for this range yet.")
    else:
        shown = services.annualize(vol, windows) if annualized else vol
        st.plotly_chart(charts.volatility_figure(shown, windows, annualized), width="stretch")
    live_note = f" and {len(provisional):,} provisional from live bars" if len(provisional) else ""
    st.caption(
        f"{len(final):,} {timeframe} candles{live_note} of {exchange} {symbol}, {start:%Y-%m-%d %H:%M:%S} to "
        f"{end:%Y-%m-%d %H:%M:%S} UTC; newest bar ends {newest_end:%Y-%m-%d %H:%M:%S} UTC."
    )
    counts = feed.counts
    losses = ((counts.undecodable, "undecodable"), (counts.dropped, "skipped to catch up"))
    st.caption(" · ".join([feed.status, *(f"{n:,} {what}" for n, what in losses if n)]))


live_market()
