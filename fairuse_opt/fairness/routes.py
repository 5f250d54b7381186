"""Training with fair use by construction: the routes, each a small object.

A fit asks the :class:`~fairuse_opt.problem.Problem` for what it needs and the
backends for solutions; every candidate is verified in numpy before it is kept.  The
routes, tried in this order (see ``docs/fair-use-training.md``):

* :class:`Unconstrained` - the fit without guarantees (returned as is when none is
  asked, and as the global optimum, ``"unconstrained-feasible"``, when it already meets
  every constraint);
* :class:`RationalityProgram` - one convex program with the rationality constraints:
  ``"exact"`` for ``group_reg="set"`` with the intersectional or decoupled encoding (its
  optimum is envy-free by the block-optimality theorem), ``"convex"`` when only
  rationality is asked;
* :class:`RestrictionSequence` - otherwise (``onehot``, or penalised group blocks, with
  envy-freeness): a sequence of convex restrictions (envy constraints linearised on
  their concave side, every iterate feasible) from several starts, ``"ccp"``;
* :class:`Fallback` - margins no model can meet, or no verified point: raise, or serve
  the generic model (``on_infeasible="generic"``), ``"generic-fallback"``.

Each subproblem goes to the native backend first when it may (``solver="auto"`` or
``"native"``, no ``constraint_hook``), then to the conic backends.  On the one-hot
encoding each restriction is solved by sequential quadratic models of the groups' own
losses (:func:`fairuse_opt.solvers.onehot.restriction`: a pass over the rows and the
Hessian blocks per outer iteration, a few iterations a restriction), falling back to the
interior-point method (about a hundred passes a restriction) when a model is not solved.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import (
    MSG_CONIC_TOO_LARGE,
    MSG_SEQUENCE_TOO_LARGE,
    MSG_FALLBACK,
    MSG_INFEASIBLE_MARGIN,
    MSG_LITTLE_GAIN,
    MSG_LITTLE_GAIN_ONEHOT,
    MSG_VERIFY_FAILED,
    MSG_WRONG_OPTIMAL,
    FairUseInfeasibleError,
    FairUseWarning,
    FallbackWarning,
    InputError,
    SolverError,
    VerificationError,
)
from ..problem.constraints import EnvyFreeness, constraints_of
from ..solvers import blocks, native, onehot
from ..solvers.base import NATIVE, Progress, Result, Task
from ..solvers.conic import ConicBackend, raise_failed
from .certify import Served, build_certificate, row_scores, served_losses
from .margins import resolve_margins

__all__ = ["FitSetup", "Outcome", "fit", "feasible", "violations", "check_conic_size", "check_sequence_size",
           "tasks_needed",
           "MAX_CONIC_PAIRS", "MAX_SEQUENCE_PAIRS", "MAX_SEQUENCE_PARAMS"]

#: the most envy pairs an explicit conic solver is given on the sequence of restrictions
#: (the one-hot encoding, or penalised group blocks, with envy-freeness): every step is a
#: cvxpy program compiled afresh with one constraint per pair (measured: 650 pairs on 68
#: rows took 71 s, 992 pairs on 332 rows 136 s, both on a loaded machine; 56 pairs on
#: 200 rows 1.4 s)
MAX_CONIC_PAIRS = 120


#: the most envy pairs (one constraint each in every restriction) and the most parameters
#: (a dense p x p factorisation at every interior-point iteration) of a sequence of
#: restrictions on the native backend.  Measured (bench_slow_paths.py): 30 groups (870
#: pairs) 2 s; 50 groups (2,450 pairs) 15 s of CPU, most restrictions not converging in
#: 80 iterations; 200 groups (39,800 pairs) more than 150 s; one-hot on 1,510 features
#: (1,505 parameters) 47 s of CPU
MAX_SEQUENCE_PAIRS = 1000
MAX_SEQUENCE_PARAMS = 600


def check_sequence_size(encoding: str, group_reg: str, fair_use, n_groups: int, n_params: int,
                        n_features: int) -> None:
    """Refuse at once a fit whose route may be the sequence of restrictions (the one-hot
    encoding, or penalised group blocks, with envy-freeness) beyond
    :data:`MAX_SEQUENCE_PAIRS` envy pairs or :data:`MAX_SEQUENCE_PARAMS` parameters
    (:class:`~fairuse_opt.exceptions.InputError` saying what to use instead)."""
    sequence = encoding == "onehot" or (group_reg == "penalty" and encoding != "none")
    if "envy_freeness" not in fair_use or not sequence:
        return
    pairs = n_groups * (n_groups - 1)
    setting = ("encoding='onehot'" if encoding == "onehot"
               else f"encoding={encoding!r} with group_reg='penalty'")
    exact = ("encoding='intersectional' (or 'decoupled') with group_reg='set' is envy-free by construction "
             "(one exact program)")
    if pairs > MAX_SEQUENCE_PAIRS:
        raise InputError(MSG_SEQUENCE_TOO_LARGE.format(
            setting=setting, what=f"{n_groups} groups give {pairs:,} envy pairs, each a constraint of every "
                                  f"restriction (at most {MAX_SEQUENCE_PAIRS:,})",
            advice=f"{exact}, or ask for fair_use='rationality'"))
    if n_params > MAX_SEQUENCE_PARAMS:
        raise InputError(MSG_SEQUENCE_TOO_LARGE.format(
            setting=setting, what=f"{n_params:,} parameters ({n_features:,} features), a dense {n_params:,} x "
                                  f"{n_params:,} factorisation at each of its hundreds of interior-point "
                                  f"iterations (at most {MAX_SEQUENCE_PARAMS:,} parameters)",
            advice=f"{exact}, or fit on fewer features"))


def check_conic_size(solver: str, encoding: str, group_reg: str, fair_use, n_groups: int) -> None:
    """Refuse at once an explicit conic solver on a fit whose route may need the sequence
    of restrictions with more than :data:`MAX_CONIC_PAIRS` envy pairs
    (:class:`~fairuse_opt.exceptions.InputError` naming the native solver)."""
    pairs = n_groups * (n_groups - 1)
    sequence = encoding == "onehot" or (group_reg == "penalty" and encoding != "none")
    if "envy_freeness" in fair_use and sequence and pairs > MAX_CONIC_PAIRS:
        route = ("one-hot route" if encoding == "onehot" else "route of penalised group blocks")
        raise InputError(MSG_CONIC_TOO_LARGE.format(solver=solver, route=route, pairs=pairs, groups=n_groups,
                                                    limit=MAX_CONIC_PAIRS))


def tasks_needed(fair_use) -> dict[str, str]:
    """The task kinds (:data:`~fairuse_opt.solvers.base.TASK_KINDS`) a fit with the
    guarantees ``fair_use`` may ask its backend, each with the reason (a backend that
    does not declare one of them is refused before the fit)."""
    out = {"unconstrained": "the fit without guarantees"}
    if fair_use:
        if "rationality" in fair_use:
            out["rationality"] = "the program with the rationality constraints"
        out["restriction"] = "the sequence of convex restrictions, when no single program verifies"
        out["floor"] = "the lowest loss a group can reach, to check margins"
    return out


logger = logging.getLogger("fairuse_opt.fit")


@dataclass
class FitSetup:
    """Everything a fair-use fit needs, prepared once by the estimator."""

    problem: Any  # fairuse_opt.problem.Problem
    keys: list
    index: Any
    served: Served
    to_raw: Any  # (Ws, bs) standardised -> (coef, intercept) raw
    native: bool  # the native backend may be used
    native_only: bool
    solvers: list
    forms: list
    solver_options: dict | None
    conic: ConicBackend | None = None
    progress: Progress | None = None  # iteration, objective, violation through logging
    #: SQP's solutions checked on the whole loss matrix before they are kept (set when the
    #: certificate failed on a solution that was not: the fit then runs again)
    verify_sqp: bool = False
    unconstrained: Result | None = None  # the unconstrained fit, once made (kept for a second run)
    #: the generic fit's last Hessian blocks (effective coordinates, one per group, taken
    #: near the generic model): the personalised problem's Hessian at its start
    start_blocks: list | None = None

    def backend(self) -> ConicBackend:
        if self.conic is None:
            self.conic = ConicBackend(self.problem, self.solvers, self.forms, self.solver_options)
        return self.conic


@dataclass
class Outcome:
    """A route's result: parameters (or served effective models) and how they were found."""

    theta: np.ndarray
    route: str
    solver: str | None
    status: str
    iterations: int = 1
    duals: dict | None = None
    start: str | None = None
    effective: tuple | None = None
    fallback_groups: list = field(default_factory=list)
    margins_override: np.ndarray | None = None
    notes: list = field(default_factory=list)
    deferred: bool = False  # envy-freeness left to the certificate (see RationalityProgram.by_sqp)


