"""Verification and the certificate, in one place.

Every fitted model is verified on what it *serves*: the raw-scale ``coef_`` and
``intercept_`` applied to the raw training rows, exactly the arithmetic of
``decision_function``.  Floating-point rounding of ``intercept + coef . x`` is bounded
per row (``gamma_{d+1} (|coef| . |x| + |intercept|)``, the standard bound of a dot
product) and carried into each group's mean loss (through the loss's Lipschitz
constant when it has one, else its derivatives at the row); a constraint is verified only if it
holds with room for that rounding twice (in this check and in any recomputation), so a
verified certificate holds whichever way the predictions are recomputed.  A served form
that cannot carry the guarantee (features with offsets far larger than their spread)
fails verification with a message saying so.  Constraints between two bitwise equal
served models hold exactly and need no room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..certificate import Certificate
from ..exceptions import MSG_SERVED_PRECISION, MSG_SERVED_PRECISION_SIZE
from ..problem.constraints import EnvyFreeness, Rationality

__all__ = ["Served", "served_losses", "check_constraints", "build_certificate", "row_scores"]

_U = np.finfo(np.float64).eps / 2
_CHUNK = 1 << 16


def _chunk_rows(d: int) -> int:
    """Rows per block of a chunked pass: about 2^19 values (4 MB) per temporary, so that
    the temporaries stay a small fraction of the data at every width."""
    return max(1024, min(_CHUNK, (1 << 19) // max(d, 1)))


@dataclass
class Served:
    """The raw training rows a certificate is computed on."""

    X: np.ndarray  # (n, d) raw features as validated
    codes: np.ndarray  # (n,) group of each row
    y: np.ndarray
    w: np.ndarray
    loss: object
    n_groups: int
    feature_names: list

    def offsets(self) -> tuple[list, float]:
        """Columns whose offset dwarfs their spread (rounding of the served form): features,
        and the target of a regression (its offset lands in the intercepts)."""
        cols = self.X
        names = list(self.feature_names)
        if self.loss.target_shift(self.y, self.w) != 0.0:  # the loss shifts its targets
            cols = np.column_stack([cols, self.y])
            names.append("y (the target)")
        if not cols.shape[1]:
            return [], 0.0
        mean = np.average(cols, axis=0, weights=self.w)
        sd = np.sqrt(np.average((cols - mean) ** 2, axis=0, weights=self.w))
        ratio = np.abs(mean) / np.maximum(sd, np.finfo(float).tiny)
        order = np.argsort(-ratio)
        shown = [names[j] for j in order[:3] if ratio[j] > 1e3]
        return shown, float(ratio[order[0]])


def row_scores(X: np.ndarray, codes: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Score of each row under the model of its code (chunked: no n x d temporary)."""
    out = np.empty(X.shape[0])
    step = _chunk_rows(X.shape[1])
    for a in range(0, X.shape[0], step):
        b = min(a + step, X.shape[0])
        idx = codes[a:b]
        out[a:b] = np.einsum("ij,ij->i", X[a:b], coef[idx]) + intercept[idx] if X.shape[1] \
            else intercept[idx]
    return out


