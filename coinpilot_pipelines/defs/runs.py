"""What sensors need to know about runs already on their way."""

from __future__ import annotations

import dagster as dg

# Queued, created, starting, started or being cancelled: a run that has not ended yet.
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def runs_in_progress(instance: dg.DagsterInstance, job_name: str, *, limit: int | None = None) -> list[dg.DagsterRun]:
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=job_name, statuses=IN_PROGRESS), limit=limit)
    return [record.dagster_run for record in records]


def describe(run: dg.DagsterRun) -> str:
    return f"{run.job_name} run {run.run_id[:8]} is {run.status.value.lower()}"
