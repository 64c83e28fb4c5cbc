"""The pools that bound steps across all runs, and their limits: one place for every instance form.

`docker/init.sh` (compose and Kubernetes) and the laptop instance of `coinpilot ui` and the demo
apply the same limits through `apply_pool_limits`; Dagster keeps them in the instance's storage,
not in dagster.yaml.
"""

from __future__ import annotations

import dagster as dg

EXCHANGE_POOL = "exchange_api"  # steps that call the exchange's market-data API
ORDER_POOL = "orders"  # steps that touch orders: one at a time in the whole deployment


def pool_limits(exchange_api: int) -> dict[str, int]:
    return {EXCHANGE_POOL: exchange_api, ORDER_POOL: 1}


def apply_pool_limits(instance: dg.DagsterInstance, limits: dict[str, int]) -> list[str]:
    """Set each pool's limit in the instance; what was set, as Dagster's own command says it."""
    for pool, limit in limits.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)
    return [f"Set concurrency limit for {pool} to {limit}." for pool, limit in limits.items()]
