"""When to retrain: live calibration drifting from production, or features drifting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import takewhile

from coinpilot_pipelines.ml.drift import Drift


@dataclass(frozen=True)
class RetrainPolicy:
    ece_gap_abs: float = 0.05  # live ECE above production ECE by at least this much ...
    ece_gap_rel: float = 0.5  # ... and by at least this share of the production ECE ...
    streak: int = 2  # ... in this many consecutive reports
    drift_z: float = 3.0  # or any watched feature's mean shift beyond this ...
    drift_features: tuple[str, ...] = ("ret_1", "rolling_vol_20", "rsi_14", "vol_ratio")
    drift_psi: float = 0.25  # ... or its PSI beyond this and beyond the training window's own (see `drift`)
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
    drifted = [described for d in drift if (described := _drifted(d, policy))]
    if drifted:
        reasons.append("feature drift: " + "; ".join(drifted))
    if reasons:
        return Recommendation(True, gap_exceeded, "; ".join(reasons))
    summary = ("too few realized outcomes to judge live calibration" if live_count < policy.min_live_outcomes
               else "live calibration within tolerance and no feature drift")
    unjudged = [f"{d.feature}: {d.z_missing}" for d in drift if d.z_missing]
    if unjudged:
        summary += "; mean shift not computed for " + "; ".join(unjudged)
    return Recommendation(False, gap_exceeded, summary)


def _drifted(drift: Drift, policy: RetrainPolicy) -> str | None:
    """How a watched feature drifted, or None. A NaN statistic never fires (its reason is reported)."""
    found = []
    if abs(drift.z) > policy.drift_z:
        found.append(f"z={drift.z:+.1f}")
    if drift.psi > policy.drift_psi:
        if math.isnan(drift.psi_reference):  # too few training values for a reference: the threshold decides
            found.append(f"PSI {drift.psi:.2f}")
        elif drift.psi > drift.psi_reference:
            found.append(f"PSI {drift.psi:.2f} (training blocks against the rest: up to {drift.psi_reference:.2f})")
    return f"{drift.feature} {', '.join(found)}" if found else None
