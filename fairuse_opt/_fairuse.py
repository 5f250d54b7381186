"""Training with fair use by construction: routes, verification and the certificate.

*What* each subproblem is lives in :mod:`fairuse_opt._formulation`; *how* it is solved
is :meth:`FitContext.solve` (conic solvers through cvxpy).  This module decides which
subproblems to solve, in which order, and checks the result in plain numpy.

Routes (see ``docs/fair-use-training.md`` for the theorem and its proof):

* **exact** - ``group_reg="set"`` with the ``intersectional`` or ``decoupled``
  encoding: one convex program with the rationality constraints only.  Its optimum is
  the global optimum and is envy-free (block optimality over a common set).
* **ccp** - otherwise (``onehot``, or penalised group blocks) when envy-freeness is
  asked: a sequence of convex restrictions (envy constraints linearised on their
  right side, every iterate feasible) from several starts; the best verified result
  is kept.  Rationality alone is always one convex program.

Whatever the route, the result is re-checked in numpy (every group's own, generic and
alternative losses) at tolerance ``tol``; a result that does not verify is never
returned as fair.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ._formulation import group_loss_grad, loss_matrix, objective_value
from ._native import kkt_duals, native_record, newton, slsqp
from ._solve import raise_failed, solve
from .certificate import Certificate
from .exceptions import (
    MSG_BAD_PARAM,
    MSG_FALLBACK,
    MSG_INFEASIBLE_MARGIN,
    MSG_VERIFY_FAILED,
    FairUseInfeasibleError,
    FallbackWarning,
    InputError,
    VerificationError,
)

__all__ = ["fit", "resolve_margins", "external_scores", "losses_from_scores", "verify"]


# ----------------------------------------------------------------------------- margins
def resolve_margins(margin: Any, ctx, row_loss_generic: np.ndarray, row_loss_model: np.ndarray) -> np.ndarray:
    """Per-group margins ``eps_g`` (loss units) from a number, a mapping or ``"se:k"``.

    ``"se:k"``: k standard errors of the weighted mean of the per-row loss difference
    (generic minus unconstrained personalized model) within the group.
    """
    G = ctx.family.n_groups
    keys = ctx.index.keys if ctx.index is not None else [()]
    if isinstance(margin, str):
        if not margin.startswith("se:"):
            raise InputError(MSG_BAD_PARAM.format(name="margin", value=margin,
                                                  reason="a number, a mapping or 'se:k'"))
        try:
            k = float(margin[3:])
        except ValueError as exc:
            raise InputError(MSG_BAD_PARAM.format(name="margin", value=margin, reason="k must be a number")) from exc
        if not np.isfinite(k) or k < 0:
            raise InputError(MSG_BAD_PARAM.format(name="margin", value=margin, reason="k must be >= 0"))
        out = np.zeros(G)
        diff = row_loss_generic - row_loss_model
        for g in range(G):
            m = ctx.row_codes == g
            w = ctx.w[m]
            mean = np.average(diff[m], weights=w)
            out[g] = k * np.sqrt(np.sum(w ** 2 * (diff[m] - mean) ** 2)) / w.sum()
        return out
    if isinstance(margin, np.ndarray):
        return margin.astype(np.float64).copy()
    if isinstance(margin, Mapping):
        out = np.zeros(G)
        known = {key: g for g, key in enumerate(keys)}
        for key, value in margin.items():
            norm = ctx.index.report_key(key) if ctx.index is not None else key
            out[known[norm]] = _check_margin_value(value, margin)
        return out
    return np.full(G, _check_margin_value(margin, margin))


def _check_margin_value(value, whole) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < 0:
        raise InputError(MSG_BAD_PARAM.format(name="margin", value=whole,
                                              reason="margins must be finite numbers >= 0"))
    return float(value)


# ------------------------------------------------------------------- external generic
def external_scores(generic, X, groups, group_cols, task: str) -> np.ndarray:
    """Probabilities (classification) or predictions of a user-supplied generic model."""
    from .estimators import _BaseFairUse
    if isinstance(generic, _BaseFairUse):
        kw = {"groups": groups} if groups is not None else {}
        out = generic.predict_proba(X, **kw) if task == "classification" else generic.predict(X, **kw)
    else:
        Xf = X.drop(columns=list(group_cols)) if group_cols is not None else X
        method = "predict_proba" if task == "classification" else "predict"
        if not hasattr(generic, method):
            raise InputError(MSG_BAD_PARAM.format(name="generic", value=generic,
                                                  reason=f"a fitted model with {method}() is required"))
        out = getattr(generic, method)(Xf)
    out = np.asarray(out, dtype=np.float64)
    return out[:, 1] if out.ndim == 2 else out


def losses_from_scores(pred: np.ndarray, ctx, est) -> np.ndarray:
    """Row losses of a generic model's predictions (probabilities or values)."""
    if ctx.loss.name == "log_loss":
        p = np.clip(pred, 1e-15, 1 - 1e-15)
        return -(ctx.y * np.log(p) + (1 - ctx.y) * np.log1p(-p))
    return (ctx.y - pred) ** 2


