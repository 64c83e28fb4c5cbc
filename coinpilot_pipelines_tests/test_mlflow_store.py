"""Every MLflow read and write goes to the configured store: a fresh process working elsewhere
registers, promotes and loads models under COINPILOT_HOME and leaves its working directory alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from mlflow import MlflowClient

# Run as its own process: MLflow's process-wide tracking URI is unset there, as in a fresh
# `coinpilot ui` step, so any call that fell back on it would create ./mlflow.db (or ./mlruns).
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from coinpilot_pipelines.defs import resource_values
    from coinpilot_pipelines.settings import Settings
    from coinpilot_pipelines.clients.mlflow_registry import CHAMPION

    registry = resource_values(Settings.from_env({"COINPILOT_HOME": sys.argv[1]}))["mlflow"].registry()
    champion = registry.alias_version(CHAMPION)
    if champion is not None:  # the second process loads the champion before registering anything
        print("loaded", champion.version, type(registry.load(champion.version)).__name__)
    x = pd.DataFrame({"a": np.linspace(-1, 1, 200)})
    model = LogisticRegression().fit(x, (x["a"] > 0).astype(int))
    registered, run = registry.log_model_run(model=model, example=x, params={"p": 1}, metrics={"m": 0.5},
                                             tags={"t": "x"}, figures={})
    registry.set_alias(CHAMPION, registered.version)
    registry.log_report_run(metrics={"ece": 0.1}, tags={}, figures={}, experiment="reports")
    print("registered", registered.version)
""")


def test_a_fresh_process_reads_and_writes_only_the_configured_store(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    outputs = [subprocess.run([sys.executable, "-c", SCRIPT, str(home)], cwd=elsewhere, capture_output=True,
                              text=True, check=True, timeout=300).stdout for _ in range(2)]

    assert "registered 1" in outputs[0] and "loaded" not in outputs[0]
    assert "loaded 1 LogisticRegression" in outputs[1] and "registered 2" in outputs[1]
    assert list(elsewhere.iterdir()) == []
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("coinpilot-signal", "champion").version) == "2"
    artifacts = {p.relative_to(home).parts[0] for p in home.rglob("MLmodel")}
    assert artifacts == {"mlflow-artifacts"}
