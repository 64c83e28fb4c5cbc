"""When to retrain: live calibration drifting from production, or features drifting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import takewhile

from coinpilot_pipelines.ml.drift import Drift


@dataclass(frozen=True)
class RetrainPolicy:
    ece_gap_abs: float = 0.05  # live ECE above production ECE by at least this much ...
    ece_gap_rel: float = 0.5  # ... and by at least this share of the production ECE ...
    streak: int = 2  # ... in this many consecutive reports
    drift_z: float = 3.0  # or any watched feature's mean shift beyond this
    drift_features: tuple[str, ...] = ("ret_1", "rolling_vol_20", "rsi_14", "vol_ratio")
    min_live_outcomes: int = 50  # fewer realized outcomes say nothing about live calibration


@dataclass(frozen=True)
class Recommendation:
    retrain: bool
    gap_exceeded: bool
    reason: str


def recommend_retrain(production_ece: float, live_ece: float | None, live_count: int,
                      earlier_gap_flags: Sequence[bool], drift: Sequence[Drift], policy: RetrainPolicy) -> Recommendation:
    """``earlier_gap_flags``: whether each previous report of this model (newest first) exceeded the gap."""
    reasons = []
    gap_exceeded = False
    if live_ece is not None and live_count >= policy.min_live_outcomes:
        gap = live_ece - production_ece
        gap_exceeded = gap > policy.ece_gap_abs and gap > policy.ece_gap_rel * production_ece
        streak = 1 + len(list(takewhile(bool, earlier_gap_flags))) if gap_exceeded else 0
        if streak >= policy.streak:
            reasons.append(f"live ECE {live_ece:.4f} exceeds production ECE {production_ece:.4f} by {gap:.4f} "
                           f"in {streak} consecutive reports")
    drifted = [d for d in drift if abs(d.z) > policy.drift_z]
    if drifted:
        reasons.append("feature drift: " + ", ".join(f"{d.feature} z={d.z:+.1f}" for d in drifted))
    if reasons:
        return Recommendation(True, gap_exceeded, "; ".join(reasons))
    summary = ("too few realized outcomes to judge live calibration" if live_count < policy.min_live_outcomes
               else "live calibration within tolerance and no feature drift")
    return Recommendation(False, gap_exceeded, summary)

