"""Feature drift between the training window and recent bars: a mean-shift z and a PSI.

Feature values are strongly autocorrelated (rolling windows, volatility that clusters for days),
so neither statistic may treat bars as independent draws. Both are judged against the training
window's own variation, measured on blocks of it:

- Blocks: the training window is cut into ``k >= MIN_BLOCKS`` non-overlapping blocks of ``b`` bars,
  ``b = min(len(recent), len(training) // MIN_BLOCKS)``. At the default windows (30 days of
  training, a 7-day live window) that is 5 blocks of 6 days; the older rule, blocks exactly as
  long as the live window, left 4 and never computed z.
- Mean shift z: the batch-means standard error. The spread ``s`` of the block means estimates the
  long-run variance ``s^2 b`` (valid while ``b`` is long against the feature's memory: days
  against windows of at most 200 bars), so a mean over ``n`` bars has variance ``s^2 b / n``, and
  ``z = (mean(recent) - mean(training)) / (s * sqrt(b / n_recent + b / n_training))``.
- PSI over the training deciles, plus one bin below and one above the training range (values the
  model never saw count, and a training feature that was constant still gets a bin of its own).
  On real 1m data a PSI threshold alone fires every week: on the bundled BTCUSDT recording
  ``rolling_vol_20`` of 2023-03-08..14 against 03-15..21, one volatility regime, gives PSI 0.76.
  So PSI also gets a yardstick from the training window: the largest PSI of one of its blocks
  against the rest of it (``psi_reference``). The PSI trigger needs both (see `monitoring`).

A statistic that cannot be computed is NaN with the reason in ``z_missing`` / ``psi_missing``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_BLOCKS = 5
PSI_DECILES = 10
PSI_FLOOR = 1e-4  # an empty bin still counts a little, so PSI stays finite


@dataclass(frozen=True)
class Drift:
    feature: str
    z: float
    psi: float
    psi_reference: float  # the largest PSI of a training block against the rest of training
    blocks: int = 0
    block_bars: int = 0
    z_missing: str | None = None  # why z could not be computed
    psi_missing: str | None = None  # why PSI (or its reference) could not be computed

    def report(self) -> dict[str, object]:
        """The JSON a report stores: finite numbers, and the reason in place of a missing one."""
        values: dict[str, object] = {"blocks": self.blocks, "block_bars": self.block_bars}
        for name in ("z", "psi", "psi_reference"):
            value = getattr(self, name)
            values[name] = round(float(value), 6) if np.isfinite(value) else None
        if self.z_missing:
            values["z_missing"] = self.z_missing
        if self.psi_missing:
            values["psi_missing"] = self.psi_missing
        return values


def population_stability_index(training: np.ndarray, recent: np.ndarray, deciles: int = PSI_DECILES) -> float:
    """PSI of ``recent`` against ``training`` (NaN when either holds no finite value)."""
    training, recent = training[np.isfinite(training)], recent[np.isfinite(recent)]
    if len(training) == 0 or len(recent) == 0:
        return float("nan")
    interior = np.quantile(training, np.linspace(0, 1, deciles + 1)[1:-1])
    # np.histogram bins are [a, b): the bin ending just above the maximum holds it, the last bin
    # everything beyond; a constant training feature gets below / equal / above.
    edges = np.unique(np.r_[-np.inf, training.min(), interior, np.nextafter(training.max(), np.inf), np.inf])
    expected = np.histogram(training, edges)[0] / len(training)
    actual = np.histogram(recent, edges)[0] / len(recent)
    expected, actual = np.maximum(expected, PSI_FLOOR), np.maximum(actual, PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def drift_of(feature: str, training: np.ndarray, recent: np.ndarray) -> Drift:
    training = np.asarray(training, dtype=np.float64)
    recent = np.asarray(recent, dtype=np.float64)
    training, recent = training[np.isfinite(training)], recent[np.isfinite(recent)]
    if len(recent) == 0 or len(training) == 0:
        why = f"no finite {'recent' if len(recent) == 0 else 'training'} values of {feature}"
        return Drift(feature, float("nan"), float("nan"), float("nan"), z_missing=why, psi_missing=why)
    psi = population_stability_index(training, recent)
    block = min(len(recent), len(training) // MIN_BLOCKS)
    if block < 2:
        why = (f"{len(training)} training and {len(recent)} recent values of {feature} are too few to cut "
               f"{MIN_BLOCKS} training blocks of 2 bars or more")
        return Drift(feature, float("nan"), psi, float("nan"), z_missing=why,
                     psi_missing=why + "; PSI is judged against its threshold alone")
    count = len(training) // block
    blocks = training[: count * block].reshape(count, block)
    rest = [np.r_[training[: i * block], training[(i + 1) * block:]] for i in range(count)]
    reference = max(population_stability_index(others, own) for others, own in zip(rest, blocks, strict=True))
    spread = blocks.mean(axis=1).std(ddof=1)
    z, z_missing = float("nan"), None
    if spread > 0:
        z = float((recent.mean() - training.mean()) / (spread * np.sqrt(block / len(recent) + block / len(training))))
    else:
        z_missing = f"the {count} training block means of {feature} are all equal (a constant feature): no yardstick"
    return Drift(feature, z, psi, reference, count, block, z_missing=z_missing)


def feature_drift(training: dict[str, np.ndarray], recent: dict[str, np.ndarray]) -> list[Drift]:
    return [drift_of(name, training[name], recent[name]) for name in training]
