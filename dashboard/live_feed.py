"""The dashboard process's tail of the live-bars topic (`core.live_tail`), one per process."""

from __future__ import annotations

import streamlit as st

from core.live_tail import LiveFeed
from core.settings import Settings


@st.cache_resource(show_spinner=False)
def _feed(bootstrap: str, topic: str) -> LiveFeed:
    return LiveFeed(bootstrap, topic).start()


def current() -> LiveFeed:
    """The process's feed of the configured live topic (pages call this; tests replace it)."""
    settings = Settings()
    return _feed(settings.kafka.bootstrap_servers, settings.kafka.live_bars_topic)
