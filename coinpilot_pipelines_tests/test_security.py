"""Security review: strict input patterns, no string-built SQL, masked secrets, clear auth errors."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from coinpilot_pipelines.clients.upbit.exchange import UpbitAuthError, UpbitExchangeClient, sign
from coinpilot_pipelines.defs.partitions import market_partitions, windows_by_symbol
from coinpilot_pipelines.security import install_redaction, redact, secret_values
from coinpilot_pipelines.settings import ConfigError, Settings, validate_symbol

from .trading_helpers import ACCESS_KEY, SECRET_KEY

PACKAGE = Path(__file__).resolve().parents[1] / "coinpilot_pipelines"
SQL_CALLS = {"text", "execute", "exec_driver_sql", "SQL", "copy", "executemany"}
HOSTILE = ["BTC'; DROP TABLE ohlcv_candles;--", "BTC USDT", "../../etc/passwd", "btcusdt", "BTC%27", "A" * 50, ""]


@pytest.mark.parametrize("symbol", HOSTILE)
def test_symbols_are_checked_before_they_reach_sql_or_urls(symbol: str) -> None:
    with pytest.raises(ConfigError):
        validate_symbol(symbol)
    with pytest.raises(ConfigError, match="COINPILOT_SYMBOLS"):
        Settings.from_env({"COINPILOT_SYMBOLS": f"BTCUSDT,{symbol}" if symbol else ","})


def test_partition_keys_are_checked_too() -> None:
    partitions = market_partitions(Settings.from_env({"COINPILOT_SYMBOLS": "BTCUSDT"}))
    assert windows_by_symbol(partitions, ["2024-03-05|BTCUSDT"])
    for key, reason in (("2024-03-05|BTC'--", "is not DATE|SYMBOL"), ("2024-13-45|BTCUSDT", "is not a date"),
                        ("nonsense", "is not DATE|SYMBOL"), ("2024-03-05|btcusdt", "is not DATE|SYMBOL")):
        with pytest.raises(ValueError, match=reason):
            windows_by_symbol(partitions, [key])


@pytest.mark.parametrize("args,reason,code", [
    (["continuity-scan", "--symbol", "BTC'; DROP TABLE x;--"], "--symbol: ", 1),
    (["continuity-scan", "--symbol", "BTCUSDT", "--end", "2024-01-01' OR '1'='1"], "Invalid value for '--end'", 2),
    (["continuity-scan", "--symbol", "BTCUSDT", "--interval", "1m; DROP"], "is not a supported interval", 1),
    (["db", "upgrade", "--dsn", "mysql://root@localhost/x"], "unsupported database backend", 1),
])
def test_command_line_arguments_are_refused_with_one_line(args: list[str], reason: str, code: int,
                                                          tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "coinpilot_pipelines.cli", *args], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "COINPILOT_HOME": str(tmp_path)}, timeout=120)
    assert result.returncode == code  # 2: an option's value is refused before the command runs
    assert result.stderr.startswith("coinpilot: error: ") and reason in result.stderr
    assert result.stderr.count("\n") == 1


def _string_built(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format" \
        and isinstance(node.func.value, ast.Constant)


def test_no_sql_is_built_from_strings_anywhere_in_the_package() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and node.args:
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in SQL_CALLS and _string_built(node.args[0]):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == [], f"SQL built from strings (use bound parameters or psycopg.sql): {offenders}"


def test_secrets_are_masked_in_every_log_record(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("UPBIT_SECRET_KEY", "very-secret-upbit-value-123")
    monkeypatch.setenv("COINPILOT_DATABASE_URL", "postgresql+psycopg://app:db-password-9f8e@db:5432/coinpilot")
    assert secret_values() >= {"very-secret-upbit-value-123", "db-password-9f8e"}
    install_redaction()
    caplog.set_level(logging.INFO)
    logging.getLogger("some.library").info("connecting with %s to %s", "very-secret-upbit-value-123",
                                           "postgresql://app:db-password-9f8e@db/coinpilot")
    try:
        raise RuntimeError("refused key very-secret-upbit-value-123")
    except RuntimeError:
        logging.getLogger("other").exception("failed")
    assert "very-secret-upbit-value-123" not in caplog.text and "db-password-9f8e" not in caplog.text
    assert "connecting with *** to postgresql://app:***@db/coinpilot" in caplog.text
    assert redact("key=abcdef123456", {"abcdef123456"}) == "key=***"


def test_the_exchanges_authentication_failures_are_clear_errors(emulator) -> None:  # noqa: ANN001
    with UpbitExchangeClient(emulator.url, ACCESS_KEY, "not-the-secret-0123456789abcdefghijkl") as wrong:
        with pytest.raises(UpbitAuthError, match=r"HTTP 401 .*jwt_verification.*check UPBIT_ACCESS_KEY"):
            wrong.accounts()
    with UpbitExchangeClient(emulator.url, "unknown-access-key", SECRET_KEY) as unknown:
        with pytest.raises(UpbitAuthError, match="invalid_access_key"):
            unknown.accounts()
    token = sign(ACCESS_KEY, SECRET_KEY, {"identifier": "paper-1-buy"})
    tampered = httpx.get(f"{emulator.url}/v1/order", params={"identifier": "paper-2-buy"},
                         headers={"Authorization": f"Bearer {token}"})
    assert tampered.status_code == 401 and tampered.json()["error"]["name"] == "invalid_query_payload"
    replayed = httpx.get(f"{emulator.url}/v1/order", params={"identifier": "paper-1-buy"},
                         headers={"Authorization": f"Bearer {token}"})
    assert replayed.json()["error"]["name"] == "nonce_used"  # the nonce went with the tampered call
    with pytest.raises(ValueError, match="needs UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY"):
        UpbitExchangeClient(emulator.url, "", "")