def violations(L: np.ndarray, bound: np.ndarray, fair_use, tol: float, keys) -> list[str]:
    """Every requested constraint on the loss matrix ``L[g, r]`` that does not hold (groups
    without rows, NaN rows, excepted)."""
    rows = np.flatnonzero(np.isfinite(np.diag(L)))
    return [msg for c in constraints_of(fair_use, bound) for msg in c.violations(L, tol, keys, rows)]


def max_violation(L: np.ndarray, bound: np.ndarray | None, fair_use) -> float:
    """The largest amount by which a requested constraint on ``L[g, r]`` is exceeded
    (0 when all hold; NaN rows of empty groups ignored)."""
    L = np.nan_to_num(L, nan=0.0)
    return max([c.max_violation(L) for c in constraints_of(fair_use, bound)], default=0.0)


def feasible(L, bound, fair_use, tol) -> bool:
    """All requested constraints hold on ``L`` (NaN rows of empty groups excepted)."""
    return not violations(np.nan_to_num(L, nan=0.0), bound, fair_use, tol, list(range(L.shape[0])))


# ------------------------------------------------------------------------- routes
class Unconstrained:
    """The objective alone, over the common set: Newton in numpy when its solution stays
    inside the set (then the set is inactive), else a conic backend."""

    name = "unconstrained"

    def run(self, setup: FitSetup, start: np.ndarray) -> Result:
        prob = setup.problem
        if setup.native and blocks.separable(prob):
            # decoupled blocks in the common set: one small problem per group (no Hessian
            # over all blocks, no conic program)
            res = blocks.solve(prob, start, progress=setup.progress)
            if res.status == "optimal":
                return res
            if setup.native_only:
                raise SolverError("the native backend did not converge on the unconstrained fit "
                                  f"({'; '.join(res.notes)})")
        elif setup.native:
            start_solve = None
            if setup.start_blocks is not None:
                # the Hessian at the generic model from the generic fit's blocks: no
                # subsample fit, no Hessian for the first steps (see native.newton)
                H = prob.combine_hessians(setup.start_blocks, prob.Wg / prob.data.total_weight)
                H[np.diag_indices_from(H)] += 2 * prob.alpha * prob.q2
                start_solve = native.factor_sym(H)
            res = native.newton(prob, start, logger=_newton_logger("unconstrained fit"),
                                progress=setup.progress, stage="unconstrained fit (Newton)",
                                rough_start=True, start_solve=start_solve)
            if res.status == "optimal" and (prob.set_spec is None or not prob.set_spec.at_boundary(
                    prob.family, *prob.effective(res.solution)).any()):
                return res
            if prob.set_spec is not None:
                # the common set binds (small groups push their intercepts to its bound):
                # the interior-point method with the set as its only constraint, O(n d^2)
                # a step, before any conic program over all rows
                theta = prob.set_spec.project_inside(prob.family, res.solution, 1e-6)
                ipm = native.barrier(prob, theta, bound=None, pairs=[], lin_grad=None, lin_const=None, rho=1.0,
                                     progress=setup.progress, stage="unconstrained fit in the set (interior point)")
                if ipm.status == "optimal":
                    ipm.attempts = [("NATIVE/newton", res.status), *ipm.attempts]
                    return ipm
            if setup.native_only:
                theta = prob.set_spec.project_inside(prob.family, res.solution, 0.0) \
                    if prob.set_spec is not None else res.solution
                if prob.set_spec is not None:  # the set binds: SLSQP with the set as constraint
                    res2 = native.slsqp(prob, theta, None, [], 0.0, progress=setup.progress)
                    if res2.ok:
                        return res2
                if res.status == "optimal":
                    return res
        if setup.native_only:
            raise SolverError("the native backend did not converge on the unconstrained fit")
        rec = setup.backend().solve(Task("unconstrained"))
        if not rec.ok:
            raise_failed(rec, "unconstrained fit")
        excess = optimal_excess(prob, rec)
        if excess is None or excess <= WRONG_OPTIMAL:
            return rec
        # a solver's imprecise "optimal" (extreme feature offsets or target scales): polished
        # by Newton's method; kept as it is when only slightly off; else refused
        polished = native.newton(prob, rec.solution, max_steps=20)
        after = optimal_excess(prob, polished) if polished.status == "optimal" else None
        if after is not None and after <= WRONG_OPTIMAL:
            polished.attempts = [(rec.backend, f"optimal, imprecise ({excess:.2g})"), *(polished.attempts or [])]
            logger.info("%s's unconstrained optimum polished by Newton's method (excess %.2g -> %.2g)",
                        rec.backend, excess, after)
            return polished
        if excess <= IMPRECISE_OPTIMAL:
            logger.info("%s's unconstrained optimum kept: excess %.2g (Newton's polish did not converge)",
                        rec.backend, excess)
            return rec
        raise SolverError(MSG_WRONG_OPTIMAL.format(solver=rec.backend, what="unconstrained fit", excess=excess,
                                                   limit=WRONG_OPTIMAL))


