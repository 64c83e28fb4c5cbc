"""The user-code image (docker/Dockerfile) installs exactly the pins of docker/requirements.txt, and
those pins resolve: they satisfy pyproject.toml and pip resolves the project's requirements to
exactly them. The full clean install (docker/check-install.sh) takes minutes and is recorded in the
README rather than run here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from coinpilot_pipelines.storage.sql_files import SQL_DIR
from coinpilot_pipelines_tests.deployment_helpers import DOCKER, REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")
BUILD_ONLY = {"setuptools", "wheel"}  # the image builds the project without build isolation


def _pins() -> dict[str, str]:
    lines = [line for line in (DOCKER / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    matches = [PIN.match(line) for line in lines]
    assert all(matches), [line for line, match in zip(lines, matches) if not match]
    pins = {canonicalize_name(m.group(1)): m.group(2) for m in matches}
    assert len(pins) == len(lines), "a distribution is pinned twice"
    return pins


def _image_requirements() -> list[str]:
    return PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["deploy"]


def test_dockerfile_installs_the_pins_then_the_project_then_checks() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm$", dockerfile, re.M)
    deps, copy_all, project = (dockerfile.index(step) for step in
                               ("RUN sh docker/install.sh deps", "COPY . .", "RUN sh docker/install.sh project"))
    assert dockerfile.index("COPY docker/requirements.txt docker/install.sh docker/") < deps < copy_all < project
    assert re.search(r"^USER coinpilot$", dockerfile, re.M)  # the processes do not run as root
    install = (DOCKER / "install.sh").read_text()
    assert '-m pip install --no-cache-dir --no-deps -r "$root/docker/requirements.txt"' in install
    # editable: the package stays next to sql/, where storage/sql_files.py reads the SQL from
    assert '-m pip install --no-cache-dir --no-deps --no-build-isolation -e "$root"' in install
    assert '"$python" -m pip check' in install
    assert SQL_DIR == REPO / "sql"
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {".git", ".venv", ".coinpilot", "docker/.env"} <= set(ignored)
    assert not {"sql", "coinpilot_pipelines", "docker"} & set(ignored)


def test_pins_satisfy_the_projects_requirements() -> None:
    pins = _pins()
    for line in _image_requirements():
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {line}"
        for extra in requirement.extras:  # e.g. psycopg[binary]
            assert canonicalize_name(f"{requirement.name}-{extra}") in pins, f"{line}: extra {extra} not pinned"
    assert pins["dagster"] == pins["dagster-webserver"] == "1.13.27"
    assert pins["dagster-postgres"] == pins["dagster-docker"] == pins["dagster-k8s"] == "0.29.27"
    build = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    assert all(r.specifier.contains(pins[canonicalize_name(r.name)]) for r in build)


def test_pins_resolve(tmp_path: Path) -> None:
    """pip resolves the image's requirements, constrained by the pins, to exactly the pins: nothing
    unpinned is needed and nothing pinned is superfluous (asks the package index, ~30 s)."""
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--disable-pip-version-check", "--report", str(report),
               "-c", str(DOCKER / "requirements.txt"), *_image_requirements()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    pins = _pins()
    assert resolved == {name: version for name, version in pins.items() if name not in BUILD_ONLY}
