"""The `news_dedup_stats` table: health figures for every poll not evaluated yet, and the
per-source summary shown in the UI and by the demo."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from coinpilot_pipelines.news.health import HealthThresholds, evaluate_polls
from coinpilot_pipelines.storage import news as store
from coinpilot_pipelines.storage.news import PollWithHealth, SourceSummary


def update_dedup_stats(engine: Engine, thresholds: HealthThresholds, *, computed_at: datetime) -> int:
    """Evaluate the polls that have no stats yet, source by source, oldest first; returns how many."""
    evaluated = 0
    for backlog in store.stats_backlog(engine, history_size=thresholds.volatility_window - 1):
        rows = evaluate_polls(backlog.polls, history=backlog.history, carry=backlog.carry,
                              first_polled_at=backlog.first_polled_at, thresholds=thresholds)
        evaluated += store.save_dedup_stats(engine, rows, computed_at)
    return evaluated


def source_health(engine: Engine, sources: Sequence[str]) -> list[SourceSummary]:
    return store.source_summaries(engine, sources)


def recent_polls(engine: Engine, sources: Sequence[str], limit: int) -> list[PollWithHealth]:
    return store.poll_history(engine, sources, limit=limit)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def health_table(summaries: Sequence[SourceSummary]) -> pd.DataFrame:
    """One row per source: totals over all polls, then the figures as of its latest poll."""
    rows = []
    for s in summaries:
        health = s.health
        rows.append({
            "source": s.source,
            "polls": s.polls,
            "raw": s.raw,
            "new": s.new,
            "updated": s.updated,
            "duplicates": s.duplicates,
            "last status": s.last_status or "-",
            "rolling ratio": _ratio(health.rolling_ratio if health else None),
            "ratio std": _ratio(health.ratio_std if health else None),
            "stalled": "yes" if health and health.stalled else "no",
            "anomalies": ", ".join(p for p in (health.problems if health else []) if p != "stalled") or "-",
            "failed polls": s.errors,
            "health": f"{health.health_score:.2f}" if health else "-",
        })
    return pd.DataFrame(rows)


def poll_table(history: Sequence[PollWithHealth]) -> pd.DataFrame:
    """One row per poll: what it brought and the health figures as of that poll."""
    return pd.DataFrame([
        {
            "polled at (UTC)": f"{entry.poll.polled_at:%Y-%m-%d %H:%M:%S}",
            "source": entry.poll.source,
            "status": entry.poll.status,
            "raw": entry.poll.raw_count,
            "unique": entry.poll.unique_count,
            "ratio": _ratio(entry.poll.dedup_ratio),
            "rolling ratio": _ratio(entry.health.rolling_ratio if entry.health else None),
            "problems": ", ".join(entry.health.problems) if entry.health and entry.health.problems else "-",
            "health": f"{entry.health.health_score:.2f}" if entry.health else "-",
        }
        for entry in history
    ])