def optimal_excess(prob, rec: Result) -> float | None:
    """The objective's excess over its minimum at ``rec``, an "optimal" minimum of the
    objective alone: about half the Newton decrement (:func:`native.excess`), relative to
    the objective's scale.  ``None`` where it is not measured: where the common set binds
    (the decrement of the unconstrained objective says nothing there) or without the
    objective in numpy (a constraint hook)."""
    if "numpy" not in prob.provides or rec.solution is None:
        return None
    theta = rec.solution
    if prob.set_spec is not None and prob.set_spec.at_boundary(prob.family, *prob.effective(theta)).any():
        return None
    scale = max(prob.gradient_scale(), abs(prob.objective(theta)))
    return float(native.excess(prob, theta) * prob.gradient_scale() / scale)


#: A solver's "optimal" unconstrained fit is refused when a Newton step from it would lower
#: the objective by more than this, relative to the objective's scale (the largest of
#: its value and the loss's gradient scale).  Measured on the test suite's conic fits:
#: at most 2.4e-9 (squared error, targets in the thousands); the wrong "optimal" answers
#: of Poisson rates of order 1e9: 4.4e-4 (CLARABEL) and 0.34 (SCS).  Above it, the answer is
#: polished by Newton's method.
WRONG_OPTIMAL = 1e-6
#: Without a converged polish, an answer this close is kept (a fuzz case with feature offsets
#: of 5e11: ECOS at 6.4e-6, its certificate verified); beyond it, refused.
IMPRECISE_OPTIMAL = 1e-4


class RationalityProgram:
    """One convex program: objective + one rationality constraint per group."""

    def __init__(self, exact: bool):
        self.name = "exact" if exact else "convex"

    def by_sqp(self, setup: FitSetup, theta_u, bound, fair_use, tol, attempts) -> Outcome | None:
        """SQP with the exact Hessian (a few passes over the rows and at most a Hessian or
        two), accepted when it ends at a KKT point (for a convex program, the global
        optimum) that verifies; ``None`` otherwise (or without the native backend)."""
        if not setup.native:
            return None
        prob = setup.problem
        res = native.sqp(prob, theta_u, bound, tol, progress=setup.progress, stage=f"{self.name} program (SQP)")
        attempts.extend(res.attempts)
        if res.status != "optimal":
            return None
        # rationality from the own losses (SQP's last pass, kept); envy-freeness, which the
        # exact program's optimum has by the block-optimality theorem, is left to the
        # certificate (the same G x G losses on the served models: computing them here too
        # was a tenth of a 10^6-row fit); a certificate that fails runs the fit again with
        # the whole loss matrix checked here (FitSetup.verify_sqp)
        deferred = "envy_freeness" in fair_use and self.name == "exact" and not setup.verify_sqp
        L = np.diag(prob.own_losses(res.solution)) if deferred else prob.loss_matrix(res.solution)
        if not feasible(L, bound, ("rationality",) if deferred else fair_use, tol):
            return None
        logger.info("%s program (native SQP): objective %.7f in %d iteration(s)",
                    self.name, prob.objective(res.solution), res.iterations or 0)
        out = Outcome(res.solution, self.name, NATIVE, "optimal", 1, duals=res.duals)
        out.deferred = deferred
        return out

    def run(self, setup: FitSetup, theta_u, bound, fair_use, tol, attempts,
            sqp_tried: bool = False) -> tuple[Outcome | None, bool]:
        prob = setup.problem
        if setup.native:
            # SQP (unless the caller has just tried it), else SLSQP (gradients only:
            # O(n d) a step) accepted at a KKT point too; else the interior-point method
            out = None if sqp_tried else self.by_sqp(setup, theta_u, bound, fair_use, tol, attempts)
            if out is not None:
                return out, False
            res = native.slsqp(prob, theta_u, bound, [], tol, progress=setup.progress,
                               stage=f"{self.name} program (SLSQP)")
            if res.ok and res.status == "optimal" and feasible(prob.loss_matrix(res.solution), bound, fair_use, tol):
                duals, kkt = ((res.duals, res.kkt_residual) if res.kkt_residual is not None
                              else native.kkt_duals(prob, res.solution, bound, tol, residual=True))
                if kkt <= 1e-6:
                    attempts.append(("NATIVE/slsqp", "optimal"))
                    logger.info("%s program (native SLSQP): objective %.7f in %d iteration(s)", self.name,
                                prob.objective(res.solution), res.iterations or 0)
                    return Outcome(res.solution, self.name, NATIVE, "optimal", 1, duals=duals), False
            attempts.append(("NATIVE/slsqp", "not a KKT point" if res.ok else "failed"))
            ipm = native.barrier(prob, theta_u, bound=bound - 0.1 * tol, pairs=[], lin_grad=None,
                                 lin_const=None, rho=1e4, progress=setup.progress,
                                 stage=f"{self.name} program (interior point)")
            attempts.extend(ipm.attempts)
            if ipm.status == "optimal" and feasible(prob.loss_matrix(ipm.solution), bound, fair_use, tol):
                logger.info("%s program (native interior point): objective %.7f in %d iteration(s)",
                            self.name, prob.objective(ipm.solution), ipm.iterations or 0)
                return Outcome(ipm.solution, self.name, NATIVE, "optimal", 1, duals=ipm.duals), False
            if setup.native_only:
                return None, False
        infeasible = False
        for tighten in (0.0, 10 * tol, 100 * tol):
            rec = setup.backend().solve(Task("rationality", bound=bound - tighten, rationality=True))
            attempts.extend(rec.attempts)
            if not rec.ok:
                infeasible = any(st == "infeasible" for _, st in rec.attempts)
                return None, infeasible
            if feasible(prob.loss_matrix(rec.solution), bound, fair_use, tol):
                logger.info("%s program (%s): objective %.7f", self.name, rec.backend, prob.objective(rec.solution))
                return Outcome(rec.solution, self.name, rec.backend, rec.status, 1, duals=rec.duals), False
        logger.info("the %s program's solution did not verify; trying the sequence of restrictions", self.name)
        return None, False


