"""The fair-use constraints as objects: rationality (with its margins) and envy-freeness.

Both are constraints on the *loss matrix* ``L[g, r]``, the mean loss of group ``g``'s rows
under the model of report ``r`` (``L[g, g]``, the group's own loss, on the diagonal).  Each
object computes, in one place, the constraint's slacks (``>= 0`` when it holds), its
violations (with the messages the routes, the certificate and
:meth:`~fairuse_opt.certificate.Certificate.verify` report) and its largest excess;
the native solvers' constraint values are its slacks.  ``docs/fair-use.md`` defines
them:

* rationality: ``L[g, g] <= generic_loss[g] - margin[g]`` (slack ``generic - margin - own``);
* envy-freeness: ``L[g, g] <= L[g, r]`` for every other report ``r`` (slack ``L[g, r] - own``).

A NaN loss (a group without rows, a failed evaluation) does not satisfy a constraint:
callers that skip groups without rows pass ``rows``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Rationality", "EnvyFreeness", "constraints_of"]


class Rationality:
    """Every group's own loss at most its bound, the generic model's loss minus its margin.

    Parameters
    ----------
    generic : ndarray (G,)
        The generic model's mean loss per group (or the bound itself, with no margins).
    margins : ndarray (G,), optional
        The gain required of every group (0 by default).
    """

    name = "rationality"

    def __init__(self, generic: np.ndarray, margins: np.ndarray | None = None):
        self.generic = np.asarray(generic, dtype=np.float64)
        self.margins = np.zeros_like(self.generic) if margins is None else np.asarray(margins, dtype=np.float64)

    @property
    def bound(self) -> np.ndarray:
        """``generic - margins``: the largest own loss allowed."""
        return self.generic - self.margins

    def values(self, own: np.ndarray, shrink: float = 0.0) -> np.ndarray:
        """Slack of every group given its own losses ``own`` (tightened by ``shrink``)."""
        return self.generic - self.margins - shrink - own

    def slacks(self, L: np.ndarray) -> np.ndarray:
        """Slack of every group on the loss matrix ``L``."""
        return self.values(np.diag(L))

    def failed(self, L: np.ndarray, tol: float, rows=None) -> np.ndarray:
        """The groups (of ``rows``, default all) whose constraint fails by more than ``tol``."""
        own = np.diag(L)
        groups = np.arange(len(own)) if rows is None else np.asarray(rows, dtype=np.int64)
        return groups[~(own[groups] <= self.bound[groups] + tol)]  # (a NaN loss fails: it is no evidence)

    def message(self, L: np.ndarray, g: int, keys) -> str:
        return f"rationality for {keys[g]}: own loss {L[g, g]:.9g} > bound {self.bound[g]:.9g}"

    def violations(self, L: np.ndarray, tol: float, keys, rows=None) -> list[str]:
        return [self.message(L, g, keys) for g in self.failed(L, tol, rows)]

    def max_violation(self, L: np.ndarray) -> float:
        """The largest excess of an own loss over its bound (0 when none, never below)."""
        return max(float(np.max(-self.slacks(L), initial=0.0)), 0.0)

    @staticmethod
    def cvx(own, bound, slack=None):
        """The constraint in cvxpy: group loss ``own`` at most ``bound`` (a parameter), plus
        ``slack`` when the program repairs violations."""
        return own <= bound + (slack if slack is not None else 0)


class EnvyFreeness:
    """Every group's own loss at most its loss under any other group's report."""

    name = "envy_freeness"

    def values(self, L: np.ndarray, own: np.ndarray, pairs, shrink: float = 0.0) -> np.ndarray:
        """Slack of each pair ``(g, r)`` of ``pairs``: ``L[g, r] - own[g]`` (tightened by
        ``shrink``)."""
        return np.array([L[g, r] - own[g] - shrink for g, r in pairs])

    def slacks(self, L: np.ndarray) -> np.ndarray:
        """``S[g, r] = L[g, r] - L[g, g]``; the diagonal (no constraint) is ``+inf``."""
        S = L - np.diag(L)[:, None]
        np.fill_diagonal(S, np.inf)
        return S

    def best_alternative(self, L: np.ndarray, g: int) -> int | None:
        """The report other than ``g`` whose model group ``g`` loses least under (None: one group)."""
        alt = [r for r in range(L.shape[0]) if r != g]
        return min(alt, key=lambda r: L[g, r]) if alt else None

    def failed(self, L: np.ndarray, tol: float, rows=None) -> list[tuple[int, int]]:
        """The pairs ``(g, r)`` (``g`` among ``rows``, default all) whose constraint fails by
        more than ``tol``, in row order."""
        own = np.diag(L)
        groups = range(L.shape[0]) if rows is None else rows
        return [(int(g), int(r)) for g in groups for r in range(L.shape[0])
                if r != g and not own[g] <= L[g, r] + tol]

    def message(self, L: np.ndarray, g: int, r: int, keys) -> str:
        return f"envy: {keys[g]} prefers report {keys[r]} ({L[g, r]:.9g} < {L[g, g]:.9g})"

    def violations(self, L: np.ndarray, tol: float, keys, rows=None) -> list[str]:
        return [self.message(L, g, r, keys) for g, r in self.failed(L, tol, rows)]

    @staticmethod
    def cvx(own, alternative, slack=None):
        """The constraint in cvxpy: group loss ``own`` at most its loss ``alternative`` under
        the other report (the sequence of restrictions passes its linearisation), plus
        ``slack`` when the program repairs violations."""
        return own <= alternative + (slack if slack is not None else 0)

    def max_violation(self, L: np.ndarray) -> float:
        """The largest amount by which a group prefers another report (0 when none)."""
        if L.shape[0] < 2:
            return 0.0
        return max(float(np.max(-self.slacks(L))), 0.0)


def constraints_of(fair_use, bound: np.ndarray | None = None, margins: np.ndarray | None = None) -> list:
    """The constraint objects of the guarantees ``fair_use`` (names ``"rationality"``,
    ``"envy_freeness"``), rationality first; ``bound`` is its generic losses (or the bound
    itself without ``margins``); rationality is left out without it."""
    out: list = []
    if "rationality" in fair_use and bound is not None:
        out.append(Rationality(bound, margins))
    if "envy_freeness" in fair_use:
        out.append(EnvyFreeness())
    return out
