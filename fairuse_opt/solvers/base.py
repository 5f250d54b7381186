"""What every backend returns, and the names of the backends (defined in
:mod:`fairuse_opt._solver_names`, re-exported here)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._solver_names import (  # the names, defined once
    CONIC_SOLVERS,
    FALLBACK_SOLVERS,
    NATIVE,
    NATIVE_CHOICES,
    SOLVER_CHOICES,
)

__all__ = ["Result", "Task", "SOLVER_CHOICES", "CONIC_SOLVERS", "NATIVE", "NATIVE_CHOICES", "FALLBACK_SOLVERS"]


@dataclass
class Task:
    """One convex subproblem of a fit, described for any backend.

    ``kind`` is ``"unconstrained"`` (objective over the common set), ``"rationality"``
    (plus ``L_g(theta, g) <= bound_g``), ``"restriction"`` (a convex restriction of the
    envy constraints at ``theta``, linearised there, with penalised slacks of weight
    ``rho``) or ``"floor"`` (the lowest mean loss group ``floor_of`` can reach).
    """

    kind: str
    bound: np.ndarray | None = None
    pairs: list = field(default_factory=list)
    rationality: bool = False
    theta: np.ndarray | None = None  # linearisation point (restriction) or start
    rho: float | None = None
    floor_of: int | None = None
    lin_grad: np.ndarray | None = None  # (K, p) gradients of L_g(., r) at theta
    lin_const: np.ndarray | None = None  # (K,) L_g(theta, r) - grad . theta


@dataclass
class Result:
    """The outcome of one backend call: status, solution, duals, iterations, timings."""

    backend: str | None = None
    status: str = "not solved"
    solution: np.ndarray | None = None
    objective: float = float("nan")
    duals: dict | None = None
    iterations: int | None = None
    seconds: float = 0.0
    attempts: list = field(default_factory=list)
    program: object = None  # the cvxpy program (conic backends), for hooks and duals

    @property
    def ok(self) -> bool:
        return self.status in ("optimal", "optimal_inaccurate") and self.solution is not None

    # the names the rest of the library used before the redesign
    @property
    def solver(self) -> str | None:
        return self.backend
