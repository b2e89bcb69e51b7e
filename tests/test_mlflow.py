"""MLflow tracking and the registry: what `python -m models train` logs, read back through MLflow's
client; scoring from the registry equal to scoring from the run folder; an unreachable server is
one warning line; and `make mlflow`'s real UI server (full mlflow, own venv) over the same store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import mlflow
import pytest

from core.settings import REPO_ROOT, MlflowSettings
from models import registry, tracking
from models.evaluation import METRICS
from models.scoring import score
from models.synthetic import write_lake
from tests.support.ports import free_port

SYMBOL = "GARCHUSD"
MODEL = "garch-vol"
FOLDS = 3


def _train(
    lake: Path, runs: Path, run_id: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "models", "--lake", str(lake), "train", "--task", "vol_spike", "--symbol", SYMBOL,
         "--folds", str(FOLDS), "--resamples", "20", "--runs", str(runs), "--run-id", run_id, *extra],
        capture_output=True, text=True, timeout=600, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mlflow-lake") / "lake"
    write_lake(path, SYMBOL, "garch", 4, seed=3)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite store for the module, migrated once (Alembic takes seconds on a new database)."""
    db = tmp_path_factory.mktemp("mlflow-store") / "mlflow.db"
    uri = f"sqlite:///{db}"
    tracking.quiet_mlflow(5.0)
    mlflow.MlflowClient(uri).search_experiments()
    return uri


