#!/bin/sh
# The one-shot deployment step, run at every deploy before the Dagster services start: the compose
# service `init`, and on Kubernetes the Job in docker/helm/init-job.yaml. Idempotent.
#   1. migrate the Dagster instance storage (DAGSTER_HOME/dagster.yaml, DAGSTER_PG_* variables)
#   2. migrate the application database (COINPILOT_DATABASE_URL)
#   3. set the pool limits, which are not instance config keys:
#      exchange_api  EXCHANGE_API_POOL_LIMIT (default 4) slots: concurrent steps calling the
#                    exchange's market-data API; see the README for how 4 follows from the Binance
#                    weight budget
#      orders        1 slot, always: one order step at a time in the whole deployment
set -eu

exchange_api_limit="${EXCHANGE_API_POOL_LIMIT:-4}"
case "$exchange_api_limit" in
  '' | *[!0-9]*) echo "init.sh: EXCHANGE_API_POOL_LIMIT must be a whole number, got '$exchange_api_limit'" >&2; exit 2 ;;
esac

dagster instance migrate
coinpilot db upgrade
dagster instance concurrency set exchange_api "$exchange_api_limit"
dagster instance concurrency set orders 1
