"""MLflow: the tracking server and model registry, through `MlflowClient`.

The only module that talks to MLflow. Runs carry parameters, metrics, the data window, the
feature-set version and the Dagster run id; models are registered under one name and move
between the aliases ``challenger`` and ``champion`` (registry stages are deprecated).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class RegisteredModel:
    version: str
    run_id: str


def _pinned(package: str) -> str:
    return f"{package}=={importlib.metadata.version(package)}"


class ModelRegistry:
    def __init__(self, tracking_uri: str, *, model_name: str, experiment: str, artifact_root: Path | None) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.experiment = experiment
        self.artifact_root = artifact_root
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def experiment_id(self, name: str | None = None) -> str:
        name = name or self.experiment
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = (self.artifact_root / name).as_uri() if self.artifact_root else None
        return self.client.create_experiment(name, artifact_location=location)

    def log_model_run(self, *, model, example: pd.DataFrame, params: dict, metrics: dict, tags: dict,  # noqa: ANN001
                      figures: dict[str, Figure], table: pd.DataFrame | None = None) -> RegisteredModel:
        """Log a training run and register its model as a new version under `model_name`."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        signature = infer_signature(example, model.predict_proba(example))
        with mlflow.start_run(experiment_id=self.experiment_id(), tags=tags) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            for name, figure in figures.items():
                mlflow.log_figure(figure, name)
            if table is not None:
                mlflow.log_table(table, "reliability_bins.json")
            info = mlflow.sklearn.log_model(
                model, name="model", signature=signature, pyfunc_predict_fn="predict_proba",
                input_example=example.head(3), registered_model_name=self.model_name,
                serialization_format="skops",
                # Pinned explicitly: inferring requirements would re-import the environment.
                pip_requirements=[_pinned("scikit-learn"), _pinned("skops"), _pinned("numpy")],
            )
        return RegisteredModel(str(info.registered_model_version), run.info.run_id)

    def log_report_run(self, *, metrics: dict, tags: dict, figures: dict[str, Figure], experiment: str) -> tuple[str, str]:
        """Log a monitoring run (no model); returns its run id and artifact URI."""
        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(experiment_id=self.experiment_id(experiment), tags=tags) as run:
            mlflow.log_metrics(metrics)
            for name, figure in figures.items():
                mlflow.log_figure(figure, name)
        return run.info.run_id, run.info.artifact_uri

    def alias_version(self, alias: str) -> RegisteredModel | None:
        try:
            found = self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException:
            return None
        return RegisteredModel(str(found.version), found.run_id)

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, version)

    def load(self, version: str):  # noqa: ANN201 - a scikit-learn estimator
        return mlflow.sklearn.load_model(f"models:/{self.model_name}/{version}")

    def run_params(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.params)

