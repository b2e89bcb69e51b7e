"""A real single-node Apache Kafka broker (KRaft, no ZooKeeper) on loopback.

    python -m infra.kafka_local jars     # resolve the broker's jars from Maven Central
    python -m infra.kafka_local up       # format if needed, start, wait, create topics
    python -m infra.kafka_local down     # stop the broker this folder started
    python -m infra.kafka_local status
    python -m infra.kafka_local foreground   # exec the broker in the foreground (a supervisor's program)

Host, port, topics and partitions come from `core.settings`; broker jars,
data, log and pid file live under KAFKA_HOME (default .kafka/, git-ignored).
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from string import Template

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from core.settings import REPO_ROOT, Settings
from lake import logs

log = logging.getLogger(__name__)

CONFIG_DIR = REPO_ROOT / "infra" / "kafka"
JARS_DIR = REPO_ROOT / ".kafka" / "jars"
BROKER_JVM = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC")


class BrokerError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the parent dies (Linux)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def resolve_jars(jars_dir: Path) -> Path:
    """Copy the broker's runtime jars from Maven Central into `jars_dir`, once."""
    stamp = jars_dir / ".resolved"
    pom = CONFIG_DIR / "pom.xml"
    if stamp.exists() and stamp.stat().st_mtime >= pom.stat().st_mtime:
        return jars_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is needed to resolve the Kafka broker from Maven Central")
    if jars_dir.exists():
        shutil.rmtree(jars_dir)
    log.info("resolving Kafka broker jars from Maven Central into %s", jars_dir)
    subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={jars_dir}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    stamp.touch()
    return jars_dir


def new_cluster_id() -> str:
    """16 random bytes in URL-safe base64, as Kafka's own `random-uuid` makes them.

    Like Kafka, never start with '-': the storage tool would read the id as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafka:
    """One broker whose files all live under `home`."""

    def __init__(
        self,
        home: Path,
        host: str,
        port: int,
        controller_port: int | None = None,
        partitions: int = 4,
        retention_ms: int = 86_400_000,
        jars_dir: Path | None = None,
    ) -> None:
        self.home = home.resolve()
        self.host = host
        self.port = port
        self.controller_port = controller_port or port + 1
        self.partitions = partitions
        self.retention_ms = retention_ms
        self.jars_dir = (jars_dir or self.home / "jars").resolve()
        self.data_dir = self.home / "data"
        self.config = self.home / "server.properties"
        self.pid_file = self.home / "broker.pid"
        self.log_file = self.home / "broker.log"
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKafka:
        host, port = settings.kafka.bootstrap_host_port
        return cls(
            Path(settings.kafka.home),
            host,
            port,
            partitions=settings.kafka.partitions,
            retention_ms=settings.kafka.retention_ms,
            jars_dir=JARS_DIR,  # the broker's code is the project's, wherever its data lives
        )

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def running_pid(self) -> int | None:
        """The pid in our pid file, if that process is our broker and alive."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if b"kafka.Kafka" in cmdline and str(self.config).encode() in cmdline else None

    def _write_config(self) -> None:
        template = Template((CONFIG_DIR / "server.properties").read_text())
        self.config.write_text(
            template.substitute(
                host=self.host,
                port=self.port,
                controller_port=self.controller_port,
                data_dir=self.data_dir,
                partitions=self.partitions,
                retention_ms=self.retention_ms,
            )
        )

    def _java(self, *args: str, jvm: tuple[str, ...] = ()) -> list[str]:
        java = shutil.which("java") or "java"
        return [
            java,
            *jvm,
            f"-Dlog4j2.configurationFile={CONFIG_DIR / 'log4j2.yaml'}",
            "-cp",
            f"{self.jars_dir}/*",
            *args,
        ]

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = new_cluster_id()
        subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config)),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self, *, die_with_parent: bool = False, timeout: float = 90.0) -> None:
        """Start (if not running) and wait until the broker answers. Idempotent."""
        if self.running_pid() is not None:
            self.wait_ready(timeout)
            return
        self.home.mkdir(parents=True, exist_ok=True)
        resolve_jars(self.jars_dir)
        self._write_config()
        self._format_storage()
        with self.log_file.open("ab") as out:
            self._process = subprocess.Popen(
                self._java("kafka.Kafka", str(self.config), jvm=BROKER_JVM),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent else None,
            )
        self.pid_file.write_text(str(self._process.pid))
        log.info("started Kafka broker pid=%d on %s (log %s)", self._process.pid, self.bootstrap, self.log_file)
        self.wait_ready(timeout)

    def exec_foreground(self) -> None:
        """Become the broker (exec), in the foreground: for a process supervisor (`make live`)."""
        if (pid := self.running_pid()) is not None:
            raise BrokerError(f"a broker of {self.home} is already running (pid {pid}); `make kafka-down` first")
        self.home.mkdir(parents=True, exist_ok=True)
        resolve_jars(self.jars_dir)
        self._write_config()
        self._format_storage()
        self.pid_file.write_text(str(os.getpid()))  # exec keeps the pid
        argv = self._java("kafka.Kafka", str(self.config), jvm=BROKER_JVM)
        os.execv(argv[0], argv)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(f"broker exited with {self._process.returncode}:\n{self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    pass
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
                admin.list_topics()
                admin.close()
                return
            except (OSError, KafkaError):
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"broker not ready on {self.bootstrap} after {timeout}s:\n{self._log_tail()}"
                    ) from None
                time.sleep(0.5)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def ensure_topics(self, names: list[str], partitions: int | None = None, retention_ms: int | None = None) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=30_000)
        try:
            existing = set(admin.list_topics())
            for name in names:
                if name in existing:
                    continue
                retention = str(retention_ms or self.retention_ms)
                topic = NewTopic(name, partitions or self.partitions, 1, topic_configs={"retention.ms": retention})
                try:
                    admin.create_topics([topic])
                    log.info("created topic %s partitions=%d", name, partitions or self.partitions)
                except TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop our broker: SIGTERM, then SIGKILL after `timeout`. False if none ran."""
        pid = self._process.pid if self._process and self._process.poll() is None else self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and not self._reaped(pid):
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists() and not self._reaped(pid):
            log.warning("broker pid=%d ignored SIGTERM for %.0fs; killing", pid, timeout)
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _reaped(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is not None
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return True
        return state == "Z"


def ensure_project_topics(broker: LocalKafka, settings: Settings) -> None:
    """The topics every part of the project uses; live bars keep their own, short retention."""
    broker.ensure_topics([settings.kafka.topic, settings.kafka.dlq_topic, settings.kafka.feed_events_topic])
    broker.ensure_topics([settings.kafka.live_bars_topic], retention_ms=settings.kafka.live_bars_retention_ms)


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    parser = argparse.ArgumentParser(prog="python -m infra.kafka_local")
    parser.add_argument("command", choices=["jars", "up", "down", "status", "foreground"])
    args = parser.parse_args(argv)
    settings = Settings()
    broker = LocalKafka.from_settings(settings)
    if args.command == "jars":
        resolve_jars(broker.jars_dir)
    elif args.command == "up":
        broker.start()
        ensure_project_topics(broker, settings)
        print(f"Kafka is up on {broker.bootstrap} (pid {broker.running_pid()}, log {broker.log_file})")
    elif args.command == "foreground":
        broker.exec_foreground()
    elif args.command == "down":
        print("Kafka stopped" if broker.stop() else "no broker of ours was running")
    else:
        pid = broker.running_pid()
        print(f"running, pid {pid}, on {broker.bootstrap}" if pid else "not running")
        return 0 if pid else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
