"""The README's two commands are the ones CI runs and a new user types."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/pytest"
DEMO_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/coinpilot demo"


def test_ci_runs_the_readme_test_command_exactly() -> None:
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```bash\n(.+?)\n```", readme)
    assert commands[:2] == [DEMO_COMMAND, TEST_COMMAND]
    ci = (REPO / ".ci" / "run").read_text()
    assert TEST_COMMAND in ci.splitlines()[ci.splitlines().index('echo "== the README\'s test command"') + 1]


def test_the_readme_table_of_sensors_and_schedules_is_what_the_definitions_start() -> None:
    import dagster as dg

    from coinpilot_pipelines.definitions import defs

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Sensors and schedules", 1)[1].split("\n## ", 1)[0]
    documented = {name: (kind.split(",")[0], default)
                  for name, kind, default in re.findall(r"^\| `(\w+)` \| ([^|]+?) \| (running|stopped) \|", section, re.M)}
    repository = defs.get_repository_def()
    started = {sensor.name: ("sensor", "running" if sensor.default_status == dg.DefaultSensorStatus.RUNNING else "stopped")
               for sensor in repository.sensor_defs}
    started |= {schedule.name: ("schedule", "running" if schedule.default_status == dg.DefaultScheduleStatus.RUNNING
                                else "stopped") for schedule in repository.schedule_defs}
    assert documented == started
