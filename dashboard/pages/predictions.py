"""Predictions: the models issue fills this page (latest probability per symbol, recent outcomes)."""

from __future__ import annotations

import streamlit as st

st.header("Predictions")
st.info(
    "No models yet. Once `python -m models score` writes `lake/predictions/`, this page shows the latest "
    "volatility-spike and direction probabilities per symbol, and recent predictions against outcomes."
)
