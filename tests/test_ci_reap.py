"""`.ci/reap.py` stops what the run left behind, by pid, and nothing else on the machine."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from core.settings import REPO_ROOT


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_an_orphan_in_its_own_session_is_stopped_and_a_stranger_is_not() -> None:
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)  # someone else's, same command
    try:
        script = "import subprocess; p = subprocess.Popen(['sleep', '60'], start_new_session=True); print(p.pid)"
        done = subprocess.run(
            [sys.executable, str(REPO_ROOT / ".ci" / "reap.py"), sys.executable, "-c", script],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        orphan = int(done.stdout.strip())
        assert done.returncode == 0, done.stderr
        assert f"stopping 1 process(es) the run left: {orphan}" in done.stderr
        time.sleep(0.2)
        assert not _alive(orphan)
        assert _alive(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()


def test_the_commands_status_is_the_runs() -> None:
    done = subprocess.run([sys.executable, str(REPO_ROOT / ".ci" / "reap.py"), "sh", "-c", "exit 3"], check=False)
    assert done.returncode == 3
