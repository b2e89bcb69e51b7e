#!/usr/bin/env python3
"""Run a command, then stop every process it left behind: its descendants, found by pid.

This process is made a child subreaper (Linux `prctl(PR_SET_CHILD_SUBREAPER)`), so a process
the command started and orphaned (a broker, a Spark JVM in its own session) becomes its child
instead of init's. After the command ends, whatever still descends from this process gets
SIGTERM, then SIGKILL after a grace period. Nothing else on the machine is touched: no name
patterns, only the run's own process tree. Exit status: the command's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 10.0


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    found, todo = [], children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children(child)
    return found


def stop_left_behind() -> None:
    left = descendants(os.getpid())
    if not left:
        return
    print(f"reap: stopping {len(left)} process(es) the run left: {' '.join(map(str, left))}", file=sys.stderr)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        while True:  # collect the ones that ended (they are our children now)
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not descendants(os.getpid()):
            return
        time.sleep(0.2)
    for pid in descendants(os.getpid()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def main() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("reap: cannot become a child subreaper; orphans will not be found", file=sys.stderr)
    proc = subprocess.Popen(sys.argv[1:])
    try:
        status = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        status = proc.wait()
    finally:
        stop_left_behind()
    return status


if __name__ == "__main__":
    sys.exit(main())
