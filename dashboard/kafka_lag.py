"""The broker's end offsets for the job's topics, read with a short timeout (or None)."""

from __future__ import annotations

import logging

import streamlit as st

from core.broker_offsets import BrokerOffsetsUnavailable, end_offsets
from core.settings import Settings

log = logging.getLogger(__name__)


@st.cache_data(ttl=5.0, show_spinner=False)
def broker_end_offsets(topics: tuple[str, ...]) -> dict[str, dict[str, int]] | None:
    try:
        return end_offsets(Settings().kafka.bootstrap_servers, topics)
    except BrokerOffsetsUnavailable as exc:
        log.info("no end offsets for the lag: %s", exc)
        return None
