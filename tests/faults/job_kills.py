"""The stream job killed (`kill -9`, its whole process group) at random points, many times, then
run to the end: its lake must equal an uninterrupted run's (tests/test_exactly_once.py does two)."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

from tests.faults import FaultRow
from tests.support.job import job_failure, run_job, small_batch_args, snapshot, start_job


def campaign(kafka: str, settings: Any, work: Path, kills: int = 20, seed: int = 11) -> FaultRow:
    """`settings` names a topic that already holds the tape (see bench/faults.py)."""
    rng = random.Random(seed)
    clean = run_job(*small_batch_args(kafka, settings, work / "clean"))
    assert clean.returncode == 0, job_failure(clean)
    expected = snapshot(work / "clean" / "lake")
    done_early = 0
    started = time.monotonic()
    for _ in range(kills):
        proc = start_job(*small_batch_args(kafka, settings, work / "crashed"))
        time.sleep(rng.uniform(3.0, 12.0))  # start-up, or somewhere inside a batch
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            done_early += 1
        proc.wait(30)
    final = run_job(*small_batch_args(kafka, settings, work / "crashed"))
    survived = final.returncode == 0
    got = snapshot(work / "crashed" / "lake") if survived else {t: [] for t in expected}
    lost = sum(len(set(map(repr, expected[t])) - set(map(repr, got[t]))) for t in expected)
    extra = sum(len(got[t]) - len(expected[t]) for t in expected if len(got[t]) > len(expected[t]))
    return FaultRow(
        f"stream job kill -9 x{kills - done_early}",
        sum(len(v) for v in expected.values()),
        survived,
        lost,
        extra,
        detail=f"lake rows (ohlc, volatility, rejects) vs an uninterrupted run; {time.monotonic() - started:.0f} s",
    )
