"""What a benchmark runs on: the machine, a PostgreSQL server, and the emulator in its own process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from sqlalchemy import make_url

from coinpilot_pipelines.clients.binance import KLINES_REQUEST_WEIGHT, WEIGHT_HEADER, WEIGHT_LIMIT_PER_MINUTE
from coinpilot_pipelines.storage.database import create_database_engine, upgrade
from coinpilot_pipelines.storage.throwaway_postgres import ThrowawayPostgres, free_port


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    return f"{os.cpu_count()} cores {cpu}{memory}, Python {platform.python_version()}, {platform.system()}"


class BenchDatabases:
    """Fresh, migrated databases on one PostgreSQL server, so every measurement starts clean."""

    def __init__(self, dsn: str | None) -> None:
        self._cluster = None if dsn else ThrowawayPostgres().start()
        self.admin_url = make_url(dsn or self._cluster.url)
        if self.admin_url.get_backend_name() != "postgresql":
            raise ValueError("benchmarks run on PostgreSQL: give --dsn postgresql+psycopg://...")
        self._count = 0
        self._template = self._create("coinpilot_bench_template")
        engine = create_database_engine(self._template)
        upgrade(engine)
        engine.dispose()

    def _create(self, name: str, template: str | None = None) -> str:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        url = self.admin_url
        with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                             dbname=url.database or "postgres", autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            connection.execute(statement)
        return url.set(database=name).render_as_string(hide_password=False)

    def fresh(self) -> str:
        self._count += 1
        return self._create(f"coinpilot_bench_{os.getpid()}_{self._count}", "coinpilot_bench_template")

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.destroy()


WEIGHT_MARGIN = 50  # weight other requests may spend meanwhile (pings, exchange info, retries)


def await_weight_for(exchange_url: str, klines_requests: int) -> None:
    """Sleeps until the exchange's request-weight minute starts again if the coming ``klines_requests``
    would not fit in what is left of this one, so a timing never includes a pause that the requests
    of an earlier step caused (a year of klines spends 1,052 of the 6,000). Small windows never wait."""
    used = int(httpx.get(f"{exchange_url}/api/v3/ping", timeout=10).headers.get(WEIGHT_HEADER, "0"))
    if used + klines_requests * KLINES_REQUEST_WEIGHT + WEIGHT_MARGIN >= WEIGHT_LIMIT_PER_MINUTE:
        time.sleep(60 - time.time() % 60 + 0.1)


def klines_requests(days: int, symbols: int = 1) -> int:
    """The klines requests a backfill of ``days`` of 1m bars per symbol takes (1,000 bars a page)."""
    return symbols * -(-days * 1440 // 1000)


@dataclass(frozen=True)
class EmulatorProcess:
    url: str


@contextmanager
def emulator_process(symbols: Sequence[str] = ()) -> Iterator[EmulatorProcess]:
    """The emulator as a separate process, as a real exchange would be: it does not share our GIL.

    It serves ``symbols`` when given, else its default list."""
    port = free_port()
    served = ["--symbols", ",".join(symbols)] if symbols else []
    process = subprocess.Popen(
        [sys.executable, "-m", "coinpilot_pipelines.cli", "emulator", "--port", str(port), *served],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/_emulator/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"emulator did not start: {process.stderr.read().decode()[-500:]}")
            time.sleep(0.1)
        yield EmulatorProcess(url)
    finally:
        process.terminate()
        process.wait(timeout=10)
