#!/bin/sh
# The image's install step, in two parts so Docker can cache the dependency layer:
#   docker/install.sh deps    [PYTHON]   the pinned distributions of docker/requirements.txt
#   docker/install.sh project [PYTHON]   this repository, editable, then `pip check`
# PYTHON is the interpreter of the target environment (default: python on PATH). The Dockerfile
# runs both parts; docker/check-install.sh runs them in a clean virtual environment.
#
# The project is installed editable on purpose: coinpilot_pipelines/storage/sql_files.py reads the
# SQL from the repository's sql/ directory next to the package, so the source tree must stay where
# it was copied rather than being installed into site-packages.
set -eu

part="${1:?usage: install.sh deps|project [PYTHON]}"
python="${2:-python}"
root="$(cd "$(dirname "$0")/.." && pwd)"

case "$part" in
  deps)
    "$python" -m pip install --no-cache-dir --no-deps -r "$root/docker/requirements.txt"
    ;;
  project)
    "$python" -m pip install --no-cache-dir --no-deps --no-build-isolation -e "$root"
    "$python" -m pip check
    ;;
  *)
    echo "install.sh: unknown part '$part' (expected deps or project)" >&2
    exit 2
    ;;
esac