#: relative duality gap at which the native interior-point method ends a convex
#: restriction: the restrictions are steps (each candidate is verified on the true
#: constraints, and SLSQP polishes the last), not answers
RESTRICTION_TOL = 1e-8


#: the one-hot route's restrictions by sequential quadratic models
#: (:func:`fairuse_opt.solvers.onehot.restriction`); ``False``: the interior-point method
ONEHOT_MODELS = True


class RestrictionSequence:
    """The convex-concave procedure from the repaired unconstrained fit and the generic
    model, each subproblem a convex restriction with penalised slacks (so that it has an
    interior); a candidate is accepted only if it verifies and lowers the objective,
    otherwise the step towards it is halved.  Every accepted iterate is feasible."""

    name = "ccp"

    def __init__(self, rho_descent: float = 100.0, models: bool | None = None):
        self.rho_descent = rho_descent
        #: the one-hot encoding's restrictions by sequential quadratic models
        #: (:func:`fairuse_opt.solvers.onehot.restriction`: a few passes over the rows
        #: each) instead of the interior-point method (about a hundred); ``False`` for
        #: the interior-point method alone (the tests compare the two); default
        #: :data:`ONEHOT_MODELS`
        self.models = ONEHOT_MODELS if models is None else models

    def run(self, setup: FitSetup, fair_use, bound, tol, max_iter, theta_u, theta_generic, trace, attempts):
        prob = setup.problem
        G = prob.G
        act = set(prob.active)
        pairs = ([(g, r) for g in range(G) for r in range(G) if r != g and g in act]
                 if "envy_freeness" in fair_use else [])
        rationality = "rationality" in fair_use
        best = None

        kept: dict = {}  # the loss matrix and its Jacobian at the point the next step starts from

        def loss_matrix(theta, jacobian=False):
            if kept.get("theta") is not None and np.array_equal(kept["theta"], theta):
                return kept["value"] if jacobian else kept["value"][0]
            out = prob.loss_matrix(theta, jacobian=jacobian)
            if jacobian:
                kept.update(theta=np.array(theta, copy=True), value=out)
            return out

        def is_feasible(theta, next_start=False):
            # next_start: a point the next restriction is likely to start from (a repair
            # round's, a full step's): the Jacobian too, kept for that step
            L = loss_matrix(theta, jacobian=True)[0] if next_start and pairs else loss_matrix(theta)
            return feasible(L, bound, fair_use, tol)

        memory: dict = {}  # the last restriction's multipliers (onehot.restriction)

        def step(theta, rho):
            task = Task("restriction", bound=bound if rationality else None, pairs=pairs,
                        rationality=rationality, theta=theta, rho=rho)
            if pairs:
                L, E = loss_matrix(theta, jacobian=True)
                Gp = prob.pair_gradients(E, pairs)
                task.lin_grad = Gp.toarray() if not setup.native else Gp
                task.lin_const = np.array([L[g, r] for g, r in pairs]) - np.asarray(Gp @ theta).ravel()
            if setup.native and self.models and prob.family.encoding == "onehot" and onehot.applies(prob):
                res = onehot.restriction(prob, theta, bound=task.bound, pairs=pairs, lin_grad=task.lin_grad,
                                         lin_const=task.lin_const, rho=rho, lam0=(None if memory.get("lam") is None else
                                               np.minimum(memory["lam"] * (rho / memory["rho"]), rho)),
                                         progress=setup.progress,
                                         stage=f"convex restriction (quadratic models, penalty {rho:g})")
                attempts.extend((f"{s}/ccp", st) for s, st in res.attempts)
                if res.status == "optimal" and np.all(np.isfinite(res.solution)):
                    memory["lam"], memory["rho"] = res.multipliers, rho
                    return res
            if setup.native:
                res = native.barrier(prob, theta, bound=task.bound, pairs=pairs, lin_grad=task.lin_grad,
                                     lin_const=task.lin_const, rho=rho, tol=RESTRICTION_TOL,
                                     progress=setup.progress,
                                     stage=f"convex restriction (interior point, penalty {rho:g})")
                attempts.extend((f"{s}/ccp", st) for s, st in res.attempts)
                if res.solution is not None and np.all(np.isfinite(res.solution)):
                    return res
                if setup.native_only:
                    return None
                if pairs:
                    task.lin_grad = Gp.toarray()
            rec = setup.backend().solve(task, per_solver=False, first_usable=True)
            attempts.extend((f"{s}/ccp", st) for s, st in rec.attempts)
            return rec if rec.ok else None

        # the polish below (SLSQP from the best iterate) finishes what the restrictions
        # leave, at a cost of one restriction or less: with it, the descent stops once
        # a step gains less than 1e-5 (relative).  Measured on SUPPORT2 one-hot (9,063
        # rows): 30 steps of ~3e-6 each took 13.5 s, and the polish with pooled groups tied
        # reached 0.4977373 from the second step as from the thirtieth (to 1e-10).
        polish = prob.hook is None and len(pairs) + G <= 600
        crawl = 1e-5 if polish else 1e-7

        def descend(theta, label, iterations):
            nonlocal best
            obj = prob.objective(theta)
            local_trace = [obj]
            info = {"solver": None, "status": "start", "iterations": 0, "start": label, "duals": None}
            for it in range(iterations):
                rec = step(theta, self.rho_descent)
                if rec is None:
                    break
                cand = rec.solution
                accepted = None
                t = 1.0
                while t >= 1.0 / 64:
                    trial = theta + t * (cand - theta)
                    trial_obj = prob.objective(trial)
                    if trial_obj < obj - 1e-12 and is_feasible(trial, next_start=t == 1.0):
                        accepted = (trial, trial_obj)
                        break
                    t /= 2
                if accepted is None:
                    break
                improvement = obj - accepted[1]
                theta, obj = accepted
                local_trace.append(obj)
                info = {"solver": rec.backend, "status": rec.status, "iterations": it + 1, "start": label,
                        "duals": rec.duals if (rationality and t == 1.0) else None}
                logger.info("ccp from %s: iteration %d, objective %.7f (step %g)", label, it + 1, obj, t)
                if setup.progress is not None and setup.progress.wanted():
                    setup.progress(f"ccp from {label}", it + 1, obj,
                                   max_violation(prob.loss_matrix(theta), bound, fair_use))
                if improvement <= crawl * (1.0 + abs(obj)):
                    break
            if is_feasible(theta) and (best is None or obj < best[2]):
                best = (theta, info, obj, local_trace)

        def report(rnd, theta, rho):
            if setup.progress is not None and setup.progress.wanted():
                setup.progress(f"repair (penalty {rho:g})", rnd, prob.objective(theta),
                               max_violation(prob.loss_matrix(theta), bound, fair_use))

        repaired = self._repair(theta_u, lambda th: is_feasible(th, next_start=True), step, report=report)
        if repaired is not None:
            descend(repaired, "repaired unconstrained fit", max_iter)
        if is_feasible(theta_generic):
            # from the generic model the procedure crawls (measured: 86% of the time of a
            # 300-second fit for no better objective); when the repair worked it gets a few
            # steps only, enough to show whether its basin is better
            descend(theta_generic, "generic model", max_iter if repaired is None else min(max_iter, 5))
        if best is None:
            return None
        theta, info, obj, local_trace = best
        # the hook's terms are cvxpy expressions: no numpy polish then; SLSQP's dense QP
        # is cubic in the number of constraints: only for a few hundred of them
        if polish:
            # from a feasible point the polish should only go down: a run whose objective
            # rises far above the start diverges (seen on SUPPORT2 one-hot: 10^15 after a
            # few iterations, 30% of the fit spent before it gave up)
            res = native.slsqp(prob, theta, bound if rationality else None, pairs, tol, progress=setup.progress,
                               stage="local polish (SLSQP)", abort_above=obj + 0.1 * (1.0 + abs(obj)),
                               patience=native.POLISH_PATIENCE)
            if res.ok:
                p_obj = prob.objective(res.solution)
                if p_obj < obj - 1e-12 and is_feasible(res.solution):
                    logger.info("local polish (SLSQP): objective %.7f -> %.7f", obj, p_obj)
                    theta, obj = res.solution, p_obj
                    local_trace = local_trace + [p_obj]
                    info = {**info, "duals": None, "polished": True}
            # groups pooled on one model (both envy constraints between them active) make
            # the constraints degenerate: the restrictions crawl along the pooled manifold
            # (~1e-7 a step) and SLSQP's linearisation is inconsistent there.  Tying the
            # pooled groups' models (linear equalities; the envy between them then holds
            # exactly) gives a regular program whose solution is verified like any other.
            tied = _pooled_pairs(prob, theta, pairs) if pairs else []
            equalities = _tie_equalities(prob, tied) if tied else None
            if tied and _subspace_minimum(prob, theta, equalities):
                # theta already minimises the objective over every model with the pooled
                # groups tied (a superset of the tied program's feasible set, which theta
                # is in): no polish there can gain the 1e-12 it would need (measured: the
                # one-hot benchmark's generic model, all 8 groups pooled, 1.2 s of SLSQP at
                # 100,000 rows for nothing)
                logger.info("the pooled groups %s tied: the best point already minimises the objective there",
                            [(setup.keys[g], setup.keys[r]) for g, r in tied])
            elif tied:
                cluster = set(tied) | {(r, g) for g, r in tied}
                res = native.slsqp(prob, theta, bound if rationality else None,
                                   [pr for pr in pairs if pr not in cluster], tol,
                                   equalities=equalities, patience=native.POLISH_PATIENCE)
                if res.ok:
                    p_obj = prob.objective(res.solution)
                    if p_obj < obj - 1e-12 and is_feasible(res.solution):
                        logger.info("polish with pooled groups %s tied: objective %.7f -> %.7f",
                                    [(setup.keys[g], setup.keys[r]) for g, r in tied], obj, p_obj)
                        theta, obj = res.solution, p_obj
                        local_trace = local_trace + [p_obj]
                        info = {**info, "duals": None, "polished": True}
        trace.extend(local_trace)
        return Outcome(theta, "ccp", info["solver"], info["status"], info["iterations"],
                       duals=info.get("duals"), start=info["start"])

    @staticmethod
    def _repair(theta_u, is_feasible, step, max_rounds=20, rho0=1.0, growth=4.0, rho_max=1e4, report=None):
        """Move the unconstrained fit into the feasible set: restrictions with slacks whose
        penalty grows geometrically from ``rho0`` and is capped at ``rho_max``; the first
        verified feasible point, or ``None`` when the slacks do not vanish."""
        theta, rho = theta_u, rho0
        for rnd in range(max_rounds):
            rec = step(theta, rho)
            if rec is None:
                return None
            theta = rec.solution
            if report is not None:
                report(rnd + 1, theta, rho)
            if is_feasible(theta):
                logger.info("repair reached a feasible point (penalty %g)", rho)
                return theta
            rho = min(rho * growth, rho_max)
        return None


