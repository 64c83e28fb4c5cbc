"""Feature drift between the training window and recent bars.

- Mean shift z: the recent mean against the means of equally long blocks of the training window.
  Feature values are strongly autocorrelated (rolling windows), so the spread of block means --
  not the per-bar standard deviation -- is the honest yardstick for "is this mean unusual".
- PSI over 10 bins cut at the training window's deciles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_BLOCKS = 5
PSI_FLOOR = 1e-4  # an empty bin still counts a little, so PSI stays finite


@dataclass(frozen=True)
class Drift:
    feature: str
    z: float
    psi: float


def mean_shift_z(training: np.ndarray, recent: np.ndarray) -> float:
    training, recent = training[np.isfinite(training)], recent[np.isfinite(recent)]
    block = len(recent)
    blocks = len(training) // block if block else 0
    if block == 0 or blocks < MIN_BLOCKS:
        return float("nan")
    means = training[: blocks * block].reshape(blocks, block).mean(axis=1)
    spread = means.std(ddof=1)
    if spread == 0:
        return 0.0 if recent.mean() == means.mean() else float("inf")
    return float((recent.mean() - means.mean()) / spread)


def population_stability_index(training: np.ndarray, recent: np.ndarray, bins: int = 10) -> float:
    training, recent = training[np.isfinite(training)], recent[np.isfinite(recent)]
    if len(training) == 0 or len(recent) == 0:
        return float("nan")
    edges = np.unique(np.quantile(training, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(training, edges)[0] / len(training)
    actual = np.histogram(recent, edges)[0] / len(recent)
    expected, actual = np.maximum(expected, PSI_FLOOR), np.maximum(actual, PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def feature_drift(training: dict[str, np.ndarray], recent: dict[str, np.ndarray]) -> list[Drift]:
    return [Drift(name, mean_shift_z(training[name], recent[name]),
                  population_stability_index(training[name], recent[name])) for name in training]
