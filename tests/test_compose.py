"""docker-compose.yml can't run here (no Docker engine); hold it to the project's settings."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from core.settings import REPO_ROOT, Settings


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_services(compose: dict[str, Any]) -> None:
    assert {"kafka", "ingestor", "stream-job", "live-bars", "maintain", "dashboard", "api"} <= set(compose["services"])
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")


def test_kafka_is_kraft_without_zookeeper(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in env)
    assert "9092:9092" in compose["services"]["kafka"]["ports"]
    assert str(env["KAFKA_LOG_RETENTION_MS"]) == str(Settings.default("kafka_retention_ms"))
    assert str(env["KAFKA_NUM_PARTITIONS"]) == str(Settings.default("kafka_partitions"))


def test_project_services_use_the_settings_names(compose: dict[str, Any]) -> None:
    fields = {name.upper() for name in Settings.flat_names()}
    for name in ("ingestor", "stream-job", "live-bars", "dashboard", "api"):
        env = compose["services"][name]["environment"]
        assert set(env) <= fields, f"{name} uses names the settings do not know: {set(env) - fields}"
        assert env["KAFKA_TOPIC"] == Settings.default("kafka_topic")
        host, _, port = env["KAFKA_BOOTSTRAP_SERVERS"].partition(":")
        assert host == "kafka" and port in compose["services"]["kafka"]["environment"]["KAFKA_LISTENERS"]


def test_topics_created_match_settings(compose: dict[str, Any]) -> None:
    script = " ".join(compose["services"]["kafka-init"]["command"])
    default = Settings.default
    for field in ("kafka_topic", "kafka_dlq_topic", "kafka_feed_events_topic"):
        assert default(field) in script
    assert f"--partitions {default('kafka_partitions')}" in script
    live = default("kafka_live_bars_topic")
    assert f"--topic {live} --partitions 4 --config retention.ms={default('kafka_live_bars_retention_ms')}" in script


def test_stream_job_loads_the_project_spark_defaults(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["stream-job"]["command"])
    assert "--properties-file spark-defaults.conf --load-spark-defaults jobs/stream_ohlc.py" in command
    assert "4.0.0" in compose["services"]["stream-job"]["image"]  # the pinned pyspark


def test_the_api_service_binds_all_addresses_only_with_a_key(compose: dict[str, Any]) -> None:
    env = compose["services"]["api"]["environment"]
    assert env["API_HOST"] == "0.0.0.0" and env["API_KEY"].startswith("${API_KEY:?")
    assert f"{Settings.default('api_port')}:{Settings.default('api_port')}" in compose["services"]["api"]["ports"]
