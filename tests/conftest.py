"""Shared fixtures: one SparkSession and one real Kafka broker per test session."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lake.settings import REPO_ROOT

# Before any Spark JVM starts: the project's spark-defaults.conf, loopback, this venv's python.
os.environ["SPARK_CONF_DIR"] = str(REPO_ROOT)
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
# No test logs into the project's own MLflow store (models/mlflow/): tests that track name theirs.
os.environ["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9/no-tracking-in-tests"

DATA = Path(__file__).parent / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    from pyspark.sql import SparkSession

    session = SparkSession.builder.appName("tests").getOrCreate()
    yield session
    session.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real broker on free loopback ports, with the project's default topics as `make kafka-up`
    creates them; killed with the test process if it dies."""
    from infra.kafka_local import LocalKafka, ensure_project_topics
    from lake.settings import load

    home = tmp_path_factory.mktemp("kafka")
    port = free_port()
    broker = LocalKafka(home, "127.0.0.1", port, controller_port=free_port(), jars_dir=REPO_ROOT / ".kafka" / "jars")
    broker.start(die_with_parent=True)
    ensure_project_topics(broker, load(kafka_bootstrap_servers=broker.bootstrap))
    try:
        yield broker.bootstrap
    finally:
        broker.stop(timeout=20)


def run_job(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real `spark-submit jobs/stream_ohlc.py`, as a user runs it."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    return subprocess.run(
        [str(spark_submit), str(REPO_ROOT / "jobs" / "stream_ohlc.py"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def job_args(
    kafka: str, settings: Any, lake: Path, checkpoints: Path, trigger: str = "available-now",
    max_offsets: int | None = None,
) -> list[str]:  # fmt: skip
    """The job's arguments for a test: its broker and topics, a lake, checkpoints and a trigger."""
    args = [
        "--bootstrap-servers", kafka,
        "--topic", settings.kafka.topic,
        "--feed-events-topic", settings.kafka.feed_events_topic,
        "--lake", str(lake),
        "--checkpoints", str(checkpoints),
        "--trigger", trigger,
    ]  # fmt: skip
    return args if max_offsets is None else [*args, "--max-offsets-per-trigger", str(max_offsets)]


def start_job(*args: str, capture: bool = False) -> subprocess.Popen[str]:
    """The real job in the background, in its own process group (stop it with `stop_job`)."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [str(spark_submit), str(REPO_ROOT / "jobs" / "stream_ohlc.py"), *args],
        cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT if capture else subprocess.DEVNULL, text=True,
        start_new_session=True,
    )  # fmt: skip


def stop_job(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(60)


def job_failure(job: subprocess.CompletedProcess[str]) -> str:
    """The lines of a failed job's output that say why (spark-submit merges stderr into stdout)."""
    text = job.stdout + job.stderr
    keep = [
        line
        for line in text.splitlines()
        if any(k in line for k in ("Error", "Exception", "Caused by", "Traceback", 'File "', "  "))
        and not line.lstrip().startswith("at ")
    ]
    return "\n".join(keep[:80])


@pytest.fixture
def exchange() -> Iterator[list[Any]]:
    """Fake exchanges a test starts (`tests.fake_exchange`), stopped after it."""
    started: list[Any] = []
    yield started
    for fake in started:
        fake.stop()
