"""A Slack-style incoming webhook on loopback: a real HTTP server that records what is posted to it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler

from .http_helpers import LoopbackServer


class WebhookReceiver(LoopbackServer):
    """``with WebhookReceiver() as hook: ... hook.texts`` -- answers ``ok`` like Slack, or ``status``
    to the first ``failures`` requests."""

    def __init__(self, *, failures: int = 0, status: int = 500) -> None:
        outer = self
        self.bodies: list[dict] = []
        self.requests = 0
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._lock:
                    outer.requests += 1
                    failing = outer.requests <= failures
                    if not failing:
                        outer.bodies.append(json.loads(body))
                reply = b"server error" if failing else b"ok"
                self.send_response(status if failing else 200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        super().__init__(Handler)

    @property
    def url(self) -> str:
        return f"{super().url}/services/T000/B000/XXXXsecretXXXX"  # the path is the secret, as Slack's is

    @property
    def texts(self) -> list[str]:
        with self._lock:
            return [body["text"] for body in self.bodies]