def served_losses(served: Served, coef: np.ndarray, intercept: np.ndarray):
    """``L[g, r]`` of the served models and a bound ``E[g, r]`` on its rounding error.

    ``coef`` (R, d), ``intercept`` (R,): R served models (R = G reports, or 1 generic).
    Returns ``(L, E)`` of shape (G, R).
    """
    X, codes, y, w, loss = served.X, served.codes, served.y, served.w, served.loss
    G, R = served.n_groups, coef.shape[0]
    d = X.shape[1]
    gamma = (d + 2) * _U / (1 - (d + 2) * _U)
    tot = np.zeros((G, R))
    err = np.zeros((G, R))
    wsum = np.bincount(codes, weights=w, minlength=G)
    shared = R > 1 and np.all(coef == coef[:1])
    acoef, aint = np.abs(coef), np.abs(intercept)
    lip = loss.lipschitz
    # with a Lipschitz loss and shared weights the bound needs only each group's sum of
    # w |x| . |coef| (the intercepts' part is added below): O(n), not O(n R)
    mag_sum = np.zeros(G)
    step = _chunk_rows(max(d, R))  # temporaries of (rows, d) and (rows, R)
    for a in range(0, X.shape[0], step):
        b = min(a + step, X.shape[0])
        Xc, cc, yc, wc = X[a:b], codes[a:b], y[a:b], w[a:b]
        if shared:
            base = Xc @ coef[0] if d else np.zeros(b - a)
            mag_x = np.abs(Xc) @ acoef[0] if d else np.zeros(b - a)
            if lip is not None:  # a report at a time, summed by group (no rows x R arrays)
                mag_sum += np.bincount(cc, weights=wc * mag_x, minlength=G)
                for r in range(R):
                    tot[:, r] += np.bincount(cc, weights=wc * loss.row_loss(yc, base + intercept[r]), minlength=G)
                continue
            S = base[:, None] + intercept[None, :]
            mag = mag_x[:, None] + aint[None, :]
        else:
            S = (Xc @ coef.T if d else np.zeros((b - a, R))) + intercept[None, :]
            mag = (np.abs(Xc) @ acoef.T if d else np.zeros((b - a, R))) + aint[None, :]
        # every report's rows in one call, summed by (group, report) in one bincount
        cell = (cc[:, None] * R + np.arange(R)[None, :]).ravel()
        wr = np.repeat(wc, R)
        yr = np.repeat(yc, R)
        if lip is not None:
            lr = loss.row_loss(yr, S.ravel())
            err += np.bincount(cell, weights=wr * (lip * gamma) * mag.ravel(), minlength=G * R).reshape(G, R)
        else:
            e = gamma * mag.ravel()
            lr, d1, d2 = loss.row_terms(yr, S.ravel())
            err += np.bincount(cell, weights=wr * (d1 * e + d2 * e * e), minlength=G * R).reshape(G, R)
        tot += np.bincount(cell, weights=wr * lr, minlength=G * R).reshape(G, R)
    if lip is not None and shared:
        err += lip * gamma * (mag_sum[:, None] + wsum[:, None] * aint[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        return tot / wsum[:, None], err / wsum[:, None]


def check_constraints(L, E, L0, E0, margins, fair_use, tol, keys, same_model, same_generic):
    """Failures (strings) of the requested constraints, with room for rounding."""
    failures, precision = [], []
    G = L.shape[0]
    if "rationality" in fair_use:
        rationality = Rationality(L0, margins)
        slacks = rationality.slacks(L)
        for g in range(G):
            slack = slacks[g]
            room = 0.0 if (same_generic[g] and margins[g] == 0) else 2 * (E[g, g] + E0[g])
            if not slack >= -tol:  # (a NaN loss fails: it is no evidence)
                failures.append(rationality.message(L, g, keys))
                if room > tol:  # the rounding of the served form is larger than the tolerance
                    precision.append(room)
            elif slack < -tol + room:
                precision.append(room)
                failures.append(f"rationality for {keys[g]}: slack {slack:.3g} within the rounding "
                                f"({room:.2g}) of the served model")
    if "envy_freeness" in fair_use:
        envy = EnvyFreeness()
        slacks = envy.slacks(L)
        for g in range(G):
            for r in range(G):
                if r == g:
                    continue
                slack = slacks[g, r]
                room = 0.0 if same_model[g, r] else 2 * (E[g, g] + E[g, r])
                if not slack >= -tol:
                    failures.append(envy.message(L, g, r, keys))
                    if room > tol:
                        precision.append(room)
                elif slack < -tol + room:
                    precision.append(room)
                    failures.append(f"envy: {keys[g]} vs report {keys[r]}: slack {slack:.3g} within the "
                                    f"rounding ({room:.2g}) of the served model")
    return failures, (max(precision) if precision else 0.0)


def build_certificate(*, served: Served, coef, intercept, generic_losses, generic_err, generic_coef,
                      generic_intercept, margins, fair_use, tol, keys, at_boundary, route, solver,
                      status, iterations, objective, objective_unconstrained, objective_generic, trace,
                      seconds, attempts, duals=None, start=None, fallback_groups=(), notes=(),
                      lower_bound=None) -> Certificate:
    """The certificate of served models ``coef``, ``intercept`` (raw scale)."""
    G = len(keys)
    L, E = served_losses(served, coef, intercept)
    own = np.diag(L).copy()
    L0, E0 = generic_losses, generic_err
    # bitwise equal served models: one label per distinct (coef, intercept) row (a G x G
    # loop of array_equal took seconds with hundreds of groups)
    _, label = np.unique(np.column_stack([coef, intercept]), axis=0, return_inverse=True)
    label = np.asarray(label).ravel()
    same_model = label[:, None] == label[None, :]
    if generic_coef is not None:
        same_generic = np.array([bool(np.array_equal(coef[g], generic_coef) and intercept[g] == generic_intercept)
                                 for g in range(G)])
    else:
        same_generic = np.zeros(G, dtype=bool)
    failures, room = check_constraints(L, E, L0, E0, margins, fair_use, tol, keys, same_model, same_generic)
    if room > 0:
        names, ratio = served.offsets()
        if names:
            failures.append(MSG_SERVED_PRECISION.format(err=room, features=names, ratio=ratio))
        else:
            size = float(np.nanmax(np.abs(np.diag(L)))) if G else 0.0
            failures.append(MSG_SERVED_PRECISION_SIZE.format(err=room, size=size))
    n_rows = np.bincount(served.codes, minlength=G)
    weight = np.bincount(served.codes, weights=served.w, minlength=G)
    fb = set(fallback_groups)
    rationality, envy = Rationality(L0, margins), EnvyFreeness()
    r_slack, e_slack = rationality.values(own), envy.slacks(L)
    rows = []
    for g in range(G):
        best_r = envy.best_alternative(L, g)
        rows.append({
            "group": keys[g],
            "n": int(n_rows[g]),
            "weight": float(weight[g]),
            "generic_loss": float(L0[g]),
            "own_loss": float(own[g]),
            "gain": float(L0[g] - own[g]),
            "margin": float(margins[g]),
            "rationality_slack": float(r_slack[g]),
            "best_alternative": keys[best_r] if best_r is not None else None,
            "best_alternative_loss": float(L[g, best_r]) if best_r is not None else float("nan"),
            "envy_slack": float(e_slack[g, best_r]) if best_r is not None else float("nan"),
            "rationality_active": bool("rationality" in fair_use and r_slack[g] <= max(1e-6, 10 * tol)),
            "dual": float(duals.get(g, float("nan"))) if duals else (
                0.0 if route == "unconstrained-feasible" else float("nan")),
            "at_set_boundary": bool(at_boundary[g]),
            "generic_fallback": g in fb,
        })
    table = pd.DataFrame(rows)
    denom = objective_generic - objective_unconstrained
    kept = (objective_generic - objective) / denom if denom > 1e-12 else float("nan")
    bound = gap = reach = None
    if lower_bound is not None and np.isfinite(lower_bound):
        bound = float(min(lower_bound, objective))
        gap = float(objective - bound)
        if denom > 1e-12:
            reach = float(np.clip((bound - objective_unconstrained) / denom, 0.0, 1.0))
    return Certificate(table=table, fair_use=tuple(fair_use), route=route, solver=solver, status=status,
                       iterations=int(iterations or 0), objective=float(objective),
                       objective_unconstrained=float(objective_unconstrained),
                       objective_generic=float(objective_generic), gain_kept=float(kept),
                       trace=[float(t) for t in trace], seconds=float(seconds), verified=not failures,
                       tolerance=tol, failures=failures, attempts=list(attempts),
                       notes=list(notes) + ([f"best start: {start}"] if start else []),
                       objective_lower_bound=bound, optimality_gap=gap, gain_out_of_reach=reach)
