"""Training a direction classifier on candle features, and measuring it on held-out data.

One model is trained on all configured symbols together: the features are scale-free ratios and
returns, so symbols share their patterns, the model sees several times more data than a
per-symbol model would, and one registered model keeps promotion and monitoring simple.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from coinpilot_pipelines.features.candle_features import MODEL_FEATURES
from coinpilot_pipelines.ml.calibration import brier_score, expected_calibration_error
from coinpilot_pipelines.ml.labels import LabelSpec
from coinpilot_pipelines.ml.split import SplitWindows, last_block, purged_split

# scikit-learn is imported where it is used: the definitions load in every run process, and most
# runs never fit or measure a model.
if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

MODEL_KINDS = ("logistic", "gradient_boosting")
VALIDATION_FRACTION = 0.1  # the latest share of the training rows that stops gradient boosting


@dataclass(frozen=True)
class TrainingSpec:
    window_days: int = 30
    labels: LabelSpec = LabelSpec()
    test_fraction: float = 0.2
    embargo_bars: int = 15
    model: str = "logistic"
    regularization: float = 1.0  # logistic: C; gradient boosting: L2 regularization
    features: tuple[str, ...] = MODEL_FEATURES  # the inputs this model uses, a subset of MODEL_FEATURES
    random_state: int = 7

    def __post_init__(self) -> None:
        if self.model not in MODEL_KINDS:
            raise ValueError(f"model {self.model!r} is not one of {MODEL_KINDS}")
        unknown = set(self.features) - set(MODEL_FEATURES)
        if unknown or not self.features:
            raise ValueError(f"features must be a non-empty subset of {MODEL_FEATURES}, got {self.features}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")

    def params(self) -> dict[str, object]:
        flat = asdict(self)
        flat.update({f"label_{k}": v for k, v in flat.pop("labels").items()})
        flat["features"] = ",".join(self.features)
        return flat


@dataclass(frozen=True)
class Metrics:
    auc: float
    brier: float
    ece: float
    log_loss: float
    count: int
    positive_rate: float


def measure(y_true: np.ndarray, y_prob: np.ndarray) -> Metrics:
    from sklearn.metrics import log_loss, roc_auc_score

    return Metrics(
        auc=float(roc_auc_score(y_true, y_prob)) if len(np.unique(y_true)) == 2 else float("nan"),
        brier=brier_score(y_true, y_prob),
        ece=expected_calibration_error(y_true, y_prob),
        log_loss=float(log_loss(y_true, np.clip(y_prob, 1e-15, 1 - 1e-15), labels=[0, 1])),
        count=len(y_true),
        positive_rate=float(np.mean(y_true)),
    )


@dataclass
class Dataset:
    """Valid feature rows joined to their labels: every bar whose forward return is known.

    ``up`` is the realized direction (1 when the forward return is above zero), what a held-out
    bar is evaluated against; ``labelled`` marks bars outside the dead band, the only ones a model
    is trained on (there ``up`` equals the label). Inference scores every valid bar, so held-out
    evaluation keeps the dead-band bars too.
    """

    features: pd.DataFrame  # MODEL_FEATURES
    up: np.ndarray
    labelled: np.ndarray
    times: pd.Series
    symbols: pd.Series

    def subset(self, mask: np.ndarray) -> Dataset:
        return Dataset(self.features[mask].reset_index(drop=True), self.up[mask], self.labelled[mask],
                       self.times[mask].reset_index(drop=True), self.symbols[mask].reset_index(drop=True))

    def __len__(self) -> int:
        return len(self.up)


def build_dataset(features: pd.DataFrame, labels: pd.DataFrame) -> Dataset:
    """Join on (symbol, open_time); valid feature rows whose forward return is known are kept."""
    joined = features[features["is_valid"]].merge(
        labels[["symbol", "open_time", "forward_return", "label"]], on=["symbol", "open_time"], how="inner"
    ).sort_values(["open_time", "symbol"], kind="stable").reset_index(drop=True)
    return Dataset(joined[list(MODEL_FEATURES)].astype("float64"),
                   (joined["forward_return"] > 0).to_numpy(dtype=int), joined["label"].notna().to_numpy(),
                   joined["open_time"], joined["symbol"])


def split(dataset: Dataset, spec: TrainingSpec, interval: timedelta) -> tuple[Dataset, Dataset, SplitWindows]:
    windows = last_block(dataset.times, spec.test_fraction)
    train, test = purged_split(dataset.times, windows, horizon=interval * spec.labels.horizon_bars,
                               embargo=interval * spec.embargo_bars)
    return dataset.subset(train), dataset.subset(test), windows


def early_stopping_split(times: pd.Series, spec: TrainingSpec, interval: timedelta) -> tuple[np.ndarray, np.ndarray]:
    """Masks (fit, validation): the latest ``VALIDATION_FRACTION`` of the training rows validates,
    and fit rows whose label reaches into it are purged, as for the held-out split. A random
    slice of overlapping labels would validate on bars whose futures the fit rows already saw."""
    return purged_split(times, last_block(times, VALIDATION_FRACTION), horizon=interval * spec.labels.horizon_bars,
                        embargo=timedelta(0))


def fit(train: Dataset, spec: TrainingSpec, interval: timedelta) -> Pipeline:
    """Fit on the training rows outside the dead band."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labelled = train.subset(train.labelled)
    if len(np.unique(labelled.up)) < 2:
        raise ValueError(f"the training window holds only one class ({len(labelled)} labelled bars); widen it")
    # The model picks its own inputs from the full feature frame, so any two models (say a
    # champion and a challenger on other features) can score the same rows.
    inputs = make_pipeline(ColumnTransformer([("inputs", "passthrough", list(spec.features))], remainder="drop"),
                           StandardScaler())
    if spec.model == "logistic":
        estimator = LogisticRegression(C=spec.regularization, max_iter=1000)
        return make_pipeline(inputs, estimator).fit(labelled.features, labelled.up)
    fitting, validation = early_stopping_split(labelled.times, spec, interval)
    inputs.fit(labelled.features[fitting])
    estimator = HistGradientBoostingClassifier(l2_regularization=spec.regularization, max_iter=200, early_stopping=True,
                                               random_state=spec.random_state)
    estimator.fit(inputs.transform(labelled.features[fitting]), labelled.up[fitting],
                  X_val=inputs.transform(labelled.features[validation]), y_val=labelled.up[validation])
    return make_pipeline(inputs, estimator)


def predict_up(model: Pipeline, features: pd.DataFrame) -> np.ndarray:
    """Probability that the price is higher after the horizon."""
    return model.predict_proba(features[list(MODEL_FEATURES)])[:, 1]
