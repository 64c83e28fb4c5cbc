#!/bin/sh
# The one-shot deployment step, run at every deploy before the Dagster services start: the compose
# service `init`, and on Kubernetes the Job in docker/helm/init-job.yaml. Idempotent.
#   1. migrate the Dagster instance storage (DAGSTER_HOME/dagster.yaml, DAGSTER_PG_* variables)
#   2. migrate the application database (COINPILOT_DATABASE_URL)
#   3. set the pool limits, which are not instance config keys (coinpilot_pipelines/defs/pools.py,
#      the same limits `coinpilot ui` and the demo give the laptop instance):
#      exchange_api  EXCHANGE_API_POOL_LIMIT (default 4) slots: concurrent steps calling the
#                    exchange's market-data API; see the README for how 4 follows from the Binance
#                    weight budget
#      orders        1 slot, always: one order step at a time in the whole deployment
set -eu

dagster instance migrate
coinpilot db upgrade
coinpilot instance pools