def _pooled_pairs(prob, theta, pairs, rel: float = 1e-6) -> list[tuple[int, int]]:
    """Pairs ``g < r`` of groups that are indifferent between their two reports (both
    envy slacks within ``rel`` of the loss): the groups share one model, or nearly."""
    L = prob.loss_matrix(theta)
    own = np.diag(L)
    slack = EnvyFreeness().slacks(L)
    asked = set(pairs)
    out = []
    for g in range(prob.G):
        for r in range(g + 1, prob.G):
            if (g, r) in asked and (r, g) in asked:
                scale = rel * max(1.0, abs(own[g]), abs(own[r]))
                if abs(slack[g, r]) <= scale and abs(slack[r, g]) <= scale:
                    out.append((g, r))
    return out


#: a point minimises the objective over a subspace when a Newton step there would gain
#: at most this (half the squared Newton decrement; the polish keeps only gains above 1e-12)
SUBSPACE_GAIN = 1e-13


def _subspace_minimum(prob, theta, equalities) -> bool:
    """Whether ``theta`` meets ``equalities theta = 0`` (to rounding) and minimises the
    (convex) objective over that subspace to :data:`SUBSPACE_GAIN`: half the Newton
    decrement ``g' N (N' H N)^-1 N' g`` in a basis ``N`` of the null space (one gradient
    and one Hessian)."""
    if "numpy" not in getattr(prob, "provides", ("numpy",)) or prob.hook is not None:
        return False
    if equalities.shape[0] and np.max(np.abs(equalities @ theta)) > 1e-12 * max(1.0, float(np.max(np.abs(theta)))):
        return False
    from scipy.linalg import null_space

    N = null_space(equalities) if equalities.shape[0] else np.eye(prob.p)
    if N.shape[1] == 0:
        return True
    _, grad = prob.value_grad(theta)
    gN = N.T @ grad
    HN = N.T @ prob.hessian(theta) @ N
    try:
        step = np.linalg.solve(HN, gN)
    except np.linalg.LinAlgError:
        return False
    return bool(0.5 * float(gN @ step) <= SUBSPACE_GAIN)


