"""Every delivery is checked: a record the broker will not take fails the flush, with context."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from core.settings import load
from ingest.producer import DeliveryFailed, Publisher
from tests.support.kafka_helpers import consume

pytestmark = pytest.mark.integration


def test_acknowledged_records_are_counted(kafka: str, tmp_path: Path) -> None:
    topic = f"ok.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    with Publisher(load(kafka_bootstrap_servers=kafka)) as publisher:
        for n in range(3000):
            publisher.send(topic, b"k%d" % (n % 7), b'{"n":%d}' % n)
    assert (publisher.sent, publisher.delivered, publisher.failed, publisher.pending) == (3000, 3000, 0, 0)
    assert sorted(r.value["n"] for r in consume(kafka, topic)) == list(range(3000))


def test_a_refused_delivery_fails_the_flush(kafka: str, caplog: pytest.LogCaptureFixture) -> None:
    """A batch bigger than the topic's max.message.bytes: the broker refuses it, for good."""
    topic = f"refused.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "1000"})])
    admin.close()
    publisher = Publisher(load(kafka_bootstrap_servers=kafka), delivery_timeout_ms=5000, request_timeout_ms=3000)
    publisher.send(topic, b"binance:BTCUSDT", os.urandom(5000))  # incompressible: zstd cannot shrink it
    with caplog.at_level(logging.ERROR), pytest.raises(DeliveryFailed, match="1 of 1 records were not acknowledged"):
        publisher.close(timeout=20)
    assert publisher.failed == 1
    assert f"delivery failed topic={topic} key=b'binance:BTCUSDT'" in caplog.text
