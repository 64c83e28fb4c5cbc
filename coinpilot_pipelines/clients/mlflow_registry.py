"""MLflow: the tracking server and model registry, through `MlflowClient`.

The only module that talks to MLflow. Runs carry parameters, metrics, the data window, the
feature-set version and the Dagster run id; models are registered under one name and move
between the aliases ``challenger`` and ``champion`` (registry stages are deprecated).

Every call goes through one `MlflowClient` bound to the configured tracking and registry URI.
MLflow's fluent API (``mlflow.start_run``, ``mlflow.sklearn.log_model``, ``models:/`` URIs) reads
the process-wide tracking URI instead, whose default is ``sqlite:///mlflow.db`` in the working
directory: a process that loaded the champion that way read (and created) the wrong store. Models
are therefore saved to a temporary directory and uploaded as run artifacts, and loaded by
downloading them through the client.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from typing import TYPE_CHECKING

import pandas as pd

# MLflow (and scikit-learn under it) is imported where it is used: a run process that never
# touches the registry, such as the order executor's, starts about 2 s sooner.
if TYPE_CHECKING:
    from matplotlib.figure import Figure

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
# skops loads only the types it is told to trust; these are what gradient boosting pickles.
SKOPS_TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


@dataclass(frozen=True)
class RegisteredModel:
    version: str
    run_id: str


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    experiment_id: str
    artifact_uri: str


def run_url(ui_url: str, run: LoggedRun) -> str:
    """The run's page in the MLflow UI at ``ui_url``."""
    return f"{ui_url.rstrip('/')}/#/experiments/{run.experiment_id}/runs/{run.run_id}"


def model_version_url(ui_url: str, model_name: str, version: str) -> str:
    """The model version's page in the MLflow UI at ``ui_url``."""
    return f"{ui_url.rstrip('/')}/#/models/{quote(model_name, safe='')}/versions/{version}"


def _already_exists(error: Exception) -> bool:
    """Whether an `MlflowException` says another process created the thing first."""
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    return getattr(error, "error_code", None) == ErrorCode.Name(RESOURCE_ALREADY_EXISTS)


def _pinned(package: str) -> str:
    return f"{package}=={importlib.metadata.version(package)}"


class ModelRegistry:
    def __init__(self, tracking_uri: str, *, model_name: str, experiment: str, artifact_root: Path | None) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.experiment = experiment
        self.artifact_root = artifact_root
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def experiment_id(self, name: str | None = None) -> str:
        from mlflow.exceptions import MlflowException

        name = name or self.experiment
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = (self.artifact_root / name).as_uri() if self.artifact_root else None
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException as exc:  # another process created it first
            if not _already_exists(exc):
                raise
            return self.client.get_experiment_by_name(name).experiment_id

    def _log_run(self, experiment: str, *, params: dict, metrics: dict, tags: dict,
                 figures: dict[str, Figure]) -> LoggedRun:
        from mlflow.entities import Metric, Param

        run = self.client.create_run(self.experiment_id(experiment), tags={k: str(v) for k, v in tags.items()})
        run_id, started = run.info.run_id, run.info.start_time  # metrics carry the run's own start time
        self.client.log_batch(
            run_id, metrics=[Metric(k, float(v), started, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()])
        for name, figure in figures.items():
            self.client.log_figure(run_id, figure, name)
        return LoggedRun(run_id, run.info.experiment_id, run.info.artifact_uri)

    def log_model_run(self, *, model, example: pd.DataFrame, params: dict, metrics: dict, tags: dict,  # noqa: ANN001
                      figures: dict[str, Figure], table: pd.DataFrame | None = None) -> tuple[RegisteredModel, LoggedRun]:
        """Log a training run and register its model as a new version under `model_name`."""
        import mlflow.sklearn
        from mlflow.models import infer_signature

        logged = self._log_run(self.experiment, params=params, metrics=metrics, tags=tags, figures=figures)
        if table is not None:
            self.client.log_table(logged.run_id, table, "reliability_bins.json")
        with tempfile.TemporaryDirectory(prefix="coinpilot-model-") as scratch:
            path = Path(scratch) / MODEL_ARTIFACT
            mlflow.sklearn.save_model(
                model, path, signature=infer_signature(example, model.predict_proba(example)),
                pyfunc_predict_fn="predict_proba", input_example=example.head(3), serialization_format="skops",
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
                # Pinned explicitly: inferring requirements would re-import the environment.
                pip_requirements=[_pinned("scikit-learn"), _pinned("skops"), _pinned("numpy")],
            )
            self.client.log_artifacts(logged.run_id, str(path), MODEL_ARTIFACT)
        self.client.set_terminated(logged.run_id)
        self._ensure_registered_model()
        version = self.client.create_model_version(
            self.model_name, source=f"{logged.artifact_uri}/{MODEL_ARTIFACT}", run_id=logged.run_id)
        return RegisteredModel(str(version.version), logged.run_id), logged

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(self.model_name)
        except MlflowException as exc:  # registered before (or by a concurrent retrain): fine
            if not _already_exists(exc):
                raise

    def log_report_run(self, *, metrics: dict, tags: dict, figures: dict[str, Figure], experiment: str) -> LoggedRun:
        """Log a monitoring run (no model)."""
        logged = self._log_run(experiment, params={}, metrics=metrics, tags=tags, figures=figures)
        self.client.set_terminated(logged.run_id)
        return logged

    def alias_version(self, alias: str) -> RegisteredModel | None:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException:
            return None
        return RegisteredModel(str(found.version), found.run_id)

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, version)

    def load(self, version: str):  # noqa: ANN201 - a scikit-learn estimator
        # The registry resolves where the version's files are (a run's artifacts, or a logged
        # model's for versions registered by older code): a plain artifact location, which
        # MLflow reads without consulting any tracking URI.
        import mlflow.sklearn

        return mlflow.sklearn.load_model(self.client.get_model_version_download_uri(self.model_name, version))

    def run_params(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.params)
