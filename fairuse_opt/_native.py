"""A native (numpy) solver for the unconstrained problems: damped Newton steps.

The generic model and the unconstrained personalized fit minimise a smooth convex
function of a small parameter vector (``p`` is the number of features plus a few
group parameters, whatever the number of rows), so Newton's method with a backtracking
line search converges in a handful of steps at ``O(n p^2)`` each, to machine precision.
The conic solvers remain the route for everything with constraints, and the fallback
whenever Newton does not converge or its solution leaves the common set (then that set
is active and the problem is not unconstrained after all).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from ._family import Family
from ._formulation import SetSpec, TrainData

__all__ = ["NewtonResult", "newton", "native_record", "slsqp", "kkt_duals"]


@dataclass
class NewtonResult:
    theta: np.ndarray
    converged: bool
    steps: int
    gradient_norm: float
    objective: float


class _Blocks:
    """Dense per-group blocks ``([z, 1], stats, M_g)`` for objective and gradient."""

    def __init__(self, family: Family, loss, data: TrainData, alpha: float, scale: np.ndarray):
        self.loss, self.alpha, self.W = loss, alpha, data.total_weight
        self.q2 = family.penalty_scale(scale) ** 2
        self.blocks = [(np.column_stack([data.Z[rows], np.ones(len(rows))]), data.stats[rows],
                        family.maps[g].toarray())
                       for g, rows in enumerate(data.group_rows) if len(rows)]

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        H = np.diag(2 * self.alpha * self.q2)
        for Z1, st, M in self.blocks:
            sc = Z1 @ (M @ theta)
            if self.loss.name == "log_loss":
                pr = expit(sc)
                curv = st[:, 0] * pr * (1 - pr)
            else:
                curv = 2.0 * st[:, 0]
            H += M.T @ ((Z1.T * curv) @ Z1) @ M / self.W
        return H

    def value_grad(self, theta: np.ndarray):
        val = self.alpha * float(np.sum(self.q2 * theta * theta))
        grad = 2 * self.alpha * self.q2 * theta
        for Z1, st, M in self.blocks:
            sc = Z1 @ (M @ theta)
            val += self.loss.value(st, sc).sum() / self.W
            grad = grad + M.T @ (Z1.T @ self.loss.grad(st, sc)) / self.W
        return val, grad


def newton(family: Family, loss, data: TrainData, theta: np.ndarray, alpha: float,
           scale: np.ndarray, max_steps: int = 50, gtol: float = 1e-10) -> NewtonResult:
    """Minimise ``mean loss + alpha * ||q * theta||^2`` (no constraints) from ``theta``.

    Works group by group on dense blocks (:class:`_Blocks`): with ``[z, 1] @ M_g`` the
    design of group g's rows, the gradient is ``sum_g M_g' Z1_g' l'`` and the Hessian
    ``sum_g M_g' (Z1_g' diag(l'') Z1_g) M_g`` (BLAS on ``(d+1) x (d+1)`` blocks, never the
    sparse ``n x p`` design).  Converged when the largest gradient entry is below
    ``gtol``, or below ``1000 * gtol`` with a Newton decrement float64 cannot resolve in
    the objective; each step is kept only if it does not raise the objective.
    """
    theta = np.asarray(theta, dtype=np.float64).copy()
    blocks = _Blocks(family, loss, data, alpha, scale)
    p = len(theta)
    current, grad = blocks.value_grad(theta)
    gnorm = np.inf
    for step in range(max_steps + 1):
        gnorm = float(np.max(np.abs(grad))) if p else 0.0
        if gnorm <= gtol:
            return NewtonResult(theta, True, step, gnorm, current)
        if step == max_steps:
            break
        H = blocks.hessian(theta)
        try:
            delta = np.linalg.solve(H + 1e-12 * (np.trace(H) / max(p, 1)) * np.eye(p), grad)
        except np.linalg.LinAlgError:
            break
        # the predicted decrease (half the Newton decrement) is below what float64 can
        # resolve in the objective: nothing is left to gain, the point is optimal
        if 0 <= grad @ delta <= 1e-15 * max(1.0, abs(current)) and gnorm <= 1e3 * gtol:
            return NewtonResult(theta, True, step, gnorm, current)
        t = 1.0
        while t > 1e-6:
            cand = theta - t * delta
            val, cand_grad = blocks.value_grad(cand)
            if np.isfinite(val) and val <= current:
                break
            t /= 2
        else:
            break
        theta, current, grad = cand, val, cand_grad
    return NewtonResult(theta, False, step, gnorm, current)


def native_record(res: NewtonResult):
    """A :class:`~fairuse_opt._solve.SolveRecord` describing a converged Newton solve."""
    from ._solve import SolveRecord

    return SolveRecord(solver="NATIVE", status="optimal", objective=res.objective, iterations=res.steps,
                       attempts=[("NATIVE/newton", "optimal")])


def _constraints(family: Family, loss, data: TrainData, theta: np.ndarray, spec: SetSpec | None,
                 rationality: bool, bound: np.ndarray, pairs, shrink: float):
    """Values ``>= 0`` when satisfied, and their gradients, of every constraint:
    rationality ``bound_g - L_g(own)``, envy ``L_g(r) - L_g(own)`` (both tightened by
    ``shrink``), and the common set."""
    from ._formulation import group_loss_grad

    vals, jacs, kinds = [], [], []
    own = {g: group_loss_grad(family, loss, data, theta, g, g)
           for g in range(family.n_groups) if len(data.group_rows[g])}
    if rationality:
        for g, (v, gr) in own.items():
            vals.append(bound[g] - shrink - v)
            jacs.append(-gr)
            kinds.append(("rationality", g))
    for g, r in pairs:
        if g in own:
            v, gr = group_loss_grad(family, loss, data, theta, g, r)
            vals.append(v - own[g][0] - shrink)
            jacs.append(gr - own[g][1])
            kinds.append(("envy", (g, r)))
    if spec is not None:
        for i in family.block_intercept:
            e = np.zeros_like(theta)
            e[i] = 1.0
            vals += [spec.intercept_bound - (theta[i] - spec.intercept_center),
                     spec.intercept_bound + (theta[i] - spec.intercept_center)]
            jacs += [-e, e]
            kinds += [("set", i), ("set", i)]
        for idx in family.block_weights:
            if len(idx):
                diff = theta[idx] - spec.coef_center
                e = np.zeros_like(theta)
                e[idx] = -2 * diff
                vals.append(spec.coef_bound ** 2 - float(diff @ diff))
                jacs.append(e)
                kinds.append(("set", tuple(idx)))
    p = len(theta)
    return np.array(vals), (np.array(jacs) if jacs else np.zeros((0, p))), kinds


def slsqp(family: Family, loss, data: TrainData, theta0: np.ndarray, alpha: float, scale: np.ndarray,
          spec: SetSpec | None, rationality: bool, bound: np.ndarray, pairs, tol: float,
          max_iter: int = 300):
    """Sequential quadratic programming (scipy's SLSQP) on the parameter vector.

    Exact gradients of the objective (dense per-group blocks) and of every group loss;
    the fair-use constraints are tightened by ``0.1 * tol`` so that a point on their
    boundary verifies at ``tol``.  Returns scipy's result (``.x``, ``.success``) or
    ``None`` when SLSQP raised.
    """
    from scipy.optimize import minimize

    blocks = _Blocks(family, loss, data, alpha, scale)
    cache: dict = {}

    def cons(theta):
        key = theta.tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = _constraints(family, loss, data, theta, spec, rationality, bound, pairs, 0.1 * tol)
        return cache[key]

    constraints = []
    if rationality or pairs or spec is not None:
        constraints = [{"type": "ineq", "fun": lambda t: cons(t)[0], "jac": lambda t: cons(t)[1]}]
    try:
        res = minimize(blocks.value_grad, np.asarray(theta0, dtype=np.float64), jac=True, method="SLSQP",
                       constraints=constraints, options={"maxiter": max_iter, "ftol": 1e-14})
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return None
    if not np.all(np.isfinite(res.x)):
        return None
    return res


def kkt_duals(family: Family, loss, data: TrainData, theta: np.ndarray, alpha: float,
              scale: np.ndarray, spec: SetSpec | None, bound: np.ndarray, tol: float) -> dict:
    """Multipliers of the rationality constraints at a solution, from the KKT
    conditions: non-negative least squares of ``-grad f`` on the gradients of the
    active constraints (rationality and common set).  Inactive constraints get 0."""
    from scipy.optimize import nnls

    _, grad = _Blocks(family, loss, data, alpha, scale).value_grad(theta)
    vals, jacs, kinds = _constraints(family, loss, data, theta, spec, True, bound, [], 0.0)
    active = np.flatnonzero(vals <= max(1e-6, 100 * tol))
    duals = {g: 0.0 for kind, g in kinds if kind == "rationality"}
    if len(active):
        # min f s.t. c(theta) >= 0:  grad f = sum_k lambda_k grad c_k,  lambda >= 0
        lam, _ = nnls(jacs[active].T, grad)
        for k, j in enumerate(active):
            kind, g = kinds[j]
            if kind == "rationality":
                duals[g] = float(lam[k])
    return duals
