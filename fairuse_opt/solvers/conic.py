"""The conic backends (CLARABEL, ECOS, SCS) through cvxpy: tolerances, statuses, retries.

:func:`solve` tries the requested solvers in order and returns the first *usable*
result: status ``optimal``, or ``optimal_inaccurate`` when no solver in the list
reaches ``optimal`` (that result is kept, flagged, and always re-verified in numpy by
the caller).  Solver exceptions are wrapped; they never leak raw.  A Ctrl-C during a
solve raises :class:`KeyboardInterrupt` (ECOS catches the signal itself and would
otherwise return its current iterate).

:class:`ConicBackend` compiles a :class:`~fairuse_opt.problem.Problem` task to cvxpy
(once per task shape and form; parameters change between solves) and solves it.
"""

from __future__ import annotations

import functools

import contextlib
import time
import warnings

import cvxpy as cp
import numpy as np

from ..exceptions import MSG_SOLVER_FAILED, MSG_SOLVER_UNKNOWN, InputError, SolverError
from .base import CONIC_SOLVERS, FALLBACK_SOLVERS, NATIVE_CHOICES, TASK_KINDS, Backend, Result, Task

__all__ = ["solve", "solver_order", "ConicBackend", "DEFAULT_OPTIONS", "raise_failed"]

#: Tolerances one order tighter than the solvers' defaults (the fair-use check is done
#: at 1e-7 in numpy afterwards); 1e-10 made both Clarabel and ECOS stop at
#: "optimal_inaccurate" on ordinary problems.
DEFAULT_OPTIONS = {
    "CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 200},
    "ECOS": {"abstol": 1e-9, "reltol": 1e-9, "feastol": 1e-9, "max_iters": 200},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
}

_ECOS_SIGINT = -4  # ECOS exit flag ECOS_SIGINT (ecos.h): interrupted by a signal


@functools.lru_cache(maxsize=1)
def _installed_solvers() -> frozenset:
    """cvxpy's installed solvers, asked once per process (cvxpy probes every solver
    module: 5 ms a call, at the start of every fit)."""
    return frozenset(cp.installed_solvers())


def solver_order(solver: str, quadratic: bool = False) -> list[str]:
    """Conic solvers to try, first the requested one, then the others as fallbacks.

    ``"auto"`` (and ``"native"``, whose fallback this is): ECOS first for a loss with
    exponential cones (logistic, Poisson), Clarabel first for a quadratic one (the
    squared error, :attr:`~fairuse_opt.model.Loss.quadratic`: it takes the quadratic
    objective directly).  Measured in ``benchmarks/results/solvers.md``: on
    logistic problems ECOS never failed while Clarabel raised on the exact fair-use
    program at n = 5,000 and on many steps of the sequence of restrictions.
    """
    installed = _installed_solvers()
    if solver.lower() in NATIVE_CHOICES:
        first = "CLARABEL" if quadratic else "ECOS"
        if first not in installed:
            first = "CLARABEL"
    else:
        first = solver.upper()
        if first not in CONIC_SOLVERS or first not in installed:
            raise InputError(MSG_SOLVER_UNKNOWN.format(
                solver=solver, installed=sorted(set(CONIC_SOLVERS) & installed)))
    # SCS is a fallback only when asked for: its first-order accuracy rarely passes the
    # 1e-7 verification, and at tight tolerances it runs for minutes.
    rest = [s for s in FALLBACK_SOLVERS if s != first and s in installed]
    return [first] + rest


@contextlib.contextmanager
def _interrupt_guard(name: str):
    """Turn a Ctrl-C that a solver swallowed into :class:`KeyboardInterrupt`."""
    if name != "ECOS":
        yield
        return
    import ecos

    real = ecos.solve
    interrupted = []

    def guarded(*args, **kw):
        out = real(*args, **kw)
        if isinstance(out, dict) and out.get("info", {}).get("exitFlag") == _ECOS_SIGINT:
            interrupted.append(True)
            raise KeyboardInterrupt("ECOS was interrupted")
        return out

    ecos.solve = guarded
    try:
        yield
    finally:
        ecos.solve = real
    if interrupted:  # pragma: no cover - raised above already
        raise KeyboardInterrupt


def _attempt(problem: cp.Problem, name: str, opts: dict) -> str:
    """One solve; returns cvxpy's status or ``"error: ..."``."""
    try:
        with warnings.catch_warnings(), _interrupt_guard(name):
            warnings.simplefilter("ignore")
            # compiled afresh at every solve (parameters as constants): cvxpy's parametrised
            # (DPP) compilation builds a tensor over (constraint rows x variables) that grew
            # with the square of the envy pairs (bench_slow_paths.py's conic-onehot, 332 rows
            # and 32 groups: a MemoryError at 5.3 GB; a scratch run on 200 rows, 5 features,
            # 32 groups and 3 restrictions: 5.6 GB with it, 350 MB compiled afresh)
            problem.solve(solver=name, ignore_dpp=True, **opts)
        return str(problem.status)
    except KeyboardInterrupt:
        raise
    except (cp.error.SolverError, ValueError, ArithmeticError, KeyError, IndexError) as exc:
        return f"error: {type(exc).__name__}: {str(exc)[:120]}"


