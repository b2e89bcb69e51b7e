"""The crypto-lakehouse dashboard: live candles, comparison, pipeline health and SQL.

    streamlit run dashboard/app.py        (or: make dashboard)

It reads the lake only through `lake.connect()` (dashboard/client.py). Layers, as in
STYLE.md: client -> repositories (parameterized SQL, cached) -> services (pandas) -> pages.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.controls import sidebar

PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="crypto-lakehouse", layout="wide")
navigation = st.navigation(
    [
        st.Page(PAGES / "market.py", title="Market", default=True),
        st.Page(PAGES / "compare.py", title="Compare"),
        st.Page(PAGES / "health.py", title="Pipeline health"),
        st.Page(PAGES / "sql.py", title="SQL"),
        st.Page(PAGES / "predictions.py", title="Predictions"),
    ]
)
sidebar()
navigation.run()
