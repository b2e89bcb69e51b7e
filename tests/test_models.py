"""Models: no leakage, real learning where there is signal, none where there is not, honest reports."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

import lake
from models import artifacts, report
from models.evaluation import beats, metrics
from models.features import FEATURES, features, on_grid
from models.scoring import score
from models.splits import walk_forward
from models.synthetic import bars, garch_returns, write_lake
from models.training import TrainConfig, train

HOURS = 6


@pytest.fixture(scope="module")
def garch_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("garch") / "lake"
    write_lake(path, "GARCHUSD", "garch", HOURS, seed=3)
    return path


@pytest.fixture(scope="module")
def walk_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("walk") / "lake"
    write_lake(path, "WALKUSD", "random_walk", 2 * HOURS, seed=5)  # more periods: less room for chance drift
    return path


def _config(task: str, symbol: str, **kw: object) -> TrainConfig:
    return replace(TrainConfig(task=task, symbol=symbol), **kw)  # type: ignore[arg-type]


def test_fast_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(5, 200))
        y = (rng.random(n) < 0.3).astype(float)
        p = np.round(rng.random(n), int(rng.integers(1, 4)))  # with ties
        if len(np.unique(y)) < 2:
            continue
        m = metrics(y, p)
        assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
        assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
        assert m["brier"] == pytest.approx(brier_score_loss(y, p))


def test_features_at_t_do_not_change_when_later_data_changes() -> None:
    rng = np.random.default_rng(1)
    b = bars("X", pd.Timestamp("2026-01-05", tz="UTC"), garch_returns(2000, rng), rng)
    b = b.rename(columns={"window_start": "time"})
    for w in (60, 300):
        b[f"volatility_{w}s"] = rng.random(len(b))
        b[f"realized_vol_{w}s"] = rng.random(len(b))
    before = features(on_grid(b, 1))
    for cut in (500, 1200, 1999):
        changed = b.copy()
        later = changed.index >= cut
        for column in ("open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "sell_volume",
                       "volatility_60s", "realized_vol_300s"):  # fmt: skip
            changed.loc[later, column] = changed.loc[later, column] * rng.uniform(0.5, 2.0, later.sum())
        changed.loc[later, "trade_count"] += 7
        after = features(on_grid(changed, 1))
        t = on_grid(b, 1).index[cut - 1]  # the grid row holding bar cut-1: data up to its end
        pd.testing.assert_frame_equal(before.loc[:t], after.loc[:t])
        assert not before.loc[t:].iloc[1:].equals(after.loc[t:].iloc[1:])  # the change was real


def test_walk_forward_purges_the_horizon() -> None:
    folds = walk_forward(10_000, 5, purge=60, min_train=1_000)
    assert len(folds) == 5
    for fold in folds:
        assert fold.train.max() + 60 < fold.test.min()


def test_vol_spike_learns_volatility_clustering(garch_lake: Path) -> None:
    result = train(lake.connect(garch_lake), _config("vol_spike", "GARCHUSD"), resamples=60)
    best = result.best_model()
    assert beats(result.lifts[best]["prior"]), result.lifts[best]["prior"]["roc_auc"]
    assert result.overall[best]["roc_auc"].value > 0.65
    text = "\n".join(report.verdicts(result))
    assert f"{best} beats prior" in text and "persistence" in text  # the lift over persistence, either way


def test_direction_does_not_beat_the_prior_on_a_random_walk(walk_lake: Path, tmp_path: Path) -> None:
    result = train(lake.connect(walk_lake), _config("direction", "WALKUSD"), resamples=60)
    for model in ("sgd", "hgb"):
        assert not beats(result.lifts[model]["prior"])
        assert abs(result.overall[model]["roc_auc"].value - 0.5) < 0.08
    path = report.write(result, tmp_path / "run", "walk")
    text = path.read_text()
    assert "sgd does not beat prior" in text and "hgb does not beat prior" in text
    assert {"roc_pr.png", "calibration.png", "importance.png"} <= {p.name for p in path.parent.iterdir()}


def test_shuffled_labels_give_auc_near_a_half(garch_lake: Path) -> None:
    """A null check of the whole pipeline: labels shuffled in time leave nothing to learn."""
    result = train(lake.connect(garch_lake), _config("direction", "GARCHUSD", shuffle_labels=True), resamples=60)
    for model in ("sgd", "hgb"):
        assert abs(result.overall[model]["roc_auc"].value - 0.5) < 0.08
        assert not beats(result.lifts[model]["prior"])


def _train_cli(lake_dir: Path, runs: Path, run_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "models", "--lake", str(lake_dir), "train", "--task", "vol_spike", "--symbol",
         "GARCHUSD", "--folds", "3", "--resamples", "30", "--runs", str(runs), "--run-id", run_id, *extra,
         *([] if "--tracking-uri" in extra else ["--no-tracking"])],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_same_seed_same_metrics_and_schema_checked_on_load(garch_lake: Path, tmp_path: Path) -> None:
    first, second = _train_cli(garch_lake, tmp_path, "a"), _train_cli(garch_lake, tmp_path, "b")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    meta_a = json.loads((tmp_path / "a" / "model.json").read_text())
    meta_b = json.loads((tmp_path / "b" / "model.json").read_text())
    assert meta_a["metrics"] == meta_b["metrics"] and meta_a["features"] == list(FEATURES)
    assert {"scikit-learn", "numpy", "python"} <= set(meta_a["versions"]) and meta_a["seed"] == 7
    model, meta = artifacts.load(tmp_path / "a")
    assert meta.model in ("sgd", "hgb") and hasattr(model, "predict_proba")
    meta_a["features"] = [*meta_a["features"][:-1], "tod_tan"]
    (tmp_path / "a" / "model.json").write_text(json.dumps(meta_a))
    with pytest.raises(artifacts.SchemaMismatch, match="retrain"):
        artifacts.load(tmp_path / "a")
    refused = subprocess.run(
        [sys.executable, "-m", "models", "--lake", str(garch_lake), "score", "--model", str(tmp_path / "a")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "other features" in refused.stderr


def test_score_writes_predictions_the_lake_and_dashboard_show(
    garch_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from streamlit.testing.v1 import AppTest

    from core.settings import REPO_ROOT

    lake_dir = tmp_path / "lake"
    shutil.copytree(garch_lake, lake_dir)
    assert _train_cli(lake_dir, tmp_path / "runs", "m").returncode == 0
    written = score(lake_dir, tmp_path / "runs" / "m")
    assert written > 3000  # the last hour
    con = lake.connect(lake_dir)
    rows = con.sql("SELECT count(*), count(outcome), min(probability), max(probability) FROM predictions").fetchall()[0]
    assert rows[0] == written and rows[0] - rows[1] == 60  # the last horizon has no outcome yet
    assert 0 <= rows[2] <= rows[3] <= 1
    # Scoring again finds nothing new, and never duplicates a prediction.
    score(lake_dir, tmp_path / "runs" / "m")
    again = lake.connect(lake_dir)
    assert again.sql("SELECT count(*) FROM predictions").fetchall() == [(written,)]
    monkeypatch.setenv("LAKE_PATH", str(lake_dir))
    at = AppTest.from_file(str(REPO_ROOT / "dashboard" / "app.py"), default_timeout=60).run()
    at.switch_page("pages/predictions.py").run()
    assert not at.exception
    assert any("GARCHUSD" in str(df.value.to_dict()) for df in at.dataframe)
    assert at.get("plotly_chart")
    # The features follow the windows recorded with the lake's volatility: other windows, other
    # features, and a model trained on the old ones is refused rather than fed the wrong columns.
    from core.tables import record_windows

    record_windows(lake_dir, (30,))
    with pytest.raises(artifacts.SchemaMismatch, match="volatility windows differ"):
        score(lake_dir, tmp_path / "runs" / "m")


def test_update_learns_incrementally_from_newer_rows(garch_lake: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    trained = _train_cli(garch_lake, runs, "early", "--until", "2026-01-05T04:00", "--save", "sgd")
    assert trained.returncode == 0, trained.stderr
    before, meta = artifacts.load(runs / "early")
    coef = before.named_steps["sgd"].coef_.copy()
    out = subprocess.run(
        [sys.executable, "-m", "models", "--lake", str(garch_lake), "update", "--model", str(runs / "early"),
         "--out", str(runs / "later")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "learned from" in out.stdout
    after, new_meta = artifacts.load(runs / "later")
    assert not np.allclose(after.named_steps["sgd"].coef_, coef)
    assert new_meta.training_range[0] == meta.training_range[0] < meta.training_range[1] < new_meta.training_range[1]
    assert new_meta.features == meta.features == list(FEATURES)
