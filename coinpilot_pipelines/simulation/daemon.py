"""The Dagster daemon's part, played on simulated time in this process.

The project's own sensors and schedules are evaluated through Dagster's evaluation API
(`build_sensor_context` / `evaluate_tick`, `build_schedule_context`), each when its interval or its
cron says so on the simulated clock; what they return is handled as the daemon handles it: run keys
deduplicated per instigator, cursors kept, reported asset events stored in the instance, and each
requested run executed, in process and one after another, so the one-executor-at-a-time rule holds
and a sensor that skips while its run is in progress sees that run ended before it looks again.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg
from dagster._utils.schedules import cron_string_iterator

from coinpilot_pipelines.cli.runs import QUIET_LOGGING, root_cause
from coinpilot_pipelines.clock import SimulatedClock


@dataclass
class DaemonFigures:
    """What the simulated daemon did, by sensor or schedule and by job."""

    evaluations: Counter[str] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)
    failed_runs: list[str] = field(default_factory=list)  # job: root cause
    duplicate_run_keys: int = 0
    asset_events: Counter[str] = field(default_factory=Counter)
    # Wall seconds by sensor or schedule (its evaluations, without the runs it asked for) and by job.
    seconds: Counter[str] = field(default_factory=Counter)


class SimulatedDaemon:
    def __init__(self, definitions: dg.Definitions, instance: dg.DagsterInstance, clock: SimulatedClock,
                 resources: dict[str, object], *, excluded: frozenset[str] = frozenset()) -> None:
        self.definitions = definitions
        self.instance = instance
        self.clock = clock
        self.resources = resources
        # The resources are plain immutable objects (defs/resources.py), so one built set serves every
        # sensor evaluation: building them per evaluation, as a daemon tick does, costs a few ms each.
        with dg.build_resources(resources, instance=instance) as built:
            self._built_resources = built
        repository = definitions.get_repository_def()
        self.sensors = [s for s in repository.sensor_defs if s.name not in excluded]
        self.schedules = [s for s in repository.schedule_defs if s.name not in excluded]
        self.figures = DaemonFigures()
        self._cursors: dict[str, str | None] = {}
        self._last_sensor_tick: dict[str, datetime] = {}
        self._last_schedule_tick = clock.now()
        self._run_keys: dict[str, set[str]] = {}

    def step(self) -> None:
        """Everything due at the clock's current time: sensors in definition order, then schedules."""
        now = self.clock.now()
        for sensor in self.sensors:
            last = self._last_sensor_tick.get(sensor.name)
            if last is not None and (now - last).total_seconds() < sensor.minimum_interval_seconds:
                continue
            self._last_sensor_tick[sensor.name] = now
            self._evaluate_sensor(sensor)
        for schedule in self.schedules:
            for fire_time in self._fire_times(schedule, now):
                started = time.perf_counter()
                context = dg.build_schedule_context(instance=self.instance, scheduled_execution_time=fire_time,
                                                    resources=self._resources_of(schedule))
                requests = schedule.evaluate_tick(context).run_requests or []
                self.figures.evaluations[schedule.name] += 1
                self.figures.seconds[schedule.name] += time.perf_counter() - started
                for request in requests:
                    self._launch(schedule.name, schedule.job_name, request)
        self._last_schedule_tick = now

    def _evaluate_sensor(self, sensor: dg.SensorDefinition) -> None:
        started = time.perf_counter()
        # The definitions too: a run status sensor builds its own context's resources from them.
        context = dg.build_sensor_context(instance=self.instance, cursor=self._cursors.get(sensor.name),
                                          resources=self._resources_of(sensor), sensor_name=sensor.name)
        context._resources = self._built_resources  # noqa: SLF001 - what `context.resources` would build
        data = sensor.evaluate_tick(context)
        self.figures.evaluations[sensor.name] += 1
        if data.cursor is not None:
            self._cursors[sensor.name] = data.cursor
        for event in data.asset_events or []:
            self.instance.report_runless_asset_event(event)
            self.figures.asset_events[event.asset_key.to_user_string()] += 1
        self.figures.seconds[sensor.name] += time.perf_counter() - started
        for request in data.run_requests or []:
            self._launch(sensor.name, request.job_name or sensor.job_name, request)

    def _resources_of(self, instigator: dg.SensorDefinition | dg.ScheduleDefinition) -> dict[str, object]:
        # As the daemon does: only the resources the function asks for.
        return {key: value for key, value in self.resources.items() if key in instigator.required_resource_keys}

    def _fire_times(self, schedule: dg.ScheduleDefinition, now: datetime) -> list[datetime]:
        times = []
        for fire_time in cron_string_iterator(self._last_schedule_tick.timestamp(), schedule.cron_schedule,
                                              schedule.execution_timezone or "UTC"):
            if fire_time > now:
                break
            if fire_time > self._last_schedule_tick:
                times.append(fire_time)
        return times

    def _launch(self, instigator: str, job_name: str, request: dg.RunRequest) -> None:
        seen = self._run_keys.setdefault(instigator, set())
        if request.run_key is not None:
            if request.run_key in seen:
                self.figures.duplicate_run_keys += 1
                return
            seen.add(request.run_key)
        tags = {**(request.tags or {}), **({"dagster/run_key": request.run_key} if request.run_key else {})}
        job = self.definitions.resolve_job_def(job_name)
        started = time.perf_counter()
        result = job.execute_in_process(instance=self.instance, run_config={**QUIET_LOGGING, **(request.run_config or {})},
                                        tags=tags, partition_key=request.partition_key, raise_on_error=False)
        self.figures.runs[job_name] += 1
        self.figures.seconds[job_name] += time.perf_counter() - started
        if not result.success:
            failures = result.get_step_failure_events()
            reason = root_cause(failures[0].step_failure_data.error) if failures else "the run failed"
            self.figures.failed_runs.append(f"{job_name}: {reason}")