def group_means(row_loss: np.ndarray, ctx) -> np.ndarray:
    G = ctx.family.n_groups
    return np.array([np.average(row_loss[ctx.row_codes == g], weights=ctx.w[ctx.row_codes == g])
                     for g in range(G)])


# ----------------------------------------------------------------------- verification
def verify(L: np.ndarray, bound: np.ndarray, fair_use, tol: float, keys) -> list[str]:
    """Check every requested constraint on the loss matrix ``L[g, r]``."""
    failures = []
    own = np.diag(L)
    if "rationality" in fair_use:
        for g in np.flatnonzero(own > bound + tol):
            failures.append(f"rationality for {keys[g]}: own loss {own[g]:.9g} > bound {bound[g]:.9g}")
    if "envy_freeness" in fair_use:
        G = L.shape[0]
        for g in range(G):
            for r in range(G):
                if r != g and own[g] > L[g, r] + tol:
                    failures.append(f"envy: {keys[g]} prefers report {keys[r]} "
                                    f"({L[g, r]:.9g} < {own[g]:.9g})")
    return failures


def _feasible(L, bound, fair_use, tol) -> bool:
    return not verify(L, bound, fair_use, tol, list(range(L.shape[0])))


# -------------------------------------------------------------------------------- fit
def fit(ctx, *, fair_use: tuple, theta_generic: np.ndarray, generic_row_loss: np.ndarray,
        margin: Any, on_infeasible: str, max_iter: int, tol: float, objective_generic: float):
    """Fit ``ctx``'s family with the requested guarantees.

    Returns ``(theta, Ws, bs, certificate)``: the parameters, the effective model served
    to each group (standardised scale; with ``on_infeasible="generic"`` some groups may
    be served the generic model, which ``theta`` alone does not express) and the
    certificate.
    """
    t0 = time.perf_counter()
    fam, loss, data = ctx.family, ctx.loss, ctx.data
    keys = ctx.index.keys if ctx.index is not None else [()]
    G = fam.n_groups
    L0 = group_means(generic_row_loss, ctx)
    trace: list[float] = []

    # 1. the unconstrained fit (the fair-use fit when no guarantee is asked): Newton when
    #    it converges inside the common set (then the set is inactive), else a conic solver
    theta_u = None
    if ctx.native:
        res = newton(fam, loss, data, theta_generic, ctx.alpha, ctx.scale)
        # inside the common set, its constraints are inactive: the unconstrained optimum
        # is the constrained one
        if res.converged and (ctx.set_spec is None
                              or not ctx.set_spec.at_boundary(fam, *fam.effective(res.theta)).any()):
            theta_u, rec = res.theta, native_record(res)
    if theta_u is None:
        prog, rec = ctx.solve()
        if not rec.ok:
            raise_failed(rec, "unconstrained fit")
        theta_u = prog.value()
    obj_u = objective_value(fam, loss, data, theta_u, ctx.alpha, ctx.scale)
    attempts = list(rec.attempts)
    ctx.log(f"unconstrained fit: objective {obj_u:.6f} ({rec.solver}, {rec.status})")
    margins = (resolve_margins(margin, ctx, generic_row_loss, ctx.row_loss(theta_u))
               if fair_use else np.zeros(G))
    bound = L0 - margins
    L_u = loss_matrix(loss, data, *fam.effective(theta_u))

    def certificate(theta, route, solver, status, iterations, effective=None, **extra):
        Ws, bs = fam.effective(theta) if effective is None else effective
        return theta, Ws, bs, _certificate(ctx, Ws, bs, L0, margins, fair_use, tol, route=route, solver=solver,
                            status=status, iterations=iterations, objective=objective_value(
                                fam, loss, data, theta, ctx.alpha, ctx.scale),
                            objective_unconstrained=obj_u, objective_generic=objective_generic,
                            trace=trace, seconds=time.perf_counter() - t0, attempts=attempts, **extra)

    if not fair_use:
        trace.append(obj_u)
        return certificate(theta_u, "unconstrained", rec.solver, rec.status, 1)
    if _feasible(L_u, bound, fair_use, tol):
        trace.append(obj_u)
        ctx.log("the unconstrained fit meets every constraint: it is the global optimum")
        return certificate(theta_u, "unconstrained-feasible", rec.solver, rec.status, 1)

    exact = fam.uses_set and fam.encoding in ("intersectional", "decoupled")
    result = None
    if "rationality" in fair_use and (exact or "envy_freeness" not in fair_use) and ctx.native:
        # the convex program with rationality constraints, natively: SLSQP from the
        # unconstrained optimum; a KKT point of a convex program is its global optimum
        res = slsqp(fam, loss, data, theta_u, ctx.alpha, ctx.scale,
                    ctx.set_spec if fam.uses_set else None, True, bound, [], tol)
        if res is not None and res.success:
            L = loss_matrix(loss, data, *fam.effective(res.x))
            if _feasible(L, bound, fair_use, tol):
                duals = kkt_duals(fam, loss, data, res.x, ctx.alpha, ctx.scale,
                                  ctx.set_spec if fam.uses_set else None, bound, tol)
                attempts.append(("NATIVE/slsqp", "optimal"))
                trace.append(objective_value(fam, loss, data, res.x, ctx.alpha, ctx.scale))
                return certificate(res.x, "exact" if exact else "convex", "NATIVE", "optimal", 1,
                                   duals=duals)
        attempts.append(("NATIVE/slsqp", "not verified" if res is not None and res.success else "failed"))
    if "rationality" in fair_use and (exact or "envy_freeness" not in fair_use):
        result = _solve_rationality(ctx, bound, tol)
        attempts += result["attempts"]
        if result["theta"] is not None:
            trace.append(result["objective"])
            L = loss_matrix(loss, data, *fam.effective(result["theta"]))
            route = "exact" if exact else "convex"
            if _feasible(L, bound, fair_use, tol):
                return certificate(result["theta"], route, result["solver"], result["status"], 1,
                                   duals=result["duals"])
            ctx.log("the exact program's solution did not verify; trying the sequence of restrictions")
    if exact and fair_use == ("envy_freeness",):
        ctx.log("unconstrained set-regularised fit did not verify envy-freeness numerically")
    # a solver's certificate that the convex program has no feasible point is final
    proven_infeasible = result is not None and result.get("infeasible", False)

    # 2. sequence of convex restrictions from several starts
    infeasible_groups = _margin_infeasible(ctx, bound, tol) if margins.any() else []
    if infeasible_groups:
        return _partial_fallback(ctx, infeasible_groups, margins, L0, fair_use, on_infeasible,
                                 theta_generic, tol, certificate, max_iter, generic_row_loss,
                                 objective_generic)
    best = None
    if not (proven_infeasible and margins.any()):
        best = _ccp(ctx, fair_use, bound, tol, max_iter, theta_u, theta_generic, margins, trace,
                    attempts)
    if best is None and margins.any():
        names = [keys[g] for g in np.flatnonzero(margins > 0)]
        why = ("each group can reach its margin alone, but no model in the family meets every "
               "margin at once (the groups share parameters)")
        if on_infeasible == "raise":
            raise FairUseInfeasibleError(MSG_INFEASIBLE_MARGIN.format(groups=names, reason=why))
        return _generic_fallback(ctx, [why], theta_generic, certificate, keys)
    if best is None:
        failures = ["no start produced a verified feasible point"]
        if on_infeasible == "raise":
            raise VerificationError(MSG_VERIFY_FAILED.format(failures="; ".join(failures)))
        return _generic_fallback(ctx, failures, theta_generic, certificate, keys)
    theta, info = best
    return certificate(theta, "ccp", info["solver"], info["status"], info["iterations"],
                       duals=info.get("duals"), start=info["start"])


