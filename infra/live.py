"""`make live`: the whole live system in one command, supervised.

    python -m infra.live [--source demo | --source binance:BTCUSDT,ETHUSDT [--source coinbase:BTC-USD]
                          | --source synth:RATE[:SYMBOLS]] [--no-dashboard] [--no-api] [--mlflow]
                         [--duration S] [--status-every S]

Starts the local broker (or uses the one `make kafka-up` started), creates the topics, then the
stream job (final bars into the lake), the live-bar stream (`crypto.bars.live`), the lake's
maintenance (`python -m lake maintain --every LAKE_MAINTAIN_EVERY`), one ingestor per source
the dashboard, the HTTP API and, with `--mlflow`, MLflow's UI (`make mlflow`; off by default,
as its first start builds a separate environment). A component that dies is restarted with backoff and reported.
Ctrl-C or SIGTERM stops them in order: ingestors first (they flush), the live bars, the job,
the dashboard, the broker last. Logs go to LIVE_HOME/logs/<component>.log.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO

from core.settings import REPO_ROOT, Settings
from infra.kafka_local import BrokerError, LocalKafka, ensure_project_topics
from infra.live_status import Probe, status_line
from infra.supervisor import Component, Supervisor
from ingest.venues import REGISTRY
from lake import logs

log = logging.getLogger("infra.live")

PY = sys.executable
SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")
VENUES = tuple(REGISTRY)
# As the Makefile exports them: the project's spark-defaults.conf, loopback, this venv's Python.
SPARK_ENV = {
    "SPARK_CONF_DIR": str(REPO_ROOT), "SPARK_LOCAL_IP": "127.0.0.1",
    "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
}  # fmt: skip
STOP_ORDER = ["live_bars", "job", "maintain", "api", "mlflow", "dashboard", "broker"]  # after every ingestor


class AlreadyRunning(RuntimeError):
    pass


def sources(specs: list[str]) -> list[Component]:
    """One ingestor per source: demo, synth:RATE[:SYMBOLS], or VENUE:SYMBOL,SYMBOL."""
    out = []
    for spec in specs or ["demo"]:
        kind, _, rest = spec.partition(":")
        if kind == "demo" and not rest:
            out.append(Component("ingest-demo", [PY, "-m", "ingest", "demo"]))
        elif kind == "synth" and rest:
            rate, _, symbols = rest.partition(":")
            argv = [PY, "-m", "ingest", "synth", "--rate", rate, "--symbols", symbols or "10", "--duration", "1e9"]
            out.append(Component("ingest-synth", argv))
        elif kind in VENUES and rest:
            argv = [PY, "-m", "ingest", "live", "--exchange", kind, "--symbols", rest]
            out.append(Component(f"ingest-{kind}", argv))
        else:
            raise ValueError(
                f"unknown source {spec!r}: use demo, synth:RATE[:SYMBOLS] or VENUE:SYMBOLS with VENUE one of "
                f"{', '.join(VENUES)} (e.g. binance:BTCUSDT,ETHUSDT)"
            )
    return out


def core(settings: Settings, dashboard: bool, api: bool = True, mlflow: bool = False) -> list[Component]:
    out = [
        Component("job", [SPARK_SUBMIT, str(REPO_ROOT / "jobs" / "stream_ohlc.py")], stop_timeout_s=30, env=SPARK_ENV),
        Component("live_bars", [PY, "-m", "jobs.forming_bars_service"]),
        Component("maintain", [PY, "-m", "lake", "maintain", "--every", settings.lake.maintain_every]),
    ]
    if api:
        out.append(Component("api", [PY, "-m", "api"]))
    if dashboard:
        argv = [
            str(Path(sys.executable).parent / "streamlit"), "run", str(REPO_ROOT / "dashboard" / "app.py"),
            "--server.address", "127.0.0.1", "--server.port", str(settings.dashboard.port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
        ]  # fmt: skip
        out.append(Component("dashboard", argv))
    if mlflow:
        out.append(Component("mlflow", [PY, "-m", "infra.mlflow_ui"]))
    return out


def lock(home: Path, about: dict[str, object]) -> IO[str]:
    """Hold LIVE_HOME/live.lock for this run; refuse with who holds it."""
    home.mkdir(parents=True, exist_ok=True)
    handle = (home / "live.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        try:
            other = json.loads(handle.read() or "{}")
        except json.JSONDecodeError:
            other = {}
        raise AlreadyRunning(
            f"make live is already running (pid {other.get('pid', '?')}, since {other.get('started', '?')}, "
            f"dashboard {other.get('dashboard', '?')}); stop it with Ctrl-C in its terminal or "
            f"`kill {other.get('pid', '<pid>')}`"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(about))
    handle.flush()
    return handle


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_broker(supervisor: Supervisor, settings: Settings) -> bool:
    """Our supervised broker, or the one `make kafka-up` runs. True if we supervise it."""
    broker = LocalKafka.from_settings(settings)
    if (pid := broker.running_pid()) is not None:
        print(f"broker: using the one `make kafka-up` started (pid {pid}) on {broker.bootstrap}")
        broker.wait_ready(60)
        ensure_project_topics(broker, settings)
        return False
    if not port_free(broker.port):
        raise BrokerError(f"port {broker.port} is in use by another program, not a broker of {broker.home}")
    supervisor.start(Component("broker", [PY, "-m", "infra.kafka_local", "foreground"], stop_timeout_s=30))
    deadline = time.monotonic() + 120
    while True:
        supervisor.poll()
        try:
            broker.wait_ready(2)
            break
        except BrokerError:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"the broker did not come up in 120 s; see {supervisor.log_dir / 'broker.log'}"
                ) from None
    ensure_project_topics(broker, settings)
    return True


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    home = Path(settings.live.home).resolve()
    url = f"http://127.0.0.1:{settings.dashboard.port}"
    ingestors = sources(args.source)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    held = lock(home, {"pid": os.getpid(), "started": started, "dashboard": url})
    if not args.no_dashboard and not port_free(settings.dashboard.port):
        print(
            f"live: port {settings.dashboard.port} is in use (another dashboard?); set DASHBOARD_PORT", file=sys.stderr
        )
        return 2
    if not args.no_api and not port_free(settings.api.port):
        print(f"live: port {settings.api.port} is in use (another API?); set API_PORT", file=sys.stderr)
        return 2
    if args.mlflow and not port_free(settings.mlflow.ui_port):
        print(
            f"live: port {settings.mlflow.ui_port} is in use (another MLflow UI?); set MLFLOW_UI_PORT", file=sys.stderr
        )
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        print(f"\n{signal.Signals(signum).name}: stopping everything", flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log_dir = home / "logs"
    supervisor = Supervisor(log_dir, report=lambda line: print(f"{time.strftime('%H:%M:%S')} {line}", flush=True))
    print(f"dashboard  {url if not args.no_dashboard else '(off)'}")
    print(f"api        {f'http://127.0.0.1:{settings.api.port}/docs' if not args.no_api else '(off)'}")
    if args.mlflow:
        print(f"mlflow     http://127.0.0.1:{settings.mlflow.ui_port}")
    print(f'lake       {Path(settings.lake.path).resolve()}  (query: python -m lake sql "SELECT ... FROM ohlc")')
    print(f"logs       {log_dir}/<component>.log")
    print(f"sources    {', '.join(c.name.removeprefix('ingest-') for c in ingestors)}", flush=True)
    probe: Probe | None = None
    try:
        start_broker(supervisor, settings)
        for component in [*core(settings, not args.no_dashboard, not args.no_api, args.mlflow), *ingestors]:
            supervisor.start(component)
        write_pids(home, supervisor)
        probe = Probe(settings)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        next_status = time.monotonic() + args.status_every
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            supervisor.poll()
            write_pids(home, supervisor)
            if time.monotonic() >= next_status:
                states = {name: supervisor.state(name) for name in supervisor.running}
                print(status_line(probe.read(), states), flush=True)
                next_status = time.monotonic() + args.status_every
            stop.wait(0.5)
    except (BrokerError, ValueError) as exc:
        print(f"live: {exc}", file=sys.stderr)
        return 1
    finally:
        if probe is not None:
            probe.close()
        supervisor.stop_all([c.name for c in ingestors] + STOP_ORDER)
        (home / "pids.json").unlink(missing_ok=True)
        held.close()
        print("live: everything stopped", flush=True)
    return 0


def write_pids(home: Path, supervisor: Supervisor) -> None:
    """LIVE_HOME/pids.json: each component's current pid (for people and tests)."""
    pids = {name: supervisor.pid(name) for name in supervisor.running}
    tmp = home / "pids.json.tmp"
    tmp.write_text(json.dumps(pids))
    tmp.replace(home / "pids.json")


def main(argv: list[str] | None = None) -> int:
    logs.configure(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m infra.live", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", action="append", default=[], help="demo (default), VENUE:SYMBOLS, synth:RATE")
    parser.add_argument("--no-dashboard", action="store_true")
    parser.add_argument("--no-api", action="store_true", help="leave out the HTTP API (python -m api)")
    parser.add_argument("--mlflow", action="store_true", help="also serve MLflow's UI (make mlflow) on MLFLOW_UI_PORT")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--status-every", type=float, default=5.0, help="seconds between status lines")
    args = parser.parse_args(argv)
    try:
        sources(args.source)
        return run(args)
    except (ValueError, AlreadyRunning) as exc:
        print(f"live: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
