"""The AI gate: a forced tool call, confidence of 80 or more, and every failure a stored REJECT."""

from __future__ import annotations

import json

import httpx2
import pytest

from coinpilot_pipelines.clients.anthropic_analyst import AnthropicAnalyst
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.trading import decisions, set_signal_status, signals_with_status

from .trading_helpers import confirmed_entry, executor, stored_market


def tool_answer(decision: str, confidence: object, reasoning: str = "the setup holds") -> httpx2.Response:
    return httpx2.Response(200, json={
        "id": "msg_test", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 120, "output_tokens": 40},
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "record_review",
                     "input": {"decision": decision, "confidence": confidence, "reasoning": reasoning}}],
    })


def api_error(status: int, kind: str, message: str) -> httpx2.Response:
    return httpx2.Response(status, json={"type": "error", "error": {"type": kind, "message": message}})


def timeout(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ReadTimeout("read timed out", request=request)


CASES = {
    "confirm": (lambda r: tool_answer("CONFIRM", 91), "CONFIRM", 91, None, "confirmed"),
    "low confidence": (lambda r: tool_answer("CONFIRM", 65), "REJECT", 65, None, "rejected"),
    "explicit reject": (lambda r: tool_answer("REJECT", 88, "momentum is fading"), "REJECT", 88, None, "rejected"),
    "401": (lambda r: api_error(401, "authentication_error", "invalid x-api-key"), "REJECT", None,
            "HTTP 401 (AuthenticationError): invalid x-api-key", "rejected"),
    "404 model": (lambda r: api_error(404, "not_found_error", "model: claude-haiku-4-5"), "REJECT", None,
                  "HTTP 404 (NotFoundError): model: claude-haiku-4-5", "rejected"),
    "429": (lambda r: api_error(429, "rate_limit_error", "Number of requests has exceeded your rate limit"), "REJECT",
            None, "HTTP 429 (RateLimitError)", "rejected"),
    "timeout": (timeout, "REJECT", None, "analyst timed out", "rejected"),
    "malformed": (lambda r: tool_answer("CONFIRM", "high"), "REJECT", None, "malformed answer", "rejected"),
    # Answers the SDK does not turn into one of its named errors: a proxy's HTML page, JSON of another shape.
    "html from a proxy": (lambda r: httpx2.Response(200, content=b"<html>502 bad gateway</html>",
                                                    headers={"content-type": "text/html"}),
                          "REJECT", None, "analyst failed unexpectedly (AttributeError)", "rejected"),
    "json of another shape": (lambda r: httpx2.Response(200, json={"unexpected": True}), "REJECT", None,
                              "analyst failed unexpectedly (TypeError)", "rejected"),
}


@pytest.mark.parametrize("case", CASES)
def test_the_gate_confirms_only_a_confident_confirm_and_fails_closed(sqlite_url: str, emulator, case: str) -> None:  # noqa: ANN001
    handler, decision, confidence, error, status = CASES[case]
    requests: list[dict] = []

    def recording(request: httpx2.Request) -> httpx2.Response:
        requests.append(json.loads(request.content))
        return handler(request)

    stored_market(sqlite_url, emulator.url, minutes=15)
    signal = confirmed_entry(sqlite_url)
    engine = get_engine(sqlite_url)
    set_signal_status(engine, signal, "approved", None)
    analyst = AnthropicAnalyst("sk-ant-test", "claude-haiku-4-5", max_retries=0,
                               http_client=httpx2.Client(transport=httpx2.MockTransport(recording)))
    confirmed = executor(sqlite_url, "test", object(), analyst=analyst).review()

    assert confirmed == ([signal] if status == "confirmed" else [])
    assert requests[0]["tool_choice"] == {"type": "tool", "name": "record_review"}
    assert requests[0]["model"] == "claude-haiku-4-5" and "temperature" not in requests[0]
    assert json.loads(requests[0]["messages"][0]["content"])["symbol"] == "BTCUSDT"
    (stored,) = decisions(engine).itertuples(index=False)
    assert (stored.decision, stored.confidence) == (decision, confidence)
    assert stored.model == "claude-haiku-4-5" and json.loads(stored.signal)["strategy"] == "model"
    if error:
        assert error in stored.error
    else:
        assert stored.error is None and stored.reasoning
    final = signals_with_status(engine, [status])
    assert final["id"].tolist() == [signal]


@pytest.mark.parametrize("mode,through", [("shadow", True), ("test", False)])
def test_without_a_key_the_review_is_skipped_and_only_shadow_mode_accepts_that(sqlite_url: str, emulator, mode: str,
                                                                                  through: bool) -> None:  # noqa: ANN001
    stored_market(sqlite_url, emulator.url, minutes=15)
    signal = confirmed_entry(sqlite_url)
    engine = get_engine(sqlite_url)
    set_signal_status(engine, signal, "approved", None)
    confirmed = executor(sqlite_url, mode, object(), analyst=None).review()
    assert confirmed == ([signal] if through else [])
    (stored,) = decisions(engine).itertuples(index=False)
    assert stored.decision == "SKIPPED" and stored.model is None
    if not through:
        assert "only shadow mode accepts" in signals_with_status(engine, ["rejected"])["status_reason"].iloc[0]


class RaisingAnalyst:
    """An analyst whose client raises what the SDK may raise beyond the errors the client names."""

    model = "claude-haiku-4-5"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def review(self, proposal: dict) -> None:
        raise self.error


def response_validation_error() -> Exception:
    import anthropic

    request = httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
    return anthropic.APIResponseValidationError(response=httpx2.Response(200, request=request), body={"content": 3})


@pytest.mark.parametrize("error", [response_validation_error, lambda: RuntimeError("connection pool is closed")],
                         ids=["APIResponseValidationError", "RuntimeError"])
def test_any_other_exception_is_a_stored_reject_and_the_entry_blocks_nothing(sqlite_url: str, emulator, error) -> None:  # noqa: ANN001
    stored_market(sqlite_url, emulator.url, minutes=15)
    signal = confirmed_entry(sqlite_url)
    engine = get_engine(sqlite_url)
    set_signal_status(engine, signal, "approved", None)
    raised = error()
    assert executor(sqlite_url, "test", object(), analyst=RaisingAnalyst(raised)).review() == []
    (stored,) = decisions(engine).itertuples(index=False)
    assert stored.decision == "REJECT" and f"analyst failed unexpectedly ({type(raised).__name__})" in stored.error
    assert signals_with_status(engine, ["approved", "confirmed"]).empty  # nothing left to block the symbol
    assert signals_with_status(engine, ["rejected"])["id"].tolist() == [signal]
