"""Promote a challenger only when it has earned it, and provably so.

Every champion, the first included, must beat climatology: its Brier skill score against the
training up-rate must have a block-bootstrap lower bound above zero. Against a champion, the
older rules hold on top: AUC better by a relative margin, Brier and ECE no worse than a
tolerance, and the AUC gain's block-bootstrap lower bound above zero. Both intervals resample the
same held-out bars for every forecast (paired) in blocks of timestamps (see `bootstrap`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from coinpilot_pipelines.ml.baselines import brier_skill
from coinpilot_pipelines.ml.bootstrap import BlockBootstrap
from coinpilot_pipelines.ml.training import Metrics, measure


@dataclass(frozen=True)
class PromotionPolicy:
    min_auc_improve: float = 0.01  # relative: 0.01 = 1 % better AUC
    max_brier_degrade: float = 0.005  # absolute
    max_ece_degrade: float = 0.01  # absolute
    bootstrap: BlockBootstrap = field(default_factory=lambda: BlockBootstrap(block_bars=240))


@dataclass(frozen=True)
class HeldOut:
    """The bars a decision is made on: each row's realized direction (1 = up) and its time."""

    up: np.ndarray
    times: np.ndarray


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger: Metrics
    champion: Metrics | None
    brier_skill: float  # against climatology
    brier_skill_ci: tuple[float, float] | None  # None when the held-out window is too short to resample
    block_bars: int
    auc_gain_ci: tuple[float, float] | None = None


def _ci_text(ci: tuple[float, float], confidence: float, percent: bool = False) -> str:
    low, high = (f"{v:+.2%}" if percent else f"{v:+.4f}" for v in ci)
    where = "lies wholly below zero" if ci[1] < 0 else "includes zero"
    return f"{confidence:.0%} CI [{low}, {high}] {where}"


def _auc_gain(up: np.ndarray, challenger: np.ndarray, champion: np.ndarray):  # noqa: ANN202 - a statistic
    from sklearn.metrics import roc_auc_score  # where used: see ml/training.py

    def gain(rows: np.ndarray) -> float | None:
        truth = up[rows]
        if truth.min() == truth.max():
            return None  # a resample with one class has no AUC
        return float(roc_auc_score(truth, challenger[rows]) - roc_auc_score(truth, champion[rows]))
    return gain


def decide(held_out: HeldOut, challenger_prob: np.ndarray, champion_prob: np.ndarray | None,
           climatology_prob: np.ndarray, policy: PromotionPolicy) -> PromotionDecision:
    up, boot = held_out.up, policy.bootstrap
    challenger = measure(up, challenger_prob)
    skill = brier_skill(up, challenger_prob, climatology_prob)
    skill_text = f"Brier skill vs climatology {skill:+.2%}"
    outcome = {"challenger": challenger, "brier_skill": skill, "block_bars": boot.block_bars}
    if (too_short := boot.shortfall(held_out.times)) is not None:
        keeps = "kept the champion" if champion_prob is not None else "no champion yet, and this model does not earn it"
        return PromotionDecision(False, f"{keeps}: {skill_text} cannot be judged: {too_short}",
                                 champion=None if champion_prob is None else measure(up, champion_prob),
                                 brier_skill_ci=None, **outcome)
    skill_ci = boot.interval(held_out.times, lambda rows: brier_skill(up, challenger_prob, climatology_prob, rows))
    outcome["brier_skill_ci"] = skill_ci
    failures = []
    if skill_ci[0] <= 0:
        failures.append(f"{skill_text} does not hold under the block bootstrap: "
                        f"{_ci_text(skill_ci, boot.confidence, percent=True)}")
    if champion_prob is None:
        if failures:
            return PromotionDecision(False, "no champion yet, and this model does not earn it: " + failures[0],
                                     champion=None, **outcome)
        return PromotionDecision(True, f"promoted as the first champion: {skill_text} "
                                 f"({boot.confidence:.0%} CI [{skill_ci[0]:+.2%}, {skill_ci[1]:+.2%}])",
                                 champion=None, **outcome)

    champion = measure(up, champion_prob)
    relative_gain = (challenger.auc - champion.auc) / champion.auc
    if relative_gain < policy.min_auc_improve:
        failures.append(f"AUC {challenger.auc:.4f} vs {champion.auc:.4f} is {relative_gain:+.2%}, "
                        f"below the required {policy.min_auc_improve:+.2%}")
    if challenger.brier - champion.brier > policy.max_brier_degrade:
        failures.append(f"Brier {challenger.brier:.5f} vs {champion.brier:.5f} degrades by more than "
                        f"{policy.max_brier_degrade}")
    if challenger.ece - champion.ece > policy.max_ece_degrade:
        failures.append(f"ECE {challenger.ece:.4f} vs {champion.ece:.4f} degrades by more than {policy.max_ece_degrade}")
    auc_ci = boot.interval(held_out.times, _auc_gain(up, challenger_prob, champion_prob))
    if auc_ci[0] <= 0:
        failures.append(f"the AUC gain does not hold under the block bootstrap: {_ci_text(auc_ci, boot.confidence)}")
    if failures:
        return PromotionDecision(False, "kept the champion: " + "; ".join(failures), champion=champion,
                                 auc_gain_ci=auc_ci, **outcome)
    return PromotionDecision(
        True, f"promoted: AUC {challenger.auc:.4f} vs {champion.auc:.4f} ({relative_gain:+.2%}, "
        f"{boot.confidence:.0%} CI of the gain [{auc_ci[0]:+.4f}, {auc_ci[1]:+.4f}]), {skill_text} "
        f"(CI [{skill_ci[0]:+.2%}, {skill_ci[1]:+.2%}]), Brier and ECE within tolerance",
        champion=champion, auc_gain_ci=auc_ci, **outcome)
