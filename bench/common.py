"""What the benchmarks share: a broker of their own and fresh topics."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from core.settings import REPO_ROOT, load
from infra.kafka_local import LocalKafka, ensure_project_topics


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def broker(bootstrap: str | None, work: Path) -> Iterator[str]:
    """The given broker, or a new one on free loopback ports with the project's topics (as
    `make kafka-up` creates them), stopped at the end."""
    if bootstrap:
        yield bootstrap
        return
    kafka = LocalKafka(
        work / "kafka", "127.0.0.1", free_port(), controller_port=free_port(), jars_dir=REPO_ROOT / ".kafka" / "jars"
    )
    kafka.start(die_with_parent=True)
    ensure_project_topics(kafka, load(kafka_bootstrap_servers=kafka.bootstrap))
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop(timeout=20)


def new_topic(bootstrap: str, work: Path, partitions: int = 4) -> str:
    topic = f"bench.{uuid.uuid4().hex[:8]}"
    host, port = bootstrap.rsplit(":", 1)
    LocalKafka(work, host, int(port)).ensure_topics([topic], partitions=partitions)
    return topic
