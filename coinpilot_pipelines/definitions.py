"""The one `Definitions` object of the project: ``coinpilot_pipelines.definitions:defs``."""

from coinpilot_pipelines.defs import build_definitions
from coinpilot_pipelines.settings import Settings

defs = build_definitions(Settings.from_env())
