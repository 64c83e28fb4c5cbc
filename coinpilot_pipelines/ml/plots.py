"""Reliability diagrams, drawn without pyplot's global state (safe in any thread)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure


def reliability_diagram(tables: dict[str, pd.DataFrame], title: str) -> Figure:
    """Observed frequency against mean predicted probability, one line per reliability table."""
    figure = Figure(figsize=(5.5, 5.0))
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
