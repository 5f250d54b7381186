"""What every backend returns, and the names of the backends (defined in
:mod:`fairuse_opt._solver_names`, re-exported here)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from .._solver_names import (  # the names, defined once
    CONIC_SOLVERS,
    FALLBACK_SOLVERS,
    NATIVE,
    NATIVE_CHOICES,
    SOLVER_CHOICES,
)

#: A fit's progress is logged at INFO once it has run this many seconds (DEBUG before),
#: so that short fits stay quiet and long ones show they are moving.
PROGRESS_AFTER = 3.0
#: ... and then at most once every this many seconds (the others at DEBUG).
PROGRESS_EVERY = 2.0

__all__ = ["Result", "Task", "Progress", "SOLVER_CHOICES", "CONIC_SOLVERS", "NATIVE", "NATIVE_CHOICES",
           "FALLBACK_SOLVERS", "PROGRESS_AFTER", "PROGRESS_EVERY"]


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
    notes: list = field(default_factory=list)
    kkt_residual: float | None = None  # of ``duals`` at ``solution``, when the solver checked it
    hessian_solve: object = None  # native Newton: ``g -> H^{-1} g`` of its last Hessian

    @property
    def ok(self) -> bool:
        return self.status in ("optimal", "optimal_inaccurate") and self.solution is not None

    # the names the rest of the library used before the redesign
    @property
    def solver(self) -> str | None:
        return self.backend


class Progress:
    """Progress of one fit through ``logging`` (logger ``fairuse_opt.fit``).

    Every iteration of every native method is reported with its stage, iteration,
    objective and constraint violation (the largest amount by which a constraint of
    the problem being solved is exceeded; 0 for problems without constraints).  Records
    are DEBUG during the first :data:`PROGRESS_AFTER` seconds of the fit, then one INFO
    record every :data:`PROGRESS_EVERY` seconds (the others stay DEBUG).  Each record
    carries the numbers as ``record.progress``, a dict.
    """

    def __init__(self, logger: logging.Logger | None = None, after: float | None = None,
                 every: float | None = None):
        self.logger = logger or logging.getLogger("fairuse_opt.fit")
        self.after = PROGRESS_AFTER if after is None else after
        self.every = PROGRESS_EVERY if every is None else every
        self.start = time.perf_counter()
        self.last_info = -np.inf

    def _level(self) -> int:
        now = time.perf_counter()
        if now - self.start >= self.after and now - self.last_info >= self.every:
            return logging.INFO
        return logging.DEBUG

    def wanted(self) -> bool:
        """A record made now would be emitted (so its numbers are worth computing)."""
        return self.logger.isEnabledFor(self._level())

    def __call__(self, stage: str, iteration: int, objective: float, violation: float) -> None:
        level = self._level()
        if not self.logger.isEnabledFor(level):
            return
        elapsed = time.perf_counter() - self.start
        if level == logging.INFO:
            self.last_info = time.perf_counter()
        info = {"stage": stage, "iteration": int(iteration), "objective": float(objective),
                "violation": float(violation), "seconds": elapsed}
        self.logger.log(level, "progress (%.1f s): %s, iteration %d, objective %.9g, constraint violation %.2e",
                        elapsed, stage, iteration, objective, violation, extra={"progress": info})

