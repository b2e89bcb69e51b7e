"""Models from the MLflow registry, for `python -m models score --model models:/…`.

A reference is `models:/NAME/VERSION`, `models:/NAME@ALIAS`, `models:/NAME/ALIAS` (a version
that is not a number is read as an alias) or `models:/NAME/latest` (the newest version). The
model comes from the registry; its metadata (`model.json`: features, horizon, threshold) from
the run that logged it, checked like a run folder's (`models.artifacts.read_metadata`).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import MlflowSettings
from models.artifacts import Metadata, read_metadata
from models.tracking import TrackingUnavailable, check_reachable, quiet_mlflow, tracking_uri

PREFIX = "models:/"
_REF = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))")


@dataclass(frozen=True)
class RegistryRef:
    name: str
    version: str | None = None  # a number, or "latest"
    alias: str | None = None


def parse(text: str) -> RegistryRef:
    match = _REF.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a registry reference: expected models:/NAME/VERSION or models:/NAME@ALIAS")
    version = match["version"]
    if version is not None and not version.isdigit() and version != "latest":
        return RegistryRef(match["name"], alias=version)
    return RegistryRef(match["name"], version=version, alias=match["alias"])


def load(text: str, settings: MlflowSettings) -> tuple[Any, Metadata]:
    """The registered model and its checked metadata; ValueError naming what is missing."""
    ref = parse(text)
    uri = tracking_uri(settings)
    try:
        check_reachable(uri, settings.timeout_s)
    except TrackingUnavailable as exc:
        raise ValueError(f"cannot load {text}: {exc}") from None
    quiet_mlflow(settings.timeout_s)
    import mlflow
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(uri, registry_uri=uri)
    try:
        if ref.alias is not None:
            version = client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            versions = client.search_model_versions(f"name = '{ref.name}'")
            if not versions:
                raise ValueError(f"no registered model {ref.name!r} in {uri}{_known(client)}")
            wanted = max(int(v.version) for v in versions) if ref.version == "latest" else int(ref.version or 0)
            matches = [v for v in versions if int(v.version) == wanted]
            if not matches:
                have = ", ".join(sorted((str(v.version) for v in versions), key=int))
                raise ValueError(f"model {ref.name!r} has no version {ref.version} in {uri} (versions: {have})")
            version = matches[0]
    except MlflowException as exc:
        raise ValueError(f"cannot load {text} from {uri}: {exc.message.splitlines()[0]}{_known(client)}") from None
    where = f"{PREFIX}{ref.name}/{version.version}"
    if version.run_id is None:
        raise ValueError(f"{where} was not logged by a run: its model.json (features, horizon) is unknown")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(client.download_artifacts(version.run_id, "model.json", tmp))
        meta = read_metadata(path, where)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.sklearn.load_model(where), meta


def _known(client: Any) -> str:
    names = sorted(m.name for m in client.search_registered_models())
    return f" (registered: {', '.join(names)})" if names else " (no model is registered there)"
