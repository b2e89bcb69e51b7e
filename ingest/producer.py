"""Publishing to Kafka with every delivery checked."""

from __future__ import annotations

import logging
import threading
from typing import Any

from kafka import KafkaProducer

from lake.settings import Settings

log = logging.getLogger(__name__)


class DeliveryFailed(RuntimeError):
    """Records the broker did not acknowledge after the client's retries."""


class Publisher:
    """A kafka-python producer that counts acks and surfaces failures.

    Idempotent, acks=all: the broker keeps each instrument's order and writes
    a retried batch once. `flush()` raises if any record was not acknowledged.
    """

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        config: dict[str, Any] = {
            "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
            "acks": "all",
            "enable_idempotence": True,
            "compression_type": "zstd",
            "linger_ms": 20,
            "batch_size": 256 * 1024,
            "max_in_flight_requests_per_connection": 5,
            "delivery_timeout_ms": 120_000,
            "client_id": "crypto-lakehouse-ingest",
            "bootstrap_timeout_ms": settings.kafka_bootstrap_timeout_ms,
        }
        config.update(overrides)
        self._producer = KafkaProducer(**config)
        self._lock = threading.Lock()
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self._first_error: BaseException | None = None

    def warm_up(self, topic: str) -> None:
        """Fetch the topic's metadata now, so the first send does not block on it (paced replays)."""
        self._producer.partitions_for(topic)

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        future = self._producer.send(topic, key=key, value=value)
        self.sent += 1
        future.add_callback(self._on_ack)
        future.add_errback(self._on_error, topic, key)

    def _on_ack(self, _metadata: Any) -> None:
        with self._lock:
            self.delivered += 1

    def _on_error(self, exc: BaseException, topic: str, key: bytes | None) -> None:
        with self._lock:
            self.failed += 1
            self._first_error = self._first_error or exc
        log.error("delivery failed topic=%s key=%r: %s", topic, key, exc)

    @property
    def pending(self) -> int:
        return self.sent - self.delivered - self.failed

    def flush(self, timeout: float | None = 60.0) -> None:
        self._producer.flush(timeout=timeout)
        if self.failed:
            raise DeliveryFailed(
                f"{self.failed} of {self.sent} records were not acknowledged; first error: {self._first_error}"
            )
        if self.pending:
            raise DeliveryFailed(f"{self.pending} of {self.sent} records still unacknowledged after flush")

    def close(self, timeout: float = 30.0) -> None:
        try:
            self.flush(timeout)
        finally:
            self._producer.close(timeout=timeout)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
