"""The native backend: numpy methods on the small parameter vector.

Every problem of a fit is smooth and convex (or a sequence of convex ones) in a
parameter vector of a few dozen entries whatever the number of rows, so second-order
methods on that vector converge in a handful of steps of ``O(n d)`` (gradients) or
``O(n d^2)`` (Hessians) work each, and need no copy of the data:

* :func:`newton` - the unconstrained problems (damped Newton, backtracking);
* :func:`sqp` - the rationality program by sequential quadratic programming with the
  exact Hessian of the Lagrangian (a KKT point of a convex program is its global
  optimum; its subproblems are least-distance programs solved by NNLS);
* :func:`slsqp` - the same program by scipy's SLSQP (exact gradients, a quasi-Newton
  Hessian), when :func:`sqp` does not converge, and the polish of the restriction
  sequence with envy pairs; duals by :func:`kkt_duals`;
* :func:`barrier` - one convex restriction of the envy constraints with penalised
  slacks (a primal log-barrier method whose Newton system is reduced to ``p x p``:
  the slacks are eliminated in closed form);
* :func:`lagrangian_bound` - the Lagrangian dual value of the rationality program, a
  rigorous lower bound on every objective that meets rationality.

Each returns a :class:`~fairuse_opt.solvers.base.Result`; the routes verify every
result in numpy before using it.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from ..problem import Problem
from ..problem.constraints import EnvyFreeness, Rationality
from .base import NATIVE, Result

__all__ = ["newton", "slsqp", "sqp", "kkt_duals", "barrier", "lagrangian_bound", "constraint_values",
           "factor_sym"]

_INIT_SLACK = 1e-2  # initial slack above the violation of each restriction row (barrier)


def factor_sym(H: np.ndarray):
    """A solver ``g -> H^{-1} g`` for a symmetric positive semi-definite ``H`` (Cholesky
    of ``H`` plus a relative ridge of 1e-12; least squares when that fails)."""
    p = H.shape[0]
    reg = 1e-12 * (np.trace(H) / max(p, 1) + 1e-300)
    Hr = H + reg * np.eye(p)
    try:
        factor = cho_factor(Hr)
        return lambda g: cho_solve(factor, g)
    except (LinAlgError, ValueError):
        return lambda g: np.linalg.lstsq(Hr, g, rcond=None)[0]


def _solve_sym(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    return factor_sym(H)(g)


#: Newton's method on more distinct rows than ``4 * SKETCH_ROWS`` starts from its
#: solution on an evenly spaced subsample of ``SKETCH_ROWS`` rows (each step there costs
#: a fraction of one on every row, and the full problem then needs two or three steps)
SKETCH_ROWS = 10_000
#: SLSQP is stopped after this many iterations in a row without a change of the
#: objective above 1e-14 (relative), at a point that meets every constraint to 1e-12 and
#: the KKT conditions to 1e-9 (see :func:`slsqp`)
STALL_ITERATIONS = 1
#: Newton reuses its last Hessian (a chord step) once a full step has cut the gradient
#: to this fraction of its size where that Hessian was taken
CHORD_RATIO = 1e-2
#: ... and starts from the subsample's last Hessian, kept while each step with it cuts
#: the gradient at least this much
SKETCH_CHORD_CUT = 0.1
#: ... or from a Hessian taken at the start (``start_solve``), kept while each step with
#: it at least halves the gradient (its first step is a true Newton step, which from a
#: start far from the optimum cuts the gradient only ~7-fold)
START_CHORD_CUT = 0.5
#: the interior-point method keeps the groups' Hessian blocks (recombined with each
#: iteration's multipliers) until the iterate has moved by this much (largest entry,
#: relative to max(1, |theta|)) from where they were taken: measured on the one-hot
#: fits of SUPPORT2 and bench_scale.py, the same iterations (466 against 468, 590
#: against 622) with 7-10x fewer Hessians
BARRIER_HESSIAN_LAG = 1e-2
NO_PROGRESS_NOTE = "stopped: no iterate below the start's objective after the patience given"
#: iterations a local polish (SLSQP from a verified feasible point) gets to go below its
#: start's objective before it is stopped (see :func:`slsqp`)
POLISH_PATIENCE = 25
STALLED_NOTE = "stopped at a KKT point: the objective no longer changed (SLSQP's own test fails at float precision)"


def newton(problem, theta: np.ndarray, max_steps: int = 50, gtol: float = 1e-10, weights=None,
           logger=None, progress=None, stage: str = "Newton", sketch: bool = True,
           stop_below: float | None = None, rough_start: bool = False, start_solve=None) -> Result:
    """Minimise the objective (no constraints) from ``theta`` by damped Newton steps.

    Converged when the largest gradient entry is below ``gtol`` (times the problem's
    :meth:`~fairuse_opt.problem.Problem.gradient_scale`: the mean rate of a Poisson
    fit), or below ``1000 * gtol`` with a Newton decrement float64 cannot resolve in the
    objective;
    each step is kept only if it does not raise the objective.  ``weights`` (G,)
    re-weights the groups' mean losses (the Lagrangian of :func:`lagrangian_bound`).

    With ``sketch``, a problem on many rows starts from the solution on a subsample
    (:meth:`Problem.thinned`) when that lowers the objective: the full problem then
    needs two or three steps, and the answer is the same (the stopping rule is on the
    full gradient).  With ``stop_below``, the method stops (status
    ``"reached"``) at the first iterate whose objective is at most that value: a proof
    that the value can be reached, where the minimum itself is not needed.  With
    ``rough_start`` (a start known to be far from the optimum: a constant model, the
    generic model for a personalised problem) the subsample's solution is taken without
    evaluating the start on every row.  ``start_solve`` (``g -> H^{-1} g`` for a Hessian
    taken at or near the start: the generic fit's, mapped to the personalised
    parameters) replaces the subsample: its steps are kept while each halves the
    gradient, until the gradient is :data:`CHORD_RATIO` of the start's.
    """
    t0 = time.perf_counter()
    theta = np.asarray(theta, dtype=np.float64).copy()
    gtol = gtol * problem.gradient_scale()
    fg = _weighted(problem, weights)
    p = len(theta)
    sketched = False
    current = grad = None
    if (start_solve is None and sketch and isinstance(problem, Problem)
            and problem.data.n_distinct > 4 * SKETCH_ROWS):
        sub = newton(problem.thinned(SKETCH_ROWS), theta, max_steps=max_steps, gtol=1e-8, weights=weights,
                     sketch=False)
        if sub.solution is not None and np.all(np.isfinite(sub.solution)):
            val, sub_grad = fg(sub.solution)
            if rough_start and np.isfinite(val):
                theta, current, grad, sketched = sub.solution, val, sub_grad, True
            else:
                current, grad = fg(theta)
                if np.isfinite(val) and val <= current:
                    theta, current, grad, sketched = sub.solution, val, sub_grad, True
    if current is None:
        current, grad = fg(theta)
    gnorm = np.inf
    status = "not converged"
    step = 0
    # chord steps, (solver, cut a step must make, largest gradient it is tried at):
    # after a full Newton step, once the gradient is CHORD_RATIO of where its Hessian
    # was taken; and at first from the subsample's last Hessian (the mean loss's Hessian
    # on a sample of the rows: some per cent off, so a step with it cuts the gradient
    # ~10-fold for a pass over the rows instead of a Hessian) until the gradient is
    # CHORD_RATIO of where it started, where a fresh Hessian gives quadratic convergence
    chord = last_solve = None
    if sketched and sub.hessian_solve is not None:
        chord = (sub.hessian_solve, SKETCH_CHORD_CUT, np.inf, CHORD_RATIO * float(np.max(np.abs(grad))))
    elif start_solve is not None:
        chord = (start_solve, START_CHORD_CUT, np.inf, CHORD_RATIO * float(np.max(np.abs(grad))))
    for step in range(max_steps + 1):
        gnorm = float(np.max(np.abs(grad))) if p else 0.0
        if gnorm <= gtol:
            status = "optimal"
            break
        if step == max_steps:
            break
        if chord is not None and chord[3] < gnorm <= chord[2]:
            # quadratic convergence under way: the last Hessian, taken a step of relative
            # size ~gnorm away, is exact to that size, so a step with it (a chord step)
            # cuts the gradient by about as much as a fresh Hessian would; kept only if it
            # lowers the objective and the gradient by CHORD_RATIO, else a fresh Hessian
            delta = chord[0](grad)
            cand = theta - delta
            val, cand_grad = fg(cand)
            # near the optimum the objective's change is at its rounding: an increase of a
            # few units in the last place is no evidence against a step that cut the gradient
            if (np.isfinite(val) and val <= current + 8 * np.spacing(abs(current))
                    and float(np.max(np.abs(cand_grad))) <= chord[1] * gnorm):
                theta, current, grad = cand, val, cand_grad
                if logger is not None:
                    logger(step + 1, current, gnorm)
                if progress is not None:
                    progress(stage, step + 1, current, 0.0)
                if stop_below is not None and current <= stop_below:
                    status = "reached"
                    step += 1
                    break
                continue
            chord = None
        H = _weighted_hessian(problem, theta, weights)
        solve = factor_sym(H)
        delta = solve(grad)
        # the predicted decrease (half the Newton decrement) is below what float64 can
        # resolve in the objective: nothing is left to gain, the point is optimal
        if 0 <= grad @ delta <= 1e-15 * max(1.0, abs(current)) and gnorm <= 1e3 * gtol:
            status = "optimal"
            break
        t = 1.0
        while t > 1e-6:
            cand = theta - t * delta
            val, cand_grad = fg(cand)
            if np.isfinite(val) and val <= current:
                break
            t /= 2
        else:
            break
        chord = (solve, CHORD_RATIO, CHORD_RATIO * gnorm, 0.0) if t == 1.0 else None
        last_solve = solve
        theta, current, grad = cand, val, cand_grad
        if logger is not None:
            logger(step + 1, current, gnorm)
        if progress is not None:
            progress(stage, step + 1, current, 0.0)
        if stop_below is not None and current <= stop_below:
            status = "reached"
            step += 1
            break
    return Result(backend=NATIVE, status=status, solution=theta, objective=current, iterations=step,
                  seconds=time.perf_counter() - t0, attempts=[("NATIVE/newton", status)],
                  notes=["started from a subsample fit"] if sketched else [], hessian_solve=last_solve)


def excess(problem, theta: np.ndarray) -> float:
    """Half the Newton decrement ``g . H^{-1} g / 2`` of the objective at ``theta``, in units
    of the problem's :meth:`~fairuse_opt.problem.Problem.gradient_scale`: near the
    minimum of a convex objective (and inside the common set), how far the objective
    is above it.  A solver's "optimal" with an excess far above its tolerance is wrong."""
    _, g = problem.value_grad(theta)
    return 0.5 * float(g @ factor_sym(problem.hessian(theta))(g)) / problem.gradient_scale()


