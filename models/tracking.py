"""A training run logged to MLflow: params, per-fold and overall metrics, the report, the model.

The store is `MLFLOW_TRACKING_URI` (`core.settings.MlflowSettings`): empty means the project's
local store in `models/mlflow/` (a sqlite database and, beside it, an artifact folder), which
works offline and which `make mlflow` serves. A sqlite store anywhere keeps its artifacts beside
its database; a server keeps them where it is configured to.

Logging happens after the run folder is written, and a store that cannot be reached never fails
the training: `log_training` raises `TrackingUnavailable` with one line that names the store and
the cause, and the caller prints it as a warning.

The names (pure, below): params `task, symbol, exchange, horizon_s, step_s, folds, seed,
features`; metrics `<scorer>.<metric>` overall with `_low`/`_high` bounds of the 95 % interval,
the same per fold as `fold.<scorer>.<metric>` with the fold number as the step, and lifts as
`lift.<model>-<baseline>.<metric>` (with bounds). Scorers are the models (`sgd`, `hgb`) and the
baselines (`prior`, `persistence` or `last_sign`).
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.settings import REPO_ROOT, MlflowSettings
from models.artifacts import Metadata
from models.evaluation import METRICS, Interval
from models.training import RunResult

LOCAL_STORE = REPO_ROOT / "models" / "mlflow"
# The types skops does not trust by default in our two models (`skops.io.get_untrusted_types`):
# HistGradientBoosting's tree nodes and the SGD pipeline's numpy dtypes. The models are ours,
# written by this code into our own store; a new model type that needs more fails its logging
# with the type named, rather than being trusted wholesale.
_BATCH = 1000
SKOPS_TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", "numpy.dtype"]


class TrackingUnavailable(Exception):
    """The tracking store could not be reached or refused the run; the message is one line."""


@dataclass(frozen=True)
class TrackedRun:
    tracking_uri: str
    experiment: str
    run_id: str
    registered: str | None  # "NAME/VERSION" when --register was given


def tracking_uri(settings: MlflowSettings) -> str:
    return settings.tracking_uri or f"sqlite:///{LOCAL_STORE / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///…` store, None for any other."""
    parsed = urlparse(uri)
    # SQLAlchemy's form: sqlite:///relative.db, sqlite:////absolute.db
    return Path(parsed.path[1:]).resolve() if parsed.scheme == "sqlite" else None


def artifact_root(uri: str) -> Path | None:
    """A sqlite store's artifact folder, beside its database (the client's and `make mlflow`'s)."""
    db = sqlite_path(uri)
    return db.parent / "artifacts" if db else None


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: under a sqlite store's root; for a server, its own default."""
    root = artifact_root(uri)
    return (root / experiment).as_uri() if root else None


def experiment_name(settings: MlflowSettings, task: str) -> str:
    return settings.experiment or task


# --- what is logged (pure) ---------------------------------------------------------------


def run_params(meta: Metadata, folds: int) -> dict[str, str]:
    return {
        "task": meta.task, "symbol": meta.symbol, "exchange": meta.exchange, "horizon_s": str(meta.horizon_s),
        "step_s": str(meta.step_s), "folds": str(folds), "seed": str(meta.seed), "model": meta.model,
        "features": ",".join(meta.features), "threshold": "" if meta.threshold is None else repr(meta.threshold),
        "training_range": " to ".join(meta.training_range), "run_folder_id": meta.model_id,
    }  # fmt: skip


def _interval(prefix: str, iv: Interval) -> dict[str, float]:
    return {prefix: iv.value, f"{prefix}_low": iv.low, f"{prefix}_high": iv.high}


def run_metrics(result: RunResult) -> dict[str, float]:
    """Overall metrics and lifts, each with its interval's bounds."""
    out: dict[str, float] = {}
    for scorer, per in result.overall.items():
        for metric in METRICS:
            out |= _interval(f"{scorer}.{metric}", per[metric])
    for model, baselines in result.lifts.items():
        for baseline, diff in baselines.items():
            for metric in METRICS:
                out |= _interval(f"lift.{model}-{baseline}.{metric}", diff[metric])
    out["rows"] = float(result.rows)
    return out


