"""The local broker: idempotent start, and `down` stops only what it started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from core.settings import REPO_ROOT
from infra.kafka_local import LocalKafka, new_cluster_id
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def test_up_is_idempotent_and_down_stops_only_its_broker(kafka: str, tmp_path: Path) -> None:
    mine = LocalKafka(
        tmp_path / "k",
        "127.0.0.1",
        free_port(),
        controller_port=free_port(),
        jars_dir=REPO_ROOT / ".kafka" / "jars",
        partitions=3,
        retention_ms=86_400_000,
    )
    try:
        mine.start(die_with_parent=True)
        pid = mine.running_pid()
        mine.start()  # already running: same process
        assert mine.running_pid() == pid
        mine.ensure_topics(["crypto.trades"])
        mine.ensure_topics(["crypto.trades"])  # exists: no error
        admin = KafkaAdminClient(bootstrap_servers=mine.bootstrap)
        described = admin.describe_topics(["crypto.trades"])[0]
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "crypto.trades")])
        admin.close()
        assert len(described["partitions"]) == 3
        assert configs["topic"]["crypto.trades"]["retention.ms"]["value"] == "86400000"
    except BaseException:
        mine.stop(timeout=20)
        raise
    assert mine.stop(timeout=20) is True
    assert mine.running_pid() is None
    assert mine.stop() is False  # nothing of ours left to stop
    # The session broker, another process entirely, is untouched.
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    admin.list_topics()
    admin.close()


def test_cli_status_reports_not_running(tmp_path: Path) -> None:
    env = {"KAFKA_HOME": str(tmp_path), "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "infra.kafka_local", "status"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1 and "not running" in out.stdout


def test_cluster_ids_never_look_like_options() -> None:
    ids = [new_cluster_id() for _ in range(3000)]  # P(no leading '-' in 3000 naive draws) ~ 1e-21
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
