"""Metrics with block-bootstrap confidence intervals, and the comparison with baselines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from scipy.stats import t as student_t

METRICS = ("roc_auc", "pr_auc", "brier", "accuracy")


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties at average rank; as sklearn's."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the precision-recall steps at each distinct score; as sklearn's."""
    positives = y.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    scores, hits = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the last row of each distinct score
    tps = np.cumsum(hits)[last]
    precision = tps / (last + 1)
    recall = tps / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier score and accuracy (at 0.5); AUCs are NaN with one class only.

    Numpy versions (tests/test_models.py holds them equal to sklearn's): the bootstrap calls
    this tens of thousands of times, and sklearn's input checks dominated the run time.
    """
    return {
        "roc_auc": roc_auc(y, p),
        "pr_auc": average_precision(y, p),
        "brier": float(np.mean((np.clip(p, 0, 1) - y) ** 2)),
        "accuracy": float(np.mean((p >= 0.5) == (y == 1))),
    }


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _blocks(n: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """Row positions of a moving-block bootstrap sample (keeps autocorrelation within blocks)."""
    starts = rng.integers(0, max(1, n - block + 1), size=int(np.ceil(n / block)))
    return np.concatenate([np.arange(s, min(s + block, n)) for s in starts])[:n]


def fold_mean(y: np.ndarray, p: np.ndarray, folds: np.ndarray) -> dict[str, float]:
    """Metrics per fold, averaged with the folds' row counts as weights.

    Pooling out-of-fold scores across folds would let a per-fold constant (the class prior
    of each training window) rank rows between folds; averaging per-fold metrics does not.
    """
    per_fold = []
    weights = []
    for f in np.unique(folds):
        rows = folds == f
        per_fold.append(metrics(y[rows], p[rows]))
        weights.append(rows.sum())
    w = np.asarray(weights, dtype=float)
    out = {}
    for m in METRICS:
        values = np.array([d[m] for d in per_fold])
        ok = np.isfinite(values)
        out[m] = float(np.average(values[ok], weights=w[ok])) if ok.any() else float("nan")
    return out


def _resample(folds: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    """A block-bootstrap sample drawn within each fold (rows keep their fold)."""
    parts = []
    for f in np.unique(folds):
        rows = np.flatnonzero(folds == f)
        parts.append(rows[_blocks(len(rows), block, rng)])
    return np.concatenate(parts)


def bootstrap(
    y: np.ndarray, scores: dict[str, np.ndarray], folds: np.ndarray, block: int, resamples: int = 200, seed: int = 0
) -> dict[str, dict[str, Interval]]:
    """Per scorer and metric: the fold-weighted value and a 95% block-bootstrap interval."""
    rng = np.random.default_rng(seed)
    samples = [_resample(folds, block, rng) for _ in range(resamples)]
    out: dict[str, dict[str, Interval]] = {}
    for name, p in scores.items():
        point = fold_mean(y, p, folds)
        boot: dict[str, list[float]] = {m: [] for m in METRICS}
        for idx in samples:
            for m, v in fold_mean(y[idx], p[idx], folds[idx]).items():
                boot[m].append(v)
        out[name] = {m: _interval(point[m], boot[m]) for m in METRICS}
    return out


def _interval(point: float, values: list[float]) -> Interval:
    finite = np.asarray(values)[np.isfinite(values)]
    if not len(finite):
        return Interval(point, float("nan"), float("nan"))
    return Interval(point, float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5)))


def _across_folds(y: np.ndarray, model: np.ndarray, baseline: np.ndarray, folds: np.ndarray) -> dict[str, Interval]:
    """A 95% t-interval of the per-fold differences: what varies between periods, not within."""
    per_fold = [
        {m: metrics(y[r], model[r])[m] - metrics(y[r], baseline[r])[m] for m in METRICS}
        for f in np.unique(folds)
        if (r := folds == f).any()
    ]
    out = {}
    for m in METRICS:
        values = np.array([d[m] for d in per_fold])
        values = values[np.isfinite(values)]
        if len(values) < 2:
            out[m] = Interval(float("nan"), float("nan"), float("nan"))
            continue
        half = float(student_t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
        out[m] = Interval(float(values.mean()), float(values.mean()) - half, float(values.mean()) + half)
    return out


def difference(
    y: np.ndarray, model: np.ndarray, baseline: np.ndarray, folds: np.ndarray, block: int,
    resamples: int = 200, seed: int = 0,
) -> dict[str, Interval]:  # fmt: skip
    """model minus baseline, per metric: the fold-weighted difference and a 95% interval.

    The interval is the wider of two: a paired block bootstrap within folds (short-range
    dependence) and a t-interval across folds (regimes that change between periods, which a
    within-fold bootstrap cannot see: on a random walk a model can ride one period's drift).
    """
    rng = np.random.default_rng(seed)
    point_m, point_b = fold_mean(y, model, folds), fold_mean(y, baseline, folds)
    diffs: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(resamples):
        idx = _resample(folds, block, rng)
        a, b = fold_mean(y[idx], model[idx], folds[idx]), fold_mean(y[idx], baseline[idx], folds[idx])
        for m in METRICS:
            diffs[m].append(a[m] - b[m])
    across = _across_folds(y, model, baseline, folds)
    out = {}
    for m in METRICS:
        boot = _interval(point_m[m] - point_b[m], diffs[m])
        low = np.nanmin([boot.low, across[m].low])
        high = np.nanmax([boot.high, across[m].high])
        out[m] = Interval(boot.value, float(low), float(high))
    return out


def beats(diff: dict[str, Interval]) -> bool:
    """The model beats the baseline: ROC-AUC higher with the whole 95% interval above zero."""
    d = diff["roc_auc"]
    return bool(np.isfinite(d.low) and d.low > 0)
