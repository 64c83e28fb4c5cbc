#!/usr/bin/env bash
# Runs the image's install step (docker/install.sh, as the Dockerfile does) in a clean virtual
# environment on this machine, then checks what the image relies on. For machines without a Docker
# engine; needs Python 3.11 and the package index, takes a few minutes. From any directory:
#   docker/check-install.sh [python3.11]
# Checks: every pin installs with --no-deps, the project installs on top, `pip check` passes, the
# definitions load, the SQL files are found from the installed package, and the console scripts
# the compose services run exist.
set -euo pipefail

python="${1:-python3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== build context: the files git tracks or would track (what .dockerignore lets COPY . . see)"
mkdir "$work/src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$root" && xargs -0 cp --parents -t "$work/src")
rm -f "$work/src/docker/.env"

echo "== clean virtual environment ($("$python" --version))"
"$python" -m venv "$work/venv"
venv="$work/venv/bin"

echo "== docker/install.sh deps"
sh "$work/src/docker/install.sh" deps "$venv/python"
echo "== docker/install.sh project"
sh "$work/src/docker/install.sh" project "$venv/python"

echo "== smoke checks"
cd "$work/src"
export DAGSTER_HOME="$work/dagster-home"
mkdir -p "$DAGSTER_HOME"
"$venv/python" - <<'EOF'
import importlib.metadata as md

from coinpilot_pipelines.definitions import defs
from coinpilot_pipelines.storage.sql_files import SQL_DIR

assert (SQL_DIR / "schema_postgresql.sql").is_file(), f"sql/ not found at {SQL_DIR}"
jobs = sorted(job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__"))
print(f"definitions load: jobs {', '.join(jobs)}; SQL from {SQL_DIR}")
for dist in ("dagster", "dagster-postgres", "dagster-docker", "dagster-k8s", "mlflow"):
    print(f"{dist} {md.version(dist)}")
EOF
for script in dagster dagster-webserver dagster-daemon coinpilot mlflow; do
  test -x "$venv/$script" || { echo "missing console script: $script" >&2; exit 1; }
done
"$venv/dagster" definitions validate -w workspace.yaml
echo "== the image's install step works in a clean environment"
