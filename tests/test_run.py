"""`make run`'s stages (infra/run.py): one status line each, the full output in the log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from infra.run import StageFailed, stage


def test_a_stage_prints_one_line_and_logs_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.log"
    code = "import sys; print('chatter'); print('noise', file=sys.stderr); print('replayed 3 trades')"
    assert stage(1, 2, "replay", [sys.executable, "-c", code], log) == "replayed 3 trades"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "[1/2] replay ... done in" in out and out.strip().endswith("replayed 3 trades")
    assert "chatter" not in out and "noise" not in out
    text = log.read_text()
    assert "chatter" in text and "noise" in text and "replayed 3 trades" in text


def test_a_failed_stage_names_the_log_and_shows_its_end(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    code = "import sys; print('the real cause', file=sys.stderr); sys.exit(3)"
    with pytest.raises(StageFailed) as info:
        stage(2, 2, "stream job", [sys.executable, "-c", code], log)
    assert str(log) in str(info.value) and "the real cause" in str(info.value)
