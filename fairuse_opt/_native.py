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

__all__ = ["NewtonResult", "newton", "inside_set", "native_record"]


@dataclass
class NewtonResult:
    theta: np.ndarray
    converged: bool
    steps: int
    gradient_norm: float
    objective: float


def newton(family: Family, loss, data: TrainData, theta: np.ndarray, alpha: float,
           scale: np.ndarray, max_steps: int = 50, gtol: float = 1e-10) -> NewtonResult:
    """Minimise ``mean loss + alpha * ||q * theta||^2`` (no constraints) from ``theta``.

    Works group by group on dense blocks: with ``[z, 1] @ M_g`` the design of group g's
    rows, the gradient is ``sum_g M_g' Z1_g' l'`` and the Hessian
    ``sum_g M_g' (Z1_g' diag(l'') Z1_g) M_g`` (BLAS on ``(d+1) x (d+1)`` blocks, never the
    sparse ``n x p`` design).  Converged when the largest gradient entry is below
    ``gtol``, or below ``1000 * gtol`` with a Newton decrement float64 cannot resolve in
    the objective; each step is kept only if it does not raise the objective.
    """
    theta = np.asarray(theta, dtype=np.float64).copy()
    q2 = family.penalty_scale(scale) ** 2
    W = data.total_weight
    p = len(theta)
    blocks = []
    for g, rows in enumerate(data.group_rows):
        if len(rows):
            Z1 = np.column_stack([data.Z[rows], np.ones(len(rows))])
            blocks.append((Z1, data.stats[rows], family.maps[g].toarray()))

    def objective(t):
        total = sum(loss.value(st, Z1 @ (M @ t)).sum() for Z1, st, M in blocks)
        return total / W + alpha * float(np.sum(q2 * t * t))

    current = objective(theta)
    gnorm = np.inf
    for step in range(max_steps + 1):
        grad = 2 * alpha * q2 * theta
        H = np.diag(2 * alpha * q2)
        for Z1, st, M in blocks:
            sc = Z1 @ (M @ theta)
            grad += M.T @ (Z1.T @ loss.grad(st, sc)) / W
            if loss.name == "log_loss":
                pr = expit(sc)
                curv = st[:, 0] * pr * (1 - pr)
            else:
                curv = 2.0 * st[:, 0]
            H += M.T @ ((Z1.T * curv) @ Z1) @ M / W
        gnorm = float(np.max(np.abs(grad))) if p else 0.0
        if gnorm <= gtol:
            return NewtonResult(theta, True, step, gnorm, current)
        if step == max_steps:
            break
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
            val = objective(cand)
            if np.isfinite(val) and val <= current:
                break
            t /= 2
        else:
            break
        theta, current = cand, val
    return NewtonResult(theta, False, step, gnorm, current)


def inside_set(family: Family, spec: SetSpec | None, theta: np.ndarray, rel: float = 1e-6) -> bool:
    """True when every group block lies strictly inside the common set (so the set's
    constraints are inactive and an unconstrained optimum is the constrained one)."""
    if spec is None or not family.uses_set:
        return True
    for i in family.block_intercept:
        if abs(theta[i] - spec.intercept_center) >= spec.intercept_bound * (1 - rel):
            return False
    for idx in family.block_weights:
        if len(idx) and np.linalg.norm(theta[idx] - spec.coef_center) >= spec.coef_bound * (1 - rel):
            return False
    return True


def native_record(res: NewtonResult):
    """A :class:`~fairuse_opt._solve.SolveRecord` describing a converged Newton solve."""
    from ._solve import SolveRecord

    return SolveRecord(solver="NATIVE", status="optimal", objective=res.objective, iterations=res.steps,
                       attempts=[("NATIVE/newton", "optimal")])
