"""Checking, before anything is sent or read, that the Kafka topics a command uses exist.

The local broker (like most production ones) does not create topics on first use: a producer
sending to a missing topic waits for its metadata until `max_block_ms` (60 s) and then fails
with a timeout that does not name the cause. `check_topics` asks the broker for its topic list
once, and names what is missing, how to create it, or creates it (`--create-topics`) with the
configured partitions and retention.
"""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from core.settings import Settings

log = logging.getLogger(__name__)


class TopicsMissing(RuntimeError):
    """Topics the command needs are not on the broker."""


class BrokerUnreachable(RuntimeError):
    """No broker answered at the bootstrap address."""


def _admin(settings: Settings, timeout_ms: int) -> KafkaAdminClient:
    servers = settings.kafka.bootstrap_servers
    try:
        return KafkaAdminClient(
            bootstrap_servers=servers.split(","),
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=min(settings.kafka.bootstrap_timeout_ms, timeout_ms),
            client_id="crypto-lakehouse-topics",
        )
    except KafkaError as exc:
        raise BrokerUnreachable(
            f"no Kafka broker answered at {servers} ({type(exc).__name__}); start one with `make kafka-up` "
            "or set KAFKA_BOOTSTRAP_SERVERS"
        ) from None


def retention_for(settings: Settings, topic: str) -> int:
    return (
        settings.kafka.live_bars_retention_ms
        if topic == settings.kafka.live_bars_topic
        else settings.kafka.retention_ms
    )


def check_topics(settings: Settings, topics: list[str], *, create: bool = False, timeout_ms: int = 5000) -> list[str]:
    """Raise TopicsMissing naming every missing topic (or create them with `create`); returns those created."""
    wanted = list(dict.fromkeys(t for t in topics if t))
    admin = _admin(settings, timeout_ms)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if not missing:
            return []
        if not create:
            names = ", ".join(missing)
            verb = "does" if len(missing) == 1 else "do"
            raise TopicsMissing(
                f"topic {names} {verb} not exist on {settings.kafka.bootstrap_servers}; create it with "
                f"--create-topics ({settings.kafka.partitions} partitions, retention "
                f"{settings.kafka.retention_ms // 3_600_000} h: KAFKA_PARTITIONS, KAFKA_RETENTION_MS), "
                "`make kafka-up` (the project's default topics) or your cluster's tools"
            )
        for name in missing:
            topic = NewTopic(
                name, settings.kafka.partitions, 1, topic_configs={"retention.ms": str(retention_for(settings, name))}
            )
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                continue
            log.warning(
                "created topic %s (%d partitions, retention %d ms)",
                name, settings.kafka.partitions, retention_for(settings, name),
            )  # fmt: skip
        return missing
    finally:
        admin.close()
