"""Settings shared by every page: the lake, auto-refresh, and how old a bar may get."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.settings import Settings, interval_ms

# Live bars change every second; the lake only every trigger, and its queries are cached for
# that long (repositories.TTL_S), so a one-second refresh costs little.
DEFAULT_REFRESH_S = 1
MIN_REFRESH_S = 1
BATCH_S = 2.0  # a micro-batch of the bars query on two cores (bench/RESULTS.md)
MARGIN_S = 30.0


def lake_path() -> str:
    return Settings().lake.path


def stale_after_s(settings: Settings | None = None) -> float:
    """How old the newest bar may be before the pipeline counts as stalled.

    A bar appears about watermark + two batches after its second ends (bench/RESULTS.md); a
    batch lasts its trigger, and at least ~2 s on two cores with the default trigger of 0 s.
    The margin covers a slow batch.
    """
    settings = settings or Settings()
    trigger = settings.stream.trigger
    trigger_s = 5.0 if trigger == "available-now" else max(interval_ms(trigger) / 1000, BATCH_S)
    return interval_ms(settings.stream.watermark) / 1000 + 2 * trigger_s + MARGIN_S


def sidebar() -> None:
    st.sidebar.caption(f"lake: `{lake_path()}`")
    st.sidebar.slider("Refresh every (s)", MIN_REFRESH_S, 60, DEFAULT_REFRESH_S, key="refresh_s")
    st.sidebar.toggle("Pause auto-refresh", key="paused")


def run_every() -> float | None:
    """The fragments' refresh interval (never under a second), or None when paused."""
    if st.session_state.get("paused", False):
        return None
    return max(float(st.session_state.get("refresh_s", DEFAULT_REFRESH_S)), MIN_REFRESH_S)


NO_BARS = "The lake has no bars yet. Run `make run`, or start the ingestor and the stream job."


def stop_until_bars(has_bars: Callable[[], bool]) -> None:
    """Show the empty-lake notice and stop the page; re-run the page once bars arrive."""

    @st.fragment(run_every=run_every())
    def waiting() -> None:
        if has_bars():
            st.rerun(scope="app")
        st.info(NO_BARS)

    waiting()
    st.stop()