def _solve_rationality(ctx, bound, tol):
    """One convex program: unconstrained objective + rationality constraints."""
    out = {"theta": None, "attempts": []}
    for tighten in (0.0, 10 * tol, 100 * tol):
        def prepare(prog, tighten=tighten):
            prog.rhs.value = bound - tighten
        prog, rec = ctx.solve({"rationality": True}, prepare)
        out["attempts"] += rec.attempts
        if not rec.ok:
            out["infeasible"] = any(st == "infeasible" for _, st in rec.attempts)
            return out
        theta = prog.value()
        L = loss_matrix(ctx.loss, ctx.data, *ctx.family.effective(theta))
        out.update(theta=theta, solver=rec.solver, status=rec.status, objective=rec.objective,
                   duals=prog.rationality_duals())
        if _feasible(L, bound, ("rationality",), tol):
            return out
    return out


def _margin_infeasible(ctx, bound, tol) -> list[int]:
    """Groups whose bound is below the lowest loss they can reach in the family (each
    program holds only that group's rows, the common set and the hook)."""
    bad = []
    for g in range(ctx.family.n_groups):
        if not len(ctx.data.group_rows[g]):
            continue
        prog = ctx.program(form="epigraph", floor_of=g)
        rec = solve(prog.problem, ctx.solvers, ctx.solver_options)
        if rec.ok and rec.objective > bound[g] + tol:
            bad.append(g)
    return bad


