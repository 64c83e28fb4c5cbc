"""Which execution mode a run may use. Live trading needs every guard; anything less downgrades.

- ``live`` only when all hold: ``LIVE_TRADING_ENABLED=true``, ``UPBIT_TRADE_MODE=live``,
  ``LIVE_GUARD_PHRASE=I_CONFIRM_LIVE_TRADING``, ``PAPER_POLICY_PROFILE=prod``, and both Upbit
  keys are set.
- otherwise ``test`` (orders sent to ``/v1/orders/test``, never executed) when Upbit test mode is
  asked for (``UPBIT_TRADE_MODE`` test or live) and both keys are set,
- otherwise ``shadow``: no exchange call at all.

The guard variables are read from the environment of the process that runs the order steps,
never from run config. Each has exactly one safe value (also what an unset or empty variable
means) and one live value, spelled exactly; anything else is refused with the variable's name,
so a typo stops the run before any order instead of counting as either. A run may ask for a
safer mode than the guards allow, never a less safe one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LIVE_GUARD_PHRASE = "I_CONFIRM_LIVE_TRADING"
MODES = ("shadow", "test", "live")  # from safest to least safe
LIVE_PROFILE = "prod"
# variable -> (safe value, accepted values). Unset or empty means the safe value.
GUARD_VALUES: dict[str, tuple[str, tuple[str, ...]]] = {
    "LIVE_TRADING_ENABLED": ("false", ("false", "true")),
    "UPBIT_TRADE_MODE": ("shadow", MODES),
    "LIVE_GUARD_PHRASE": ("", ("", LIVE_GUARD_PHRASE)),
    "PAPER_POLICY_PROFILE": ("test", ("test", LIVE_PROFILE)),
}


class GuardValueError(ValueError):
    """A guard variable holds a value that is neither its safe nor its live value."""


@dataclass(frozen=True)
class Guards:
    """The four guard variables, parsed exactly."""

    live_trading_enabled: bool
    trade_mode: str
    phrase_confirmed: bool
    policy_profile: str


def parse_guards(env: Mapping[str, str]) -> Guards:
    """The one parser of the guard variables (settings check and run alike); exact values only."""
    values = {}
    for name, (safe, accepted) in GUARD_VALUES.items():
        raw = env.get(name, "")
        value = raw if raw != "" else safe
        if value not in accepted:
            if name == "LIVE_GUARD_PHRASE":
                problem = "is set but is not the confirmation phrase (unset it, or set exactly the phrase)"
            else:
                problem = (f"{raw!r} is not one of {', '.join(map(repr, accepted))} "
                           f"(spelled exactly; unset means {safe!r})")
            raise GuardValueError(f"{name}: {problem}")
        values[name] = value
    return Guards(
        live_trading_enabled=values["LIVE_TRADING_ENABLED"] == "true",
        trade_mode=values["UPBIT_TRADE_MODE"],
        phrase_confirmed=values["LIVE_GUARD_PHRASE"] == LIVE_GUARD_PHRASE,
        policy_profile=values["PAPER_POLICY_PROFILE"],
    )


@dataclass(frozen=True)
class GuardInputs:
    """What the mode depends on: the parsed guards and whether both Upbit keys are set."""

    guards: Guards
    access_key_set: bool
    secret_key_set: bool


@dataclass(frozen=True)
class ModeDecision:
    mode: str
    reasons: tuple[str, ...]  # why the mode is what it is (every failed live guard is named)

    def describe(self) -> str:
        return f"{self.mode}: " + "; ".join(self.reasons)


def live_guard_failures(inputs: GuardInputs) -> list[str]:
    guards = inputs.guards
    failures = []
    if not guards.live_trading_enabled:
        failures.append("LIVE_TRADING_ENABLED is not 'true'")
    if guards.trade_mode != "live":
        failures.append(f"UPBIT_TRADE_MODE is {guards.trade_mode!r}, not 'live'")
    if not guards.phrase_confirmed:
        failures.append("LIVE_GUARD_PHRASE is not the confirmation phrase")
    if guards.policy_profile != LIVE_PROFILE:
        failures.append(f"PAPER_POLICY_PROFILE is {guards.policy_profile!r} (a test profile)")
    if not (inputs.access_key_set and inputs.secret_key_set):
        failures.append("UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY are not both set")
    return failures


def resolve_mode(inputs: GuardInputs, requested: str | None = None) -> ModeDecision:
    if requested is not None and requested not in MODES:
        raise ValueError(f"requested mode {requested!r} is not one of {MODES}")
    failures = live_guard_failures(inputs)
    keys = inputs.access_key_set and inputs.secret_key_set
    exchange_asked = inputs.guards.trade_mode in ("test", "live")
    if not failures:
        allowed, reasons = "live", ["every live-trading guard holds"]
    elif exchange_asked and keys:
        allowed, reasons = "test", ["live not allowed: " + "; ".join(failures)]
    else:
        why = failures if exchange_asked else [f"UPBIT_TRADE_MODE is {inputs.guards.trade_mode!r}"]
        allowed, reasons = "shadow", ["no exchange calls: " + "; ".join(why)]
    if requested is not None and MODES.index(requested) < MODES.index(allowed):
        return ModeDecision(requested, (f"run config asks for {requested}, safer than the allowed {allowed}", *reasons))
    if requested is not None and requested != allowed:
        reasons.insert(0, f"run config asks for {requested}, but only {allowed} is allowed")
    return ModeDecision(allowed, tuple(reasons))
