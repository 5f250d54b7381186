"""Calling conic solvers: tolerances, statuses, retries.  No modelling here.

:func:`solve` tries the requested solvers in order and returns the first *usable*
result: status ``optimal``, or ``optimal_inaccurate`` when no solver in the list
reaches ``optimal`` (that result is kept, flagged, and always re-verified in numpy by
the caller).  Solver exceptions are wrapped; they never leak raw.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np

from .exceptions import MSG_SOLVER_FAILED, MSG_SOLVER_UNKNOWN, InputError, SolverError

__all__ = ["SolveRecord", "solve", "solver_order", "SOLVERS", "DEFAULT_OPTIONS"]

SOLVERS = ("CLARABEL", "ECOS", "SCS")

#: Tolerances one order tighter than the solvers' defaults (the fair-use check is done
#: at 1e-7 in numpy afterwards); 1e-10 made both Clarabel and ECOS stop at
#: "optimal_inaccurate" on ordinary problems.
DEFAULT_OPTIONS = {
    "CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 200},
    "ECOS": {"abstol": 1e-9, "reltol": 1e-9, "feastol": 1e-9, "max_iters": 200},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
}


@dataclass
class SolveRecord:
    """What one call to :func:`solve` did."""

    solver: str | None = None
    status: str = "not solved"
    objective: float = float("nan")
    seconds: float = 0.0
    iterations: int | None = None
    attempts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("optimal", "optimal_inaccurate")


def solver_order(solver: str, task: str = "classification") -> list[str]:
    """Solvers to try, first the requested one, then the others as fallbacks.

    ``"auto"``: ECOS first for the logistic loss (exponential cones), Clarabel first for
    the squared error (it takes the quadratic objective directly).  Measured in
    ``benchmarks/results/solvers.md``: on logistic problems ECOS never failed while
    Clarabel raised on the exact fair-use program at n = 5,000 and on many steps of the
    sequence of restrictions, and ECOS was faster on unconstrained fits from n = 5,000.
    """
    installed = set(cp.installed_solvers())
    if solver == "auto":
        first = "ECOS" if task == "classification" else "CLARABEL"
    else:
        first = solver.upper()
        if first not in SOLVERS:
            raise InputError(MSG_SOLVER_UNKNOWN.format(solver=solver, installed=sorted(set(SOLVERS) & installed)))
        if first not in installed:
            raise InputError(MSG_SOLVER_UNKNOWN.format(solver=solver, installed=sorted(set(SOLVERS) & installed)))
    # SCS is a fallback only when asked for: its first-order accuracy rarely passes the
    # 1e-7 verification, and at tight tolerances it runs for minutes.
    rest = [s for s in ("CLARABEL", "ECOS") if s != first and s in installed]
    return [first] + rest


def solve(problem: cp.Problem, solvers: list[str], options: dict | None = None,
          accept_inaccurate: bool = True, first_usable: bool = False) -> SolveRecord:
    """Solve ``problem`` with the first solver in ``solvers`` that reaches ``optimal``.

    Each solver is tried with the tight :data:`DEFAULT_OPTIONS` and, when it stops at
    ``optimal_inaccurate`` or fails, once more with its own default tolerances.  When
    no attempt reaches ``optimal``, the first ``optimal_inaccurate`` solution is
    restored and returned (the caller verifies it).  With ``first_usable`` (steps of a
    sequence whose every iterate is verified in numpy anyway) an ``optimal_inaccurate``
    result is returned at once.
    """
    rec = SolveRecord()
    fallback = None
    t0 = time.perf_counter()
    for name in solvers:
        user = (options or {}).get(name, {})
        tight = {**DEFAULT_OPTIONS.get(name, {}), **user}
        for label, opts in (("", tight), ("/default-tol", user)):
            status = _attempt(problem, name, opts)
            rec.attempts.append((name + label, status))
            if status == "optimal":
                rec.solver, rec.status = name, status
                rec.objective = float(problem.value)
                rec.iterations = _iterations(problem)
                rec.seconds = time.perf_counter() - t0
                return rec
            if status == "optimal_inaccurate" and first_usable:
                rec.solver, rec.status = name, status
                rec.objective = float(problem.value)
                rec.iterations = _iterations(problem)
                rec.seconds = time.perf_counter() - t0
                return rec
            if status == "optimal_inaccurate" and accept_inaccurate and fallback is None:
                fallback = (name, status, float(problem.value), _iterations(problem),
                            [None if v.value is None else np.array(v.value, copy=True)
                             for v in problem.variables()])
            if status == "infeasible":
                break  # a certificate of infeasibility: no need to retry at looser tolerances
    rec.seconds = time.perf_counter() - t0
    if fallback is not None:
        name, status, obj, iters, values = fallback
        for v, val in zip(problem.variables(), values):
            v.value = val
        rec.solver, rec.status, rec.objective, rec.iterations = name, status, obj, iters
    return rec


def _attempt(problem: cp.Problem, name: str, opts: dict) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cvxpy's "may be inaccurate": we check ourselves
            problem.solve(solver=name, **opts)
        return str(problem.status)
    except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
        text = str(exc).splitlines()[0][:120] if str(exc) else ""
        return f"error: {type(exc).__name__}: {text}"


def raise_failed(rec: SolveRecord, context: str = "") -> None:
    """Raise :class:`SolverError` describing every attempt of ``rec``."""
    attempts = "; ".join(f"{s}: {st}" for s, st in rec.attempts) or "no solver tried"
    raise SolverError(MSG_SOLVER_FAILED.format(attempts=(context + ": " if context else "") + attempts))


def _iterations(problem: cp.Problem) -> int | None:
    stats = problem.solver_stats
    return None if stats is None else stats.num_iters
