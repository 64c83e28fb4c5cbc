"""The AI analyst: Anthropic's Messages API, answering through one forced tool call.

The only module that talks to Anthropic. The reply must be a `record_review` tool call with
``decision`` (CONFIRM or REJECT), ``confidence`` (0-100) and ``reasoning``; anything else -- an
API error, a timeout, an answer in the wrong shape -- is an `AnalystError` with its reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

# The SDK takes seconds to import and most processes never review a trade: it is imported where a
# review happens.
if TYPE_CHECKING:
    import anthropic
    import httpx2

REVIEW_TOOL = {
    "name": "record_review",
    "description": "Record your review of the proposed trade.",
    "input_schema": {
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["CONFIRM", "REJECT"]},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
            "reasoning": {"type": "string"},
        },
        "required": ["decision", "confidence", "reasoning"],
    },
}
SYSTEM_PROMPT = (
    "You are the risk analyst of a crypto trading desk. You receive one proposed trade with its "
    "market context. Confirm it only if the context supports it; reject it otherwise. Answer by "
    "calling record_review exactly once."
)


class AnalystError(RuntimeError):
    """The analyst gave no usable answer; the message says why (never contains the API key)."""


@dataclass(frozen=True)
class AnalystAnswer:
    decision: str
    confidence: int
    reasoning: str
    model: str
    latency_ms: int


class AnthropicAnalyst:
    def __init__(self, api_key: str, model: str, *, http_client: httpx2.Client | None = None,
                 timeout_s: float = 20.0, max_retries: int = 1) -> None:
        import anthropic

        self.model = model
        self._client = anthropic.Anthropic(api_key=api_key, http_client=http_client, timeout=timeout_s,
                                           max_retries=max_retries)

    def __repr__(self) -> str:
        return f"AnthropicAnalyst(model={self.model!r})"

    def review(self, proposal: dict) -> AnalystAnswer:
        import anthropic

        started = time.monotonic()
        try:
            message = self._client.messages.create(
                model=self.model,
                max_tokens=512,
                system=SYSTEM_PROMPT,
                tools=[REVIEW_TOOL],
                tool_choice={"type": "tool", "name": REVIEW_TOOL["name"]},
                messages=[{"role": "user", "content": json.dumps(proposal, default=str, sort_keys=True)}],
            )
        except anthropic.APITimeoutError:
            raise AnalystError("analyst timed out") from None
        except anthropic.APIStatusError as exc:
            raise AnalystError(f"analyst API error HTTP {exc.status_code} ({exc.__class__.__name__}): "
                               f"{_error_message(exc)}") from None
        except anthropic.APIConnectionError as exc:
            raise AnalystError(f"analyst unreachable: {exc.__class__.__name__}") from None
        latency_ms = int((time.monotonic() - started) * 1000)
        calls = [b for b in message.content if getattr(b, "type", None) == "tool_use" and b.name == REVIEW_TOOL["name"]]
        if len(calls) != 1:
            raise AnalystError(f"malformed answer: expected one {REVIEW_TOOL['name']} call, got "
                               f"{[getattr(b, 'type', '?') for b in message.content]}")
        answer = calls[0].input
        decision, confidence, reasoning = answer.get("decision"), answer.get("confidence"), answer.get("reasoning")
        if decision not in ("CONFIRM", "REJECT") or not isinstance(confidence, int) or isinstance(confidence, bool) \
                or not 0 <= confidence <= 100 or not isinstance(reasoning, str):
            raise AnalystError(f"malformed answer: {json.dumps(answer)[:300]}")
        return AnalystAnswer(decision, confidence, reasoning, message.model, latency_ms)


def _error_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    return str(error.get("message") or exc.message)[:300]
