"""A small process supervisor: start components in order, restart the ones that die, stop them all.

Why not supervisord, circus or honcho: `make live` needs ordered start-up with a readiness
wait (the broker before its clients), exponential backoff that resets after a healthy run,
process-group stops (spark-submit runs a JVM and Python workers under it), children that die
with the supervisor even on SIGKILL, and a status line from our own probes. supervisord
restarts a process that ran past `startsecs` at once and backs off linearly only while
starting; honcho restarts nothing; each would still need this ordering and status code
around it, plus a generated config and an RPC client. This module is that logic and no more.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    stop_timeout_s: float = 20.0
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Backoff:
    """Delay before restart n (1-based): initial * 2^(n-1), capped; a run of `reset_after_s` resets it."""

    initial_s: float = 1.0
    max_s: float = 60.0
    reset_after_s: float = 60.0

    def delay(self, restarts: int) -> float:
        return min(self.max_s, self.initial_s * 2 ** max(0, restarts - 1))


@dataclass
class _Running:
    component: Component
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0  # in a row, since the last healthy run
    total_restarts: int = 0
    restart_at: float | None = None
    last_exit: int | None = None


def _die_with_parent() -> None:
    """In the child: SIGTERM when the supervisor dies, however it dies (Linux)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def group_alive(pgid: int) -> bool:
    """Some process of the group still runs (zombies, waiting for a reaper, do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            return True
    return False


class Supervisor:
    """Runs components, each in its own process group, logging to `<log_dir>/<name>.log`."""

    def __init__(
        self, log_dir: Path, report: Callable[[str], None], backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.log_dir = log_dir
        self.report = report
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.running: dict[str, _Running] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, component: Component) -> None:
        entry = self.running.setdefault(component.name, _Running(component))
        self._spawn(entry)

    def _spawn(self, entry: _Running) -> None:
        component = entry.component
        with (self.log_dir / f"{component.name}.log").open("ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(component.argv)}\n".encode())
            out.flush()
            entry.process = subprocess.Popen(
                component.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **component.env}, start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        entry.started_at = self.clock()
        entry.restart_at = None
        log.info("started %s pid=%d", component.name, entry.process.pid)

    def pid(self, name: str) -> int | None:
        entry = self.running.get(name)
        if entry is None or entry.process is None or entry.process.poll() is not None:
            return None
        return entry.process.pid

    def alive(self, name: str) -> bool:
        return self.pid(name) is not None

    def poll(self) -> None:
        """Notice exits, schedule restarts with backoff, and carry out the ones that are due."""
        now = self.clock()
        for entry in self.running.values():
            process = entry.process
            if process is not None and process.poll() is not None:
                ran = now - entry.started_at
                entry.restarts = 1 if ran >= self.backoff.reset_after_s else entry.restarts + 1
                entry.last_exit, entry.process = process.returncode, None
                delay = self.backoff.delay(entry.restarts)
                entry.restart_at = now + delay
                self._kill_group(process.pid)  # whatever it left behind in its group
                self.report(
                    f"{entry.component.name} exited with code {process.returncode} after {ran:.1f} s; "
                    f"restarting in {delay:.0f} s (log {self.log_dir / entry.component.name}.log)"
                )
            elif entry.process is None and entry.restart_at is not None and now >= entry.restart_at:
                entry.total_restarts += 1
                self._spawn(entry)
                self.report(f"{entry.component.name} restarted (restart {entry.total_restarts})")

    def state(self, name: str) -> str:
        entry = self.running[name]
        if entry.process is not None:
            up = self.clock() - entry.started_at
            restarts = f", {entry.total_restarts} restarts" if entry.total_restarts else ""
            return f"up {_short(up)}{restarts}"
        if entry.restart_at is not None:
            return f"down (exit {entry.last_exit}), retry in {max(0.0, entry.restart_at - self.clock()):.0f} s"
        return "stopped"

    def stop(self, name: str) -> None:
        """SIGTERM to the component's process group; SIGKILL to what is left after its timeout."""
        entry = self.running.get(name)
        if entry is None:
            return
        entry.restart_at = None
        process, entry.process = entry.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(entry.component.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.report(f"{name} ignored SIGTERM for {entry.component.stop_timeout_s:.0f} s; killing it")
        self._kill_group(process.pid)
        process.wait()

    def _kill_group(self, pgid: int, grace_s: float = 5.0) -> None:
        """Members of the group still alive after the leader (Spark's JVM, Python workers)."""
        deadline = time.monotonic() + grace_s
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if group_alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)

    def stop_all(self, order: list[str]) -> None:
        for name in [*order, *(n for n in reversed(list(self.running)) if n not in order)]:
            if name in self.running:
                self.stop(name)


def _short(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
