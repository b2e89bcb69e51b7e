"""Parameterized SQL over the lake's views, cached for a refresh interval.

Every function takes the lake path (the cache key; the connection lives in `client`) and
plain parameters, which DuckDB binds: no user text is ever pasted into SQL. Identifiers
that vary (the volatility windows) come from the lake's table record (`core.tables`), never
from input.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from core.broker_offsets import progress_offsets
from core.tables import recorded_windows, volatility_column
from dashboard.client import frame

TTL_S = 2.0


@st.cache_data(ttl=TTL_S, show_spinner=False)
def markets(lake_path: str) -> pd.DataFrame:
    """Each (exchange, symbol) with its newest bar: what the pickers offer."""
    return frame(
        lake_path,
        "SELECT exchange, symbol, window_start AS newest_start, window_end AS newest_end, "
        "CAST(close AS DOUBLE) AS close FROM latest_bars ORDER BY symbol, exchange",
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def candles(
    lake_path: str, exchange: str, symbol: str, step_s: int, start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """Candles of `step_s` seconds from the lake's `candles` macro, as floats for charting."""
    return frame(
        lake_path,
        "SELECT bucket_start AS time, CAST(open AS DOUBLE) AS open, CAST(high AS DOUBLE) AS high, "
        "CAST(low AS DOUBLE) AS low, CAST(close AS DOUBLE) AS close, CAST(volume AS DOUBLE) AS volume, "
        "CAST(buy_volume AS DOUBLE) AS buy_volume, CAST(sell_volume AS DOUBLE) AS sell_volume, "
        "vwap, trade_count FROM candles(?, to_seconds(?), ?, ?, venue := ?) ORDER BY time",
        [symbol, step_s, start, end, exchange],
    )


def volatility_windows(lake_path: str) -> tuple[int, ...]:
    """The windows the lake's volatility was written with (as the job recorded them)."""
    return recorded_windows(lake_path)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def volatility(
    lake_path: str, exchange: str, symbol: str, step_s: int, start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """The job's trailing volatility per bar, the newest value in each `step_s` bucket."""
    columns = ", ".join(
        f"arg_max({volatility_column(kind, w)}, window_start) AS {volatility_column(kind, w)}"
        for w in volatility_windows(lake_path)
        for kind in ("volatility", "realized_vol")
    )
    return frame(
        lake_path,
        f"SELECT time_bucket(to_seconds(?), window_start) AS time, {columns} FROM volatility "
        "WHERE exchange = ? AND symbol = ? AND window_start >= ? AND window_start < ? "
        "AND date BETWEEN CAST(? AS DATE) AND CAST(? AS DATE) GROUP BY 1 ORDER BY 1",
        [step_s, exchange, symbol, start, end, start, end],
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def progress(lake_path: str, since: dt.datetime) -> pd.DataFrame:
    return frame(
        lake_path,
        "SELECT query, batch_id, timestamp, input_rows, input_rows_per_s, processed_rows_per_s, "
        "batch_duration_ms, watermark, state_rows, state_memory_bytes, rows_dropped_by_watermark, "
        "duplicates_dropped FROM progress WHERE timestamp >= ? ORDER BY timestamp",
        [since],
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def written_at(lake_path: str, bar_end: dt.datetime) -> dt.datetime | None:
    """When the stream job wrote a bar ending at `bar_end`: the start of its first `ohlc` batch whose
    watermark had passed that end (a window is written once the watermark passes it); None if no
    progress record says."""
    rows = frame(
        lake_path,
        "SELECT min(timestamp) AS written FROM progress WHERE query = 'ohlc' AND watermark >= ?",
        [bar_end],
    )
    written = rows["written"].iloc[0] if not rows.empty else None
    return None if written is None or pd.isna(written) else pd.Timestamp(written).to_pydatetime()


@st.cache_data(ttl=TTL_S, show_spinner=False)
def rejects_by_reason(lake_path: str) -> pd.DataFrame:
    return frame(
        lake_path,
        "SELECT reason, count(*) AS rejects, max(kafka_timestamp) AS newest FROM rejects "
        "GROUP BY reason ORDER BY rejects DESC, reason",
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def rejects_sample(lake_path: str, reason: str, limit: int = 20) -> pd.DataFrame:
    return frame(
        lake_path,
        "SELECT kafka_timestamp, raw, kafka_topic, kafka_partition, kafka_offset FROM rejects "
        "WHERE reason = ? ORDER BY kafka_timestamp DESC LIMIT ?",
        [reason, limit],
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def late_rows(lake_path: str) -> pd.DataFrame:
    """Trades each query found late (after their bar was written): stored in lake/trades and
    revised into their bars (`late` lists them one by one)."""
    return frame(
        lake_path,
        "SELECT query, sum(rows_dropped_by_watermark) AS late_rows FROM progress "
        "WHERE rows_dropped_by_watermark > 0 GROUP BY query ORDER BY query",
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def feed_events(lake_path: str, limit: int = 50) -> pd.DataFrame:
    return frame(
        lake_path,
        "SELECT event_time, kind, exchange, symbol, from_trade_id, to_trade_id, count, detail FROM feed_events "
        "WHERE kind <> 'health' ORDER BY event_time DESC LIMIT ?",
        [limit],
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def job_offsets(lake_path: str, query: str = "ohlc") -> dict[str, dict[str, int]]:
    """The Kafka offsets the job's newest batch of `query` reached: {topic: {partition: offset}}."""
    rows = frame(
        lake_path,
        "SELECT CAST(sources AS VARCHAR) AS sources FROM progress WHERE query = ? ORDER BY batch_id DESC LIMIT 1",
        [query],
    )
    return progress_offsets(rows["sources"].iloc[0]) if not rows.empty else {}


@st.cache_data(ttl=TTL_S, show_spinner=False)
def latest_predictions(lake_path: str) -> pd.DataFrame:
    """The newest prediction per (model, exchange, symbol)."""
    return frame(
        lake_path,
        "SELECT model_id, task, exchange, symbol, time, horizon_s, probability FROM predictions "
        "QUALIFY row_number() OVER (PARTITION BY model_id, exchange, symbol ORDER BY time DESC) = 1 "
        "ORDER BY symbol, task, model_id",
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def recent_predictions(lake_path: str, model_id: str, limit: int = 3600) -> pd.DataFrame:
    return frame(
        lake_path,
        "SELECT time, probability, outcome FROM predictions WHERE model_id = ? ORDER BY time DESC LIMIT ?",
        [model_id, limit],
    )
