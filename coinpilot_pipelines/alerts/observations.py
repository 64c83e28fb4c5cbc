"""Observations of (kind, subject, state) and the message each change of state deserves.

An alert is a change, not a repetition: a check that WARNs on every evaluation for an hour is one
message, and one more when it passes again. ``normal`` is the state that needs no message when it
is the first one seen (a passing check, shadow mode); kinds without one (a failed run, a promotion)
are worth a message every time their state changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from coinpilot_pipelines.storage.alert_states import Change

PASSED = "PASSED"
RUN_FAILURE = "run_failure"
TRADE_MODE = "trade_mode"
RETRAIN = "retrain_recommendation"
PROMOTION = "promotion"
DAILY_LOSS_LIMIT = "daily_loss_limit"
MAX_SUMMARY_CHARS = 600  # a chat line, not a log: the link leads to the rest


@dataclass(frozen=True)
class Observation:
    kind: str  # a check name or a key state
    subject: str  # what it is about: a symbol, a news source, a risk profile, a job
    state: str
    summary: str  # the state described for a person
    link: str | None = None
    normal: str | None = None
    show_previous: bool = True  # "(was WARN)"; off where the state is an id nobody reads


def alert_text(observation: Observation, change: Change | None) -> str | None:
    """The message for a change of state, or None when there is nothing to say."""
    if change is None or (change.previous is None and observation.state == observation.normal):
        return None
    summary = observation.summary
    if len(summary) > MAX_SUMMARY_CHARS:
        summary = summary[: MAX_SUMMARY_CHARS - 3] + "..."
    was = f" (was {change.previous})" if change.previous is not None and observation.show_previous else ""
    return f"CoinPilot: {summary}{was}" + (f"\n{observation.link}" if observation.link else "")


# -- asset checks --------------------------------------------------------------------------------

def check_observations(check: str, asset: str, *, passed: bool, severity: str, failing: Mapping[str, str],
                       scope: Iterable[str], link: str | None) -> list[Observation]:
    """One observation per subject an evaluation speaks for: ``failing`` (subject -> detail) in the
    evaluation's severity, the rest of ``scope`` passing. A failed evaluation whose metadata names
    no subject is about the asset as a whole."""
    failing = {} if passed else (dict(failing) or {asset: "see the evaluation"})
    found = [Observation(check, subject, severity, f"{severity}: check {check} on {asset} fails for {subject}: {detail}",
                         link, PASSED) for subject, detail in sorted(failing.items())]
    found += [Observation(check, subject, PASSED, f"check {check} on {asset} passes again for {subject}", link, PASSED)
              for subject in sorted(set(scope) - set(failing))]
    return found


def missing_bars_by_symbol(metadata: Mapping[str, Any]) -> dict[str, str]:
    """``candles_continuity``: the symbols with missing bars."""
    return {symbol: f"{count} bars missing" for symbol, count in (metadata.get("missing_by_symbol") or {}).items()}


def contract_violations_by_symbol(metadata: Mapping[str, Any]) -> dict[str, str]:
    """``candles_contract``: the symbols whose stored bars break a rule (keys ``SYMBOL: rule``)."""
    rules: dict[str, list[str]] = {}
    for key, count in (metadata.get("violations") or {}).items():
        symbol, _, rule = str(key).partition(": ")
        rules.setdefault(symbol, []).append(f"{rule} ({count})")
    return {symbol: ", ".join(found) for symbol, found in rules.items()}


def flagged_news_sources(metadata: Mapping[str, Any]) -> dict[str, str]:
    """``news_sources_healthy``: the sources that need attention, with their problems."""
    return {source: ", ".join(problems) for source, problems in (metadata.get("flagged_sources") or {}).items()}


def run_symbols(tags: Mapping[str, str], symbols: Sequence[str]) -> list[str]:
    """The symbols a run's market partitions cover, from its tags: one partition
    (``dagster/partition/symbol``) or a range whose ends name the first and last symbol, in the
    order of ``symbols`` (the static partition dimension)."""
    if "dagster/partition/symbol" in tags:
        return [tags["dagster/partition/symbol"]]
    ends = [tags.get(f"dagster/asset_partition_range_{end}", "").rpartition("|")[2] for end in ("start", "end")]
    if not all(end in symbols for end in ends):
        return []
    first, last = sorted(symbols.index(end) for end in ends)
    return list(symbols[first:last + 1])


# -- runs and key states -------------------------------------------------------------------------

def run_failure_observation(job: str, run_id: str, message: str, link: str | None) -> Observation:
    """Per job, the last failed run: every failed run is one message."""
    reason = " ".join(message.split()) or "no reason given"
    return Observation(RUN_FAILURE, job, run_id, f"run {run_id[:8]} of {job} failed: {reason}", link,
                       show_previous=False)


def trade_mode_observation(job: str, mode: str, run_id: str, link: str | None) -> Observation:
    summary = (f"LIVE TRADING: {job} run {run_id[:8]} runs in live mode and sends real orders" if mode == "live"
               else f"{job} run {run_id[:8]} runs in {mode} mode")
    return Observation(TRADE_MODE, job, mode, summary, link, normal="shadow")


def retrain_observation(asset: str, recommended: bool, reason: str, link: str | None) -> Observation:
    state = "recommended" if recommended else "not_recommended"
    summary = f"{asset} recommends retraining: {reason}" if recommended else f"{asset} no longer recommends retraining"
    return Observation(RETRAIN, asset, state, summary, link, normal="not_recommended")


def promotion_observation(model: str, version: str, reason: str, link: str | None) -> Observation:
    """Per model, the champion version: each promotion is one message."""
    return Observation(PROMOTION, model, f"v{version}", f"model {model} v{version} promoted to champion: {reason}", link)


def loss_limit_observation(profile: str, *, reached: bool, pnl_today: Decimal, limit: Decimal,
                           link: str | None) -> Observation:
    summary = (f"daily loss limit reached for risk profile {profile}: realized PnL today {pnl_today} <= -{limit}; "
               "no new entries until tomorrow (UTC)" if reached
               else f"risk profile {profile} is within its daily loss limit again (realized PnL today {pnl_today})")
    return Observation(DAILY_LOSS_LIMIT, profile, "reached" if reached else "ok", summary, link, normal="ok")
