"""Losses, one class each: numpy value and gradient, and the cvxpy expression.

Rows are handled as *merged rows*: rows identical in (features, group) share one
score, so their losses add up to a function of the score and a few sufficient
statistics.  For the logistic loss with labels ``y in {0, 1}`` and weights ``w``:
``sum w_i [log(1 + e^s) - y_i s] = W log(1 + e^s) - W1 s`` with ``W = sum w_i`` and
``W1 = sum w_i y_i``.  For the squared error:
``sum w_i (y_i - s)^2 = W s^2 - 2 Wy s + Wyy``.  The same formulas hold for a single
row (``W = w_i``), so one code path serves merged and unmerged data.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
from scipy.special import expit

__all__ = ["LogisticLoss", "SquaredLoss", "get_loss"]


class LogisticLoss:
    """Logistic loss (log loss in nats) of a score ``s`` (log-odds)."""

    name = "log_loss"
    n_stats = 2  # W, W1

    @staticmethod
    def stats(y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Per-row sufficient statistics ``(w, w*y)`` as an array (n, 2)."""
        return np.column_stack([w, w * y])

    @staticmethod
    def row_loss(y: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Unweighted loss of each row."""
        return np.logaddexp(0.0, s) - y * s

    @staticmethod
    def value(stats: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Weighted loss of each merged row."""
        return stats[:, 0] * np.logaddexp(0.0, s) - stats[:, 1] * s

    @staticmethod
    def grad(stats: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Derivative of :meth:`value` with respect to ``s``."""
        return stats[:, 0] * expit(s) - stats[:, 1]

    @staticmethod
    def cvx(stats: np.ndarray, s: cp.Expression) -> cp.Expression:
        """Sum over the given merged rows, as a cvxpy expression."""
        return stats[:, 0] @ cp.logistic(s) - stats[:, 1] @ s

    @staticmethod
    def constant(stats: np.ndarray) -> float:
        return 0.0


class SquaredLoss:
    """Squared error ``(y - s)^2``."""

    name = "squared_error"
    n_stats = 3  # W, Wy, Wyy

    @staticmethod
    def stats(y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.column_stack([w, w * y, w * y * y])

    @staticmethod
    def row_loss(y: np.ndarray, s: np.ndarray) -> np.ndarray:
        return (y - s) ** 2

    @staticmethod
    def value(stats: np.ndarray, s: np.ndarray) -> np.ndarray:
        return stats[:, 0] * s * s - 2.0 * stats[:, 1] * s + stats[:, 2]

    @staticmethod
    def grad(stats: np.ndarray, s: np.ndarray) -> np.ndarray:
        return 2.0 * (stats[:, 0] * s - stats[:, 1])

    @staticmethod
    def cvx(stats: np.ndarray, s: cp.Expression) -> cp.Expression:
        """``sum W (s - ybar)^2`` (without the constant: see :meth:`constant`).

        Written as one sum of squares, a single second-order cone per group.
        """
        W = stats[:, 0]
        keep = W > 0
        ybar = np.divide(stats[:, 1], W, out=np.zeros_like(W), where=keep)
        return cp.sum_squares(cp.multiply(np.sqrt(W), s - ybar))

    @staticmethod
    def constant(stats: np.ndarray) -> float:
        """``sum Wyy - Wy^2 / W``: the part of the loss no score can remove."""
        W = stats[:, 0]
        keep = W > 0
        return float(np.sum(stats[keep, 2] - stats[keep, 1] ** 2 / W[keep]))


def get_loss(task: str):
    """Loss class of a task (``"classification"`` or ``"regression"``)."""
    return LogisticLoss if task == "classification" else SquaredLoss
