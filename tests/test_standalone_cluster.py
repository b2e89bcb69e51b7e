"""The job is not tied to local mode: a Spark standalone master and worker, started from the
pyspark distribution's own jars, run it via `spark-submit --master spark://127.0.0.1:<port>`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import lake
from core.settings import REPO_ROOT
from ingest.tape import read_tape
from tests.support.data import SAMPLE
from tests.support.job import job_args, job_failure, replay
from tests.support.kafka_helpers import fresh_topics
from tests.support.ports import free_port
from tests.support.reference import reference_bars

pytestmark = pytest.mark.integration


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _distribution(work: Path) -> Path:
    """A Spark home for the worker: the pip package's jars and bin, plus a RELEASE file as in
    a binary distribution."""
    home = work / "spark-home"
    home.mkdir()
    for name in ("jars", "bin", "python"):
        (home / name).symlink_to(_spark_home() / name)
    (home / "RELEASE").write_text("pyspark pip distribution\n")
    return home


def _daemon(main_class: str, *args: str, home: Path, log: Path) -> subprocess.Popen[bytes]:
    java = Path(os.environ.get("JAVA_HOME", "/usr")) / "bin" / "java"
    return subprocess.Popen(
        [str(java), "-Xmx512m", "-cp", f"{home}/jars/*", main_class, *args],
        # Without SPARK_SCALA_VERSION the launcher looks for a source build's launcher/target.
        env={**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_SCALA_VERSION": "2.13"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if b"ALIVE" in response.read() or response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("standalone")
    port, ui, worker_ui = free_port(), free_port(), free_port()
    home = _distribution(work)
    master = _daemon(
        "org.apache.spark.deploy.master.Master",
        "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui),
        home=home,
        log=work / "master.log",
    )  # fmt: skip
    worker = None
    try:
        _wait_http(f"http://127.0.0.1:{ui}/json/")
        url = f"spark://127.0.0.1:{port}"
        worker = _daemon(
            "org.apache.spark.deploy.worker.Worker",
            "--host", "127.0.0.1", "--webui-port", str(worker_ui), "--cores", "2", "--memory", "2g",
            "--work-dir", str(work / "worker"), url,
            home=home,
            log=work / "worker.log",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while b'"aliveworkers" : 1' not in urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/").read():
            assert time.monotonic() < deadline, (work / "worker.log").read_text()[-2000:]
            time.sleep(0.5)
        yield url
    finally:
        for proc in (worker, master):
            if proc is not None:
                proc.terminate()
                proc.wait(20)


def test_the_job_runs_on_a_standalone_cluster(standalone: str, kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    replay(SAMPLE, kafka, settings.kafka.topic)
    job = subprocess.run(
        [
            str(Path(sys.executable).parent / "spark-submit"),
            "--master", standalone,
            "--executor-memory", "1g",
            str(REPO_ROOT / "jobs" / "stream_ohlc.py"),
            *job_args(kafka, settings, tmp_path / "lake", tmp_path / "checkpoints"),
        ],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert job.returncode == 0, job_failure(job)
    assert f"starting master={standalone} " in job.stdout + job.stderr
    expected = reference_bars(read_tape(SAMPLE))
    result = lake.connect(tmp_path / "lake").sql("SELECT * FROM ohlc ORDER BY exchange, symbol, window_start")
    actual = pd.DataFrame(result.fetchall(), columns=[d[0] for d in result.description])
    assert len(actual) == len(expected) and actual["trade_count"].sum() == 15_863
    assert list(actual["close"]) == list(expected.sort_values(["exchange", "symbol", "window_start"])["close"])
