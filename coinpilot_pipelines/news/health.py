"""Per-source health from the poll history: dedup ratio, stall, anomalies and a 0..1 score.

Every figure is evaluated as of one poll, from that poll and the ones before it, so a poll's
stats never change once computed and re-evaluating the history gives the same rows.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

# Score penalties; the error penalty is scaled by the share of failed polls in the window.
STALL_PENALTY = 0.35
LOW_RATIO_PENALTY = 0.25
VOLATILITY_PENALTY = 0.15
ERROR_PENALTY = 0.4
# A standard deviation of two ratios says little; volatility needs at least this many.
MIN_RATIOS_FOR_VOLATILITY = 3
FAILED_STATUSES = frozenset({"error", "backoff"})


@dataclass(frozen=True)
class HealthThresholds:
    stall_after_s: int = 900
    min_ratio: float = 0.15
    ratio_streak: int = 3
    volatility_window: int = 10
    volatility_threshold: float = 0.25


@dataclass(frozen=True)
class PollRecord:
    """One stored poll of one source, as far as health is concerned."""

    poll_id: int
    polled_at: datetime
    status: str
    raw_count: int
    unique_count: int
    dedup_ratio: float | None  # unique / raw; None when the poll brought no fresh items


@dataclass(frozen=True)
class HealthCarry:
    """What the evaluation of one poll hands to the next: the two running figures."""

    last_new_article_at: datetime | None = None
    low_ratio_streak: int = 0


@dataclass(frozen=True)
class PollHealth:
    poll_id: int
    rolling_ratio: float | None
    ratio_std: float | None
    low_ratio_streak: int
    last_new_article_at: datetime | None
    seconds_since_new: float
    stalled: bool
    low_ratio: bool
    volatile: bool
    error_share: float
    health_score: float

    @property
    def carry(self) -> HealthCarry:
        return HealthCarry(self.last_new_article_at, self.low_ratio_streak)

    @property
    def problems(self) -> list[str]:
        named = {"stalled": self.stalled, "low dedup ratio": self.low_ratio, "volatile dedup ratio": self.volatile,
                 "failing": self.error_share > 0}
        return [name for name, flagged in named.items() if flagged]


def dedup_ratio(raw_count: int, unique_count: int) -> float | None:
    return unique_count / raw_count if raw_count else None


def health_score(*, stalled: bool, low_ratio: bool, volatile: bool, error_share: float) -> float:
    score = (1.0 - STALL_PENALTY * stalled - LOW_RATIO_PENALTY * low_ratio - VOLATILITY_PENALTY * volatile
             - ERROR_PENALTY * error_share)
    return round(min(1.0, max(0.0, score)), 4)


def evaluate_polls(polls: Sequence[PollRecord], *, history: Sequence[PollRecord], carry: HealthCarry,
                   first_polled_at: datetime, thresholds: HealthThresholds) -> list[PollHealth]:
    """Health as of each of ``polls`` (oldest first), continuing from ``history`` and ``carry``.

    ``history`` holds at least the ``volatility_window - 1`` polls before the first one, and
    ``carry`` the figures as of the last of them. A source that never delivered a new article
    is measured for stall from its first poll.
    """
    window = list(history[max(0, len(history) - (thresholds.volatility_window - 1)):])
    results = []
    for poll in polls:
        window = [*window, poll][-thresholds.volatility_window:]
        last_new = poll.polled_at if poll.unique_count > 0 else carry.last_new_article_at
        streak = carry.low_ratio_streak
        if poll.dedup_ratio is not None:
            streak = streak + 1 if poll.dedup_ratio < thresholds.min_ratio else 0
        since_new = (poll.polled_at - (last_new or first_polled_at)).total_seconds()
        ratios = [p.dedup_ratio for p in window if p.dedup_ratio is not None]
        raw = sum(p.raw_count for p in window)
        ratio_std = statistics.pstdev(ratios) if len(ratios) >= min(MIN_RATIOS_FOR_VOLATILITY, thresholds.volatility_window) else None
        stalled = since_new > thresholds.stall_after_s
        low_ratio = streak >= thresholds.ratio_streak
        volatile = ratio_std is not None and ratio_std >= thresholds.volatility_threshold
        error_share = sum(p.status in FAILED_STATUSES for p in window) / len(window)
        result = PollHealth(
            poll_id=poll.poll_id,
            rolling_ratio=sum(p.unique_count for p in window) / raw if raw else None,
            ratio_std=ratio_std,
            low_ratio_streak=streak,
            last_new_article_at=last_new,
            seconds_since_new=since_new,
            stalled=stalled,
            low_ratio=low_ratio,
            volatile=volatile,
            error_share=error_share,
            health_score=health_score(stalled=stalled, low_ratio=low_ratio, volatile=volatile, error_share=error_share),
        )
        results.append(result)
        carry = result.carry
    return results
