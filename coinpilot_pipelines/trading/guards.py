"""Which execution mode a run may use. Live trading needs every guard; anything less downgrades.

- ``live`` only when all hold: ``LIVE_TRADING_ENABLED=true``, ``UPBIT_TRADE_MODE=live``,
  ``LIVE_GUARD_PHRASE=I_CONFIRM_LIVE_TRADING``, ``PAPER_POLICY_PROFILE`` is not ``test``, and both
  Upbit keys are set.
- otherwise ``test`` (orders sent to ``/v1/orders/test``, never executed) when Upbit test mode is
  asked for (``UPBIT_TRADE_MODE`` test or live) and both keys are set,
- otherwise ``shadow``: no exchange call at all.
A run may ask for a safer mode than the guards allow, never a less safe one.
"""

from __future__ import annotations

from dataclasses import dataclass

LIVE_GUARD_PHRASE = "I_CONFIRM_LIVE_TRADING"
MODES = ("shadow", "test", "live")  # from safest to least safe


@dataclass(frozen=True)
class GuardInputs:
    """The raw values, exactly as the environment gave them."""

    live_trading_enabled: str
    trade_mode: str
    guard_phrase: str
    paper_policy_profile: str
    access_key_set: bool
    secret_key_set: bool


@dataclass(frozen=True)
class ModeDecision:
    mode: str
    reasons: tuple[str, ...]  # why the mode is what it is (every failed live guard is named)

    def describe(self) -> str:
        return f"{self.mode}: " + "; ".join(self.reasons)


def live_guard_failures(guards: GuardInputs) -> list[str]:
    failures = []
    if guards.live_trading_enabled.strip().lower() != "true":
        failures.append(f"LIVE_TRADING_ENABLED is {guards.live_trading_enabled.strip() or 'unset'!r}, not 'true'")
    if guards.trade_mode.strip().lower() != "live":
        failures.append(f"UPBIT_TRADE_MODE is {guards.trade_mode.strip() or 'unset'!r}, not 'live'")
    if guards.guard_phrase != LIVE_GUARD_PHRASE:
        failures.append("LIVE_GUARD_PHRASE is not the confirmation phrase")
    if guards.paper_policy_profile.strip().lower() in ("", "test"):
        failures.append(f"PAPER_POLICY_PROFILE is {guards.paper_policy_profile.strip() or 'unset'!r} (a test profile)")
    if not (guards.access_key_set and guards.secret_key_set):
        failures.append("UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY are not both set")
    return failures


def resolve_mode(guards: GuardInputs, requested: str | None = None) -> ModeDecision:
    if requested is not None and requested not in MODES:
        raise ValueError(f"requested mode {requested!r} is not one of {MODES}")
    failures = live_guard_failures(guards)
    keys = guards.access_key_set and guards.secret_key_set
    if not failures:
        allowed, reasons = "live", ["every live-trading guard holds"]
    elif guards.trade_mode.strip().lower() in ("test", "live") and keys:
        allowed, reasons = "test", ["live not allowed: " + "; ".join(failures)]
    else:
        why = failures if guards.trade_mode.strip().lower() in ("test", "live") else [
            f"UPBIT_TRADE_MODE is {guards.trade_mode.strip() or 'unset'!r}"]
        allowed, reasons = "shadow", ["no exchange calls: " + "; ".join(why)]
    if requested is not None and MODES.index(requested) < MODES.index(allowed):
        return ModeDecision(requested, (f"run config asks for {requested}, safer than the allowed {allowed}", *reasons))
    if requested is not None and requested != allowed:
        reasons.insert(0, f"run config asks for {requested}, but only {allowed} is allowed")
    return ModeDecision(allowed, tuple(reasons))