def _weighted(problem, weights):
    if weights is None:
        return problem.value_grad

    def fg(theta):
        vals, grads = problem.own_losses(theta, grad=True)
        act = problem.active
        v = float(np.dot(weights[act], vals[act])) + problem.penalty(theta)
        g = weights[act] @ grads[act] + 2 * problem.alpha * problem.q2 * theta
        return v, g
    return fg


def _weighted_hessian(problem, theta, weights):
    if weights is None:
        return problem.hessian(theta)
    H = problem.weighted_hessian(theta, weights)
    H[np.diag_indices_from(H)] += 2 * problem.alpha * problem.q2
    return H


def constraint_values(problem, theta: np.ndarray, bound: np.ndarray | None, pairs, shrink: float = 0.0):
    """Values ``>= 0`` when satisfied, and their gradients, of every constraint:
    rationality ``bound_g - L_g(own)``, envy ``L_g(r) - L_g(own)`` (both tightened by
    ``shrink``), and the common set.  Returns ``(values, jacobian, kinds, (own losses,
    their gradients))``."""
    own, own_grad = problem.own_losses(theta, grad=True)
    vals, jacs, kinds = [], [], []
    act = problem.active
    if bound is not None:
        slack = Rationality(bound).values(own, shrink)
        for g in act:
            vals.append(slack[g])
            jacs.append(-own_grad[g])
            kinds.append(("rationality", g))
    if pairs:
        L, E = problem.loss_matrix(theta, jacobian=True)
        Gp = problem.pair_gradients(E, pairs).toarray()
        vals += list(EnvyFreeness().values(L, own, pairs, shrink))
        for k, (g, r) in enumerate(pairs):
            jacs.append(Gp[k] - own_grad[g])
            kinds.append(("envy", (g, r)))
    if problem.set_spec is not None:
        sv, sj = problem.set_spec.constraints(problem.family, theta)
        vals += list(sv)
        jacs += list(sj)
        kinds += [("set", j) for j in range(len(sv))]
    p = len(theta)
    return np.array(vals), (np.array(jacs) if jacs else np.zeros((0, p))), kinds, (own, own_grad)


