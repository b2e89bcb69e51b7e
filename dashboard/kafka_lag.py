"""The broker's end offsets for the job's topics, read with a short timeout (or None)."""

from __future__ import annotations

import logging

import streamlit as st

from lake.settings import Settings

log = logging.getLogger(__name__)
TIMEOUT_MS = 2000


@st.cache_data(ttl=5.0, show_spinner=False)
def broker_end_offsets(topics: tuple[str, ...]) -> dict[str, dict[str, int]] | None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            bootstrap_servers=Settings().kafka.bootstrap_servers,
            request_timeout_ms=TIMEOUT_MS,
            bootstrap_timeout_ms=TIMEOUT_MS,  # kafka-python 3: how long to try reaching the broker
            connections_max_idle_ms=10_000,
        )
    except KafkaError as exc:
        log.info("no broker for the lag: %s", exc)
        return None
    try:
        out: dict[str, dict[str, int]] = {}
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic) or set()
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            out[topic] = {str(tp.partition): int(offset) for tp, offset in ends.items()}
        return out
    except KafkaError as exc:
        log.info("could not read end offsets of %s: %s", topics, exc)
        return None
    finally:
        consumer.close()
