"""The health page's Kafka lag reads the broker's real end offsets (and None without a broker)."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer

from dashboard import kafka_lag
from tests.support.kafka_helpers import fresh_topics


@pytest.mark.integration
def test_end_offsets_come_from_the_broker(kafka: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    settings = fresh_topics(kafka, tmp_path, partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka)
    for i in range(5):
        producer.send(settings.kafka.topic, key=b"k", value=str(i).encode())
    producer.flush()
    producer.close()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka)
    offsets = kafka_lag.broker_end_offsets.__wrapped__((settings.kafka.topic,))  # type: ignore[attr-defined]
    assert offsets is not None
    assert sorted(offsets[settings.kafka.topic]) == ["0", "1"]
    assert sum(offsets[settings.kafka.topic].values()) == 5


def test_no_broker_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.ports import free_port

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    assert kafka_lag.broker_end_offsets.__wrapped__(("t",)) is None  # type: ignore[attr-defined]
