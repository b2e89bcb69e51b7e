"""Shared fixtures: one SparkSession and one real Kafka broker per test session. Shared code is in `tests/support/`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from core.settings import REPO_ROOT
from tests.support.ports import free_port

# Before any Spark JVM starts: the project's spark-defaults.conf, loopback, this venv's python.
os.environ["SPARK_CONF_DIR"] = str(REPO_ROOT)
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
# The suite's Spark JVMs live for seconds, two at a time on two cores: C1 alone compiles what
# they run with ~40 % less CPU than the default tiered C2, the serial collector spends no
# threads beside the job's, and no test reads the Spark UI. Together ~20 % less CPU per job run
# than C1 alone (bench/RESULTS.md, "the suite's time"); results depend on none of them. The
# product's job keeps the JVM's defaults and its UI, which pay off in a long-running job.
os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dspark.ui.enabled=false")
# No test logs into the project's own MLflow store (models/mlflow/): tests that track name theirs.
os.environ["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9/no-tracking-in-tests"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of integration tests first. `make test` runs a file per worker on two workers
    (pytest-xdist, `--dist loadfile --no-loadscope-reorder`): the long files start early and the
    short unit files fill in at the end, so both workers finish together."""
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)


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
    from core.settings import load
    from infra.kafka_local import LocalKafka, ensure_project_topics

    home = tmp_path_factory.mktemp("kafka")
    port = free_port()
    broker = LocalKafka(home, "127.0.0.1", port, controller_port=free_port(), jars_dir=REPO_ROOT / ".kafka" / "jars")
    broker.start(die_with_parent=True)
    ensure_project_topics(broker, load(kafka_bootstrap_servers=broker.bootstrap))
    try:
        yield broker.bootstrap
    finally:
        broker.stop(timeout=20)


@pytest.fixture
def exchange() -> Iterator[list[Any]]:
    """Fake exchanges a test starts (`tests.support.fake_exchange`), stopped after it."""
    started: list[Any] = []
    yield started
    for fake in started:
        fake.stop()
