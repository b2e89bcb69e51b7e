"""Score the newest lake data with a saved model and append predictions to lake/predictions.

Each run scores every grid time after the newest prediction whose outcome is already known
(so predictions still waiting for their outcome are scored again, now with it), or the last
`default_lookback` when the model has not scored this symbol yet. Features come from
`models.features` exactly as in training.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from core.schema import PREDICTIONS
from core.settings import MlflowSettings, Settings
from lake import delta
from lake.reader import connect
from models import labels
from models.artifacts import Metadata, check_lake_features, load
from models.features import RETURN_STEPS, features, load_bars, on_grid, warmed_up

WARMUP_S = max(RETURN_STEPS) + 60  # rows before the first scored time that the features look back on


def _resume_from(con: duckdb.DuckDBPyConnection, model_id: str, symbol: str) -> dt.datetime | None:
    rows = con.execute(
        "SELECT max(time) FROM predictions WHERE model_id = ? AND symbol = ? AND outcome IS NOT NULL",
        [model_id, symbol],
    ).fetchall()
    return rows[0][0]


def load_model(ref: str | Path, settings: MlflowSettings | None = None) -> tuple[Any, Metadata]:
    """A run folder (`models/runs/<id>`) or a registered model (`models:/NAME/VERSION`, `models:/NAME@ALIAS`)."""
    if str(ref).startswith("models:/"):
        from models import registry  # MLflow is loaded only for the registry

        return registry.load(str(ref), settings or Settings().mlflow)
    return load(Path(ref))


def score(
    lake: Path,
    model_ref: str | Path,
    default_lookback: dt.timedelta = dt.timedelta(hours=1),
    settings: MlflowSettings | None = None,
) -> int:
    """Append predictions (and known outcomes) for the model's symbol; returns rows written.
    The predictions carry the model's training run id, wherever it was loaded from."""
    model, meta = load_model(model_ref, settings)
    con = connect(lake)
    newest = con.execute("SELECT max(window_end) FROM ohlc WHERE symbol = ?", [meta.symbol]).fetchall()[0][0]
    if newest is None:
        return 0
    resume = _resume_from(con, meta.model_id, meta.symbol)
    first = resume + dt.timedelta(seconds=meta.step_s) if resume else newest - default_lookback
    load_from = first - dt.timedelta(seconds=WARMUP_S * meta.step_s)
    bars = load_bars(con, meta.symbol, meta.exchange, load_from, None)
    grid = on_grid(bars.drop(columns="exchange"), meta.step_s)
    X = features(grid)
    check_lake_features(meta, list(X.columns), str(model_ref))
    X = X[(X.index >= pd.Timestamp(first)) & warmed_up(X)]
    if X.empty:
        return 0
    outcome = labels.outcome(meta.task, grid, meta.horizon_steps, meta.threshold)
    probability = model.predict_proba(X[meta.features].to_numpy())[:, 1]
    times = X.index
    now = dt.datetime.now(dt.UTC)
    table = pa.table({
        "model_id": [meta.model_id] * len(X), "task": [meta.task] * len(X),
        "exchange": [meta.exchange] * len(X), "symbol": [meta.symbol] * len(X),
        "time": pa.array(times.to_pydatetime(), pa.timestamp("us", tz="UTC")),
        "horizon_s": [meta.horizon_s] * len(X), "probability": probability.astype(np.float64),
        "outcome": pa.array(outcome.reindex(times).to_numpy(), pa.float64(), from_pandas=True),
        "scored_at": pa.array([now] * len(X), pa.timestamp("us", tz="UTC")),
        "date": pa.array([t.date() for t in times], pa.date32()),
    })  # fmt: skip
    delta.append_rows(lake, "predictions", table, PREDICTIONS)
    return len(X)
