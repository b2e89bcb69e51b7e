"""A lake in the format before Delta Lake is refused, naming the way out, by every entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import lake
from core.settings import REPO_ROOT, load
from lake.delta import OldLakeFormat


def _old_lake(root: Path) -> Path:
    log = root / "lake" / "ohlc" / "_spark_metadata"
    log.mkdir(parents=True)
    (log / "0").write_text('v1\n{"path":"file:///x.parquet","action":"add"}\n')
    return root / "lake"


def test_the_reader_refuses_an_old_lake_and_says_how_to_rebuild(tmp_path: Path) -> None:
    old = _old_lake(tmp_path)
    with pytest.raises(OldLakeFormat, match="format before Delta Lake") as err:
        lake.connect(old)
    assert "python -m ingest replay" in str(err.value) and "data/lake" in str(err.value)


def test_the_cli_and_maintain_refuse_it_with_exit_2(tmp_path: Path) -> None:
    old = _old_lake(tmp_path)
    for command in (["info"], ["maintain"]):
        done = subprocess.run(
            [sys.executable, "-m", "lake", "--lake", str(old), *command], cwd=REPO_ROOT, capture_output=True, text=True
        )
        assert done.returncode == 2 and "format before Delta Lake" in done.stderr, (command, done.stderr)


def test_the_job_refuses_to_write_into_it(tmp_path: Path) -> None:
    from jobs.stream_ohlc import lake_sink

    old = _old_lake(tmp_path)
    with pytest.raises(SystemExit, match="format before Delta Lake"):
        lake_sink(load(lake_path=str(old), checkpoint_path=str(tmp_path / "checkpoints")))