def _tie_equalities(prob, tied) -> np.ndarray:
    """Rows ``A`` (full row rank) with ``A theta = 0`` iff every tied pair is served one model."""
    maps = prob.family.maps
    A = np.vstack([(maps[g] - maps[r]).toarray() for g, r in tied])
    _, sv, Vt = np.linalg.svd(A, full_matrices=False)
    return Vt[sv > 1e-10 * sv.max()] if sv.size and sv.max() > 0 else np.zeros((0, prob.p))


def _newton_logger(label):
    def log(step, objective, gnorm):
        logger.debug("%s: Newton step %d, objective %.9f, gradient %.2e", label, step, objective, gnorm)
    return log


def margin_infeasible(setup: FitSetup, bound, tol, unknown: list | None = None, groups=None,
                      reached: np.ndarray | None = None) -> list[int]:
    """Groups (of ``groups``, default all) whose bound is below the lowest loss they can
    reach in the family (groups whose lowest loss could not be computed are appended to
    ``unknown``).  ``reached`` (G,): own losses of a model of the family (the
    unconstrained fit), so that a group already at or below its bound needs no solve."""
    prob = setup.problem
    bad = []
    # decoupled blocks in the common set: the unconstrained fit gives every group its
    # lowest loss (blocks.solve, each group alone), so it is the floor; infeasibility is
    # claimed only with a clear margin over its accuracy
    own_floor = reached is not None and setup.native and blocks.separable(prob)
    for g in (prob.active if groups is None else [g for g in prob.active if g in set(groups)]):
        if reached is not None and reached[g] <= bound[g] + tol:
            continue
        if own_floor:
            if reached[g] - 1e-9 > bound[g] + tol:
                bad.append(g)
            continue
        floor = _floor(setup, g, target=bound[g] + tol)
        if floor is None and unknown is not None:
            unknown.append(g)
        if floor is not None and floor > bound[g] + tol:
            bad.append(g)
    return bad


def _floor(setup: FitSetup, g: int, target: float | None = None) -> float | None:
    """The lowest mean loss group g can reach (its rows only, the common set, the hook),
    or, with ``target``, a loss at most ``target`` that it reaches (the native solvers stop
    there: the floor is then known to be below the target, which is all a margin check
    needs)."""
    prob = setup.problem
    if setup.native:
        sub = _GroupOnly(prob, g)
        start = np.zeros(prob.p)
        if prob.set_spec is not None:
            start = prob.set_spec.project_inside(prob.family, start + _centre(prob), 1e-6)
            res = native.barrier(sub, start, bound=None, pairs=[], lin_grad=None, lin_const=None, rho=1.0,
                                 progress=setup.progress, stage=f"floor of group {g} (interior point)",
                                 stop_below=target)
        else:
            res = native.newton(sub, start, progress=setup.progress, stage=f"floor of group {g} (Newton)",
                                stop_below=target)
        if res.status == "reached" and res.solution is not None and res.objective <= target:
            return float(res.objective)
        if res.ok and res.status == "optimal":
            # the value reached is (up to the solver's accuracy) the floor: claim
            # infeasibility only with a clear margin
            return float(res.objective) - 1e-9
        if setup.native_only:
            return None
    rec = setup.backend().solve(Task("floor", floor_of=g))
    return float(rec.objective) if rec.ok else None


def _centre(prob):
    theta = np.zeros(prob.p)
    spec = prob.set_spec
    for i in prob.family.block_intercept:
        theta[i] = spec.intercept_center
    for idx in prob.family.block_weights:
        if len(idx):
            theta[idx] = spec.coef_center
    return theta


class _GroupOnly:
    """Group g's own mean loss as an objective (no penalty): the floor problem."""

    def __init__(self, prob, g):
        self.prob, self.g = prob, g
        self.p, self.G, self.active = prob.p, prob.G, [g]
        self.alpha, self.q2 = 0.0, np.zeros(prob.p)
        self.set_spec, self.family = prob.set_spec, prob.family
        self.Wg = np.zeros(prob.G)
        self.Wg[g] = 1.0
        self.data = type("_Weights", (), {"total_weight": 1.0})()

    def effective_hessians(self, theta):
        return self.prob.effective_hessians(theta, groups=[self.g])

    def combine_hessians(self, blocks, weights):
        H = self.prob.combine_hessians(blocks, weights)
        H[np.diag_indices_from(H)] += 1e-10  # parameters group g does not use
        return H

    def mapped_hessians(self, blocks):
        return None  # re-weighted by combine_hessians, which adds the diagonal above

    def weighted_hessian(self, theta, weights):
        return self.combine_hessians(self.effective_hessians(theta), weights)

    def penalty(self, theta):
        return 0.0

    def gradient_scale(self):
        return self.prob.gradient_scale(groups=[self.g])

    def value_grad(self, theta, grad=True):
        vals, grads = self.prob.own_losses(theta, grad=True, groups=[self.g])
        return float(vals[self.g]), grads[self.g]

    def objective(self, theta):
        return float(self.prob.own_losses(theta, groups=[self.g])[self.g])

    def own_losses(self, theta, grad=False):
        return self.prob.own_losses(theta, grad=grad, groups=[self.g])

    def hessian(self, theta):
        w = np.zeros(self.G)
        w[self.g] = 1.0
        return self.weighted_hessian(theta, w)

    def loss_matrix(self, theta, jacobian=False):
        return self.prob.loss_matrix(theta, jacobian=jacobian)


