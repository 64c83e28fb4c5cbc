"""The AI gate: an entry goes ahead only if the analyst confirms it with enough confidence.

The gate fails closed: an API failure, a timeout, a malformed answer -- any exception at all,
also one the analyst client does not name -- is a REJECT carrying the error. Without an analyst (no ``ANTHROPIC_API_KEY``) the review is SKIPPED, which lets a signal
through in shadow mode only.
"""

from __future__ import annotations

from dataclasses import dataclass

from coinpilot_pipelines.clients.anthropic_analyst import AnalystError, AnthropicAnalyst

MIN_CONFIDENCE = 80


@dataclass(frozen=True)
class Review:
    decision: str  # CONFIRM, REJECT or SKIPPED
    confidence: int | None
    reasoning: str | None
    model: str | None
    latency_ms: int | None
    error: str | None

    def lets_through(self, mode: str) -> bool:
        return self.decision == "CONFIRM" or (self.decision == "SKIPPED" and mode == "shadow")


def review_proposal(analyst: AnthropicAnalyst | None, proposal: dict) -> Review:
    if analyst is None:
        return Review("SKIPPED", None, "no ANTHROPIC_API_KEY: review skipped", None, None, None)
    try:
        answer = analyst.review(proposal)
    except AnalystError as exc:
        return Review("REJECT", None, None, analyst.model, None, str(exc))
    except Exception as exc:  # noqa: BLE001 - fail closed: an unforeseen error must reject, not crash the step
        return Review("REJECT", None, None, analyst.model, None,
                      f"analyst failed unexpectedly ({exc.__class__.__name__}): {str(exc)[:300]}")
    if answer.decision == "CONFIRM" and answer.confidence < MIN_CONFIDENCE:
        return Review("REJECT", answer.confidence,
                      f"confidence {answer.confidence} below {MIN_CONFIDENCE}: {answer.reasoning}",
                      answer.model, answer.latency_ms, None)
    return Review(answer.decision, answer.confidence, answer.reasoning, answer.model, answer.latency_ms, None)