def slsqp(problem, theta0: np.ndarray, bound: np.ndarray | None, pairs, tol: float,
          max_iter: int = 300, equalities: np.ndarray | None = None, progress=None,
          stage: str = "SLSQP", abort_above: float | None = None, precondition: bool = True,
          patience: int | None = None) -> Result:
    """Sequential quadratic programming (scipy's SLSQP) on the parameter vector.

    Exact gradients of the objective and of every group loss; the fair-use constraints
    are tightened by ``0.1 * tol`` so that a point on their boundary verifies at
    ``tol``.  ``equalities`` (m, p), full row rank: linear constraints
    ``equalities @ theta = 0`` (groups tied to one model).  Status ``"failed"`` when
    SLSQP raised or returned non-finite values, or when an iterate's objective exceeded
    ``abort_above`` (a run that diverges: stopped there rather than after ``max_iter``
    iterations).  With ``patience`` (a polish from a feasible point), the run stops,
    status ``"not converged"``, once ``patience`` iterations have passed without any
    iterate's objective below the start's (relative 1e-12): from a point that is already
    optimal SLSQP moves onto the tightened constraints, above the start, and was seen to
    take 35 to 180 iterations, each a pass over every row, to end there.

    With ``precondition`` (the default) SLSQP works on ``u`` with
    ``theta = theta0 + T u``, ``T = C^{-T}`` for the Cholesky factor ``C`` of the
    objective's Hessian at ``theta0``: the objective's curvature is then the identity
    near the start, which is where SLSQP's quasi-Newton matrix starts.  Without it the
    matrix has to learn the curvature one direction per iteration (measured: 30
    iterations, each a pass over every row, on a 38-parameter exact-route fit at
    100,000 rows; 12 with it).  One Hessian (``O(n d^2)``) is the price.  (The Hessian
    of the unconstrained Newton fit's last step, a hair away, is no substitute: on one
    cell of ``bench_scale.py`` SLSQP then cycled at float precision to its iteration
    limit instead of stopping after a few.)
    """
    from scipy.optimize import minimize

    t0 = time.perf_counter()
    cache: dict = {}
    theta0 = np.asarray(theta0, dtype=np.float64)
    T = _preconditioner(problem, theta0) if precondition else None

    def cons(theta):
        key = theta.tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = constraint_values(problem, theta, bound, pairs, 0.1 * tol)
        return cache[key]

    constraints = []
    if bound is not None or pairs or problem.set_spec is not None:
        constraints = [{"type": "ineq", "fun": lambda t: cons(t)[0], "jac": lambda t: cons(t)[1]}]
    if equalities is not None and len(equalities):
        A_eq = np.asarray(equalities, dtype=np.float64)
        constraints.append({"type": "eq", "fun": lambda t: A_eq @ t, "jac": lambda t: A_eq})
    last_value: dict = {}

    def objective(theta):  # one entry of memory: the callback may ask again at the iterate
        key = theta.tobytes()
        if key not in last_value:
            last_value.clear()
            last_value[key] = problem.value_grad(theta)
        return last_value[key]

    if bound is not None and hasattr(problem, "Wg"):
        # the objective is the weighted sum of the groups' own losses (plus the penalty):
        # take it from the constraint evaluation at the same point instead of a second
        # pass over every row (SLSQP asks for both at every iterate)
        act = problem.active
        share = problem.Wg[act] / problem.data.total_weight

        def objective(theta):
            key = theta.tobytes()
            if key not in cache:
                cache.clear()
                cache[key] = constraint_values(problem, theta, bound, pairs, 0.1 * tol)
            own, own_grad = cache[key][3]
            value = float(share @ own[act]) + problem.penalty(theta)
            return value, share @ own_grad[act] + 2 * problem.alpha * problem.q2 * theta
    count = [0]
    diverged = [False]
    no_progress = [False]
    best_seen = [np.inf]
    start_value = objective(theta0)[0] if patience is not None else None
    history: list = []
    stalled = [False]
    stall_check = bound is not None and not pairs and equalities is None and hasattr(problem, "Wg")
    checked: list = []  # (theta, duals, residual) of the last KKT check

    def kkt_check(theta):
        duals, residual = kkt_duals(problem, theta, bound, tol, residual=True)
        checked[:] = [(np.array(theta), duals, residual)]
        return residual

    def callback(theta):
        count[0] += 1
        value = objective(theta)[0]
        if abort_above is not None and (not np.isfinite(value) or value > abort_above):
            diverged[0] = True
            raise StopIteration  # scipy ends the run at this iterate
        if patience is not None:
            best_seen[0] = min(best_seen[0], value)
            if count[0] >= patience and not best_seen[0] < start_value - 1e-12 * max(1.0, abs(start_value)):
                no_progress[0] = True
                raise StopIteration
        # scipy's SLSQP can wander for hundreds of iterations once it has converged (the
        # objective flat to 1e-16, every constraint met to 1e-16, its stopping test not
        # passed at float precision): seen on bench_scale.py cells of 10,000 x 100 and
        # 1,000,000 x 30 rows, where it ran to its iteration limit.  After
        # STALL_ITERATIONS such iterations in a row, the run ends at the first of them
        # that also meets the KKT conditions to 1e-9 (relative; rationality programs
        # only: their multipliers are recovered by kkt_duals).  A flat objective alone
        # is not enough: it fixes the parameters only to ~1e-8, and the iterations
        # after it still sharpen them.
        history.append(value)
        if (stall_check and len(history) > STALL_ITERATIONS
                and np.ptp(history[-STALL_ITERATIONS - 1:]) <= 1e-14 * max(1.0, abs(value))
                and -float(np.min(cons(theta)[0])) <= 1e-12
                and kkt_check(theta) <= 1e-9):
            stalled[0] = True
            raise StopIteration
        if progress is None or not progress.wanted():
            return
        viol = float(max(0.0, -float(np.min(cons(theta)[0])))) if constraints and len(cons(theta)[0]) else 0.0
        progress(stage, count[0], value, viol)

    # the callback above reads ``objective`` and ``cons`` in theta: the functions SLSQP
    # works with in u get names of their own (rebinding ``objective`` would make the
    # callback evaluate theta0 + T theta)
    fun, cons_fun, cb, start = objective, constraints, callback, theta0
    if T is not None:
        fun, cons_fun, cb = _reparametrised(T, theta0, objective, constraints, callback)
        start = np.zeros(len(theta0))
    try:
        res = minimize(fun, start, jac=True, method="SLSQP",
                       constraints=cons_fun, options={"maxiter": max_iter, "ftol": 1e-14},
                       callback=cb)
        if T is not None:
            res.x = theta0 + T @ res.x
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return Result(backend=NATIVE, status="failed", attempts=[("NATIVE/slsqp", "failed")],
                      seconds=time.perf_counter() - t0)
    if diverged[0]:
        return Result(backend=NATIVE, status="failed", attempts=[("NATIVE/slsqp", "diverged")],
                      seconds=time.perf_counter() - t0)
    if not np.all(np.isfinite(res.x)):
        return Result(backend=NATIVE, status="failed", attempts=[("NATIVE/slsqp", "failed")],
                      seconds=time.perf_counter() - t0)
    status = "optimal" if ((res.success or stalled[0]) and not no_progress[0]) else "not converged"
    known = checked and stalled[0] and np.array_equal(checked[0][0], res.x)
    return Result(backend=NATIVE, status=status, solution=res.x, objective=float(res.fun),
                  iterations=int(res.nit), seconds=time.perf_counter() - t0,
                  attempts=[("NATIVE/slsqp", status)],
                  notes=([STALLED_NOTE] if stalled[0] else []) + ([NO_PROGRESS_NOTE] if no_progress[0] else []),
                  duals=checked[0][1] if known else None, kkt_residual=checked[0][2] if known else None)


