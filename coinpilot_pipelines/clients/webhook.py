"""The alert webhook: a Slack-compatible incoming webhook (``POST {"text": ...}``).

The URL is a credential (whoever has it can post), so it never appears in a log line, an error or
``repr``. A failed delivery is logged and reported as False, never raised: an alert that cannot be
sent must not fail the sensor that noticed the problem, nor hold it past its deadline.
"""

from __future__ import annotations

import logging

import httpx

from coinpilot_pipelines.clients.http import ExchangeError, RequestGate, RetryPolicy, request_json

log = logging.getLogger(__name__)

# Short and few: a sensor tick has 60 s for everything it does. A 5xx or a timeout is tried three
# times; a 429 may ask for at most 10 s.
WEBHOOK_POLICY = RetryPolicy(max_attempts=3, base_delay_s=0.5, max_delay_s=2.0, max_rate_limit_waits=2,
                             max_retry_after_s=10.0, timeout_s=5.0, max_body_bytes=64 * 1024)


class WebhookClient:
    def __init__(self, url: str, *, policy: RetryPolicy = WEBHOOK_POLICY,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._url = url
        self._policy = policy
        self._transport = transport

    def __repr__(self) -> str:
        return "WebhookClient(url=***)"

    def post(self, text: str) -> bool:
        """Deliver one message; False (and a log line saying why) when it could not be delivered."""
        try:
            with httpx.Client(timeout=self._policy.timeout_s, transport=self._transport,
                              follow_redirects=False) as http:
                # Slack answers "ok" as plain text: the body is read, never parsed.
                request_json(http, "POST", self._url, what="alert webhook", policy=self._policy,
                             gate=RequestGate(), json_body={"text": text}, decode=lambda body: body)
        except ExchangeError as exc:  # names the request as "alert webhook", never the URL
            log.warning("alert not delivered: %s", exc)
            return False
        except Exception as exc:  # noqa: BLE001 - e.g. a malformed URL, whose message would quote it
            log.warning("alert not delivered: alert webhook: %s", exc.__class__.__name__)
            return False
        return True