def fold_metrics(result: RunResult) -> list[tuple[str, float, int]]:
    """(name, value, fold) for every scorer and metric of every fold."""
    out = []
    for row in result.fold_metrics.to_dict("records"):
        for metric in (*METRICS, "rows"):
            out.append((f"fold.{row['scorer']}.{metric}", float(row[metric]), int(row["fold"])))
    return out


# --- logging ---------------------------------------------------------------------------


def check_reachable(uri: str, timeout_s: float) -> None:
    """TrackingUnavailable unless a server answers its /health, or a sqlite store's folder can be made."""
    db = sqlite_path(uri)
    if db is not None:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingUnavailable(f"cannot make the MLflow store's folder {db.parent}: {exc.strerror}") from None
        return
    scheme = urlparse(uri).scheme
    if scheme not in ("http", "https"):
        return  # databricks, file: … MLflow itself names what is wrong
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise TrackingUnavailable(f"MLflow server {uri} answered /health with HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUnavailable(f"MLflow server {uri} is unreachable ({reason})") from None


def quiet_mlflow(timeout_s: float) -> None:
    """No usage telemetry (the product runs offline), no minutes of retries against a dead server,
    and MLflow's chatter kept off the terminal."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # its records go through ours (lake.logs)
    for name in ("mlflow", "alembic"):  # "Creating initial MLflow database tables", migrations
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(timeout_s))))


def log_training(
    settings: MlflowSettings, result: RunResult, meta: Metadata, model: Any, folder: Path, register: str | None
) -> TrackedRun:
    """Log the run (the folder's report, PNGs and model.json; the model with its signature) and
    register the model as `register` when given. TrackingUnavailable on any failure."""
    uri = tracking_uri(settings)
    check_reachable(uri, settings.timeout_s)
    quiet_mlflow(settings.timeout_s)
    try:
        return _log(uri, experiment_name(settings, meta.task), result, meta, model, folder, register)
    except TrackingUnavailable:
        raise
    except Exception as exc:  # the training's results are already on disk; MLflow must not fail it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingUnavailable(f"MLflow store {uri} refused the run: {first}") from exc


def _log(
    uri: str, experiment: str, result: RunResult, meta: Metadata, model: Any, folder: Path, register: str | None
) -> TrackedRun:
    import mlflow
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.models import infer_signature

    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id if found else client.create_experiment(experiment, artifact_location(uri, experiment))
    )
    zeros = pd.DataFrame(np.zeros((2, len(meta.features))), columns=meta.features)
    signature = infer_signature(zeros, model.predict_proba(zeros.to_numpy()))
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=meta.model_id) as run:
        # Params, tags and every metric in one batch (fold metrics one by one were a write each).
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in run_metrics(result).items()]
        metrics += [Metric(k, v, now, fold) for k, v, fold in fold_metrics(result)]
        tags = {"best_model": meta.model, "run_folder": str(folder.resolve())}
        params = [Param(k, v) for k, v in run_params(meta, result.config.folds).items()]
        for start in range(0, len(metrics), _BATCH):  # MLflow takes at most 1,000 metrics a batch
            client.log_batch(
                run.info.run_id, metrics=metrics[start : start + _BATCH],
                params=params if start == 0 else [], tags=[RunTag(k, v) for k, v in tags.items()] if start == 0 else [],
            )  # fmt: skip
        for path in sorted(folder.iterdir()):
            if path.suffix in (".md", ".png", ".json"):
                mlflow.log_artifact(str(path))
        info = mlflow.sklearn.log_model(
            model, name="model", signature=signature, pyfunc_predict_fn="predict_proba",
            pip_requirements=[f"{k}=={v}" for k, v in meta.versions.items() if k != "python"]
            + [f"skops=={importlib.metadata.version('skops')}"],
            skops_trusted_types=SKOPS_TRUSTED,
            registered_model_name=register,
        )  # fmt: skip
        version = info.registered_model_version
        return TrackedRun(uri, experiment, run.info.run_id, f"{register}/{version}" if register else None)
