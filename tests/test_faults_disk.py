"""A full disk under the lake, and a deleted or damaged checkpoint: clear errors, then nothing lost
or repeated. The disk is a small tmpfs the test mounts itself (the tests run as root).

The suite runs the full disk with the real job, and the checkpoint refusals on their own (without
Spark: the checks and messages the job uses). The real job's runs against a deleted checkpoint,
a damaged Spark checkpoint and a damaged sink state are `campaign` tests, part of `make bench`
(about 2.5 minutes together)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.tape import read_tape, write_tape
from tests.support.data import SAMPLE
from tests.support.job import job_failure, replay, run_job, small_batch_args, snapshot
from tests.support.kafka_helpers import fresh_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    assert done.returncode == 0, f"could not mount a tmpfs for the full-disk test: {done.stderr.strip()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def replayed(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    """The sample tape on a topic, and the lake an uninterrupted job makes of it."""
    work = tmp_path_factory.mktemp("disk_faults")
    settings = fresh_topics(kafka, work)
    write_tape(work / "tape.ndjson", list(read_tape(SAMPLE)))
    replay(work / "tape.ndjson", kafka, settings.kafka.topic)
    job = run_job(*small_batch_args(kafka, settings, work / "clean"))
    assert job.returncode == 0, job_failure(job)
    return settings, snapshot(work / "clean" / "lake")


def _fill(mount: Path, leave: int) -> Path:
    """A file taking all but `leave` bytes of the mount's free space."""
    stats = os.statvfs(mount)
    filler = mount / "filler"
    filler.write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


def test_a_full_disk_stops_the_job_clearly_and_a_restart_loses_nothing(
    kafka: str, tmp_path: Path, small_disk: Path, replayed: tuple[Any, dict[str, Any]]
) -> None:
    settings, expected = replayed
    work = tmp_path / "run"
    args = small_batch_args(kafka, settings, work)
    lake_arg = args.index("--lake") + 1
    args[lake_arg] = str(small_disk / "lake")  # the lake on the small disk, the checkpoints not
    filler = _fill(small_disk, leave=96 * 1024)
    job = run_job(*args)
    out = job.stdout + job.stderr
    assert job.returncode != 0, "the job should have stopped on the full disk"
    assert "no space left on the lake's disk" in out and "start the job again" in out, job_failure(job)
    filler.unlink()
    job = run_job(*args)
    assert job.returncode == 0, job_failure(job)
    assert snapshot(small_disk / "lake") == expected


@pytest.mark.campaign
def test_a_deleted_checkpoint_is_refused_with_the_choices(
    kafka: str, tmp_path: Path, replayed: tuple[Any, dict[str, Any]]
) -> None:
    settings, expected = replayed
    work = tmp_path / "run"
    job = run_job(*small_batch_args(kafka, settings, work))
    assert job.returncode == 0, job_failure(job)
    shutil.rmtree(work / "checkpoints")
    job = run_job(*small_batch_args(kafka, settings, work))
    out = job.stdout + job.stderr
    assert job.returncode != 0
    assert f"its checkpoint {work / 'checkpoints' / 'lake'} is missing" in out
    assert "--starting-offsets latest" in out and "make clean" in out
    assert snapshot(work / "lake") == expected  # nothing written twice


@pytest.mark.campaign
def test_a_damaged_spark_checkpoint_is_refused_with_the_choices(
    kafka: str, tmp_path: Path, replayed: tuple[Any, dict[str, Any]]
) -> None:
    settings, _expected = replayed
    work = tmp_path / "run"
    job = run_job(*small_batch_args(kafka, settings, work))
    assert job.returncode == 0, job_failure(job)
    offsets = work / "checkpoints" / "lake" / "offsets"
    newest = max((p for p in offsets.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    newest.write_text("garbage")  # the file Spark reads first on a restart
    (offsets / f".{newest.name}.crc").unlink(missing_ok=True)
    job = run_job(*small_batch_args(kafka, settings, work))
    out = job.stdout + job.stderr
    assert job.returncode != 0
    assert f"offsets/{newest.name}" in out and f"The checkpoint {work / 'checkpoints' / 'lake'} is damaged" in out
    assert "--starting-offsets latest" in out


@pytest.mark.campaign
def test_a_damaged_sink_state_is_refused_naming_the_file(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    tape = list(read_tape(SAMPLE))
    write_tape(tmp_path / "first.ndjson", tape[:3000])
    replay(tmp_path / "first.ndjson", kafka, settings.kafka.topic)
    work = tmp_path / "run"
    job = run_job(*small_batch_args(kafka, settings, work))
    assert job.returncode == 0, job_failure(job)
    states = sorted((work / "checkpoints" / "lake" / "lake_sink" / "state").glob("*.json"), key=lambda p: int(p.stem))
    assert states
    states[-1].write_text("{not json")
    write_tape(tmp_path / "more.ndjson", tape[3000:3500])
    replay(tmp_path / "more.ndjson", kafka, settings.kafka.topic)
    job = run_job(*small_batch_args(kafka, settings, work))
    out = job.stdout + job.stderr
    assert job.returncode != 0
    assert f"{states[-1]}, the sink's state after batch" in out and "is unreadable" in out, job_failure(job)
