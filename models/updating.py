"""Incremental updates of a saved SGD model with newer lake data (`partial_fit`), as the source design did.

The rows after the model's training range whose labels are known are featurized exactly as
in training; the scaler and the classifier learn from them with `partial_fit` (the imputer
keeps its training medians). The result is saved as a new run folder with the extended range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from lake.reader import connect
from models import artifacts, labels
from models.features import features, load_bars, on_grid, warmed_up


def update(lake: Path, model_dir: Path, out_dir: Path) -> int:
    """partial_fit the SGD pipeline in `model_dir` on newer rows; returns the rows learned from."""
    model, meta = artifacts.load(model_dir)
    if meta.model != "sgd":
        raise ValueError(f"{model_dir}: only the SGD model learns incrementally (this one is {meta.model})")
    trained_to = pd.Timestamp(meta.training_range[1])
    warmup = dt.timedelta(seconds=(max(60, meta.horizon_steps) + 60) * meta.step_s)
    bars = load_bars(connect(lake), meta.symbol, meta.exchange, (trained_to - warmup).to_pydatetime(), None)
    if bars.empty:
        return 0
    grid = on_grid(bars.drop(columns="exchange"), meta.step_s)
    X = features(grid)
    artifacts.check_lake_features(meta, list(X.columns), model_dir)
    y = labels.outcome(meta.task, grid, meta.horizon_steps, meta.threshold)
    new = (X.index > trained_to) & y.notna() & warmed_up(X)
    if not new.any():
        return 0
    rows = X[new][meta.features].to_numpy()
    imputed = model.named_steps["impute"].transform(rows)
    scaler, sgd = model.named_steps["scale"], model.named_steps["sgd"]
    scaler.partial_fit(imputed)
    sgd.partial_fit(scaler.transform(imputed), y[new].to_numpy(), classes=np.array([0.0, 1.0]))
    updated = dataclasses.replace(
        meta, model_id=out_dir.name, training_range=[meta.training_range[0], str(X.index[new].max())]
    )
    artifacts.save(out_dir, model, updated)
    return int(new.sum())
