"""The one `Definitions` object of the project: ``coinpilot_pipelines.definitions:defs``."""

from coinpilot_pipelines.defs import build_definitions
from coinpilot_pipelines.processes import die_with_parent
from coinpilot_pipelines.security import install_redaction
from coinpilot_pipelines.settings import Settings

install_redaction()
die_with_parent()  # a run or step worker (a multiprocessing child) ends with the process that started it
defs = build_definitions(Settings.from_env())
