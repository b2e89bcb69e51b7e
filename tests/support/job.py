"""The real stream job as the tests run it (`spark-submit jobs/stream_ohlc.py`), its inputs and what it leaves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lake
from core.settings import REPO_ROOT

SMALL_BATCH = 3000  # offsets per micro-batch: the sample tape (16k records) takes six batches
SNAPSHOT_TABLES = ("ohlc", "volatility", "rejects", "trades")


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
        "--live-bars-topic", settings.kafka.live_bars_topic,
        "--lake", str(lake),
        "--checkpoints", str(checkpoints),
        "--trigger", trigger,
    ]  # fmt: skip
    return args if max_offsets is None else [*args, "--max-offsets-per-trigger", str(max_offsets)]


def small_batch_args(kafka: str, settings: Any, work: Path) -> list[str]:
    """`job_args` over `work`/lake and `work`/checkpoints, SMALL_BATCH offsets per micro-batch."""
    return job_args(kafka, settings, work / "lake", work / "checkpoints", max_offsets=SMALL_BATCH)


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


def replay(tape: Path, kafka: str, topic: str) -> None:
    """`python -m ingest replay` of `tape` to `topic`, as a user runs it; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "ingest", "replay", str(tape), "--topic", topic, "--bootstrap-servers", kafka],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def snapshot(lake_dir: Path, tables: tuple[str, ...] = SNAPSHOT_TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of `tables` through `lake.connect`, in a fixed order: two lakes compare equal.
    `revised_at` (the wall-clock time a revision was computed) is left out; `revision` is kept."""
    con = lake.connect(lake_dir)
    out = {}
    for table in tables:
        have = {d[0] for d in con.sql(f"SELECT * FROM {table} LIMIT 0").description}
        select = "SELECT * EXCLUDE (revised_at)" if "revised_at" in have else "SELECT *"
        out[table] = sorted(con.sql(f"{select} FROM {table}").fetchall(), key=repr)
    return out


def progress_lines(lake_dir: Path, query: str) -> int:
    """How many progress records the job wrote for `query`."""
    return sum(len(p.read_text().splitlines()) for p in (lake_dir / "_progress").glob(f"date=*/{query}.ndjson"))
