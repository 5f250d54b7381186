"""What every backend is and returns, the registry of added backends, and the names of
the built-in ones (defined in :mod:`fairuse_opt._solver_names`, re-exported here).

A backend is a subclass of :class:`Backend` that declares the task kinds it solves
(:attr:`Backend.tasks`) and what it needs from the problem (:attr:`Backend.needs`, out
of :data:`PROBLEM_PROVIDES`), implements :meth:`Backend.run`, and registers itself with
:func:`register_backend`; ``solver=<its name>`` then sends every task of a fit to it.
A fit that would ask it for a task it does not declare, or whose problem lacks what it
needs, is refused before the backend is called (:meth:`Backend.check`)::

    @register_backend
    class LBFGS(Backend):
        name = "lbfgs"
        tasks = frozenset({"unconstrained"})
        needs = frozenset({"numpy"})

        def run(self, task):
            res = scipy.optimize.minimize(self.problem.value_grad, np.zeros(self.problem.p),
                                          jac=True, method="L-BFGS-B")
            return Result(status="optimal" if res.success else "failed", solution=res.x)

``tests/test_backend_stub.py`` defines and checks such a backend in the test file alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import MSG_BACKEND_NAME, MSG_BACKEND_NEEDS, MSG_BACKEND_TASK, InputError
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

__all__ = ["Result", "Task", "Progress", "Backend", "register_backend", "registered_backend", "TASK_KINDS",
           "PROBLEM_PROVIDES", "SOLVER_CHOICES", "CONIC_SOLVERS", "NATIVE", "NATIVE_CHOICES",
           "FALLBACK_SOLVERS", "PROGRESS_AFTER", "PROGRESS_EVERY"]

#: The kinds of :class:`Task` a fit asks its backend to solve.
TASK_KINDS = ("unconstrained", "rationality", "restriction", "floor")
#: What a problem may provide to a backend (:attr:`fairuse_opt.problem.Problem.provides`).
PROBLEM_PROVIDES = {
    "numpy": "its objective, gradient and every constraint in numpy (not with a constraint_hook, "
             "whose terms are cvxpy expressions)",
    "cvxpy": "its cvxpy form (Problem.to_cvxpy)",
}


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



# ------------------------------------------------------------------ backends
class Backend:
    """A solver backend: solves the :class:`Task` s of one problem.

    Subclasses declare :attr:`name`, :attr:`tasks` and :attr:`needs`, implement
    :meth:`run`, and are made available to ``solver=`` by :func:`register_backend`.

    Attributes
    ----------
    name : str
        The name ``solver=`` takes (case-insensitive).
    tasks : frozenset of str
        The task kinds (:data:`TASK_KINDS`) it solves.
    needs : frozenset of str
        What it needs from the problem (keys of :data:`PROBLEM_PROVIDES`).
    common_set : bool
        It keeps its solutions in the problem's common set.  When False (the default) a
        solution is accepted only strictly inside the set, where the set is inactive (as
        the native Newton method's are); one on or beyond its boundary is a failure.
    """

    name: str = ""
    tasks: frozenset = frozenset()
    needs: frozenset = frozenset()
    common_set: bool = False

    def __init__(self, problem, options: dict | None = None):
        self.problem = problem
        self.options = dict(options or {})

    @classmethod
    def check(cls, problem=None, tasks=(), why: str = "") -> None:
        """Raise :class:`~fairuse_opt.exceptions.InputError` when ``tasks`` (kinds, or a
        dict kind -> why it is needed) holds a kind this backend does not declare, or
        ``problem`` lacks something it needs."""
        missing = sorted(set(tasks) - set(cls.tasks))
        if missing:
            if isinstance(tasks, dict):  # kind -> why the fit may ask it
                why = "; ".join(f"{k}: {tasks[k]}" for k in missing)
            raise InputError(MSG_BACKEND_TASK.format(solver=cls.name, missing=missing, why=why or "asked",
                                                     declared=sorted(cls.tasks)))
        if problem is not None:
            lacking = sorted(set(cls.needs) - set(problem.provides))
            if lacking:
                raise InputError(MSG_BACKEND_NEEDS.format(
                    solver=cls.name, missing=lacking, provided=sorted(problem.provides),
                    why="; ".join(f"{k}: {PROBLEM_PROVIDES[k]}" for k in lacking)))

    def solve(self, task: Task, *, per_solver: bool = True, first_usable: bool = False) -> Result:
        """Solve ``task`` (:meth:`run`), timed, named and checked: a solution that is not
        finite, or (without :attr:`common_set`) not strictly inside the common set, makes
        the result not :attr:`Result.ok`.  ``per_solver`` and ``first_usable`` are hints
        for backends that try several solvers (the conic one)."""
        self.check(None, [task.kind], why="asked by the fit")
        t0 = time.perf_counter()
        rec = self.run(task)
        rec.seconds = time.perf_counter() - t0
        rec.backend = rec.backend or self.name
        if not rec.attempts:
            rec.attempts = [(self.name, rec.status)]
        if rec.ok:
            problem = self.problem
            if not np.all(np.isfinite(rec.solution)):
                rec.status = "failed: a solution not finite"
            elif problem.set_spec is not None and not self.common_set:
                Ws, bs = problem.effective(rec.solution)
                if problem.set_spec.at_boundary(problem.family, Ws, bs).any():
                    rec.status = "failed: a solution on the common set's boundary (the backend ignores the set)"
            if not rec.ok:
                rec.attempts.append((self.name, rec.status))
        return rec

    def run(self, task: Task) -> Result:
        """The backend's own solve of ``task`` (a declared kind): a :class:`Result` with
        at least ``status`` (``"optimal"`` when solved) and ``solution`` (theta)."""
        raise NotImplementedError


_BACKENDS: dict[str, type] = {}


def register_backend(cls: type) -> type:
    """Make backend class ``cls`` (a :class:`Backend`) available as ``solver=cls.name``
    (a class decorator).  Refused (:class:`~fairuse_opt.exceptions.InputError`) for a
    name of a built-in solver or of another registered class, unknown task kinds, or
    unknown needs."""
    name = getattr(cls, "name", None)
    reason = None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        reason = "it is not a subclass of fairuse_opt.solvers.base.Backend"
    elif not isinstance(name, str) or not name.strip():
        reason = "its name must be a non-empty string"
    elif name.lower() in {c.lower() for c in SOLVER_CHOICES}:
        reason = f"the name of a built-in solver ({list(SOLVER_CHOICES)})"
    elif name.lower() in _BACKENDS and _BACKENDS[name.lower()].__qualname__ != cls.__qualname__:
        reason = f"the name of another registered backend ({_BACKENDS[name.lower()].__qualname__})"
    elif not set(cls.tasks) <= set(TASK_KINDS) or not cls.tasks:
        reason = f"its tasks {sorted(cls.tasks)} must be some of {list(TASK_KINDS)}"
    elif not set(cls.needs) <= set(PROBLEM_PROVIDES):
        reason = f"its needs {sorted(cls.needs)} must be some of {sorted(PROBLEM_PROVIDES)}"
    if reason is not None:
        raise InputError(MSG_BACKEND_NAME.format(name=name, reason=reason))
    _BACKENDS[name.lower()] = cls
    return cls


def registered_backend(name) -> type | None:
    """The backend class registered under ``name`` (case-insensitive), else ``None``
    (the built-in solvers are not in the registry)."""
    return _BACKENDS.get(name.lower()) if isinstance(name, str) else None
