"""Calibration metrics for binary probability forecasts.

Bins: ``n_bins`` equal-width bins on [0, 1], closed on the right -- ``[0, 0.1]``, ``(0.1, 0.2]``,
..., ``(0.9, 1.0]`` for 10 bins -- exactly the bins of scikit-learn's
``calibration_curve(strategy="uniform")``, so a probability on an edge counts in the lower bin.
Empty bins are skipped (they carry no weight).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _checked_array(name: str, values) -> np.ndarray:  # noqa: ANN001 - an array-like
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got an array of shape {array.shape}")
    if array.dtype.kind not in "biuf":  # strings, objects, dates: refused, never coerced
        raise ValueError(f"{name} must hold numbers, got values of type {array.dtype}")
    array = array.astype(np.float64)
    missing = int(np.isnan(array).sum())
    if missing:
        raise ValueError(f"{name} holds {missing} NaN value(s); drop or fill them first")
    return array


def _checked(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001 - array-likes
    truth, prob = _checked_array("y_true", y_true), _checked_array("y_prob", y_prob)
    if truth.size == 0:
        raise ValueError("calibration needs at least one outcome; y_true is empty")
    if truth.shape != prob.shape:
        raise ValueError(f"y_true has {truth.size} values but y_prob has {prob.size}")
    if not np.isin(truth, (0.0, 1.0)).all():
        raise ValueError("y_true must hold binary outcomes 0/1")
    if prob.min() < 0 or prob.max() > 1:
        raise ValueError("y_prob must hold probabilities in [0, 1]")
    return truth, prob


def _checked_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def _bin_ids(prob: np.ndarray, n_bins: int) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], prob)  # side="left": right-closed bins, as scikit-learn


def reliability_table(y_true, y_prob, n_bins: int = 10) -> pd.DataFrame:  # noqa: ANN001
    """Per bin: edges, count, mean predicted probability, observed frequency, and their gap.

    Every bin is listed; an empty bin has count 0 and NaN statistics.
    """
    n_bins = _checked_bins(n_bins)
    truth, prob = _checked(y_true, y_prob)
    ids = _bin_ids(prob, n_bins)
    count = np.bincount(ids, minlength=n_bins)
    prob_sum = np.bincount(ids, weights=prob, minlength=n_bins)
    true_sum = np.bincount(ids, weights=truth, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.where(count > 0, prob_sum / count, np.nan)
        fraction_positive = np.where(count > 0, true_sum / count, np.nan)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({
        "bin": np.arange(n_bins),
        "lower": edges[:-1],
        "upper": edges[1:],
        "count": count,
        "mean_predicted": mean_predicted,
        "fraction_positive": fraction_positive,
        "gap": np.abs(fraction_positive - mean_predicted),
    })


def expected_calibration_error(y_true, y_prob, n_bins: int = 10) -> float:  # noqa: ANN001
    """ECE: the count-weighted mean over non-empty bins of |observed frequency - mean predicted|."""
    table = reliability_table(y_true, y_prob, n_bins)
    filled = table[table["count"] > 0]
    return float((filled["count"] * filled["gap"]).sum() / filled["count"].sum())


def maximum_calibration_error(y_true, y_prob, n_bins: int = 10) -> float:  # noqa: ANN001
    """MCE: the largest |observed frequency - mean predicted| over non-empty bins."""
    table = reliability_table(y_true, y_prob, n_bins)
    return float(table.loc[table["count"] > 0, "gap"].max())


def brier_score(y_true, y_prob) -> float:  # noqa: ANN001
    """Mean squared difference between the outcome (0/1) and its predicted probability."""
    truth, prob = _checked(y_true, y_prob)
    return float(np.mean((prob - truth) ** 2))