def _preconditioner(problem, theta0: np.ndarray):
    """``C^{-T}`` for the Cholesky factor ``C`` of the objective's Hessian at ``theta0``
    (scaled to unit diagonal first, so that the factorisation sees a well-scaled matrix);
    ``None`` when the Hessian is not finite or not positive definite."""
    from scipy.linalg import cholesky, solve_triangular

    p = len(theta0)
    if p == 0:
        return None
    try:
        H = problem.hessian(theta0)
        if not np.all(np.isfinite(H)):
            return None
        # a direction of zero curvature (a constant feature without penalty) is left as
        # it is: unit scale, decoupled from the others
        flat = np.diag(H) <= 0
        dg = np.where(flat, 1.0, np.sqrt(np.abs(np.diag(H))))
        Hs = H / np.outer(dg, dg)
        Hs[flat, :] = 0.0
        Hs[:, flat] = 0.0
        Hs[flat, flat] = 1.0
        C = cholesky(Hs, lower=True)
        T = solve_triangular(C, np.eye(p), lower=True, trans="T") / dg[:, None]
    except (LinAlgError, ValueError):
        return None
    return T if np.all(np.isfinite(T)) else None


def _reparametrised(T: np.ndarray, theta0: np.ndarray, objective, constraints, callback):
    """The objective, constraints and callback of :func:`slsqp` in ``u`` with
    ``theta = theta0 + T u`` (gradients and Jacobians multiplied by ``T`` on the right)."""
    def theta_of(u):
        return theta0 + T @ u

    def obj_u(u):
        value, grad = objective(theta_of(u))
        return value, grad @ T

    cons_u = []
    for c in constraints:
        fun, jac = c["fun"], c["jac"]
        cons_u.append({"type": c["type"], "fun": lambda u, f=fun: f(theta_of(u)),
                       "jac": lambda u, j=jac: j(theta_of(u)) @ T})
    return obj_u, cons_u, lambda u: callback(theta_of(u))


def kkt_duals(problem, theta: np.ndarray, bound: np.ndarray, tol: float, residual: bool = False):
    """Multipliers of the rationality constraints at a solution, from the KKT
    conditions: non-negative least squares of ``grad f`` on the gradients of the
    active constraints (rationality and common set).  Inactive constraints get 0.

    With ``residual``, also the relative norm of ``grad f - sum_k lambda_k grad c_k``:
    near zero at a KKT point, which for a convex program is its global optimum.
    """
    from scipy.optimize import nnls

    _, grad = problem.value_grad(theta)
    vals, jacs, kinds, _ = constraint_values(problem, theta, bound, [], 0.0)
    active = np.flatnonzero(vals <= max(1e-6, 100 * tol))
    duals = {g: 0.0 for kind, g in kinds if kind == "rationality"}
    res = float(np.linalg.norm(grad))
    if len(active):
        # min f s.t. c(theta) >= 0:  grad f = sum_k lambda_k grad c_k,  lambda >= 0
        lam, res = nnls(jacs[active].T, grad)
        for k, j in enumerate(active):
            kind, g = kinds[j]
            if kind == "rationality":
                duals[g] = float(lam[k])
    if residual:
        return duals, float(res) / max(1.0, float(np.linalg.norm(grad)))
    return duals


