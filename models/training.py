"""Walk-forward training and evaluation of both models against their baselines."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models import labels
from models.evaluation import Interval, bootstrap, difference, metrics
from models.features import features, load_bars, on_grid, warmed_up
from models.splits import walk_forward

MODELS = ("sgd", "hgb")


@dataclass(frozen=True)
class TrainConfig:
    task: str
    symbol: str
    exchange: str | None = None
    horizon_s: int = 60
    step_s: int = 1
    folds: int = 5
    seed: int = 7
    threshold_quantile: float = 0.9
    shuffle_labels: bool = False  # a null check: with labels shuffled, nothing should beat the prior
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @property
    def horizon_steps(self) -> int:
        return max(1, self.horizon_s // self.step_s)


@dataclass
class Dataset:
    X: pd.DataFrame  # `feature_names` for the lake's windows, rows with every label input known
    future_rv: pd.Series
    future_ret: pd.Series
    trailing_rv: pd.Series
    exchange: str


@dataclass
class RunResult:
    config: TrainConfig
    rows: int
    fold_metrics: pd.DataFrame  # fold, scorer, metric columns
    overall: dict[str, dict[str, Interval]]
    lifts: dict[str, dict[str, dict[str, Interval]]]  # model -> baseline -> metric -> interval
    y: np.ndarray
    scores: dict[str, np.ndarray]  # out-of-fold
    folds: np.ndarray  # each out-of-fold row's fold
    importance: dict[str, pd.Series]
    threshold: float | None
    final_models: dict[str, ClassifierMixin] = field(default_factory=dict)
    time_range: tuple[str, str] = ("", "")
    exchange: str = ""

    def best_model(self) -> str:
        return max(MODELS, key=lambda m: np.nan_to_num(self.overall[m]["roc_auc"].value, nan=0.0))


def make_model(name: str, seed: int) -> ClassifierMixin:
    if name == "sgd":  # the source design: scaled features, logistic loss, partial_fit for updates
        return Pipeline([
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("sgd", SGDClassifier(loss="log_loss", alpha=1e-3, max_iter=50, tol=1e-4, random_state=seed)),
        ])  # fmt: skip
    return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15, random_state=seed)


def build_dataset(con: duckdb.DuckDBPyConnection, config: TrainConfig) -> Dataset:
    bars = load_bars(con, config.symbol, config.exchange, config.start, config.end)
    if bars.empty:
        raise ValueError(f"no bars for {config.symbol} in the lake")
    exchanges = bars["exchange"].unique()
    if len(exchanges) > 1:
        raise ValueError(f"{config.symbol} trades on {sorted(exchanges)}: pick one with --exchange")
    grid = on_grid(bars.drop(columns="exchange"), config.step_s)
    h = config.horizon_steps
    X = features(grid)
    future_rv = labels.future_realized_vol(grid, h)
    future_ret = labels.future_return(grid, h)
    trailing = labels.trailing_realized_vol(grid, h)
    known = future_rv.notna() & trailing.notna() & warmed_up(X)
    return Dataset(X[known], future_rv[known], future_ret[known], trailing[known], str(exchanges[0]))


def _labels(task: str, data: Dataset, threshold: float | None) -> np.ndarray:
    if task == "vol_spike":
        assert threshold is not None
        return labels.vol_spike(data.future_rv, threshold).to_numpy()
    return labels.direction(data.future_ret).to_numpy()


def _baselines(
    task: str, data: Dataset, rows: np.ndarray, prior: float, threshold: float | None
) -> dict[str, np.ndarray]:
    out = {"prior": np.full(len(rows), prior)}
    if task == "vol_spike":
        out["persistence"] = (data.trailing_rv.to_numpy()[rows] > threshold).astype(float)
    else:
        out["last_return"] = (data.X["ret_1"].to_numpy()[rows] > 0).astype(float)
    return out


def train(con: duckdb.DuckDBPyConnection, config: TrainConfig, resamples: int = 200) -> RunResult:
    data = build_dataset(con, config)
    n, h = len(data.X), config.horizon_steps
    folds = walk_forward(n, config.folds, purge=h, min_train=max(5 * h, n // (config.folds + 1)))
    if not folds:
        raise ValueError(f"{n} rows are too few for {config.folds} folds at horizon {h}")
    X = data.X.to_numpy()
    y_all: list[np.ndarray] = []
    scores: dict[str, list[np.ndarray]] = {}
    fold_rows: list[dict[str, object]] = []
    importance: dict[str, pd.Series] = {}
    fold_ids: list[np.ndarray] = []
    for fold in folds:
        threshold = (
            float(np.quantile(data.future_rv.to_numpy()[fold.train], config.threshold_quantile))
            if config.task == "vol_spike" else None
        )  # fmt: skip
        y = _labels(config.task, data, threshold)
        if config.shuffle_labels:
            y = np.random.default_rng(config.seed).permutation(y)
        # Scored on one test row per horizon: labels over (t, t+H] overlap for H consecutive rows,
        # and metrics (and their bootstrap) over overlapping labels would count each outcome H times.
        scored = fold.test[::h]
        y_train, y_test = y[fold.train], y[scored]
        fold_scores = _baselines(config.task, data, scored, float(y_train.mean()), threshold)
        for name in MODELS:
            model = make_model(name, config.seed)
            model.fit(X[fold.train], y_train)
            fold_scores[name] = model.predict_proba(X[scored])[:, 1]
            if fold is folds[-1]:  # on at most 2,000 test rows: HGB predictions dominate the run time
                sample = fold.test[:: max(1, len(fold.test) // 2000)]
                imp = permutation_importance(
                    model, X[sample], y[sample], scoring="roc_auc", n_repeats=2, random_state=config.seed
                )
                names = list(data.X.columns)
                importance[name] = pd.Series(imp.importances_mean, index=names).sort_values(ascending=False)
        for name, p in fold_scores.items():
            fold_rows.append({"fold": fold.number, "scorer": name, "rows": len(scored), **metrics(y_test, p)})
            scores.setdefault(name, []).append(p)
        y_all.append(y_test)
        fold_ids.append(np.full(len(scored), fold.number))
    y_oof = np.concatenate(y_all)
    fold_of = np.concatenate(fold_ids)
    oof = {name: np.concatenate(parts) for name, parts in scores.items()}
    # Scored rows are a horizon apart: blocks of 10 keep slower dependence; a tiny fold gets
    # shorter blocks, or every resample would be the same block and the interval a point.
    smallest = int(np.bincount(fold_of).min())
    block = max(1, min(10, smallest // 4))
    overall = bootstrap(y_oof, oof, fold_of, block=block, resamples=resamples, seed=config.seed)
    baselines = [b for b in oof if b not in MODELS]
    lifts = {
        m: {
            b: difference(y_oof, oof[m], oof[b], fold_of, block=block, resamples=resamples, seed=config.seed)
            for b in baselines
        }
        for m in MODELS
    }
    final_threshold = (
        float(np.quantile(data.future_rv, config.threshold_quantile)) if config.task == "vol_spike" else None
    )
    y_final = _labels(config.task, data, final_threshold)
    final = {name: make_model(name, config.seed).fit(X, y_final) for name in MODELS}
    index = data.X.index
    return RunResult(
        config=config, rows=n, fold_metrics=pd.DataFrame(fold_rows), overall=overall, lifts=lifts, y=y_oof,
        scores=oof, folds=fold_of, importance=importance, threshold=final_threshold, final_models=final,
        time_range=(str(index.min()), str(index.max())), exchange=data.exchange,
    )  # fmt: skip