def _ccp(ctx, fair_use, bound, tol, max_iter, theta_u, theta_generic, margins, trace, attempts,
         rho_descent=100.0):
    """Convex-concave procedure from the repaired unconstrained fit and the generic model.

    Every subproblem is the convex restriction (envy constraints linearised on their
    right side) *with* penalised slacks: it always has a strictly feasible interior,
    which interior-point solvers need (without slacks, a restriction built at a point
    where several constraints are tight has none, and both Clarabel and ECOS stopped at
    ``optimal_inaccurate``).  A candidate is accepted only if it verifies in numpy and
    lowers the objective; otherwise the step from the current (verified) point towards
    it is halved until it does.  So every accepted iterate is feasible and the
    objective never increases.
    """
    fam, loss, data = ctx.family, ctx.loss, ctx.data
    G = fam.n_groups
    pairs = [(g, r) for g in range(G) for r in range(G) if r != g] if "envy_freeness" in fair_use else []
    rationality = "rationality" in fair_use
    programs: dict = {}
    best = None

    def objective(theta):
        return objective_value(fam, loss, data, theta, ctx.alpha, ctx.scale)

    def feasible(theta):
        return _feasible(loss_matrix(loss, data, *fam.effective(theta)), bound, fair_use, tol)

    def step(theta, rho):
        """Solve the slack-penalised restriction at ``theta``; return the candidate."""
        for form in ctx.forms:
            if form not in programs:
                programs[form] = ctx.program(form=form, rationality=rationality, envy_pairs=pairs,
                                             repair=True)
            prog = programs[form]
            if rationality:
                prog.rhs.value = bound
            _linearise(prog, fam, loss, data, pairs, theta)
            prog.rho.value = rho
            rec = solve(prog.problem, ctx.solvers, ctx.solver_options, first_usable=True)
            attempts.extend((f"{s}/{form}/ccp", st) for s, st in rec.attempts)
            if rec.ok:
                return prog.value(), rec, prog
        return None, None, None

    def descend(theta, label, iterations):
        nonlocal best
        obj = objective(theta)
        local_trace = [obj]
        info = {"solver": None, "status": "start", "iterations": 0, "start": label, "duals": None}
        for it in range(iterations):
            cand, rec, prog = step(theta, rho_descent)
            if cand is None:
                break
            accepted = None
            t = 1.0
            while t >= 1.0 / 64:
                trial = theta + t * (cand - theta)
                trial_obj = objective(trial)
                if trial_obj < obj - 1e-12 and feasible(trial):
                    accepted = (trial, trial_obj)
                    break
                t /= 2
            if accepted is None:
                break
            improvement = obj - accepted[1]
            theta, obj = accepted
            local_trace.append(obj)
            info = {"solver": rec.solver, "status": rec.status, "iterations": it + 1, "start": label,
                    "duals": prog.rationality_duals() if (rationality and t == 1.0) else None}
            ctx.log(f"ccp from {label}: iteration {it + 1}, objective {obj:.7f} (step {t:g})")
            if improvement <= 1e-7 * (1.0 + abs(obj)):
                break
        if feasible(theta) and (best is None or obj < best[2]):
            best = (theta, info, obj, local_trace)

    repaired = _repair(ctx, theta_u, feasible, step, attempts)
    if repaired is not None:
        descend(repaired, "repaired unconstrained fit", max_iter)
    if feasible(theta_generic):
        # from the generic model the procedure crawls (measured: 86% of the time of a
        # 300-second fit for no better objective); when the repair worked it gets a few
        # steps only, enough to show whether its basin is better
        descend(theta_generic, "generic model", max_iter if repaired is None else min(max_iter, 5))
    if best is None:
        return None
    theta, info, obj, local_trace = best
    if ctx.hook is None:  # the hook's terms are cvxpy expressions: no numpy polish then
        polished = _local_polish(ctx, theta, fair_use, bound, tol, pairs)
        if polished is not None:
            p_obj = objective(polished)
            if p_obj < obj - 1e-12 and feasible(polished):
                ctx.log(f"local polish (SLSQP): objective {obj:.7f} -> {p_obj:.7f}")
                theta, obj = polished, p_obj
                local_trace = local_trace + [p_obj]
                info = {**info, "duals": None, "polished": True}
    trace.extend(local_trace)
    return theta, info


