"""Report observations: store the state per (kind, subject), send a message for each change.

The state is stored before the message is sent: a message that cannot be delivered is logged and
lost rather than repeated on every evaluation until the webhook answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from sqlalchemy import Engine

from coinpilot_pipelines.alerts.observations import Observation, alert_text
from coinpilot_pipelines.clock import Clock
from coinpilot_pipelines.security import redact, secret_values
from coinpilot_pipelines.storage.alert_states import record_state, subjects_not_in_state

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def post(self, text: str) -> bool: ...


class AlertService:
    """``notifier`` None: alerts are logged only (COINPILOT_ALERT_WEBHOOK_URL unset)."""

    def __init__(self, engine: Engine, notifier: Notifier | None, clock: Clock) -> None:
        self._engine = engine
        self._notifier = notifier
        self._clock = clock
        self._webhook_failed = False

    def report(self, observations: Iterable[Observation]) -> list[str]:
        """The messages this produced (sent, or logged when there is no webhook or it failed)."""
        messages = []
        for observation in observations:
            change = record_state(self._engine, observation.kind, observation.subject, observation.state,
                                  self._clock.now())
            text = alert_text(observation, change)
            if text is None:
                continue
            # A run's failure message may quote anything, a configured secret included.
            text = redact(text, secret_values())
            messages.append(text)
            self._deliver(text)
        return messages

    def failing_subjects(self, kind: str, normal: str) -> list[str]:
        """The subjects of ``kind`` last reported in another state than ``normal``."""
        return subjects_not_in_state(self._engine, kind, normal)

    def _deliver(self, text: str) -> None:
        if self._notifier is None:
            log.warning("alert (COINPILOT_ALERT_WEBHOOK_URL is not set, so it is only logged): %s", text)
        elif self._webhook_failed:
            # After one failure in an evaluation, the rest are logged: retrying each would outlast a sensor tick.
            log.warning("alert not sent (the webhook failed earlier in this evaluation): %s", text)
        elif not self._notifier.post(text):
            self._webhook_failed = True
            log.warning("alert not delivered: %s", text)
