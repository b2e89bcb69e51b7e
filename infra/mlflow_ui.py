"""`make mlflow`: MLflow's tracking UI on 127.0.0.1 over the project's store (`models/mlflow/`).

The UI ships only in the full `mlflow` package, which requires pyarrow<26 while the project pins
26.0.1. So it runs from its own environment, `.venv-mlflow`, built on first use: `mlflow` at the
version of the project's `mlflow-skinny` (one version writes and reads the store's schema), with
the rest of its tree pinned by `infra/mlflow-ui.lock`. The project's code never imports it.

    python -m infra.mlflow_ui [--port 5000] [--store-uri sqlite:////abs/mlflow.db]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.settings import REPO_ROOT, Settings
from lake import logs
from models.tracking import artifact_root, sqlite_path, tracking_uri

VENV = REPO_ROOT / ".venv-mlflow"
LOCK = REPO_ROOT / "infra" / "mlflow-ui.lock"
LOG = REPO_ROOT / ".logs" / "mlflow-ui.log"


def mlflow_version() -> str:
    """The UI's version: the project's mlflow-skinny (pyproject.toml's pin)."""
    return importlib.metadata.version("mlflow-skinny")


def _stamp_text() -> str:
    return f"mlflow=={mlflow_version()} lock {hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]}"


def ensure_venv(venv: Path = VENV, log: Path = LOG) -> Path:
    """The `mlflow` command of the UI's environment, built (or rebuilt after a pin changed) first."""
    stamp = venv / ".installed"
    command = venv / "bin" / "mlflow"
    if stamp.is_file() and stamp.read_text() == _stamp_text() and command.is_file():
        return command
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the MLflow UI's environment in {venv} (first use; log: {log})", flush=True)
    started = time.monotonic()
    with log.open("a") as out:
        uv = str(Path(sys.executable).parent / "uv")  # ~6 s for the whole tree where pip takes ~80 s
        steps = [
            [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(venv)],
            [
                uv,
                "pip",
                "install",
                "--python",
                str(venv / "bin" / "python"),
                "-c",
                str(LOCK),
                f"mlflow=={mlflow_version()}",
            ],
        ]
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
                raise SystemExit(f"mlflow-ui: {' '.join(step[:4])} ... failed; see {log}")
    stamp.write_text(_stamp_text())
    print(f"built in {time.monotonic() - started:.0f} s", flush=True)
    return command


def server_command(mlflow: Path, store_uri: str, port: int) -> list[str]:
    artifacts = artifact_root(store_uri)
    assert artifacts is not None
    return [
        str(mlflow), "server", "--backend-store-uri", store_uri,
        "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip


def server_env() -> dict[str, str]:
    """No usage telemetry; no job consumers (seven huey processes serving MLflow's GenAI jobs,
    which runs of `python -m models` never use)."""
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    settings = Settings().mlflow
    parser = argparse.ArgumentParser(prog="python -m infra.mlflow_ui", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=settings.ui_port, help="default: MLFLOW_UI_PORT (5000)")
    parser.add_argument(
        "--store-uri", default=tracking_uri(settings), help="default: MLFLOW_TRACKING_URI or the local store"
    )
    args = parser.parse_args(argv)
    db = sqlite_path(args.store_uri)
    if db is None:
        print(
            f"mlflow-ui: MLFLOW_TRACKING_URI points at {args.store_uri}, not a local store: open that server's UI "
            "(unset it to serve the project's models/mlflow/)",
            file=sys.stderr,
        )
        return 2
    db.parent.mkdir(parents=True, exist_ok=True)
    mlflow = ensure_venv()
    print(f"MLflow UI: http://127.0.0.1:{args.port} over {args.store_uri} (Ctrl-C stops it; log: {LOG})", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # make live's supervisor stops its components with SIGTERM
    with LOG.open("a") as out:
        # In this process's group: Ctrl-C, or the supervisor's signal to the group, reaches the
        # server and the job consumer it starts as well.
        server = subprocess.Popen(
            server_command(mlflow, args.store_uri, args.port), env=server_env(), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            code = server.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            stop(server)
    tail = LOG.read_text(errors="replace").splitlines()[-5:]
    print(f"mlflow-ui: the server stopped (exit {code}):", *tail, sep="\n  ", file=sys.stderr)
    return code or 1


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def stop(server: subprocess.Popen[bytes]) -> None:
    """The server and its children (the job consumer), terminated, then killed after 30 s."""
    children = subprocess.run(
        ["pgrep", "-P", str(server.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
