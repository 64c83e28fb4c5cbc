"""What a model has to beat: forecasts that need no model at all.

- Climatology: the training window's up-rate, the same probability for every bar. A model that
  cannot beat it has learnt nothing a constant does not know. (ECE alone would rank it first:
  a constant at the base rate is perfectly calibrated.)
- Previous-return sign: the training up-rate after an up, a flat and a down bar (``ret_1``), the
  simplest momentum-or-reversal rule.

Both are fitted on the training rows only, like the model, and scored on the same held-out bars.
Skill is measured by the Brier skill score ``1 - Brier(model) / Brier(climatology)``: positive
when the model's squared error is smaller than the constant's.
"""

from __future__ import annotations

import numpy as np

CLIMATOLOGY = "climatology"
PREVIOUS_SIGN = "previous-return sign"


def climatology(train_up: np.ndarray, count: int) -> np.ndarray:
    """The training up-rate for each of ``count`` bars."""
    return np.full(count, float(np.mean(train_up)))


def previous_return_sign(train_ret_1: np.ndarray, train_up: np.ndarray, ret_1: np.ndarray) -> np.ndarray:
    """The training up-rate among bars whose previous return had the same sign as each of ``ret_1``
    (the overall rate for a sign the training window never saw)."""
    train_sign, sign = np.sign(train_ret_1), np.sign(ret_1)
    rates = {s: float(np.mean(train_up[train_sign == s])) if (train_sign == s).any() else float(np.mean(train_up))
             for s in (-1.0, 0.0, 1.0)}
    return np.vectorize(rates.__getitem__, otypes=[np.float64])(sign)


def brier_skill(y_true: np.ndarray, prob: np.ndarray, reference: np.ndarray, rows: np.ndarray | None = None) -> float:
    """``1 - Brier(prob) / Brier(reference)`` over ``rows`` (all rows by default)."""
    rows = slice(None) if rows is None else rows
    truth = y_true[rows]
    reference_error = np.sum((reference[rows] - truth) ** 2)
    if reference_error == 0:
        raise ValueError("the reference forecast is perfect on these bars: skill against it is undefined")
    return float(1 - np.sum((prob[rows] - truth) ** 2) / reference_error)
