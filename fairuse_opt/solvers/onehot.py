"""One convex restriction of the sequence of restrictions by sequential quadratic models.

The one-hot route solves, at every step of the convex-concave procedure, the
restriction::

    minimise  F(theta) = f(theta) + rho * sum_k max(0, h_k(theta))
    h_k(theta) = L_g(k)(theta, own) - c_k - a_k . theta

(``f`` the objective, ``h_k`` a rationality row, ``a_k = 0``, or a linearised envy
row).  The interior-point method (:func:`~fairuse_opt.solvers.native.barrier`) takes
about a hundred passes over the rows for one restriction (one or more per Newton step
and line-search trial).  Here each outer iteration (Fletcher's S-l1-QP, a line search
instead of a trust region) takes:

* one pass over the rows: the groups' own losses and their gradients (from the line
  search that accepted the point);
* the groups' Hessian blocks, taken again only once the iterate has moved
  :data:`HESSIAN_LAG` from where they were (one pass with ``d^2`` work a row);
* the model: ``min 1/2 d'Hd + grad f.d + rho sum s  s.t.  h + J d <= s, s >= 0`` with
  ``H`` the Hessian of the Lagrangian (the objective's plus each row's multiplier times
  its group's block; the previous restriction's multipliers to start), ``J`` the rows'
  gradients: a ``(p + K)``-variable quadratic program solved in numpy by
  :func:`penalty_qp` (no rows touched, no conic solver, no cvxpy);
* a backtracking line search on ``F`` along the model's step (one pass a trial).

Near the solution full steps are taken and the predicted decrease falls
superlinearly: measured on the one-hot benchmark (8 groups, 56 envy pairs, d = 30), 4 to
7 outer iterations a restriction.

Same answer as the interior-point method: both minimise the same convex ``F`` (its
minimiser unique when ``f`` is strictly convex); tests/test_onehot_route.py compares
them restriction by restriction and fit by fit.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve

from .base import NATIVE, Result

__all__ = ["restriction", "applies"]

#: the outer iterations stop once the model predicts a decrease of ``F`` below this,
#: relative to ``max(1, |F|)`` (the interior-point method stops at a duality gap of 1e-8
#: relative: the Newton-type iteration here gets well below that in the same passes)
PREDICTED_TOL = 1e-12
#: ... or once a full step was taken from a model predicting at most this (relative)
FULL_STEP_TOL = 1e-9
#: at most this many outer iterations (measured: 4 to 7 on the one-hot benchmark)
MAX_OUTER = 40
#: see :data:`fairuse_opt.solvers.native.BARRIER_HESSIAN_LAG`
HESSIAN_LAG = 1e-2


def applies(problem) -> bool:
    """The restriction has no common set (balls and boxes are the interior-point
    method's) and the own losses and Hessian blocks are in numpy."""
    return (getattr(problem, "set_spec", None) is None and getattr(problem, "hook", None) is None
            and "numpy" in getattr(problem, "provides", ("numpy",)))


def penalty_qp(H: np.ndarray, g: np.ndarray, J: np.ndarray, h: np.ndarray, rho: float, tol: float = 1e-10,
               max_iter: int = 60):
    """The model of a restriction: ``min 1/2 d'Hd + g'd + rho sum s  s.t.  h + J d <= s,
    s >= 0`` (``H`` positive definite), by Mehrotra's predictor-corrector interior-point
    method (Nocedal & Wright, *Numerical Optimization*, algorithm 16.4) with the slacks
    eliminated in closed form (a ``p x p`` Cholesky factorisation a step).  Returns
    ``(d, z, converged)`` with ``z >= 0`` the multipliers of the rows ``h + J d <= s``."""
    p, K = H.shape[0], J.shape[0]
    d = np.zeros(p)
    s = np.maximum(h, 0.0) + 1e-2 * max(1.0, float(np.max(np.abs(h), initial=0.0)))
    w1, w2 = s - h, s.copy()
    z1, z2 = np.full(K, rho / 2), np.full(K, rho / 2)
    scale = max(1.0, rho, float(np.max(np.abs(g), initial=0.0)))
    best = (d, z1, np.inf)
    for _ in range(max_iter):
        rdd = H @ d + g + J.T @ z1
        rds = rho - z1 - z2
        rp1 = J @ d - s + w1 + h
        rp2 = w2 - s
        mu = float(w1 @ z1 + w2 @ z2) / (2 * K)
        res = max(float(np.max(np.abs(rdd), initial=0.0)), float(np.max(np.abs(rds), initial=0.0)),
                  float(np.max(np.abs(rp1), initial=0.0)), float(np.max(np.abs(rp2), initial=0.0)))
        score = max(res / (tol * scale), mu / (1e-2 * tol * scale))
        if score < best[2]:
            best = (d, z1, score)
        if score <= 1.0:
            return d, z1, True
        D1, D2 = z1 / w1, z2 / w2
        Dr = D1 / (D1 + D2)
        M = H + (J.T / (w1 / z1 + w2 / z2)) @ J
        try:
            cf = cho_factor(M, check_finite=False)

            def solve(v, cf=cf):
                return cho_solve(cf, v, check_finite=False)
        except np.linalg.LinAlgError:
            # degenerate (rows active with zero slack: the weights span many decades and
            # rounding leaves M indefinite): the best iterate, when it is accurate
            break

        def direction(rc1, rc2):
            a1 = (z1 * rp1 - rc1) / w1
            a2 = (z2 * rp2 - rc2) / w2
            dd = cho_solve(cf, -rdd - J.T @ (a1 - Dr * (a1 + a2 - rds)), check_finite=False)
            Jdd = J @ dd
            ds = (a1 + a2 + D1 * Jdd - rds) / (D1 + D2)
            dw1 = -rp1 - Jdd + ds
            dz1 = a1 + D1 * (Jdd - ds)
            dw2 = ds - rp2
            dz2 = a2 - D2 * ds
            return dd, ds, dw1, dz1, dw2, dz2

        def longest(v, dv):
            neg = dv < 0
            return min(1.0, float(np.min(-v[neg] / dv[neg]))) if neg.any() else 1.0

        dd, ds, dw1, dz1, dw2, dz2 = direction(w1 * z1, w2 * z2)
        v = np.concatenate([w1, z1, w2, z2])
        a = longest(v, np.concatenate([dw1, dz1, dw2, dz2]))
        mu_aff = float((w1 + a * dw1) @ (z1 + a * dz1) + (w2 + a * dw2) @ (z2 + a * dz2)) / (2 * K)
        sigma = (mu_aff / mu) ** 3 if mu > 0 else 0.0
        dd, ds, dw1, dz1, dw2, dz2 = direction(w1 * z1 + dw1 * dz1 - sigma * mu, w2 * z2 + dw2 * dz2 - sigma * mu)
        a = 0.995 * longest(v, np.concatenate([dw1, dz1, dw2, dz2]))
        d, s, w1, z1, w2, z2 = d + a * dd, s + a * ds, w1 + a * dw1, z1 + a * dz1, w2 + a * dw2, z2 + a * dz2
    # stalled (a degenerate model): its best iterate, accepted when it is close to
    # optimal (the outer line search decides whether the step helps)
    return best[0], best[1], bool(best[2] <= 1e3)


def restriction(problem, theta0: np.ndarray, *, bound, pairs, lin_grad, lin_const, rho: float,
                tol: float = PREDICTED_TOL, max_outer: int = MAX_OUTER, lam0: np.ndarray | None = None,
                progress=None, stage: str = "convex restriction (quadratic models)") -> Result:
    """Solve one restriction (see the module docstring); ``Result`` as
    :func:`~fairuse_opt.solvers.native.barrier` gives it (``duals``: the rationality
    rows' multipliers, from the last model; ``multipliers``: every row's, to start the
    next restriction with).  Status ``"failed"`` when a model is not solved (the caller
    then uses the interior-point method); ``progress`` (a
    :class:`~fairuse_opt.solvers.base.Progress`) hears of every outer iteration."""
    t0 = time.perf_counter()
    G, p = problem.G, problem.p
    act = list(problem.active)
    grp, const = [], []
    if bound is not None:
        grp += act
        const += [float(bound[g]) for g in act]
    n_rat = len(grp)
    grp += [g for g, _ in pairs]
    grp = np.array(grp, dtype=np.int64)
    K = len(grp)
    if K == 0:  # nothing to restrict: not this method's case
        return Result(backend=NATIVE, status="failed", solution=np.array(theta0, dtype=np.float64),
                      attempts=[("NATIVE/sqp-restriction", "failed")])
    A_lin = np.zeros((K, p))
    if pairs:
        A_lin[n_rat:] = lin_grad.toarray() if sp.issparse(lin_grad) else np.asarray(lin_grad)
    c_lin = np.concatenate([np.array(const, dtype=np.float64),
                            np.asarray(lin_const if pairs else [], dtype=np.float64)])
    wg = problem.Wg / problem.data.total_weight
    pen2 = 2 * problem.alpha * problem.q2

    def own_of(th, grad):
        out = problem.own_losses(th, grad=grad)
        if grad:
            return np.where(np.isnan(out[0]), 0.0, out[0]), out[1]
        return np.where(np.isnan(out), 0.0, out)

    def merit(th, own):
        h = own[grp] - c_lin - A_lin @ th
        f = float(np.dot(wg[act], own[act])) + problem.penalty(th)
        return f + rho * float(np.maximum(h, 0.0).sum()), f, h

    theta = np.array(theta0, dtype=np.float64)
    own, og = own_of(theta, True)
    F, f_val, h = merit(theta, own)
    # the multipliers of the previous restriction (the same rows: the Lagrangian's
    # curvature from the first model on)
    lam = np.array(lam0, dtype=np.float64) if lam0 is not None and len(lam0) == K else np.zeros(K)
    status, it = "not converged", 0
    mapped = [None, None]
    for it in range(1, max_outer + 1):
        # the groups' Hessian blocks, taken again once the iterate has moved
        # HESSIAN_LAG from where they were (exact gradients decide the answer: a lagged
        # Hessian changes the path, not the point reached)
        blocks, _ = problem.recent_hessians(theta, rel=HESSIAN_LAG)
        if mapped[0] is not blocks:  # the blocks in theta's coordinates, once per set of blocks
            mapped[:] = [blocks, problem.mapped_hessians(blocks)]
        cw = wg + np.bincount(grp, weights=lam, minlength=G)
        H = problem.combine_hessians(blocks, cw) if mapped[1] is None else np.tensordot(cw, mapped[1], axes=1)
        H[np.diag_indices_from(H)] += pen2
        gf = wg[act] @ og[act] + pen2 * theta
        J = og[grp] - A_lin
        d, lam, ok = penalty_qp(H, gf, J, h, float(rho))
        if not ok:
            status = "failed"
            break
        lin = f_val + float(gf @ d) + rho * float(np.maximum(h + J @ d, 0.0).sum())
        pred = F - lin  # the linear model's decrease (>= 1/2 d'Hd >= 0)
        quad = F - lin - 0.5 * float(d @ H @ d)
        if quad <= tol * max(1.0, abs(F)):
            status = "optimal"
            th_n = theta + d
            own_n = own_of(th_n, False)
            F_n, f_n, h_n = merit(th_n, own_n)
            if F_n <= F:
                theta, F = th_n, F_n
            break
        step = 1.0
        while step >= 1e-6:
            th_n = theta + step * d
            own_n, og_n = own_of(th_n, True)
            F_n, f_n, h_n = merit(th_n, own_n)
            if F_n <= F - 1e-4 * step * pred:
                break
            step *= 0.5
        else:
            status = "optimal" if quad <= 1e-9 * max(1.0, abs(F)) else "not converged"
            break
        theta, own, og, F, f_val, h = th_n, own_n, og_n, F_n, f_n, h_n
        if progress is not None and progress.wanted():
            # the restriction's own violation (what the slacks pay for)
            progress(stage, it, F, float(max(0.0, np.max(h, initial=0.0))))
        if step == 1.0 and quad <= FULL_STEP_TOL * max(1.0, abs(F)):
            # a full step from a model this close: the Newton-type iteration has cut the
            # remaining decrease far below PREDICTED_TOL (no model to confirm it)
            status = "optimal"
            break
    duals = {int(g): float(max(lam[k], 0.0)) for k, g in enumerate(grp[:n_rat])}
    out = Result(backend=NATIVE, status=status, solution=theta, objective=F, duals=duals, iterations=it,
                 seconds=time.perf_counter() - t0, attempts=[("NATIVE/sqp-restriction", status)])
    out.multipliers = lam  # every row's, for the next restriction's first model
    return out
