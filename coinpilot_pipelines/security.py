"""Secrets never reach a log line: a logging filter that masks their values wherever they appear.

The code is written so that secrets are never logged in the first place (a test hunts for
them); this filter is the second line, for a message some library builds around a secret.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

SECRET_VARIABLES = ("UPBIT_ACCESS_KEY", "UPBIT_SECRET_KEY", "ANTHROPIC_API_KEY", "DAGSTER_PG_PASSWORD",
                    "COINPILOT_ALERT_WEBHOOK_URL")
URL_VARIABLES = ("COINPILOT_DATABASE_URL", "MLFLOW_TRACKING_URI", "COINPILOT_TEST_DATABASE_URL")
MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


def secret_values(env: Mapping[str, str] | None = None) -> set[str]:
    """The secret values configured in ``env``: keys, and passwords inside database URLs."""
    env = os.environ if env is None else env
    found = {env[name].strip() for name in SECRET_VARIABLES if env.get(name, "").strip()}
    for name in URL_VARIABLES:
        try:
            password = make_url(env[name]).password if env.get(name) else None
        except ArgumentError:
            password = None
        if password:
            found.add(str(password))
    return {value for value in found if len(value) >= MIN_SECRET_LENGTH}


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in _longest_first(secrets):
        text = text.replace(secret, MASK)
    return text


def _longest_first(secrets: Iterable[str]) -> tuple[str, ...]:
    # A secret containing another is masked whole before the shorter one can split it.
    return tuple(sorted(secrets, key=len, reverse=True))


_installed: set[str] = set()
_original_factory = logging.getLogRecordFactory()


def install_redaction(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Mask the configured secrets in every log record this process creates, whoever logs it.

    Works at record creation (a record factory), so it covers every logger and handler, Dagster's
    included, and formats an attached exception early so its text is masked too. Idempotent.
    """
    secrets = secret_values(env) - _installed
    if secrets:
        _installed.update(secrets)
        masked = _longest_first(_installed)

        # Wraps the factory found at import, not the current one: a later install replaces this
        # wrapper rather than stacking another redaction pass on every record.
        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = _original_factory(*args, **kwargs)
            record.msg, record.args = redact(record.getMessage(), masked), ()
            if record.exc_info and not record.exc_text:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info), masked)
            return record

        logging.setLogRecordFactory(factory)
    return frozenset(_installed)
