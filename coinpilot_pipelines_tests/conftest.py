"""Shared fixtures: a private PostgreSQL cluster, per-test databases, and the emulator over HTTP."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import URL, make_url

from coinpilot_pipelines.emulator.server import Emulator
from coinpilot_pipelines.storage.database import create_database_engine, dispose_engines, upgrade
from coinpilot_pipelines.storage.throwaway_postgres import ThrowawayPostgres

FIXTURES = Path(__file__).parent / "fixtures"
_database_numbers = itertools.count(1)


def pytest_configure() -> None:
    # A test run started in the background inherits SIGINT ignored. Dagster maps SIGTERM onto
    # SIGINT's handler (on every in-process run, and in `dagster code-server`), so this process and
    # every server the tests start would come to ignore SIGTERM and could not be stopped.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class PostgresServer:
    """Either the server named by COINPILOT_TEST_DATABASE_URL or a throwaway cluster."""

    def __init__(self) -> None:
        external = os.environ.get("COINPILOT_TEST_DATABASE_URL")
        self.cluster = None if external else ThrowawayPostgres().start()
        self.admin_url = external or self.cluster.url
        self._template = None

    def fresh_database(self, migrated: bool = True) -> str:
        """A new empty database (migrated to head unless asked otherwise); its URL."""
        admin = make_url(self.admin_url)
        name = f"coinpilot_test_{os.getpid()}_{next(_database_numbers)}"
        if migrated and self._template is None:
            self._template = f"coinpilot_template_{os.getpid()}"
            self._create(admin, self._template, None)
            engine = create_database_engine(str(admin.set(database=self._template)))
            upgrade(engine)
            engine.dispose()
        self._create(admin, name, self._template if migrated else None)
        return admin.set(database=name).render_as_string(hide_password=False)

    @staticmethod
    def _create(admin: URL, name: str, template: str | None) -> None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(
            host=admin.host, port=admin.port, user=admin.username, password=admin.password,
            dbname=admin.database or "postgres", autocommit=True,
        ) as connection:
            connection.execute(statement)

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.destroy()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    dispose_engines()
    server.close()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    yield postgres.fresh_database()
    dispose_engines()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'coinpilot.db'}"
    dispose_engines()


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs once on PostgreSQL and once on SQLite."""
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")


@pytest.fixture(scope="session")
def _emulator_server() -> Iterator[Emulator]:
    with Emulator() as server:
        yield server


@pytest.fixture
def emulator(_emulator_server: Emulator) -> Iterator[Emulator]:
    """The shared emulator, reset to a calm market on the real clock for every test."""
    _emulator_server.set_scenario({})
    _emulator_server.clock.freeze(None)
    yield _emulator_server
    _emulator_server.set_scenario({})
    _emulator_server.clock.freeze(None)


_fault_figures: list[dict] = []
# What some tests measure is printed after the run. It travels as user properties of their reports,
# which pytest-xdist hands from the workers to the process that prints the summary.
CONFORMANCE_LATENCIES = "conformance_latencies"  # {call kind: seconds} of one test
FAULT_FIGURES = "fault_figures"
_slowest_conformance_call: dict[str, float] = {}
_fault_figures: list[dict] = []


@pytest.fixture
def fault_report(request: pytest.FixtureRequest):  # noqa: ANN201 - a recording function
    """Record what a fault scenario wrote, retried and quarantined; printed after the run."""

    def record(**figures: object) -> None:
        request.node.user_properties.append((FAULT_FIGURES, {"scenario": request.node.name, **figures}))

    return record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":  # the last report of a test carries everything it recorded
        return
    for name, value in report.user_properties:
        if name == CONFORMANCE_LATENCIES:
            for kind, seconds in value.items():
                _slowest_conformance_call[kind] = max(_slowest_conformance_call.get(kind, 0.0), seconds)
        elif name == FAULT_FIGURES:
            _fault_figures.append(value)


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest hook
    if _slowest_conformance_call:
        terminalreporter.section("conformance: the slowest call of each kind")
        for name, seconds in sorted(_slowest_conformance_call.items()):
            terminalreporter.write_line(f"{name}: {seconds * 1000:.1f} ms")
    if _fault_figures:
        terminalreporter.section("fault injection: what was written, retried and quarantined")
        for figures in _fault_figures:
            terminalreporter.write_line(", ".join(f"{k}={v}" for k, v in figures.items()))


# The heavy tests, each a set of real processes with time limits of its own (a rehearsal, `coinpilot
# ui`, a simulation, a browser on the shared demo home), run one after another on one pytest-xdist
# worker while the other worker takes the rest: on the 2-core machine never two of them at once.
HEAVY_MARKERS = ("rehearsal", "laptop", "simulation", "browser")


def pytest_itemcollected(item: pytest.Item) -> None:  # as each is collected: before pytest-xdist reads the groups
    if any(item.get_closest_marker(m) for m in HEAVY_MARKERS) or "demo_home" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.xdist_group("heavy"))


@pytest.hookimpl(trylast=True)  # after pytest-xdist has suffixed each grouped node id with its group
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if getattr(config.option, "loadgroup", False):
        ungrouped = [i.nodeid for i in items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
        if ungrouped:
            raise pytest.UsageError(f"pytest-xdist did not group the heavy tests (its loadgroup does not work with "
                                    f"this pytest): {ungrouped[0]}")


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home `coinpilot demo` has run on, as a subprocess: for the tests that read what it left
    (the metrics it serves, the pictures in its Dagster instance). Run once per session."""
    home = tmp_path_factory.mktemp("demo") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COINPILOT_", "DAGSTER_"))}
    result = subprocess.run([sys.executable, "-m", "coinpilot_pipelines.cli", "demo"], env={**env, "COINPILOT_HOME": str(home)},
                            cwd=home.parent, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return home
