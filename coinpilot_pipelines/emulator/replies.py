"""HTTP replies and each exchange's error body, shared by the emulator's API modules."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(), dict(headers or {}))


def rows_reply(rows: list[str]) -> Reply:
    """A JSON array of rows already rendered as JSON text."""
    return Reply(200, ("[" + ",".join(rows) + "]").encode(), {"Content-Type": "application/json;charset=UTF-8"})


def binance_error(status: int, code: int, msg: str) -> Reply:
    return json_reply(status, {"code": code, "msg": msg})


def upbit_error(status: int, name: str | int, message: str) -> Reply:
    return json_reply(status, {"error": {"name": name, "message": message}})


class BadRequest(Exception):
    """A request the exchange refuses; carries the reply it answers with."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.body.decode())
        self.reply = reply