@pytest.fixture(scope="module")
def trained(small_lake: Path, store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder whose training was logged to `store` and registered as MODEL."""
    runs = tmp_path_factory.mktemp("runs")
    out = _train(small_lake, runs, "tracked", "--tracking-uri", store, "--register", MODEL)
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr, out.stderr
    assert f"registered as models:/{MODEL}/1" in out.stdout
    return runs / "tracked"


def _run(store: str) -> mlflow.entities.Run:
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("vol_spike")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id], filter_string="attributes.run_name = 'tracked'")
    return run


def test_training_logs_params_metrics_artifacts_and_the_model(
    trained: Path, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # models:/ URIs resolve through it
    meta = json.loads((trained / "model.json").read_text())
    run = _run(store)
    client = mlflow.MlflowClient(store)
    params = run.data.params
    assert {k: params[k] for k in ("task", "symbol", "exchange", "horizon_s", "step_s", "folds", "seed")} == {
        "task": "vol_spike", "symbol": SYMBOL, "exchange": meta["exchange"], "horizon_s": "60", "step_s": "1",
        "folds": str(FOLDS), "seed": "7",
    }  # fmt: skip
    assert params["features"].split(",") == meta["features"]
    # Overall metrics with their intervals, for the models and the baselines: the report's numbers.
    metrics = run.data.metrics
    for scorer, per in meta["metrics"].items():
        for metric in METRICS:
            for bound, key in (("value", ""), ("low", "_low"), ("high", "_high")):
                expected, got = per[metric][bound], metrics[f"{scorer}.{metric}{key}"]
                assert got == pytest.approx(expected, nan_ok=True), (scorer, metric, bound)
    assert set(meta["metrics"]) == {"prior", "persistence", "sgd", "hgb"}
    lifts = [k for k in metrics if k.startswith("lift.")]
    assert len(lifts) == 2 * 2 * len(METRICS) * 3  # two models x two baselines x metrics x (value, low, high)
    assert {"lift.sgd-prior.roc_auc", "lift.hgb-persistence.brier_high"} <= set(lifts)
    # Per fold: one step per fold, for every scorer.
    history = client.get_metric_history(run.info.run_id, "fold.hgb.roc_auc")
    assert sorted(m.step for m in history) == list(range(FOLDS))
    # The report, its plots and model.json; the report as written in the run folder.
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "model.json", "roc_pr.png", "calibration.png", "importance.png", "model"} - {"model"} <= names
    got = Path(client.download_artifacts(run.info.run_id, "report.md", str(tmp_path)))
    assert got.read_text() == (trained / "report.md").read_text()
    # The model, with its input signature (the features by name, as doubles), registered as version 1.
    (version,) = client.search_model_versions(f"name = '{MODEL}'")
    assert version.run_id == run.info.run_id
    local = mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", dst_path=str(tmp_path), tracking_uri=store)
    signature = mlflow.models.Model.load(local).signature
    assert signature is not None
    assert [c.name for c in signature.inputs.inputs] == meta["features"]
    assert {c.type.name for c in signature.inputs.inputs} == {"double"}


def _predictions(lake: Path) -> list[tuple[object, ...]]:
    return duckdb.sql(
        f"SELECT * EXCLUDE (scored_at) FROM read_parquet('{lake}/predictions/**/*.parquet') ORDER BY time"
    ).fetchall()


def test_scoring_from_the_registry_equals_scoring_from_the_run_folder(
    trained: Path, store: str, small_lake: Path, tmp_path: Path
) -> None:
    import shutil

    mlflow.MlflowClient(store).set_registered_model_alias(MODEL, "champion", "1")
    settings = MlflowSettings(tracking_uri=store)
    lakes = {}
    for name, ref in (("folder", trained), ("version", f"models:/{MODEL}/1"), ("alias", f"models:/{MODEL}@champion")):
        lakes[name] = tmp_path / name
        shutil.copytree(small_lake, lakes[name])
        assert score(lakes[name], ref, settings=settings) > 3000
    expected = _predictions(lakes["folder"])
    assert _predictions(lakes["version"]) == expected
    assert _predictions(lakes["alias"]) == expected
    # The CLI takes the same reference, from MLFLOW_TRACKING_URI.
    out = subprocess.run(
        [sys.executable, "-m", "models", "--lake", str(lakes["alias"]), "score", "--model", f"models:/{MODEL}/latest"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "MLFLOW_TRACKING_URI": store},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "wrote 60 predictions" in out.stdout  # only the rows whose outcome was not known yet


def test_registry_references_and_their_errors(trained: Path, store: str) -> None:
    assert registry.parse("models:/m/3") == registry.RegistryRef("m", version="3")
    assert registry.parse("models:/m@prod") == registry.RegistryRef("m", alias="prod")
    assert registry.parse("models:/m/prod") == registry.RegistryRef("m", alias="prod")
    assert registry.parse("models:/m/latest") == registry.RegistryRef("m", version="latest")
    with pytest.raises(ValueError, match="not a registry reference"):
        registry.parse("models:/m/1/2")
    settings = MlflowSettings(tracking_uri=store)
    with pytest.raises(ValueError, match=rf"no registered model 'nope' .*\(registered: {MODEL}\)"):
        registry.load("models:/nope/1", settings)
    with pytest.raises(ValueError, match=r"has no version 7 .*\(versions: 1\)"):
        registry.load(f"models:/{MODEL}/7", settings)
    with pytest.raises(ValueError, match="alias"):
        registry.load(f"models:/{MODEL}@nobody", settings)


def test_an_unreachable_tracking_server_is_one_warning_and_the_run_is_written(small_lake: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    out = _train(small_lake, tmp_path, "offline", env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"})
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, out.stderr
    assert f"MLflow server http://127.0.0.1:{port} is unreachable" in warnings[0]
    assert "Connection refused" in warnings[0] and str(tmp_path / "offline") in warnings[0]
    assert (tmp_path / "offline" / "report.md").is_file() and (tmp_path / "offline" / "model.joblib").is_file()
    assert "MLflow: run" not in out.stdout
    assert time.monotonic() - started < 300


def test_a_server_that_never_answers_is_unreachable_after_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(tracking.TrackingUnavailable, match=f"MLflow server {uri} is unreachable .*timed out"):
            tracking.check_reachable(uri, timeout_s=1.0)
        assert time.monotonic() - started < 10


@pytest.mark.integration
def test_make_mlflow_serves_the_ui_over_the_store(trained: Path, store: str, tmp_path: Path) -> None:
    """The real server from `.venv-mlflow` (full mlflow) shows the run the project's mlflow-skinny logged."""
    from infra import mlflow_ui
    from tests.support.browser import ARTIFACTS, browser_page

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.mlflow_ui", "--port", str(port), "--store-uri", store],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # the first use builds .venv-mlflow
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the MLflow UI did not start: {proc.stdout.read() if proc.stdout else ''}")
                time.sleep(0.5)
        run = _run(store)
        request = urllib.request.Request(
            f"{url}/api/2.0/mlflow/runs/get?run_id={run.info.run_id}", headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            served = json.loads(response.read())["run"]
        served_metrics = {m["key"]: m["value"] for m in served["data"]["metrics"]}
        assert served_metrics["hgb.roc_auc"] == pytest.approx(run.data.metrics["hgb.roc_auc"])
        with urllib.request.urlopen(
            f"{url}/get-artifact?path=report.md&run_uuid={run.info.run_id}", timeout=30
        ) as response:
            assert response.read().decode() == (trained / "report.md").read_text()
        # A real browser renders the run's page (the UI is a single-page app).
        with browser_page(tmp_path) as page:
            page.goto(f"{url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")  # type: ignore[attr-defined]
            page.get_by_text("hgb.roc_auc").first.wait_for(timeout=60_000)  # type: ignore[attr-defined]
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "mlflow-run.png"))  # type: ignore[attr-defined]
        assert mlflow_ui.VENV.joinpath(".installed").read_text().startswith(f"mlflow=={mlflow_ui.mlflow_version()}")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
    for pattern in (f"--port {port}", "huey_consumer mlflow.server"):
        leftover = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
        assert leftover.stdout == "", f"{pattern!r} outlived make mlflow"


def test_the_ui_lock_pins_the_projects_mlflow_version() -> None:
    from infra import mlflow_ui

    pins = dict(line.split("==") for line in mlflow_ui.LOCK.read_text().split() if "==" in line)
    assert pins["mlflow"] == pins["mlflow-skinny"] == pins["mlflow-tracing"] == mlflow_ui.mlflow_version()
