"""Reliability diagrams and probability histograms, drawn without pyplot's global state (safe in
any thread), small enough to embed in the UI's metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

SIZE = (5.5, 4.2)  # inches


def reliability_diagram(tables: dict[str, pd.DataFrame], title: str) -> Figure:
    """Observed frequency against mean predicted probability, one line per reliability table."""
    figure = Figure(figsize=SIZE, layout="constrained")
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    for label, table in tables.items():
        filled = table[table["count"] > 0]
        axes.plot(filled["mean_predicted"], filled["fraction_positive"], marker="o", label=f"{label} (n={int(filled['count'].sum())})")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean predicted probability of an up move")
    axes.set_ylabel("observed frequency of up moves")
    axes.set_title(title)
    axes.legend(loc="upper left")
    return figure


def probability_histogram(prob: np.ndarray, up: np.ndarray, title: str, bins: int = 30) -> Figure:
    """How the held-out probabilities spread, stacked by what the market then did. The axis spans
    the probabilities given (a direction model's rarely leave 0.4 .. 0.6)."""
    figure = Figure(figsize=SIZE, layout="constrained")
    axes = figure.add_subplot()
    low, high = float(np.min(prob)), float(np.max(prob))
    edges = np.linspace(low - 0.005, high + 0.005, bins + 1)
    axes.hist([prob[up == 1], prob[up == 0]], bins=edges, stacked=True, color=["tab:green", "tab:red"],
              label=[f"went up (n={int((up == 1).sum())})", f"did not (n={int((up == 0).sum())})"])
    axes.axvline(float(np.mean(up)), color="grey", linestyle="--", linewidth=1, label="held-out up-rate")
    axes.set_xlabel("predicted probability of an up move")
    axes.set_ylabel("held-out bars")
    axes.set_title(title)
    axes.legend(loc="upper left")
    return figure
