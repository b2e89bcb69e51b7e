"""A trained model on disk with everything needed to trust and reuse it."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import sklearn

from models.features import feature_names, windows_in


class SchemaMismatch(ValueError):
    """The saved model expects other features than this code computes."""


@dataclass(frozen=True)
class Metadata:
    model_id: str
    model: str  # sgd | hgb
    task: str
    symbol: str
    exchange: str
    horizon_s: int
    step_s: int
    threshold: float | None  # vol_spike: the realized-vol threshold the labels used
    features: list[str]
    feature_dtype: str
    training_range: list[str]
    metrics: dict[str, Any]
    seed: int
    versions: dict[str, str]

    @property
    def horizon_steps(self) -> int:
        return max(1, self.horizon_s // self.step_s)


def versions() -> dict[str, str]:
    import numpy
    import pandas

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "numpy": numpy.__version__, "pandas": pandas.__version__}  # fmt: skip


def save(folder: Path, model: Any, meta: Metadata) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    (folder / "model.json").write_text(json.dumps(asdict(meta), indent=2, default=str))
    return folder


def read_metadata(path: Path, where: Path | str) -> Metadata:
    """A model.json, checked: SchemaMismatch if its features are not today's `feature_names` (for
    the volatility windows it was trained with). `where` names the model in the message."""
    meta = Metadata(**json.loads(path.read_text()))
    current = list(feature_names(windows_in(meta.features)))
    if meta.features != current or meta.feature_dtype != "float64":
        missing = sorted(set(current) - set(meta.features))
        extra = sorted(set(meta.features) - set(current))
        raise SchemaMismatch(
            f"{where}: the model was trained on other features (missing now: {extra}, new now: {missing}, "
            f"order or dtype changed otherwise); retrain it"
        )
    return meta


def load(folder: Path) -> tuple[Any, Metadata]:
    """The model of a run folder and its checked metadata (`read_metadata`)."""
    meta = read_metadata(folder / "model.json", folder)
    return joblib.load(folder / "model.joblib"), meta


def check_lake_features(meta: Metadata, columns: list[str], folder: Path | str = "") -> None:
    """SchemaMismatch when the lake's features (its volatility windows) are not the model's."""
    if list(columns) != meta.features:
        raise SchemaMismatch(
            f"{folder or meta.model_id}: the model was trained on {meta.features}, but this lake gives "
            f"{list(columns)} (its volatility windows differ); retrain it on this lake"
        )
