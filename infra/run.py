"""`make run`: the demo on a fresh machine, one status line per stage, the result, the lake's place.

    python -m infra.run

Stages: the local broker (started if not running, with the project's topics), the sample tape
replayed into Kafka, the stream job run until it has read everything (`--trigger
available-now`), and a query of the lake. Each stage's full output (Ivy's resolution, Spark's
and py4j's logs, the replay's progress) goes to one log file, whose path is printed first; a
stage that fails prints its last lines and exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

from core.settings import REPO_ROOT, Settings

SAMPLE_TAPE = REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"
SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")
DEMO_QUERY = (
    "SELECT exchange, symbol, date, count(*) AS bars, sum(trade_count) AS trades, "
    "min(window_start) AS first_bar, max(window_start) AS last_bar FROM ohlc GROUP BY ALL ORDER BY ALL"
)
SPARK_ENV = {
    "SPARK_CONF_DIR": str(REPO_ROOT), "SPARK_LOCAL_IP": "127.0.0.1",
    "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
}  # fmt: skip


class StageFailed(RuntimeError):
    pass


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stage(
    number: int, total: int, title: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
    *, show_last: bool = True,
) -> str:  # fmt: skip
    """Run one stage with its output appended to `log`; its stdout's last line (shown after the
    status with `show_last`: a command's own summary), or StageFailed."""
    print(f"[{number}/{total}] {title} ...", end="", flush=True)
    started = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n===== {title}: {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(
            argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=out, text=True, env={**os.environ, **(env or {})},
            check=False,
        )  # fmt: skip
        out.write(done.stdout)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        print(f" failed after {seconds:.0f} s (exit {done.returncode})")
        raise StageFailed(f"{title} failed; the end of {log}:\n{_tail(log)}")
    last = next((line for line in reversed(done.stdout.splitlines()) if line.strip()), "")
    print(f" done in {seconds:.0f} s" + (f": {last}" if last and show_last else ""))
    return last


def main() -> int:
    settings = Settings()
    logs = REPO_ROOT / ".logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"run-{dt.datetime.now():%Y%m%d-%H%M%S}.log"
    print(f"make run: the sample tape through Kafka and the stream job into the lake (full log: {log})")
    py = sys.executable
    try:
        stage(1, 4, "Kafka broker", [py, "-m", "infra.kafka_local", "up"], log)
        stage(2, 4, "replay the sample tape", [py, "-m", "ingest", "replay", str(SAMPLE_TAPE), "--speed", "0"], log)
        stage(
            3, 4, "stream job (until it has read everything)",
            [SPARK_SUBMIT, str(REPO_ROOT / "jobs" / "stream_ohlc.py"), "--trigger", "available-now"], log,
            env=SPARK_ENV, show_last=False,  # spark-submit's stdout is the driver's log
        )  # fmt: skip
        print("[4/4] query the lake:", flush=True)
        done = subprocess.run([py, "-m", "lake", "sql", DEMO_QUERY], cwd=REPO_ROOT, check=False)
        if done.returncode != 0:
            raise StageFailed(f"the query failed (exit {done.returncode})")
    except StageFailed as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    lake = Path(settings.lake.path).resolve()
    print(f'The lake is in {lake}; query it with: {py} -m lake sql "SELECT ... FROM ohlc"')
    print("The broker keeps running; stop it with: make kafka-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