def _local_polish(ctx, theta0, fair_use, bound, tol, pairs, max_iter=300):
    """SLSQP from a verified CCP point (see :func:`fairuse_opt._native.slsqp`).

    The convex-concave procedure keeps every iterate feasible but can crawl (its
    restrictions ignore the curvature of the right-hand sides); SLSQP on the small
    parameter vector converges to the local optimum in a few dozen steps.  The caller
    keeps its result only if it verifies in numpy and lowers the objective.
    """
    res = slsqp(ctx.family, ctx.loss, ctx.data, theta0, ctx.alpha, ctx.scale,
                ctx.set_spec if ctx.family.uses_set else None, "rationality" in fair_use, bound,
                pairs, tol, max_iter=max_iter)
    return None if res is None else res.x


def _linearise(prog, fam, loss, data, pairs, theta):
    """Set the linearisation of every envy constraint's right side at ``theta``."""
    if not pairs:
        return
    grads = np.zeros((len(pairs), fam.n_params))
    consts = np.zeros(len(pairs))
    for k, (g, r) in enumerate(pairs):
        val, grad = group_loss_grad(fam, loss, data, theta, g, r)
        grads[k], consts[k] = grad, val - grad @ theta
    prog.set_linearisation(grads, consts)


def _repair(ctx, theta_u, feasible, step, attempts, max_rounds=20, rho0=1.0, growth=4.0, rho_max=1e4):
    """Move the unconstrained fit into the feasible set.

    Convex restrictions with slacks whose penalty grows geometrically from ``rho0``
    (objective units per unit of mean group loss; the rationality duals are of that
    order) and is capped at ``rho_max``; returns the first verified feasible point, or
    ``None`` when the slacks do not vanish (then the generic start remains).
    """
    theta, rho = theta_u, rho0
    for _ in range(max_rounds):
        cand, rec, _prog = step(theta, rho)
        if cand is None:
            return None
        theta = cand
        if feasible(theta):
            ctx.log(f"repair reached a feasible point (penalty {rho:g})")
            return theta
        rho = min(rho * growth, rho_max)
    return None


