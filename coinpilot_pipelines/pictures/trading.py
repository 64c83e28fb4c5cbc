"""The executor's picture: price with the paper trades' entries and exits, and their equity curve."""

from __future__ import annotations

from datetime import timezone

import pandas as pd
from matplotlib import dates as mdates

from coinpilot_pipelines.pictures import new_figure, png_bytes, small_text, thinned


def equity_and_drawdown(trades: pd.DataFrame) -> pd.DataFrame:
    """Realized PnL summed over closed trades in exit order (``exit_time``, ``equity``) and the
    drawdown below its running peak (``drawdown`` <= 0)."""
    closed = trades.dropna(subset=["exit_time", "pnl"]).sort_values("exit_time")
    curve = pd.DataFrame({"exit_time": closed["exit_time"], "equity": closed["pnl"].astype(float).cumsum()})
    curve["drawdown"] = curve["equity"] - curve["equity"].cummax().clip(lower=0.0)
    return curve.reset_index(drop=True)


def trades_and_equity(prices: dict[str, pd.DataFrame], trades: pd.DataFrame, *, title: str) -> bytes:
    """``prices``: per symbol, ``open_time`` (UTC) and ``close``; ``trades``: ``symbol``,
    ``entry_time``, ``entry_price``, ``exit_time``, ``exit_price``, ``pnl`` (exit and pnl empty while open)."""
    panels = len(prices) + 1
    figure = new_figure(1.3 + 1.3 * panels)
    grid = figure.add_gridspec(panels, 1, left=0.14, right=0.97, top=0.92, bottom=0.08, hspace=0.45)
    for row, (symbol, closes) in enumerate(prices.items()):
        axes = figure.add_subplot(grid[row])
        line = thinned(closes)
        x = mdates.date2num(line["open_time"])
        axes.plot(x, line["close"], color="black", linewidth=0.7)
        if len(x):
            axes.set_xlim(x[0], x[-1])  # trades outside the panel's window count in the equity curve only
        mine = trades[trades["symbol"] == symbol]
        axes.scatter(mdates.date2num(mine["entry_time"]), mine["entry_price"].astype(float), marker="^",
                     color="tab:green", s=22, zorder=3, label="entry")
        exits = mine.dropna(subset=["exit_time"])
        axes.scatter(mdates.date2num(exits["exit_time"]), exits["exit_price"].astype(float), marker="v",
                     color="tab:red", s=22, zorder=3, label="exit")
        axes.legend(loc="upper left", fontsize=6, frameon=False)
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=timezone.utc))
        axes.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=5))
        small_text(axes, f"{title}: {symbol}" if row == 0 else symbol)
    equity = figure.add_subplot(grid[panels - 1])
    curve = equity_and_drawdown(trades)
    if len(curve):
        x = mdates.date2num(curve["exit_time"])
        equity.step(x, curve["equity"], where="post", color="tab:blue", linewidth=0.9, label="realized PnL")
        equity.fill_between(x, curve["drawdown"], 0, step="post", color="tab:red", alpha=0.3, linewidth=0,
                            label=f"drawdown (max {curve['drawdown'].min():.2f})")
        equity.legend(loc="upper left", fontsize=6, frameon=False)
    equity.axhline(0, color="grey", linewidth=0.5)
    equity.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=timezone.utc))
    equity.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=5))
    small_text(equity, f"paper equity: {len(curve)} closed trade(s)")
    return png_bytes(figure)
