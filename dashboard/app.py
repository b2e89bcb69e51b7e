"""A first dashboard page: 1-second candles of one symbol, read through lake.connect().

    streamlit run dashboard/app.py        (or: make dashboard)

The full dashboard (timeframes, volatility, comparison, health, SQL) is built on this.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

import lake

st.set_page_config(page_title="crypto-lakehouse", layout="wide")
st.title("Crypto lakehouse")

con = lake.connect()
symbols = [row[0] for row in con.sql("SELECT DISTINCT symbol FROM ohlc ORDER BY 1").fetchall()]
if not symbols:
    st.info("The lake has no bars yet. Run `make run`, or start the ingestor and the stream job.")
    st.stop()

symbol = st.selectbox("Symbol", symbols)
bars = con.execute(
    "SELECT window_start, CAST(open AS DOUBLE) o, CAST(high AS DOUBLE) h, CAST(low AS DOUBLE) l,"
    " CAST(close AS DOUBLE) c FROM ohlc WHERE symbol = ? ORDER BY window_start DESC LIMIT 900",
    [symbol],
).df()
figure = go.Figure(
    go.Candlestick(x=bars["window_start"], open=bars["o"], high=bars["h"], low=bars["l"], close=bars["c"], name=symbol)
)
figure.update_layout(xaxis_rangeslider_visible=False, height=520, margin={"t": 20})
st.plotly_chart(figure, use_container_width=True)
st.caption(f"{len(bars)} most recent 1-second bars of {symbol}; times in UTC.")