# -------------------------------------------------------------------------- the fit
def fit(setup: FitSetup, *, fair_use: tuple, theta_generic: np.ndarray, generic_row_loss: np.ndarray,
        generic_losses: np.ndarray, generic_err: np.ndarray, generic_served: tuple | None, margin: Any,
        on_infeasible: str, max_iter: int, tol: float, objective_generic: float, start: np.ndarray):
    """Fit ``setup``'s problem with the requested guarantees and certify what is served.

    Returns ``(theta, coef, intercept, certificate)``: the parameters and the models
    served to each group (raw scale; with ``on_infeasible="generic"`` some groups may
    be served the generic model, which ``theta`` alone does not express).
    """
    t0 = time.perf_counter()
    prob = setup.problem
    keys = setup.keys
    G = prob.G
    if setup.progress is None:
        setup.progress = Progress(logger)
    trace: list[float] = []
    attempts: list = []
    state = {}

    def finish(out: Outcome, margins, lower_bound=None):
        theta = out.theta
        Ws, bs = prob.effective(theta) if out.effective is None else out.effective
        coef, intercept = setup.to_raw(Ws, bs)
        if generic_served is not None and out.fallback_groups:
            # groups given the generic model are served exactly its coefficients
            coef[out.fallback_groups], intercept[out.fallback_groups] = generic_served
        if out.margins_override is not None:
            margins = out.margins_override
        at_b = (prob.set_spec.at_boundary(prob.family, Ws, bs) if prob.set_spec is not None
                else np.zeros(G, dtype=bool))
        gc, gi = generic_served if generic_served is not None else (None, None)
        cert = build_certificate(
            served=setup.served, coef=coef, intercept=intercept, generic_losses=generic_losses,
            generic_err=generic_err, generic_coef=gc, generic_intercept=gi, margins=margins,
            fair_use=fair_use, tol=tol, keys=keys, at_boundary=at_b, route=out.route, solver=out.solver,
            status=out.status, iterations=out.iterations, objective=prob.objective(theta),
            objective_unconstrained=state.get("obj_u", float("nan")), objective_generic=objective_generic,
            trace=trace, seconds=time.perf_counter() - t0, attempts=attempts, duals=out.duals,
            start=out.start, fallback_groups=out.fallback_groups, notes=out.notes, lower_bound=lower_bound)
        return theta, coef, intercept, cert

    def fallback(reasons, exc_type=VerificationError, message=None):
        if on_infeasible == "raise":
            raise exc_type(message or MSG_VERIFY_FAILED.format(failures="; ".join(reasons)))
        warnings.warn(MSG_FALLBACK.format(groups=list(keys), reason="; ".join(reasons)), FallbackWarning,
                      stacklevel=5)
        out = Outcome(theta_generic, "generic-fallback", None, "fallback", 0,
                      fallback_groups=list(range(G)), margins_override=np.zeros(G), notes=list(reasons))
        if generic_served is not None:
            gW, gb = prob.effective(theta_generic)
            out.effective = (gW, gb)
        return finish(out, np.zeros(G))

    try:
        result = _fit_routes(setup, fair_use, theta_generic, generic_row_loss, generic_losses, margin,
                             on_infeasible, max_iter, tol, objective_generic, start, trace, attempts, state)
    except (FairUseInfeasibleError, SolverError, VerificationError) as exc:
        if on_infeasible == "raise":
            raise
        return fallback([str(exc)])
    kind = result[0]
    if kind == "fallback":
        _, reasons, exc_type, message = result
        return fallback(reasons, exc_type, message)
    if kind == "partial":
        _, groups, why, relaxed, inner = result
        theta, Ws, bs = inner
        gW, gb = prob.effective(theta_generic)
        Ws, bs = Ws.copy(), bs.copy()
        Ws[groups], bs[groups] = gW[groups], gb[groups]
        names = [keys[g] for g in groups]
        out = Outcome(theta, "generic-fallback", None, "fallback", 0, effective=(Ws, bs),
                      fallback_groups=list(groups), margins_override=relaxed,
                      notes=[f"margin infeasible for {names}: served the generic model"])
        theta_f, coef, intercept, cert = finish(out, relaxed)
        if not cert.verified:
            return fallback([why] + cert.failures)
        warnings.warn(MSG_FALLBACK.format(groups=names, reason=why), FallbackWarning, stacklevel=4)
        return theta_f, coef, intercept, cert
    _, out, margins, lower_bound = result
    theta, coef, intercept, cert = finish(out, margins, lower_bound)
    if fair_use and not cert.verified and out.deferred:
        # the certificate refused a solution whose loss matrix was not checked before:
        # the routes again (the unconstrained fit kept), checking it this time
        logger.info("the certificate refused the SQP solution; the routes again with its loss matrix checked")
        setup.verify_sqp = True
        trace.clear()
        return fit(setup, fair_use=fair_use, theta_generic=theta_generic, generic_row_loss=generic_row_loss,
                   generic_losses=generic_losses, generic_err=generic_err, generic_served=generic_served,
                   margin=margin, on_infeasible=on_infeasible, max_iter=max_iter, tol=tol,
                   objective_generic=objective_generic, start=start)
    if fair_use and not cert.verified:
        return fallback(cert.failures)
    _warn_little_gain(cert, prob)
    return theta, coef, intercept, cert


def _warn_little_gain(cert, prob) -> None:
    if cert.route != "ccp" or not np.isfinite(cert.gain_kept) or cert.gain_kept >= 0.5:
        return
    reach = 1.0 - cert.gain_out_of_reach if cert.gain_out_of_reach is not None else 1.0
    if prob.family.encoding == "onehot":
        reason = MSG_LITTLE_GAIN_ONEHOT
    else:
        reason = ("penalised group blocks (group_reg='penalty') shrink towards each other, so groups "
                  "can prefer another's block; group_reg='set' makes the fit one exact convex program")
    warnings.warn(MSG_LITTLE_GAIN.format(kept=max(cert.gain_kept, 0.0), reach=reach, reason=reason),
                  FairUseWarning, stacklevel=5)


