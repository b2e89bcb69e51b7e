"""`python -m models train|score`: see models/README.md."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import numpy as np

from core.settings import REPO_ROOT, Settings
from lake import logs
from lake.cli import parse_duration
from lake.reader import connect
from models import artifacts, report, tracking
from models.evaluation import METRICS
from models.features import feature_names, lake_windows
from models.labels import TASKS
from models.scoring import score
from models.training import RunResult, TrainConfig, train
from models.updating import update

log = logging.getLogger("models")
RUNS = REPO_ROOT / "models" / "runs"


def seconds(text: str) -> int:
    """'60s', '5m', '1h' or '60' -> whole seconds (lake.cli's duration syntax)."""
    return int(parse_duration(text).total_seconds())


def _utc(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a time like 2026-01-05T04:00, got {text!r}") from None


def cmd_train(args: argparse.Namespace) -> int:
    config = TrainConfig(
        task=args.task, symbol=args.symbol, exchange=args.exchange, horizon_s=args.horizon, step_s=args.step,
        folds=args.folds, seed=args.seed, end=args.until,
    )  # fmt: skip
    started = time.perf_counter()
    con = connect(args.lake)
    result = train(con, config, resamples=args.resamples)
    run_id = args.run_id or f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{config.task}-{config.symbol}"
    folder = args.runs / run_id
    path = report.write(result, folder, run_id)
    best = result.best_model() if args.save == "best" else args.save
    meta = artifacts.Metadata(
        model_id=run_id, model=best, task=config.task, symbol=config.symbol,
        exchange=result.exchange,
        horizon_s=config.horizon_s, step_s=config.step_s, threshold=result.threshold,
        features=list(feature_names(lake_windows(con))), feature_dtype="float64",
        training_range=list(result.time_range),
        metrics={m: {k: asdict(v) for k, v in iv.items()} for m, iv in result.overall.items()},
        seed=config.seed, versions=artifacts.versions(),
    )  # fmt: skip
    artifacts.save(folder, result.final_models[best], meta)
    tracked = _track(args, result, meta, folder)
    print(f"run {run_id}: {result.rows:,} rows, {time.perf_counter() - started:.0f}s; report {path}")
    for name, iv in result.overall.items():
        print(f"  {name:<12} " + "  ".join(f"{m} {iv[m]}" for m in METRICS))
    for line in report.verdicts(result):
        print(" ", line.replace("**", ""))
    print(f"saved {best} ({'best overall ROC-AUC' if args.save == 'best' else 'as asked'}) to {folder}/model.joblib")
    if tracked is not None:
        print(f"MLflow: run {tracked.run_id} in experiment {tracked.experiment!r} at {tracked.tracking_uri}")
        if tracked.registered:
            print(f"registered as models:/{tracked.registered}")
    return 0


def _track(
    args: argparse.Namespace, result: RunResult, meta: artifacts.Metadata, folder: Path
) -> tracking.TrackedRun | None:
    """Log the run to MLflow; a store that cannot take it is one warning line, never a failed training."""
    if args.no_tracking:
        return None
    settings = Settings().with_overrides(mlflow_tracking_uri=args.tracking_uri).mlflow
    try:
        return tracking.log_training(settings, result, meta, result.final_models[meta.model], folder, args.register)
    except tracking.TrackingUnavailable as exc:
        detail = ""
        if exc.__cause__ is not None:  # an error inside MLflow: its traceback goes to a file
            trace = REPO_ROOT / ".logs" / "mlflow.log"
            trace.parent.mkdir(exist_ok=True)
            with trace.open("a") as out:
                out.write(f"--- {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} run {meta.model_id}\n")
                traceback.print_exception(exc.__cause__, file=out)
            detail = f" (traceback: {trace})"
        unregistered = f", and the model is not registered as {args.register}" if args.register else ""
        print(
            f"models: warning: not logged to MLflow{unregistered}: {exc}{detail}; the run's report is in {folder}",
            file=sys.stderr,
        )
        return None


def cmd_update(args: argparse.Namespace) -> int:
    out = args.out or args.model.with_name(f"{args.model.name}-update-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}")
    rows = update(Path(args.lake), args.model, out)
    print(
        f"learned from {rows:,} new rows; saved to {out}" if rows else "no new labelled rows since the training range"
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    while True:
        written = score(Path(args.lake), args.model)
        log.info("scored model=%s rows=%d", args.model, written)
        print(f"wrote {written:,} predictions to {args.lake}/predictions")
        if not args.every:
            return 0
        time.sleep(args.every)


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    np.seterr(all="ignore")
    parser = argparse.ArgumentParser(prog="python -m models")
    parser.add_argument("--lake", default=Settings().lake.path)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="walk-forward evaluation, report, and a saved model")
    tr.add_argument("--task", choices=TASKS, required=True)
    tr.add_argument("--symbol", required=True)
    tr.add_argument("--exchange")
    tr.add_argument("--horizon", type=seconds, default=60, help="e.g. 60s (default)")
    tr.add_argument("--step", type=seconds, default=1, help="resampling step, e.g. 1s (default)")
    tr.add_argument("--folds", type=int, default=5)
    tr.add_argument("--seed", type=int, default=7)
    tr.add_argument("--resamples", type=int, default=200, help="block-bootstrap resamples")
    tr.add_argument("--until", type=_utc, help="train on bars before this UTC time, e.g. 2026-01-05T04:00")
    tr.add_argument("--save", choices=["best", "sgd", "hgb"], default="best", help="which model to save")
    tr.add_argument("--runs", type=Path, default=RUNS)
    tr.add_argument("--run-id")
    tr.add_argument("--register", metavar="NAME", help="register the saved model in MLflow's registry under NAME")
    tr.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI or the local models/mlflow/)")
    tr.add_argument("--no-tracking", action="store_true", help="do not log the run to MLflow")
    tr.set_defaults(run=cmd_train)
    up = sub.add_parser("update", help="partial_fit a saved SGD model on lake rows newer than its training range")
    up.add_argument("--model", type=Path, required=True)
    up.add_argument("--out", type=Path, help="the new run folder (default: <model>-update-<time>)")
    up.set_defaults(run=cmd_update)
    sc = sub.add_parser("score", help="append predictions for the newest data to lake/predictions")
    sc.add_argument(
        "--model", required=True,
        help="a run folder (models/runs/<run-id>) or a registered model (models:/NAME/VERSION, models:/NAME@ALIAS)",
    )  # fmt: skip
    sc.add_argument("--every", type=seconds, help="keep scoring at this interval, e.g. 30s")
    sc.set_defaults(run=cmd_score)
    args = parser.parse_args(argv)
    if args.command == "train" and args.register and args.no_tracking:
        parser.error("--register needs MLflow: leave out --no-tracking")
    try:
        return int(args.run(args))
    except (ValueError, artifacts.SchemaMismatch) as exc:
        print(f"models: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
