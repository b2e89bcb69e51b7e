"""SQL: read-only queries over the lake's views (lake.sandbox rules), with CSV download."""

from __future__ import annotations

import streamlit as st

from dashboard.client import user_query
from dashboard.controls import lake_path
from lake.sandbox import QueryRefused

MAX_ROWS = 10_000
TIMEOUT_S = 20.0
EXAMPLES = {
    "Newest bar of each symbol": "SELECT exchange, symbol, window_start, close FROM latest_bars ORDER BY symbol",
    "5-minute candles of the last hour": (
        "SELECT * FROM candles((SELECT min(symbol) FROM latest_bars), INTERVAL 5 MINUTE,\n"
        "    (SELECT max(window_start) FROM latest_bars) - INTERVAL 1 HOUR, now())"
    ),
    "Trades and volume per symbol and day": (
        "SELECT symbol, date, sum(trade_count) AS trades, sum(volume) AS volume\nFROM ohlc GROUP BY ALL ORDER BY ALL"
    ),
    "Rejects by reason": "SELECT reason, count(*) AS n FROM rejects GROUP BY reason ORDER BY n DESC",
    "Slowest micro-batches": (
        "SELECT query, batch_id, batch_duration_ms, input_rows FROM progress ORDER BY batch_duration_ms DESC LIMIT 20"
    ),
}

st.header("SQL")
st.caption(
    "Views: ohlc, volatility, rejects, feed_events, latest_bars, late, progress; macros candles(...) and "
    f"realized_volatility(...). One SELECT at a time, at most {MAX_ROWS:,} rows, {TIMEOUT_S:.0f} s."
)
example = st.selectbox("Examples", list(EXAMPLES), key="sql_example")
sql = st.text_area("Query", EXAMPLES[example], height=140, key=f"sql_text_{example}")
if st.button("Run", type="primary", key="sql_run"):
    try:
        result = user_query(lake_path(), sql, MAX_ROWS, TIMEOUT_S)
    except QueryRefused as exc:
        st.error(f"Not run: {exc}")
    else:
        table = result.table.to_pandas()
        st.dataframe(table, width="stretch")
        note = f" (cut at {MAX_ROWS:,})" if result.truncated else ""
        st.caption(f"{len(table):,} rows{note}")
        st.download_button("Download CSV", table.to_csv(index=False), "query.csv", "text/csv", key="sql_csv")
