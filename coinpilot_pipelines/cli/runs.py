"""Running Dagster jobs in this process for the command line, failing with the root cause."""

from __future__ import annotations

import re

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

QUIET_LOGGING = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def root_cause(error: SerializableErrorInfo) -> str:
    """The innermost error of a chain, in one line: the reason, not Dagster's "Error occurred
    while executing op ..." wrapper around it."""
    while error.cause is not None:
        error = error.cause
    message = " ".join(error.message.split())
    # "package.module.SomeError: text" -> "SomeError: text"
    return re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*: )", "", message)


def execute(job: dg.JobDefinition, instance: dg.DagsterInstance, run_config: dict | None = None,
            **kwargs: object) -> dg.ExecuteInProcessResult:
    """Run ``job`` in process; a failed run raises `RuntimeError` naming its first failure's root cause."""
    result = job.execute_in_process(instance=instance, run_config={**QUIET_LOGGING, **(run_config or {})},
                                    raise_on_error=False, **kwargs)
    if not result.success:
        failures = result.get_step_failure_events()
        reason = root_cause(failures[0].step_failure_data.error) if failures else "see the run in the UI"
        raise RuntimeError(f"{job.name} run {result.run_id} failed: {reason}")
    return result
