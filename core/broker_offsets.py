"""Kafka offsets for consumer lag: the broker's end offsets, and the ones the job's newest batch reached."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)
TIMEOUT_MS = 2000


class BrokerOffsetsUnavailable(RuntimeError):
    """Why the end offsets could not be read, in one line."""


def end_offsets(bootstrap: str, topics: tuple[str, ...], timeout_ms: int = TIMEOUT_MS) -> dict[str, dict[str, int]]:
    """{topic: {partition: end offset}}; BrokerOffsetsUnavailable naming the cause otherwise."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,  # kafka-python 3: how long to try reaching the broker
            connections_max_idle_ms=10_000,
        )
    except KafkaError as exc:
        raise BrokerOffsetsUnavailable(f"no broker answers at {bootstrap} ({type(exc).__name__})") from exc
    try:
        out: dict[str, dict[str, int]] = {}
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise BrokerOffsetsUnavailable(f"topic {topic} does not exist on {bootstrap}")
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            out[topic] = {str(tp.partition): int(offset) for tp, offset in ends.items()}
        return out
    except KafkaError as exc:
        raise BrokerOffsetsUnavailable(f"could not read the end offsets of {', '.join(topics)}: {exc}") from exc
    finally:
        consumer.close()


def progress_offsets(sources_json: str) -> dict[str, dict[str, int]]:
    """Spark's per-source `end_offset` (JSON text, Kafka sources only) -> {topic: {partition: offset}}."""
    out: dict[str, dict[str, int]] = {}
    for source in json.loads(sources_json or "[]"):
        end = source.get("end_offset")
        parsed = json.loads(end) if isinstance(end, str) else end
        if isinstance(parsed, dict):
            for topic, partitions in parsed.items():
                if isinstance(partitions, dict):
                    out.setdefault(topic, {}).update({str(p): int(o) for p, o in partitions.items()})
    return out


def consumer_lag(job: dict[str, dict[str, int]], broker: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """Per topic partition, in order: the broker's end offset, the job's, and the lag between (None
    where the job has not read the partition yet)."""
    rows = []
    for topic, parts in sorted(broker.items()):
        for part, end in sorted(parts.items(), key=lambda kv: int(kv[0])):
            done = job.get(topic, {}).get(part)
            rows.append({"topic": topic, "partition": int(part), "job_offset": done, "broker_offset": end,
                         "lag": None if done is None else end - done})  # fmt: skip
    return rows