#: :func:`sqp` refreshes its Hessian blocks when an iteration cuts the KKT residual by
#: less than this factor
REFRESH_RATIO = 0.5
#: ... and starts from the problem's last Hessian blocks when they were taken this close
#: to its start (largest entry, relative to max(1, |theta|); see
#: :meth:`Problem.recent_hessians`): the unconstrained Newton fit's last Hessian, a step
#: of ~1e-2 from its solution on 10^6 rows (1.15e-2 on bench_user_path.py's must-show
#: data: a fresh Hessian, 2.7 passes' worth, at 1e-2)
SQP_HESSIAN_LAG = 5e-2
#: ... and gives up (status "not converged") when a multiplier exceeds this (the
#: constraints are then jointly infeasible, or nearly so)
MAX_MULTIPLIER = 1e8


def _qp_step(H: np.ndarray, g: np.ndarray, J: np.ndarray, c: np.ndarray):
    """``min 1/2 d'Hd + g'd  s.t.  c + J d >= 0`` for positive definite ``H``: the step
    ``d`` and the multipliers ``lam >= 0`` (``H d + g = J' lam``); ``None`` when the
    linearised constraints admit no step or ``H`` is not positive definite.

    With ``H = L L'`` and ``u = L' d + L^{-1} g`` the problem is the least-distance
    program ``min |u|  s.t.  E u >= f`` (``E = J L^{-T}``, ``f = E L^{-1} g - c``), solved
    by one non-negative least-squares problem (Lawson & Hanson, *Solving Least Squares
    Problems*, ch. 23; SLSQP's subproblem, here with the exact Hessian)."""
    from scipy.linalg import cholesky, solve_triangular
    from scipy.optimize import nnls

    p = len(g)
    try:
        L = cholesky(H + 1e-12 * (np.trace(H) / max(p, 1) + 1e-300) * np.eye(p), lower=True)
    except (LinAlgError, ValueError):
        return None
    Lg = solve_triangular(L, g, lower=True)
    if not len(c):
        return solve_triangular(L, -Lg, lower=True, trans="T"), np.zeros(0)
    E = solve_triangular(L, J.T, lower=True).T
    f = E @ Lg - c
    A = np.vstack([E.T, f[None, :]])
    rhs = np.zeros(p + 1)
    rhs[p] = 1.0
    try:
        z = nnls(A, rhs, maxiter=50 * A.shape[1])[0]
    except RuntimeError:
        return None
    r = A @ z - rhs
    if not r[p] < -1e-12:  # |r| = 0: the constraints are inconsistent
        return None
    u = -r[:p] / r[p]
    d = solve_triangular(L, u - Lg, lower=True, trans="T")
    return d, z / -r[p]


def _relaxed_qp_step(H, g, J, c):
    """:func:`_qp_step`, asking the linearised constraints to remove only a fraction
    ``s`` (1, 1/2, ..., 1/64) of the current violations when they are inconsistent (the
    linearisation of convex group losses can be, where the losses themselves are not:
    their curvature helps; ``s -> 0`` is always consistent, ``d = 0`` meeting it)."""
    target = np.minimum(c, 0.0)
    for k in range(7):
        s = 0.5 ** k
        step = _qp_step(H, g, J, c - (1 - s) * target)
        if step is not None:
            return step
    return None


