"""Promote a challenger over the champion only when it is better, and provably so.

The older rule: AUC better by a relative margin, Brier and ECE no worse than a tolerance. On top,
the AUC gain must hold under a paired bootstrap over the same held-out bars: the lower bound of
its confidence interval has to be above zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from coinpilot_pipelines.ml.training import Metrics, measure


@dataclass(frozen=True)
class PromotionPolicy:
    min_auc_improve: float = 0.01  # relative: 0.01 = 1 % better AUC
    max_brier_degrade: float = 0.005  # absolute
    max_ece_degrade: float = 0.01  # absolute
    bootstrap_samples: int = 500
    confidence: float = 0.95
    seed: int = 20240305


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger: Metrics
    champion: Metrics | None
    auc_gain_ci: tuple[float, float] | None = None


def paired_bootstrap_auc_gain(y_true: np.ndarray, challenger: np.ndarray, champion: np.ndarray, *,
                              samples: int, confidence: float, seed: int) -> tuple[float, float]:
    """Confidence interval of AUC(challenger) - AUC(champion), resampling the same bars for both."""
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(samples):
        index = rng.integers(0, len(y_true), len(y_true))
        truth = y_true[index]
        if truth.min() == truth.max():
            continue  # a resample with one class has no AUC
        gains.append(roc_auc_score(truth, challenger[index]) - roc_auc_score(truth, champion[index]))
    if not gains:
        raise ValueError("no bootstrap resample held both classes; the held-out window is too small")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(gains, [tail, 100 - tail])
    return float(low), float(high)


def decide(y_true: np.ndarray, challenger_prob: np.ndarray, champion_prob: np.ndarray | None,
           policy: PromotionPolicy) -> PromotionDecision:
    challenger = measure(y_true, challenger_prob)
    if champion_prob is None:
        return PromotionDecision(True, "first model: no champion yet", challenger, None)
    champion = measure(y_true, champion_prob)
    failures = []
    relative_gain = (challenger.auc - champion.auc) / champion.auc
    if relative_gain < policy.min_auc_improve:
        failures.append(f"AUC {challenger.auc:.4f} vs {champion.auc:.4f} is {relative_gain:+.2%}, "
                        f"below the required {policy.min_auc_improve:+.2%}")
    if challenger.brier - champion.brier > policy.max_brier_degrade:
        failures.append(f"Brier {challenger.brier:.5f} vs {champion.brier:.5f} degrades by more than "
                        f"{policy.max_brier_degrade}")
    if challenger.ece - champion.ece > policy.max_ece_degrade:
        failures.append(f"ECE {challenger.ece:.4f} vs {champion.ece:.4f} degrades by more than {policy.max_ece_degrade}")
    ci = paired_bootstrap_auc_gain(y_true, challenger_prob, champion_prob, samples=policy.bootstrap_samples,
                                   confidence=policy.confidence, seed=policy.seed)
    if ci[0] <= 0:
        failures.append(f"the AUC gain does not hold under a paired bootstrap: {policy.confidence:.0%} CI "
                        f"[{ci[0]:+.4f}, {ci[1]:+.4f}] includes zero")
    if failures:
        return PromotionDecision(False, "kept the champion: " + "; ".join(failures), challenger, champion, ci)
    return PromotionDecision(
        True, f"promoted: AUC {challenger.auc:.4f} vs {champion.auc:.4f} ({relative_gain:+.2%}, "
        f"{policy.confidence:.0%} CI of the gain [{ci[0]:+.4f}, {ci[1]:+.4f}]), Brier and ECE within tolerance",
        challenger, champion, ci)