def _fit_routes(setup, fair_use, theta_generic, generic_row_loss, generic_losses, margin, on_infeasible,
                max_iter, tol, objective_generic, start, trace, attempts, state):
    prob = setup.problem
    keys = setup.keys
    G = prob.G
    # the bounds the fit aims at: the generic losses on the fitting scale (the certificate
    # checks the served models against the served generic model's losses)
    codes, w = setup.served.codes, setup.served.w
    with np.errstate(invalid="ignore", divide="ignore"):  # (every group has weight: checked at fit)
        L0 = np.bincount(codes, weights=w * generic_row_loss, minlength=G) / np.bincount(codes, weights=w, minlength=G)

    # 1. the unconstrained fit
    if setup.unconstrained is None:
        setup.unconstrained = Unconstrained().run(setup, start)
    rec = setup.unconstrained
    theta_u = rec.solution
    attempts.extend(rec.attempts)
    obj_u = prob.objective(theta_u)
    state["obj_u"] = obj_u
    logger.info("unconstrained fit: objective %.6f (%s, %s)", obj_u, rec.backend, rec.status)
    margins = np.zeros(G)
    if fair_use:
        served = setup.served

        def model_row_loss():  # the unconstrained fit's row losses, for margins "se:k" only
            coef_u, int_u = setup.to_raw(*prob.effective(theta_u))
            if coef_u.shape[1] and np.all(coef_u == coef_u[:1]):
                # weights shared by every group: one product (no rows x d gather of weights)
                scores = served.X @ coef_u[0] + int_u[served.codes]
            else:
                scores = row_scores(served.X, served.codes, coef_u, int_u)
            return served.loss.row_loss(served.y, scores)
        margins = resolve_margins(margin, keys, setup.index, served.codes, served.w, generic_row_loss,
                                  model_row_loss)
    bound = L0 - margins
    if not fair_use:
        trace.append(obj_u)
        return "done", Outcome(theta_u, "unconstrained", rec.backend, rec.status, 1), margins, obj_u
    own_u = prob.own_losses(theta_u)
    # the loss matrix (every group under every report: G passes' worth) only when the
    # own losses (one pass) leave the answer open
    own_only = np.diag(own_u)
    if "rationality" in fair_use and not feasible(own_only, bound, ("rationality",), tol):
        L_u = None
    else:
        L_u = prob.loss_matrix(theta_u)
    if L_u is not None and feasible(L_u, bound, fair_use, tol):
        trace.append(obj_u)
        logger.info("the unconstrained fit meets every constraint: it is the global optimum")
        return "done", Outcome(theta_u, "unconstrained-feasible", rec.backend, rec.status, 1), margins, obj_u

    fam = prob.family
    exact = fam.uses_set and fam.encoding in ("intersectional", "decoupled")
    proven_infeasible = False

    # 2. margins that some group cannot reach alone: checked first, on the groups with a
    # positive margin only (a group's floor is one Newton solve on its own rows), so that
    # an unreachable margin is reported before any program over all rows is attempted
    # (the conic solvers took 590 s to find 200,000 rows infeasible)
    unknown_floor: list = []
    program = (RationalityProgram(exact) if "rationality" in fair_use and (exact or "envy_freeness" not in fair_use)
               else None)
    sqp_tried = False
    if margins.any() and program is not None and setup.native and not blocks.separable(prob):
        # a program that SQP solves (and that verifies) proves every margin reachable:
        # the floors need no solve; SQP gives up within a few iterations otherwise
        sqp_tried = True
        out = program.by_sqp(setup, theta_u, bound, fair_use, tol, attempts)
        if out is not None:
            trace.append(prob.objective(out.theta))
            lb = prob.objective(out.theta) if exact else _lower_bound(setup, out.theta, bound, out.duals, tol)
            return "done", out, margins, lb
    if margins.any():
        bad = margin_infeasible(setup, bound, tol, unknown_floor, groups=np.flatnonzero(margins > 0),
                                reached=own_u)
        if bad:
            names = [keys[g] for g in bad]
            why = "the required margin exceeds the lowest training loss the model family can reach for them"
            if on_infeasible == "raise":
                raise FairUseInfeasibleError(MSG_INFEASIBLE_MARGIN.format(groups=names, reason=why))
            relaxed = margins.copy()
            relaxed[bad] = 0.0
            try:
                inner = fit(setup, fair_use=fair_use, theta_generic=theta_generic,
                            generic_row_loss=generic_row_loss, generic_losses=generic_losses,
                            generic_err=np.zeros(G), generic_served=None, margin=relaxed, on_infeasible="raise",
                            max_iter=max_iter, tol=tol, objective_generic=objective_generic, start=start)
            except (FairUseInfeasibleError, SolverError, VerificationError) as exc:
                return "fallback", [why, str(exc)], FairUseInfeasibleError, None
            theta_i = inner[0]
            return "partial", bad, why, relaxed, (theta_i, *prob.effective(theta_i))
    if setup.native and blocks.separable(prob):
        # the per-group optimum is the exact program's (blocks.solve): a constraint it does
        # not meet within the tolerance, no model meets
        return "fallback", violations(prob.loss_matrix(theta_u), bound, fair_use, tol, keys), VerificationError, None

    if program is not None:
        out, proven_infeasible = program.run(setup, theta_u, bound, fair_use, tol, attempts, sqp_tried=sqp_tried)
        if out is not None:
            trace.append(prob.objective(out.theta))
            lb = prob.objective(out.theta) if exact else _lower_bound(setup, out.theta, bound, out.duals, tol)
            return "done", out, margins, lb

    # 3. the sequence of convex restrictions
    best = None
    if not (proven_infeasible and margins.any()):
        best = RestrictionSequence().run(setup, fair_use, bound, tol, max_iter, theta_u, theta_generic,
                                         trace, attempts)
    if best is None and margins.any():
        names = [keys[g] for g in np.flatnonzero(margins > 0)]
        if unknown_floor:  # say only what was established
            why = (f"the lowest loss that {[keys[g] for g in unknown_floor]} can reach could not be computed, "
                   "and no verified model meeting every margin was found")
        elif proven_infeasible:
            why = ("each group can reach its margin alone, but no model in the family meets every "
                   "margin at once (the groups share parameters)")
        else:
            why = ("each group can reach its margin alone, but no verified model meeting every margin at "
                   "once was found (the groups share parameters)")
        return "fallback", [why], FairUseInfeasibleError, MSG_INFEASIBLE_MARGIN.format(groups=names, reason=why)
    if best is None:
        # a generic model that no model of the family can match for some group (a
        # generic= model more flexible than the family): say so, not "no verified point"
        bad = [] if margins.any() else margin_infeasible(setup, bound, tol)
        if bad:
            names = [keys[g] for g in bad]
            why = ("the generic model's training loss for them is below the lowest loss the model family "
                   "can reach (a generic= model more flexible than the family?)")
            return "fallback", [why], FairUseInfeasibleError, MSG_INFEASIBLE_MARGIN.format(groups=names, reason=why)
        return "fallback", ["no start produced a verified feasible point"], VerificationError, None
    lb = _lower_bound(setup, theta_u, bound if "rationality" in fair_use else None, None, tol)
    return "done", best, margins, lb


def _lower_bound(setup, theta_u, bound, duals, tol) -> float | None:
    """A lower bound on the objective of every model meeting the constraints.

    The rationality-only program is convex and a relaxation of the problem with
    envy-freeness: the Lagrangian dual value at its multipliers bounds every feasible
    objective from below (weak duality).  Without rationality the relaxation is the
    unconstrained problem.
    """
    prob = setup.problem
    obj_u = prob.objective(theta_u)
    if bound is None:
        return obj_u - 1e-12 * max(1.0, abs(obj_u))
    if prob.set_spec is not None:
        return None
    if duals is None:
        res = native.slsqp(prob, theta_u, bound, [], tol, progress=setup.progress, stage="lower bound (SLSQP)")
        if not res.ok:
            return None
        duals = native.kkt_duals(prob, res.solution, bound, tol)
        theta_u = res.solution
    lb = native.lagrangian_bound(prob, theta_u, bound, duals)
    return lb if np.isfinite(lb) else None