def sqp(problem, theta0: np.ndarray, bound: np.ndarray, tol: float, max_iter: int = 30,
        progress=None, stage: str = "SQP") -> Result:
    """The rationality program ``min f s.t. L_g(theta, g) <= bound_g`` (and the common set)
    by sequential quadratic programming with the exact Hessian of the Lagrangian.

    The rationality constraints are tightened by ``0.1 * tol``, as in :func:`slsqp`.
    Each iteration solves the quadratic program of the constraints linearised at the
    iterate (:func:`_qp_step`: ``p x p`` Cholesky, one NNLS problem in the constraints)
    and steps along it with backtracking on the l1 merit function
    ``f + mu * sum(violations)``.  The Lagrangian's Hessian is assembled from the groups'
    Hessian blocks at a reference point and the multipliers of the last subproblem
    (``O(n d^2)`` once, or not at all when the problem's last Hessian was taken near
    ``theta0``: :meth:`Problem.recent_hessians`; refreshed when an iteration cuts the KKT
    residual by less than
    :data:`REFRESH_RATIO`; exact at every iterate when the problem keeps its design
    matrix), so each iteration is otherwise one pass over the rows for the group losses
    and their gradients.  Optimal (a KKT point of a convex program: its global optimum)
    when every constraint holds to 1e-12, complementarity to 1e-12 and the
    stationarity residual is at most 1e-10 (relative); the multipliers and residual are
    returned.  Any other end is ``"not converged"`` (the route then runs
    :func:`slsqp`): a subproblem without a solution, a line search that needs a step
    below 2^-10, a multiplier above :data:`MAX_MULTIPLIER`, ``max_iter`` iterations.
    Nocedal & Wright, *Numerical Optimization*, ch. 18.
    """
    t0 = time.perf_counter()
    theta = np.asarray(theta0, dtype=np.float64).copy()
    p, G = len(theta), problem.G
    fam = problem.family
    act = np.asarray(problem.active, dtype=np.int64)
    share = np.zeros(G)
    share[act] = problem.Wg[act] / problem.data.total_weight
    ridge = 2 * problem.alpha * problem.q2 * np.ones(p)
    n_box = 2 * len(fam.block_intercept) if problem.set_spec is not None else 0
    balls = [idx for idx in fam.block_weights if len(idx)] if problem.set_spec is not None else []
    keep_design = problem.design_matrix() is not None

    def evaluate(th):
        vals, jac, kinds, (own, own_grad) = constraint_values(problem, th, bound, [], 0.1 * tol)
        f = float(share[act] @ own[act]) + problem.penalty(th)
        grad = share[act] @ own_grad[act] + ridge * th
        return f, grad, vals, jac, kinds

    def hessian(th_ref, blocks, lam, kinds):
        weights = share.copy()
        extra = np.zeros(p)
        for (kind, g), lk in zip(kinds, lam):
            if lk <= 0:
                continue
            if kind == "rationality":
                weights[g] += lk
            elif kind == "set" and g >= n_box:  # c = R^2 - |w - c0|^2: Hessian -2 I
                extra[balls[g - n_box]] += 2 * lk
        H = problem.weighted_hessian(th_ref, weights) if keep_design else problem.combine_hessians(blocks, weights)
        H[np.diag_indices_from(H)] += ridge + extra
        return H

    def merit(f, vals, mu):
        return f + mu * float(np.sum(np.maximum(0.0, -vals)))

    f, grad, vals, jac, kinds = evaluate(theta)
    m = len(vals)
    lam = np.zeros(m)
    blocks, ref = (None, theta.copy()) if keep_design else problem.recent_hessians(theta, rel=SQP_HESSIAN_LAG)
    mu = 1.0
    last_res = np.inf
    status, it, residual = "not converged", 0, np.inf
    for it in range(max_iter + 1):
        H = hessian(theta if keep_design else ref, blocks, lam, kinds)
        step = _relaxed_qp_step(H, grad, jac, vals)
        if step is None:
            break
        delta, lam_qp = step
        viol = float(max(0.0, -float(np.min(vals)))) if m else 0.0
        residual = float(np.linalg.norm(grad - jac.T @ lam_qp)) / max(1.0, float(np.linalg.norm(grad)))
        slack = float(np.max(np.abs(lam_qp * vals))) if m else 0.0
        if viol <= 1e-12 and residual <= 1e-10 and slack <= 1e-12:
            lam = lam_qp
            status = "optimal"
            break
        if it == max_iter or (m and not float(np.max(lam_qp)) <= MAX_MULTIPLIER):
            break
        # a lagged Hessian that no longer cuts the residual fast: take it here afresh,
        # and solve this iteration's subproblem with it
        if blocks is not None and residual + viol > REFRESH_RATIO * last_res and not np.array_equal(ref, theta):
            blocks, ref = problem.effective_hessians(theta), theta.copy()
            step = _relaxed_qp_step(hessian(ref, blocks, lam, kinds), grad, jac, vals)
            if step is None:
                break
            delta, lam_qp = step
        last_res = residual + viol
        lam = lam_qp
        mu = max(mu, 2.0 * float(np.max(lam)) if m else 0.0)
        phi = merit(f, vals, mu)
        t = 1.0
        while t >= 2.0 ** -10:  # a shorter step: the local model is poor, SLSQP takes over
            cand = theta + t * delta
            fc, gc, vc, jc, _ = evaluate(cand)
            if np.isfinite(fc) and np.all(np.isfinite(vc)) and merit(fc, vc, mu) <= phi:
                break
            t /= 2
        else:
            break
        theta, f, grad, vals, jac = cand, fc, gc, vc, jc
        if progress is not None:
            progress(stage, it + 1, f, float(max(0.0, -float(np.min(vals)))) if m else 0.0)
    duals = {g: 0.0 for kind, g in kinds if kind == "rationality"}
    for (kind, g), lk in zip(kinds, lam):
        if kind == "rationality":
            duals[g] = float(max(lk, 0.0))
    ok = status == "optimal"
    return Result(backend=NATIVE, status=status, solution=theta, objective=f, iterations=it,
                  seconds=time.perf_counter() - t0, attempts=[("NATIVE/sqp", status)],
                  duals=duals if ok else None, kkt_residual=residual if ok else None)


def lagrangian_bound(problem, theta: np.ndarray, bound: np.ndarray, duals: dict) -> float:
    """A lower bound on the optimum of ``min f s.t. L_g(theta, g) <= bound_g``.

    Weak duality: for any ``lambda >= 0``,
    ``min_theta f(theta) + sum_g lambda_g (L_g(theta, g) - bound_g)`` is at most the
    optimum.  The inner problem is the objective with group g's rows re-weighted by
    ``1 + lambda_g W / W_g``, solved by Newton from ``theta``.  Needs a family without
    a common set (the set would have to stay a constraint of the inner problem); NaN
    when Newton does not converge.  Duals equal to zero give the unconstrained optimum.
    """
    if problem.set_spec is not None:
        return float("nan")
    lam = np.array([max(0.0, float(duals.get(g, 0.0))) for g in range(problem.G)])
    W = problem.data.total_weight
    weights = problem.Wg / W + lam
    res = newton(problem, theta, weights=weights)
    if res.status != "optimal":
        return float("nan")
    act = problem.active
    value = res.objective - float(np.dot(lam[act], bound[act]))
    # Newton stops at a gradient ~1e-10: the inner minimum is below the value reached
    # by at most |g|^2 / (2 mu); mu >= 2 alpha min q2 > 0 is not available in general,
    # so take a conservative float64 allowance
    return float(value - 1e-12 * max(1.0, abs(value)))


