"""Pipeline health: throughput, batch time, watermark delay, state, late rows, rejects, freshness, lag."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import charts, kafka_lag, repositories, services
from dashboard.controls import lake_path, run_every, stale_after_s

HISTORY = dt.timedelta(hours=1)

st.header("Pipeline health")
LAKE = lake_path()


@st.fragment(run_every=run_every())
def live_health() -> None:
    now = dt.datetime.now(dt.UTC)
    progress = repositories.progress(LAKE, now - dt.timedelta(days=3650))
    if progress.empty:
        st.info("No progress records yet: the stream job writes one per micro-batch to lake/_progress.")
    else:
        newest = progress["timestamp"].max()
        recent = services.throughput(progress[progress["timestamp"] >= newest - HISTORY])
        st.caption(f"The job's micro-batches in the hour up to {newest:%Y-%m-%d %H:%M:%S} UTC.")
        st.plotly_chart(
            charts.health_figure(recent, ["input_rows_per_s", "processed_rows_per_s"], "rows/s"),
            width="stretch",
        )
        a, b = st.columns(2)
        a.plotly_chart(charts.health_figure(recent, ["batch_duration_ms"], "batch ms"), width="stretch")
        b.plotly_chart(
            charts.health_figure(recent.dropna(subset=["watermark"]), ["watermark_delay_s"], "watermark delay s"),
            width="stretch",
        )
        st.plotly_chart(charts.health_figure(recent, ["state_rows"], "state rows"), width="stretch")

    late = repositories.late_rows(LAKE)
    rejects = repositories.rejects_by_reason(LAKE)
    c1, c2, c3 = st.columns(3)
    c1.metric("Late trades (revised into their bars)", f"{int(late['late_rows'].sum()) if not late.empty else 0:,}")
    c2.metric("Rejected records", f"{int(rejects['rejects'].sum()) if not rejects.empty else 0:,}")
    lag = _lag()
    c3.metric("Kafka consumer lag", "unavailable" if lag is None else f"{int(lag['lag'].sum()):,}")

    st.subheader("Freshness per symbol")
    fresh = services.freshness(repositories.markets(LAKE), now)
    if fresh.empty:
        st.info("No bars yet.")
    else:
        limit = stale_after_s()
        stale = fresh[fresh["age_s"] > limit]
        if not stale.empty:
            st.warning(f"{len(stale)} symbol(s) have no bar in the last {limit:.0f} s: {', '.join(stale['symbol'])}")
        st.dataframe(fresh[["exchange", "symbol", "newest_end", "age_s"]], width="stretch", hide_index=True)

    st.subheader("Rejects by reason")
    if rejects.empty:
        st.caption("No rejects.")
    else:
        st.dataframe(rejects, width="stretch", hide_index=True)
        reason = st.selectbox("Sample of", list(rejects["reason"]), key="health_reject_reason")
        st.dataframe(repositories.rejects_sample(LAKE, reason), width="stretch", hide_index=True)

    events = repositories.feed_events(LAKE)
    st.subheader("Feed events (gaps, disconnects, backfills)")
    if events.empty:
        st.caption("None recorded.")
    else:
        st.dataframe(events, width="stretch", hide_index=True)
    if lag is not None and not lag.empty:
        st.subheader("Kafka lag per partition")
        st.dataframe(lag, width="stretch", hide_index=True)


def _lag() -> pd.DataFrame | None:
    job = repositories.job_offsets(LAKE)
    if not job:
        return None
    broker = kafka_lag.broker_end_offsets(tuple(sorted(job)))
    return None if broker is None else services.consumer_lag(job, broker)


live_health()