def solve(problem: cp.Problem, solvers: list[str], options: dict | None = None,
          accept_inaccurate: bool = True, first_usable: bool = False) -> Result:
    """Solve ``problem`` with the first solver in ``solvers`` that reaches ``optimal``.

    Each solver is tried with the tight :data:`DEFAULT_OPTIONS` and, when it stops at
    ``optimal_inaccurate`` or fails, once more with its own default tolerances.  When
    no attempt reaches ``optimal``, the first ``optimal_inaccurate`` solution is
    restored and returned (the caller verifies it).  With ``first_usable`` (steps of a
    sequence whose every iterate is verified in numpy anyway) an ``optimal_inaccurate``
    result is returned at once.
    """
    rec = Result()
    fallback = None
    t0 = time.perf_counter()

    def done(name, status):
        rec.backend, rec.status = name, status
        rec.objective = float(problem.value)
        rec.iterations = _iterations(problem)
        rec.seconds = time.perf_counter() - t0
        rec.solution = _theta_value(problem)
        return rec

    for name in solvers:
        user = (options or {}).get(name, {})
        tight = {**DEFAULT_OPTIONS.get(name, {}), **user}
        for label, opts in (("", tight), ("/default-tol", user)):
            status = _attempt(problem, name, opts)
            rec.attempts.append((name + label, status))
            if status == "optimal":
                return done(name, status)
            if status == "optimal_inaccurate" and first_usable:
                return done(name, status)
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
        rec.backend, rec.status, rec.objective, rec.iterations = name, status, obj, iters
        rec.solution = _theta_value(problem)
    return rec


def _theta_value(problem: cp.Problem):
    for v in problem.variables():
        if v.name() == "theta":
            return None if v.value is None else np.asarray(v.value, dtype=np.float64).copy()
    return None


def raise_failed(rec: Result, context: str = ""):
    """Raise a :class:`SolverError` describing every attempt of ``rec``."""
    attempts = "; ".join(f"{s}: {st}" for s, st in rec.attempts) or "no solver tried"
    raise SolverError(MSG_SOLVER_FAILED.format(attempts=(context + ": " if context else "") + attempts))


def _iterations(problem: cp.Problem) -> int | None:
    stats = problem.solver_stats
    return None if stats is None else stats.num_iters


class ConicBackend(Backend):
    """A :class:`~fairuse_opt.problem.Problem`'s tasks, compiled to cvxpy and solved.

    Programs are cached per task shape and form, so a sequence of restrictions
    compiles once (only ``cp.Parameter`` values change).  Its solver names are the
    built-in ``CLARABEL``, ``ECOS``, ``SCS`` (not in the registry of added backends).
    """

    name = "conic"
    tasks = frozenset(TASK_KINDS)
    needs = frozenset({"cvxpy"})
    common_set = True

    def __init__(self, problem, solvers: list[str], forms: list[str], options: dict | None = None):
        self.problem, self.solvers, self.forms, self.options = problem, list(solvers), list(forms), options
        # the programs are compiled for targets of order one (Problem.rescaled): theta = c theta',
        # losses c^2 times; tasks are mapped in, results mapped back
        self.scaled, self.c = problem.rescaled()
        self._programs: dict = {}

    def program(self, task: Task, form: str):
        key = (task.kind, task.rationality, tuple(task.pairs), task.rho is not None, task.floor_of, form)
        if key not in self._programs:
            self._programs[key] = self.scaled.to_cvxpy(
                form=form, rationality=task.rationality or task.kind == "rationality",
                envy_pairs=task.pairs, repair=task.rho is not None, floor_of=task.floor_of)
        prog = self._programs[key]
        c2 = self.c * self.c
        if prog.rhs is not None and task.bound is not None:
            prog.rhs.value = np.asarray(task.bound, dtype=np.float64) / c2
        if task.pairs:  # L(theta) ~ a + G . theta  <=>  L'(theta') ~ a / c^2 + (G / c) . theta'
            prog.set_linearisation(task.lin_grad / self.c, np.asarray(task.lin_const, dtype=np.float64) / c2)
        if prog.rho is not None and task.rho is not None:
            prog.rho.value = float(task.rho)
        return prog

    def _unscale(self, rec: Result) -> Result:
        if self.c != 1.0:
            if rec.solution is not None:
                rec.solution = rec.solution * self.c
            rec.objective = rec.objective * self.c * self.c
        return rec

    def solve(self, task: Task, *, per_solver: bool = True, first_usable: bool = False) -> Result:
        """Solve ``task``: every solver (and, for each, every form) until ``optimal``.

        ``per_solver=False`` (steps of a sequence): for each form, all solvers at once,
        the first usable result returned.  Solutions and objectives are on the
        problem's own scale.
        """
        return self._unscale(self._solve(task, per_solver=per_solver, first_usable=first_usable))

    def _solve(self, task: Task, *, per_solver: bool, first_usable: bool) -> Result:
        attempts, usable, last = [], None, None
        if not per_solver:
            for form in self.forms:
                prog = self.program(task, form)
                rec = solve(prog.problem, self.solvers, self.options, first_usable=first_usable)
                attempts += [(f"{s}/{form}", st) for s, st in rec.attempts]
                rec.attempts, rec.program = attempts, prog
                if rec.ok:
                    rec.duals = prog.rationality_duals() if prog.rationality else None
                    return rec
                last = rec
            return last
        for solver in self.solvers:
            for form in self.forms:
                prog = self.program(task, form)
                rec = solve(prog.problem, [solver], self.options)
                attempts += [(f"{s}/{form}", st) for s, st in rec.attempts]
                rec.attempts, rec.program = attempts, prog
                if rec.status == "optimal":
                    rec.duals = prog.rationality_duals() if prog.rationality else None
                    return rec
                if rec.ok and usable is None:
                    usable = (rec, prog.rationality_duals() if prog.rationality else None)
                last = rec
        if usable is not None:
            rec, duals = usable
            rec.attempts, rec.duals = attempts, duals
            return rec
        return last