# ------------------------------------------------------------------ failure handling
def _partial_fallback(ctx, groups, margins, L0, fair_use, on_infeasible, theta_generic, tol,
                      certificate, max_iter, generic_row_loss, objective_generic):
    """Margins that some groups cannot reach: raise, or serve those groups the generic
    model (and fit the others with their margins), then verify everything again."""
    keys = ctx.index.keys if ctx.index is not None else [()]
    names = [keys[g] for g in groups]
    why = "the required margin exceeds the lowest training loss the model family can reach for them"
    if on_infeasible == "raise":
        raise FairUseInfeasibleError(MSG_INFEASIBLE_MARGIN.format(groups=names, reason=why))
    relaxed = margins.copy()
    relaxed[groups] = 0.0
    theta, Ws, bs, _ = fit(ctx, fair_use=fair_use, theta_generic=theta_generic,
                           generic_row_loss=generic_row_loss, margin=relaxed, on_infeasible="raise",
                           max_iter=max_iter, tol=tol, objective_generic=objective_generic)
    gW, gb = ctx.family.effective(theta_generic)
    Ws, bs = Ws.copy(), bs.copy()
    Ws[groups], bs[groups] = gW[groups], gb[groups]
    failures = verify(loss_matrix(ctx.loss, ctx.data, Ws, bs), L0 - relaxed, fair_use, tol, keys)
    if failures:
        return _generic_fallback(ctx, [why] + failures, theta_generic, certificate, keys)
    warnings.warn(MSG_FALLBACK.format(groups=names, reason=why), FallbackWarning, stacklevel=4)
    return certificate(theta, "generic-fallback", None, "fallback", 0, effective=(Ws, bs),
                       fallback_groups=list(groups), margins_override=relaxed,
                       notes=[f"margin infeasible for {names}: served the generic model"])


def _generic_fallback(ctx, failures, theta_generic, certificate, keys):
    """Serve every group the generic model (warns)."""
    warnings.warn(MSG_FALLBACK.format(groups=list(keys), reason="; ".join(failures)), FallbackWarning,
                  stacklevel=4)
    return certificate(theta_generic, "generic-fallback", None, "fallback", 0,
                       fallback_groups=list(range(ctx.family.n_groups)), notes=failures,
                       margins_override=np.zeros(ctx.family.n_groups))


# ------------------------------------------------------------------------ certificate
def _certificate(ctx, Ws, bs, L0, margins, fair_use, tol, *, route, solver, status, iterations,
                 objective, objective_unconstrained, objective_generic, trace, seconds, attempts,
                 duals=None, start=None, fallback_groups=(), notes=(), margins_override=None):
    data = ctx.data
    if margins_override is not None:
        margins = margins_override
    keys = ctx.index.keys if ctx.index is not None else [()]
    G = len(keys)
    L = loss_matrix(ctx.loss, data, Ws, bs)
    own = np.diag(L).copy()
    rows = []
    at_boundary = (ctx.set_spec.at_boundary(ctx.family, Ws, bs) if ctx.set_spec is not None
                   else np.zeros(G, dtype=bool))
    for g in range(G):
        alt = [r for r in range(G) if r != g]
        best_r = min(alt, key=lambda r: L[g, r]) if alt else None
        rows.append({
            "group": keys[g],
            "n": int(np.sum(ctx.row_codes == g)),
            "weight": float(data.group_weight[g]),
            "generic_loss": float(L0[g]),
            "own_loss": float(own[g]),
            "gain": float(L0[g] - own[g]),
            "margin": float(margins[g]),
            "rationality_slack": float(L0[g] - margins[g] - own[g]),
            "best_alternative": keys[best_r] if best_r is not None else None,
            "best_alternative_loss": float(L[g, best_r]) if best_r is not None else float("nan"),
            "envy_slack": float(L[g, best_r] - own[g]) if best_r is not None else float("nan"),
            "rationality_active": bool("rationality" in fair_use
                                       and L0[g] - margins[g] - own[g] <= max(1e-6, 10 * tol)),
            "dual": float(duals.get(g, float("nan"))) if duals else (0.0 if route in (
                "unconstrained-feasible",) else float("nan")),
            "at_set_boundary": bool(at_boundary[g]),
            "generic_fallback": g in set(fallback_groups),
        })
    table = pd.DataFrame(rows)
    failures = verify(L, L0 - margins, fair_use, tol, keys)
    denom = objective_generic - objective_unconstrained
    kept = (objective_generic - objective) / denom if denom > 1e-12 else float("nan")
    cert = Certificate(table=table, fair_use=tuple(fair_use), route=route, solver=solver, status=status,
                       iterations=int(iterations or 0), objective=float(objective),
                       objective_unconstrained=float(objective_unconstrained),
                       objective_generic=float(objective_generic), gain_kept=float(kept),
                       trace=[float(t) for t in trace], seconds=float(seconds), verified=not failures,
                       tolerance=tol, failures=failures, attempts=list(attempts),
                       notes=list(notes) + ([f"best start: {start}"] if start else []))
    return cert