# ------------------------------------------------------ the interior-point method
def barrier(problem, theta0: np.ndarray, *, bound: np.ndarray | None, pairs, lin_grad, lin_const,
            rho: float, tol: float = 1e-10, max_iter: int = 80, mu: float = 10.0, progress=None,
            stage: str = "interior point", stop_below: float | None = None) -> Result:
    """One convex restriction with penalised slacks, by a primal-dual interior-point method::

        minimise  f(theta) + rho * sum_k s_k
        subject to L_g(k)(theta, own) - rhs_k(theta) <= s_k,  s_k >= 0,   theta in C

    where ``rhs_k`` is the rationality bound ``bound_g`` or the linearisation
    ``lin_const_k + lin_grad_k . theta`` of ``L_g(theta, r)`` (``pairs[k] = (g, r)``).
    The slacks make any start strictly feasible.  The Newton system in ``(theta, s)`` is
    reduced to ``p x p`` (the slack block is diagonal and eliminated in closed form);
    only the groups' own-report losses are non-linear, so a step costs ``O(n d)`` (their
    values and gradients) plus ``O(n d^2)`` when their Hessian blocks, in the effective
    coordinates, are taken afresh (:data:`BARRIER_HESSIAN_LAG`), and each line-search
    trial ``O(n d)``.
    Boyd & Vandenberghe, *Convex Optimization*, section 11.7.

    With ``stop_below`` (only without constraints other than the set, ``K = 0``) the
    method stops, status ``"reached"``, at the first iterate (strictly inside the set)
    whose objective is at most that value.
    """
    t0 = time.perf_counter()
    G = problem.G
    act = problem.active
    grp, const = [], []
    if bound is not None:
        grp += list(act)
        const += [float(bound[g]) for g in act]
    n_rat = len(grp)
    grp += [g for g, _ in pairs]
    grp = np.array(grp, dtype=np.int64)
    K = len(grp)
    p = problem.p
    A_lin = (sp.vstack([sp.csr_matrix((n_rat, p)), sp.csr_matrix(lin_grad)]).tocsr() if pairs
             else sp.csr_matrix((n_rat, p)))
    c_lin = np.concatenate([np.array(const, dtype=np.float64),
                            np.asarray(lin_const if pairs else [], dtype=np.float64)])
    sel = sp.csr_matrix((np.ones(K), (np.arange(K), grp)), shape=(K, G))
    # the constraint Jacobian is rebuilt at every residual evaluation: dense when it is
    # small (building sparse matrices dominated the cost of a step with ~1,000 pairs)
    dense = K * p <= 4_000_000
    if dense:
        A_lin = A_lin.toarray()
    spec = problem.set_spec
    fam = problem.family
    wg = problem.Wg / problem.data.total_weight
    box = list(fam.block_intercept) if spec is not None else []
    balls = [idx for idx in fam.block_weights if len(idx)] if spec is not None else []

    theta = spec.project_inside(fam, theta0, 1e-6) if spec is not None else np.array(theta0, dtype=np.float64)

    def own_of(th, grad):
        out = problem.own_losses(th, grad=grad)
        if grad:
            return np.where(np.isnan(out[0]), 0.0, out[0]), out[1]
        return np.where(np.isnan(out), 0.0, out)

    def cons(th, s_, own):
        """Values of every constraint (all must be < 0): slack rows, slacks, set."""
        h = own[grp] - c_lin - A_lin @ th
        parts = [h - s_, -s_]
        if box:
            x = th[box] - spec.intercept_center
            parts += [x - spec.intercept_bound, -x - spec.intercept_bound]
        for idx in balls:
            v = th[idx] - spec.coef_center
            parts.append(np.array([float(v @ v) - spec.coef_bound ** 2]))
        return np.concatenate(parts) if parts else np.zeros(0)

    def objective(th, s_, own):
        return float(np.dot(wg[act], own[act])) + problem.penalty(th) + rho * float(s_.sum())

    own = own_of(theta, False)
    h0 = own[grp] - c_lin - A_lin @ theta
    s = np.maximum(h0, 0.0) + _INIT_SLACK
    lam_a = np.full(K, rho / 2)
    lam_b = np.full(K, rho / 2)
    m_set = 2 * len(box) + len(balls)
    fv = cons(theta, s, own)
    lam_c = np.full(m_set, 1e-3) / np.maximum(-fv[2 * K:], 1e-12) if m_set else np.zeros(0)
    m = 2 * K + m_set
    status, it = "not converged", 0
    at_theta = None  # (own, og) at theta, from the line search that accepted it
    blocks = ref = mapped = None
    # many small groups (50 rows or fewer on average) with the design matrix kept: the
    # Hessian afresh is one small product, cheaper than the groups' blocks and their
    # mapping (bench_slow_paths.py, 150 rows in 30 groups: 2.5 s with blocks, 2.2 s without)
    fresh_design = (isinstance(problem, Problem) and problem.data.n_distinct <= 50 * problem.G
                    and problem.design_matrix() is not None)

    def residuals(th, s_, la, lb, lc, t, own, og, fv):
        A = og[grp] - A_lin if dense else sel @ sp.csr_matrix(og) - A_lin
        gf = wg[act] @ og[act] + 2 * problem.alpha * problem.q2 * th
        r_th = gf + A.T @ la
        if box:
            r_th[box] += lc[:len(box)] - lc[len(box):2 * len(box)]
        for j, idx in enumerate(balls):
            r_th[idx] += lc[2 * len(box) + j] * 2 * (th[idx] - spec.coef_center)
        r_s = rho - la - lb
        lam = np.concatenate([la, lb, lc])
        r_cent = -lam * fv - 1.0 / t
        return np.asarray(r_th).ravel(), r_s, r_cent, A, gf

    for it in range(1, max_iter + 1):
        own, og = at_theta if at_theta is not None else own_of(theta, True)
        fv = cons(theta, s, own)
        lam = np.concatenate([lam_a, lam_b, lam_c])
        eta = float(-fv @ lam)
        t = mu * m / max(eta, 1e-300)
        r_th, r_s, r_cent, A, gf = residuals(theta, s, lam_a, lam_b, lam_c, t, own, og, fv)
        r_dual = np.sqrt(r_th @ r_th + r_s @ r_s)
        if eta <= tol * max(1.0, abs(objective(theta, s, own))) and r_dual <= 1e-9 * max(1.0, rho):
            status = "optimal"
            break
        ra = -fv[:K]  # s - h > 0
        sb = -fv[K:2 * K]  # s > 0
        dA, dB = lam_a / ra, lam_b / sb
        # Hessian of the Lagrangian in theta, plus the reduced rank-one terms
        cw = wg + np.bincount(grp, weights=lam_a, minlength=G)
        # the loss's part from the groups' blocks, taken afresh once the iterate has moved
        # BARRIER_HESSIAN_LAG from where they were taken (exact gradients and residuals
        # decide convergence: a lagged Hessian changes the path, not the answer)
        if fresh_design:
            H = problem.weighted_hessian(theta, cw)
        else:
            if blocks is None or np.max(np.abs(theta - ref), initial=0.0) > BARRIER_HESSIAN_LAG * max(
                    1.0, float(np.max(np.abs(theta), initial=0.0))):
                blocks, ref = problem.effective_hessians(theta), theta.copy()
                mapped = problem.mapped_hessians(blocks)
            H = problem.combine_hessians(blocks, cw) if mapped is None else np.tensordot(cw, mapped, axes=1)
        H[np.diag_indices_from(H)] += 2 * problem.alpha * problem.q2
        if dense:
            H += (A.T * (dA * dB / (dA + dB))) @ A
        else:
            H += np.asarray((A.T @ sp.diags(dA * dB / (dA + dB)) @ A).todense())
        # barrier gradient / t
        b_th = -(gf + A.T @ (1.0 / (t * ra)))
        b_s = -(rho - 1.0 / (t * ra) - 1.0 / (t * sb))
        if m_set:
            fc = -fv[2 * K:]
            lc_over = lam_c / fc
            nb = len(box)
            for j, i in enumerate(box):
                H[i, i] += lc_over[j] + lc_over[nb + j]
                b_th[i] -= 1.0 / (t * fc[j]) - 1.0 / (t * fc[nb + j])
            for j, idx in enumerate(balls):
                v = theta[idx] - spec.coef_center
                k = 2 * nb + j
                H[np.ix_(idx, idx)] += 2 * lam_c[k] * np.eye(len(idx)) + lc_over[k] * 4 * np.outer(v, v)
                b_th[idx] -= 2 * v / (t * fc[k])
        b_th = np.asarray(b_th).ravel()
        rhs = b_th + np.asarray(A.T @ (dA * b_s / (dA + dB))).ravel()
        dth = _solve_sym(H, rhs)
        Adth = np.asarray(A @ dth).ravel()
        ds = (b_s + dA * Adth) / (dA + dB)
        # multiplier steps: dlam_i = (lam_i / -f_i) (grad f_i . dx) - lam_i + 1 / (t (-f_i))
        dla = dA * (Adth - ds) - lam_a + 1.0 / (t * ra)
        dlb = dB * (-ds) - lam_b + 1.0 / (t * sb)
        if m_set:
            gdx = np.zeros(m_set)
            nb = len(box)
            gdx[:nb] = dth[box]
            gdx[nb:2 * nb] = -dth[box]
            for j, idx in enumerate(balls):
                gdx[2 * nb + j] = 2 * float((theta[idx] - spec.coef_center) @ dth[idx])
            dlc = lc_over * gdx - lam_c + 1.0 / (t * fc)
        else:
            dlc = np.zeros(0)
        dlam = np.concatenate([dla, dlb, dlc])
        neg = dlam < 0
        step = min(1.0, 0.99 * float(np.min(-lam[neg] / dlam[neg]))) if neg.any() else 1.0
        norm0 = np.sqrt(r_dual ** 2 + r_cent @ r_cent)
        # the largest step that stays strictly feasible, then the residual test there and
        # at shorter steps (the values and gradients at the step accepted are those of
        # the next iteration: computed once)
        while step > 1e-8:
            th_n, s_n = theta + step * dth, s + step * ds
            own_n, og_n = own_of(th_n, True)
            fv_n = cons(th_n, s_n, own_n)
            if np.all(fv_n < 0):
                break
            step *= 0.5
        else:
            break
        first = True
        while step > 1e-8:
            th_n, s_n = theta + step * dth, s + step * ds
            la_n, lb_n, lc_n = lam_a + step * dla, lam_b + step * dlb, lam_c + step * dlc
            if not first:  # (at the first, they are those of the loop above)
                own_n, og_n = own_of(th_n, True)
            first = False
            fv_n = cons(th_n, s_n, own_n)
            if np.all(fv_n < 0):
                rt, rs, rc, _, _ = residuals(th_n, s_n, la_n, lb_n, lc_n, t, own_n, og_n, fv_n)
                if np.sqrt(rt @ rt + rs @ rs + rc @ rc) <= (1 - 0.01 * step) * norm0:
                    break
            step *= 0.5
        else:
            break
        theta, s, lam_a, lam_b, lam_c = th_n, s_n, la_n, lb_n, lc_n
        at_theta = (own_n, og_n)
        if progress is not None and progress.wanted():
            # violation of the restriction's constraints themselves (what the slacks pay for)
            h = own_n[grp] - c_lin - A_lin @ theta if K else np.zeros(0)
            progress(stage, it, objective(theta, s, own_n), float(max(0.0, np.max(h))) if K else 0.0)
        if stop_below is not None and K == 0 and objective(theta, s, own_n) <= stop_below:
            status = "reached"
            break
    own = own_of(theta, False)
    f_val = float(np.dot(wg[act], own[act])) + problem.penalty(theta)
    duals = {int(g): float(lam_a[k]) for k, g in enumerate(grp[:n_rat])}
    return Result(backend=NATIVE, status=status, solution=theta, objective=f_val + rho * float(s.sum()),
                  duals=duals, iterations=it, seconds=time.perf_counter() - t0,
                  attempts=[("NATIVE/interior-point", status)])
