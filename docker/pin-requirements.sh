#!/usr/bin/env bash
# Re-resolves docker/requirements.txt: every distribution the image installs, pinned exactly.
#
# Run it after changing the dependencies in pyproject.toml, on Linux x86_64 with Python 3.11 (the
# platform of the image's python:3.11-slim-bookworm base), from any directory:
#   docker/pin-requirements.sh [python3.11]
# It resolves `coinpilot-pipelines[deploy]` plus the build backend (setuptools, wheel: the image
# installs the project without build isolation) in a throwaway virtual environment, so nothing
# already installed on the machine leaks into the pins.
set -euo pipefail

python="${1:-python3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --dry-run --ignore-installed --report "$work/report.json" \
  -e "$root[deploy]" 'setuptools>=69' wheel

"$work/venv/bin/python" - "$work/report.json" "$root/docker/requirements.txt" <<'EOF'
import json
import platform
import sys

report, target = sys.argv[1], sys.argv[2]
installed = json.load(open(report))["install"]
pins = sorted(
    ((item["metadata"]["name"], item["metadata"]["version"]) for item in installed
     if item["metadata"]["name"] != "coinpilot-pipelines"),
    key=lambda pin: pin[0].lower(),
)
header = [
    "# Every distribution the image installs, pinned exactly; written by docker/pin-requirements.sh",
    f"# (resolved for CPython {platform.python_version()} on {platform.system()} {platform.machine()}).",
    "# docker/install.sh installs these with --no-deps, then the project itself, then runs pip check.",
]
with open(target, "w") as out:
    out.write("\n".join(header + [f"{name}=={version}" for name, version in pins]) + "\n")
print(f"{len(pins)} pins written to {target}")
EOF
