"""Reading back what the ingestor published, from the real broker."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from core.settings import Settings, load
from infra.kafka_local import LocalKafka


@dataclass(frozen=True)
class Consumed:
    key: str | None
    value: dict[str, Any]
    partition: int
    offset: int
    timestamp_ms: int


def fresh_topics(bootstrap: str, tmp_dir: Any, partitions: int = 4, **overrides: Any) -> Settings:
    """Settings naming four new topics (trades, dead letters, feed events, live bars) on the test broker."""
    tag = uuid.uuid4().hex[:8]
    settings = load(
        kafka_bootstrap_servers=bootstrap,
        kafka_topic=f"trades.{tag}",
        kafka_dlq_topic=f"trades.{tag}.dlq",
        kafka_feed_events_topic=f"feed_events.{tag}",
        **{"kafka_live_bars_topic": f"bars.live.{tag}", **overrides},
    )
    host, port = bootstrap.split(":")
    broker = LocalKafka(tmp_dir, host, int(port))
    broker.ensure_topics([settings.kafka.topic], partitions=partitions)
    broker.ensure_topics([settings.kafka.dlq_topic, settings.kafka.feed_events_topic], partitions=1)
    broker.ensure_topics([settings.kafka.live_bars_topic], partitions=partitions)
    return settings


def consume(bootstrap: str, topic: str, *, idle_s: float = 1.5, timeout_s: float = 60) -> list[Consumed]:
    """Every record on `topic`, from the start, once no more arrive for `idle_s`."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=200)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        out: list[Consumed] = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    key = r.key.decode() if r.key is not None else None
                    out.append(Consumed(key, json.loads(r.value), r.partition, r.offset, r.timestamp))
                    last_new = time.monotonic()
            caught_up = all(consumer.position(tp) >= end[tp] for tp in partitions)
            if caught_up and time.monotonic() - last_new > idle_s:
                break
        return out
    finally:
        consumer.close()
