"""Predictions: the newest probability per symbol, and recent predictions against outcomes."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import repositories
from dashboard.controls import lake_path, run_every

st.header("Predictions")
LAKE = lake_path()


@st.fragment(run_every=run_every())
def live_predictions() -> None:
    latest = repositories.latest_predictions(LAKE)
    if latest.empty:
        st.info(
            "No predictions yet. Train a model (`python -m models train --task vol_spike --symbol …`), then "
            "`python -m models score --model models/runs/<run-id> --every 30s` writes them to lake/predictions."
        )
        return
    st.subheader("Newest probability per symbol")
    st.dataframe(latest, width="stretch", hide_index=True)
    model_id = st.selectbox("Model", list(latest["model_id"].unique()), key="predictions_model")
    recent = repositories.recent_predictions(LAKE, model_id).sort_values("time")
    known = recent.dropna(subset=["outcome"])
    fig = go.Figure(
        [
            go.Scatter(x=recent["time"], y=recent["probability"], name="probability", mode="lines"),
            go.Scatter(x=known["time"], y=known["outcome"], name="outcome (1 = yes)", mode="markers",
                       marker={"size": 3}),
        ]
    )  # fmt: skip
    fig.update_layout(height=360, margin={"t": 30, "b": 10}, yaxis_title="probability / outcome")
    st.plotly_chart(fig, width="stretch")
    if not known.empty:
        hits = ((known["probability"] >= 0.5) == (known["outcome"] == 1)).mean()
        st.caption(f"{len(known):,} predictions with a known outcome; {hits:.1%} right at a 0.5 cut.")


live_predictions()
