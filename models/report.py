"""A run's report: report.md with per-fold and overall metrics, lifts, verdicts and PNG plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from models.evaluation import METRICS, beats
from models.training import MODELS, RunResult


def verdicts(result: RunResult) -> list[str]:
    lines = []
    for model in MODELS:
        for baseline, diff in result.lifts[model].items():
            d = diff["roc_auc"]
            if beats(diff):
                lines.append(f"- **{model} beats {baseline}**: ROC-AUC {d} higher (95% interval).")
            else:
                lines.append(
                    f"- **{model} does not beat {baseline}**: ROC-AUC difference {d}; the interval is not above zero."
                )
    return lines


def _plots(result: RunResult, folder: Path) -> list[str]:
    y, names = result.y, list(result.scores)
    files = []
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name in names:
        p = result.scores[name]
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, p)
            roc.plot(fpr, tpr, label=name)
            precision, recall, _ = precision_recall_curve(y, p)
            pr.plot(recall, precision, label=name)
    roc.plot([0, 1], [0, 1], "k:", lw=0.8)
    roc.set(title="ROC (pooled out-of-fold)", xlabel="false positive rate", ylabel="true positive rate")
    pr.set(title="Precision-recall", xlabel="recall", ylabel="precision")
    roc.legend()
    pr.legend()
    fig.tight_layout()
    fig.savefig(folder / "roc_pr.png", dpi=110)
    plt.close(fig)
    files.append("roc_pr.png")

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name in MODELS:
        frac, mean = calibration_curve(y, np.clip(result.scores[name], 0, 1), n_bins=10, strategy="quantile")
        ax.plot(mean, frac, marker="o", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(title="Calibration", xlabel="predicted probability", ylabel="observed frequency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "calibration.png", dpi=110)
    plt.close(fig)
    files.append("calibration.png")

    fig, axes = plt.subplots(1, len(result.importance), figsize=(11, 5))
    for ax, (name, imp) in zip(np.atleast_1d(axes), result.importance.items(), strict=True):
        top = imp.head(12)[::-1]
        ax.barh(top.index, top.values)
        ax.set(title=f"{name}: permutation importance (ROC-AUC drop)")
    fig.tight_layout()
    fig.savefig(folder / "importance.png", dpi=110)
    plt.close(fig)
    files.append("importance.png")
    return files


def write(result: RunResult, folder: Path, run_id: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    c = result.config
    plots = _plots(result, folder)
    lines = [
        f"# Run {run_id}: {c.task}, {c.symbol}, horizon {c.horizon_s} s",
        "",
        f"- data: {result.rows:,} rows at a {c.step_s} s step, {result.time_range[0]} to {result.time_range[1]}",
        f"- walk-forward: {c.folds} folds, purge gap {c.horizon_steps} rows (= the horizon) between train and test; "
        "metrics on one test row per horizon (non-overlapping outcomes)",
        f"- seed {c.seed}"
        + (
            f"; spike threshold: training-period {c.threshold_quantile:.0%} quantile of realized vol"
            if c.task == "vol_spike"
            else ""
        ),
        "",
        "## Verdict",
        "",
        *verdicts(result),
        "",
        "## Overall (fold-weighted, 95% block-bootstrap intervals)",
        "",
        _table(["scorer", *METRICS], [[name, *(iv[m] for m in METRICS)] for name, iv in result.overall.items()]),
        "",
        "## Lift over each baseline (model minus baseline)",
        "",
        "Higher is better for ROC-AUC, PR-AUC and accuracy; for the Brier score lower is better, so a positive",
        "difference there means the model's probabilities are worse calibrated than the baseline's.",
        "",
        _table(
            ["model", "baseline", *METRICS],
            [[m, b, *(d[k] for k in METRICS)] for m, per in result.lifts.items() for b, d in per.items()],
        ),
        "",
        "## Per fold",
        "",
        _table(list(result.fold_metrics.columns), result.fold_metrics.round(4).values.tolist()),
        "",
        "## Plots",
        "",
        *(f"![{p}]({p})" for p in plots),
        "",
    ]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)
