"""Plotly figures from the services' DataFrames (no data access here)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

BUY, SELL = "#26a69a", "#ef5350"
PROVISIONAL, HOLLOW = "#9e9e9e", "rgba(0, 0, 0, 0)"


def candles_figure(candles: pd.DataFrame, title: str, provisional: pd.DataFrame | None = None) -> go.Figure:
    """Candlesticks with a VWAP line, over taker buy and sell volume bars.

    `provisional` candles (from live bars the lake does not hold yet) come after the final ones,
    hollow and grey, with fainter volume bars: they still change until their bars are final.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.03)
    fig.add_trace(
        go.Candlestick(
            x=candles["time"], open=candles["open"], high=candles["high"], low=candles["low"],
            close=candles["close"], name=title, increasing_line_color=BUY, decreasing_line_color=SELL,
        ),
        row=1, col=1,
    )  # fmt: skip
    live = provisional if provisional is not None and not provisional.empty else None
    if live is not None:
        fig.add_trace(
            go.Candlestick(
                x=live["time"], open=live["open"], high=live["high"], low=live["low"], close=live["close"],
                name="provisional", legendgroup="provisional", hovertext=["provisional"] * len(live), opacity=0.9,
                increasing={"line": {"color": PROVISIONAL, "width": 1}, "fillcolor": HOLLOW},
                decreasing={"line": {"color": PROVISIONAL, "width": 1}, "fillcolor": HOLLOW},
            ),
            row=1, col=1,
        )  # fmt: skip
    vwap = pd.concat([f[["time", "vwap"]] for f in (candles, live) if f is not None and not f.empty] or [candles])
    fig.add_trace(
        go.Scatter(x=vwap["time"], y=vwap["vwap"], name="VWAP", mode="lines", line={"width": 1.2}), row=1, col=1
    )
    fig.add_trace(go.Bar(x=candles["time"], y=candles["buy_volume"], name="taker buys", marker_color=BUY), row=2, col=1)
    fig.add_trace(
        go.Bar(x=candles["time"], y=candles["sell_volume"], name="taker sells", marker_color=SELL), row=2, col=1
    )
    if live is not None:
        for column, color, label in (("buy_volume", BUY, "buys"), ("sell_volume", SELL, "sells")):
            fig.add_trace(
                go.Bar(x=live["time"], y=live[column], name=f"provisional {label}", marker_color=color, opacity=0.35,
                       legendgroup="provisional", showlegend=False, hovertext=[f"provisional {label}"] * len(live)),
                row=2, col=1,
            )  # fmt: skip
    fig.update_layout(
        barmode="stack", xaxis_rangeslider_visible=False, height=560, margin={"t": 30, "b": 10},
        legend={"orientation": "h", "y": 1.04}, uirevision=title,
    )  # fmt: skip
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="volume", row=2, col=1)
    return fig


def volatility_figure(vol: pd.DataFrame, windows: tuple[int, ...], annualized: bool) -> go.Figure:
    fig = go.Figure()
    for w in windows:
        fig.add_trace(go.Scatter(x=vol["time"], y=vol[f"volatility_{w}s"], name=f"rolling std {w}s", mode="lines"))
        fig.add_trace(
            go.Scatter(x=vol["time"], y=vol[f"realized_vol_{w}s"], name=f"realized {w}s", mode="lines",
                       line={"dash": "dot"})
        )  # fmt: skip
    fig.update_layout(
        height=260, margin={"t": 30, "b": 10}, legend={"orientation": "h", "y": 1.1},
        yaxis_title="annualized" if annualized else "per window",
    )  # fmt: skip
    return fig


def lines_figure(wide: pd.DataFrame, y_title: str) -> go.Figure:
    fig = go.Figure([go.Scatter(x=wide.index, y=wide[c], name=str(c), mode="lines") for c in wide.columns])
    fig.update_layout(height=420, margin={"t": 30, "b": 10}, yaxis_title=y_title, legend={"orientation": "h"})
    return fig


def correlation_figure(corr: pd.DataFrame) -> go.Figure:
    fig = go.Figure(
        go.Heatmap(z=corr.values, x=list(corr.columns), y=list(corr.index), zmin=-1, zmax=1, colorscale="RdBu",
                   text=corr.round(2).values, texttemplate="%{text}")
    )  # fmt: skip
    fig.update_layout(height=380, margin={"t": 30, "b": 10})
    return fig


def health_figure(frame: pd.DataFrame, columns: list[str], y_title: str) -> go.Figure:
    """One line per query for each column, over batch time."""
    fig = go.Figure()
    for query in sorted(frame["query"].unique()):
        rows = frame[frame["query"] == query]
        for column in columns:
            fig.add_trace(
                go.Scatter(x=rows["timestamp"], y=rows[column], name=f"{query} {column}", mode="lines+markers")
            )
    fig.update_layout(height=300, margin={"t": 30, "b": 10}, yaxis_title=y_title, legend={"orientation": "h"})
    return fig
