"""Training a direction classifier on candle features, and measuring it on held-out data.

One model is trained on all configured symbols together: the features are scale-free ratios and
returns, so symbols share their patterns, the model sees several times more data than a
per-symbol model would, and one registered model keeps promotion and monitoring simple.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from coinpilot_pipelines.features.candle_features import MODEL_FEATURES
from coinpilot_pipelines.ml.calibration import brier_score, expected_calibration_error
from coinpilot_pipelines.ml.labels import LabelSpec
from coinpilot_pipelines.ml.split import SplitWindows, last_block, purged_split

MODEL_KINDS = ("logistic", "gradient_boosting")


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
    """Valid feature rows joined to their labels (rows inside the dead band are left out)."""

    features: pd.DataFrame  # MODEL_FEATURES
    target: np.ndarray
    times: pd.Series
    symbols: pd.Series

    def subset(self, mask: np.ndarray) -> Dataset:
        return Dataset(self.features[mask].reset_index(drop=True), self.target[mask],
                       self.times[mask].reset_index(drop=True), self.symbols[mask].reset_index(drop=True))

    def __len__(self) -> int:
        return len(self.target)


def build_dataset(features: pd.DataFrame, labels: pd.DataFrame) -> Dataset:
    """Join on (symbol, open_time); only valid feature rows with a label are kept."""
    joined = features[features["is_valid"]].merge(
        labels[["symbol", "open_time", "label"]].dropna(subset=["label"]), on=["symbol", "open_time"], how="inner"
    ).sort_values(["open_time", "symbol"], kind="stable").reset_index(drop=True)
    return Dataset(joined[list(MODEL_FEATURES)].astype("float64"), joined["label"].astype(int).to_numpy(),
                   joined["open_time"], joined["symbol"])


def split(dataset: Dataset, spec: TrainingSpec, interval: timedelta) -> tuple[Dataset, Dataset, SplitWindows]:
    windows = last_block(dataset.times, spec.test_fraction)
    train, test = purged_split(dataset.times, windows, horizon=interval * spec.labels.horizon_bars,
                               embargo=interval * spec.embargo_bars)
    return dataset.subset(train), dataset.subset(test), windows


def fit(train: Dataset, spec: TrainingSpec) -> Pipeline:
    if len(np.unique(train.target)) < 2:
        raise ValueError(f"the training window holds only one class ({len(train)} labelled bars); widen it")
    if spec.model == "logistic":
        estimator = LogisticRegression(C=spec.regularization, max_iter=1000)
    else:
        estimator = HistGradientBoostingClassifier(l2_regularization=spec.regularization, max_iter=200,
                                                   random_state=spec.random_state)
    # The model picks its own inputs from the full feature frame, so any two models (say a
    # champion and a challenger on other features) can score the same rows.
    selector = ColumnTransformer([("inputs", "passthrough", list(spec.features))], remainder="drop")
    return make_pipeline(selector, StandardScaler(), estimator).fit(train.features, train.target)


def predict_up(model: Pipeline, features: pd.DataFrame) -> np.ndarray:
    """Probability that the price is higher after the horizon."""
    return model.predict_proba(features[list(MODEL_FEATURES)])[:, 1]
