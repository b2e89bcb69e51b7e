"""What MLflow tracking costs a training run and a scoring run, against the same commands without it.

    .venv/bin/python bench/mlflow_tracking.py [--hours 6] [--rounds 3]

On a synthetic GARCH lake (`models.synthetic`), each round runs, as a user would:
- `python -m models train ... --no-tracking` (the baseline);
- the same, logged to a new local sqlite store (its first run migrates the database);
- the same, logged to that store again and registered (`--register`);
- the same, with MLFLOW_TRACKING_URI at a port where nothing listens (the warning path);
- `python -m models score --model <run folder>` and `--model models:/NAME/latest` on copies of
  the lake.
It prints the median seconds of each and the ratio to its baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.synthetic import write_lake  # noqa: E402

SYMBOL = "GARCHUSD"


def _timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "models", *argv], capture_output=True, text=True, env={**os.environ, **(env or {})},
        cwd=REPO, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stderr[-2000:]}")
    return elapsed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
    lake = work / "lake"
    write_lake(lake, SYMBOL, "garch", args.hours, seed=3)
    train = ["--lake", str(lake), "train", "--task", "vol_spike", "--symbol", SYMBOL, "--runs", str(work / "runs")]
    times: dict[str, list[float]] = {}
    dead = f"http://127.0.0.1:{_free_port()}"
    for r in range(args.rounds):
        store = f"sqlite:///{work / f'store{r}' / 'mlflow.db'}"
        steps = {
            "train, no tracking (baseline)": ([*train, "--run-id", f"plain{r}", "--no-tracking"], None),
            "train, new local store": ([*train, "--run-id", f"new{r}", "--tracking-uri", store], None),
            "train, local store, --register": (
                [*train, "--run-id", f"reg{r}", "--tracking-uri", store, "--register", "bench"],
                None,
            ),
            "train, tracking server unreachable": ([*train, "--run-id", f"dead{r}"], {"MLFLOW_TRACKING_URI": dead}),
        }
        for name, (argv, env) in steps.items():
            times.setdefault(name, []).append(_timed(argv, env))
            print(f"round {r + 1}/{args.rounds}: {name} {times[name][-1]:.1f} s", flush=True)
        for name, model in (
            ("score, run folder (baseline)", str(work / "runs" / f"reg{r}")),
            ("score, models:/bench/latest", "models:/bench/latest"),
        ):
            copy = work / f"lake-{name[:12].replace(' ', '').replace(',', '')}-{r}"
            shutil.copytree(lake, copy)
            t = _timed(["--lake", str(copy), "score", "--model", model], {"MLFLOW_TRACKING_URI": store})
            times.setdefault(name, []).append(t)
            print(f"round {r + 1}/{args.rounds}: {name} {t:.1f} s", flush=True)
    print(f"\n{args.hours} h GARCH lake, {args.rounds} rounds, median seconds per command (Python start-up included)")
    print(f"{'command':<40} {'median s':>9} {'ratio':>6}")
    base_train = statistics.median(times["train, no tracking (baseline)"])
    base_score = statistics.median(times["score, run folder (baseline)"])
    for name, values in times.items():
        base = base_score if name.startswith("score") else base_train
        print(f"{name:<40} {statistics.median(values):>9.1f} {statistics.median(values) / base:>6.2f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
