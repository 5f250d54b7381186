"""Block-separable problems, every group on its own: the decoupled encoding with its common set.

With ``encoding="decoupled"`` and ``group_reg="set"`` every group's block ``(w_g, b_g)``
is its own and unpenalised, so the objective ``sum_g (W_g / W) L_g(w_g, b_g)`` separates
into one problem per group::

    minimise  L_g(w, b)   subject to   ||w - c|| <= R,   |b - b0| <= B

(``c``, ``b0``: the generic model; ``R``, ``B``: the common set's radius and half-width).
Its solution is also the optimum of the exact fair-use program: each group's own loss is
at its lowest over the set, so a rationality bound it misses is out of reach (the floor
of the margin check), and no group can prefer another group's model, which lies in the
same set (the block-optimality theorem).  So the decoupled fit needs no program over
all groups at once, and no Hessian over all blocks: :func:`solve` keeps one
``(k, k)`` Hessian per group (``k = d + 1``).

A group with fewer rows than features is solved in the row space of its rows: its loss
depends on ``w`` only through ``Z_g w``, so with ``V`` an orthonormal basis of that space
the problem is the same in ``a`` (``w = (I - V V') c + V a``, the ball ``||a - V'c|| <= R``)
and the minimum-norm solution has no component outside it (``k`` is then at most the
group's rows plus one).

The groups are solved together, as a batch of independent problems of the same size
(numpy operations over all groups at once: 400 groups of 5 rows cost about what one
group of 2,000 rows costs, where a loop over the groups spent its time in Python):
damped Newton from the centre of the set while a group's iterates stay inside it
(converged when its largest gradient entry is below ``gtol``); for the groups whose
minimum is not inside (the ball or the interval binds, or the loss has no minimum there:
separable labels) the log-barrier method for the set's two constraints from the centre
(Boyd & Vandenberghe, *Convex Optimization*, 11.3), ended at a duality gap ``2 / t``
below ``gap`` (relative to the loss).
"""

from __future__ import annotations

import time

import numpy as np

from ..problem.data import wide_basis
from .base import NATIVE, Result

__all__ = ["separable", "solve"]

#: entries of the temporaries of a pass over a batch's rows (2 MB of float64)
_CHUNK_CELLS = 1 << 18
#: blocks up to this size accumulate their Hessians from per-row outer products in one
#: call; larger ones a group's rows at a time
_SMALL_K = 16
#: groups of at least this many rows on average take the per-group products whatever
#: the block size
_LONG_GROUPS = 256


def separable(problem) -> bool:
    """The problem splits into one problem per group (decoupled blocks in a common set,
    no penalty on them, no constraint hook)."""
    fam = problem.family
    return (fam.encoding == "decoupled" and fam.uses_set and problem.set_spec is not None
            and getattr(problem, "hook", None) is None and not np.any(problem.q2))


class _Batch:
    """Groups whose problems have the same size ``k``: their rows (sorted by group, each
    group one run), their centres, weights and the set's radius and half-width."""

    def __init__(self, F, stats, codes, W, C, spec, loss):
        self.F, self.stats, self.codes = F, stats, codes  # codes: 0..Gb-1, Gb for rows to ignore
        self.W = W
        self.C = C  # (Gb, k - 1) ball centres
        self.Gb, self.k = C.shape[0], C.shape[1] + 1
        self.R2 = float(spec.coef_bound) ** 2
        self.b0, self.B2 = float(spec.intercept_center), float(spec.intercept_bound) ** 2
        self.loss = loss
        k = self.k
        # per-row outer products for small blocks of small groups; a product per group
        # (Z_g' Z_g, BLAS) once the groups are long enough to pay for a call each
        self.long = self.F.shape[0] >= _LONG_GROUPS * max(self.Gb, 1)
        self.outer = k <= _SMALL_K and not self.long
        self.chunk = max(64, _CHUNK_CELLS // (k * k if self.outer else k))
        if self.long:  # each group's rows: one run (the rows are sorted by group)
            n = len(codes)
            starts = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]])) if n else np.zeros(0, int)
            ends = np.append(starts[1:], n)
            self.runs = [(0, 0)] * self.Gb
            for a, b, c in zip(starts, ends, codes[starts]):
                if c < self.Gb:
                    self.runs[int(c)] = (int(a), int(b))

    def subset(self, keep: np.ndarray) -> "_Batch":
        """The batch of the groups ``keep`` (bool ``(Gb,)``) only (their rows copied)."""
        if keep.all():
            return self
        rows = keep[np.minimum(self.codes, self.Gb - 1)] & (self.codes < self.Gb)
        local = np.full(self.Gb + 1, int(keep.sum()), dtype=np.int64)
        local[np.flatnonzero(keep)] = np.arange(int(keep.sum()))
        spec = type("_Set", (), {"coef_bound": np.sqrt(self.R2), "intercept_center": self.b0,
                                  "intercept_bound": np.sqrt(self.B2)})()
        return _Batch(self.F[rows], self.stats[rows], local[self.codes[rows]], self.W[keep], self.C[keep],
                      spec, self.loss)

    def centres(self) -> np.ndarray:
        return np.column_stack([self.C, np.full(self.Gb, self.b0)])

    def slacks(self, X):
        dw = X[:, :-1] - self.C
        db = X[:, -1] - self.b0
        return self.R2 - np.einsum("ij,ij->i", dw, dw), self.B2 - db * db, dw, db

    def evaluate(self, X: np.ndarray, hessian: bool, grad: bool = True):
        """Every group's mean loss ``(Gb,)``, gradient ``(Gb, k)`` (``None`` without
        ``grad``: a line search needs the losses only) and with ``hessian`` Hessian
        ``(Gb, k, k)`` at its point ``X[g]``."""
        grad = grad or hessian
        if self.long:
            return self._evaluate_by_group(X, hessian, grad)
        Gb, k = self.Gb, self.k
        Xe = np.vstack([X, np.zeros((1, k))])  # the extra row: rows to ignore
        f = np.zeros(Gb + 1)
        g = np.zeros((Gb + 1, k))
        H = np.zeros((Gb + 1, k, k)) if hessian else None
        n = self.F.shape[0]
        for a in range(0, n, self.chunk):
            b = min(a + self.chunk, n)
            Fc, st, cc = self.F[a:b], self.stats[a:b], self.codes[a:b]
            s = np.einsum("ij,ij->i", Fc, Xe[cc, :-1]) if k > 1 else np.zeros(b - a)
            s += Xe[cc, -1]
            v, ls = self.loss.value_grad(st, s)
            # each group's rows are one run of the chunk: sums by runs (one call each)
            starts = np.flatnonzero(np.concatenate([[True], cc[1:] != cc[:-1]]))
            run = cc[starts]
            f[run] += np.add.reduceat(v, starts)
            if not grad:
                continue
            if k > 1:
                g[run, :-1] += np.add.reduceat(Fc * ls[:, None], starts, axis=0)
            g[run, -1] += np.add.reduceat(ls, starts)
            if hessian:
                cv = self.loss.curvature(st, s)
                F1 = np.column_stack([Fc, np.ones(b - a)])
                if self.outer:
                    outer = F1[:, :, None] * (F1 * cv[:, None])[:, None, :]
                    H[run] += np.add.reduceat(outer, starts, axis=0)
                else:
                    bounds = np.append(starts, b - a)
                    for j, r in enumerate(run):
                        rows = slice(bounds[j], bounds[j + 1])
                        Zs = F1[rows] * np.sqrt(cv[rows])[:, None]
                        H[r] += Zs.T @ Zs
        W = self.W
        f, g = f[:Gb] / W, (g[:Gb] / W[:, None] if grad else None)
        if hessian:
            H = H[:Gb] / W[:, None, None]
        return f, g, H

    def _evaluate_by_group(self, X: np.ndarray, hessian: bool, grad: bool):
        """:meth:`evaluate` a group at a time, each product a BLAS call on its rows (no
        gathered copy of the points, no per-row outer products): for groups of hundreds
        of rows and more."""
        Gb, k = self.Gb, self.k
        f = np.zeros(Gb)
        g = np.zeros((Gb, k)) if grad else None
        H = np.zeros((Gb, k, k)) if hessian else None
        for j, (lo, hi) in enumerate(self.runs):
            w, b0 = X[j, :-1], X[j, -1]
            for a in range(lo, hi, self.chunk):
                b = min(a + self.chunk, hi)
                Fc, st = self.F[a:b], self.stats[a:b]
                s = Fc @ w if k > 1 else np.zeros(b - a)
                s += b0
                v, ls = self.loss.value_grad(st, s)
                f[j] += v.sum()
                if not grad:
                    continue
                if k > 1:
                    g[j, :-1] += Fc.T @ ls
                g[j, -1] += ls.sum()
                if hessian:
                    cv = self.loss.curvature(st, s)
                    if k > 1:
                        Zs = Fc * np.sqrt(cv)[:, None]
                        H[j, :-1, :-1] += Zs.T @ Zs
                        H[j, :-1, -1] += Fc.T @ cv
                    H[j, -1, -1] += cv.sum()
            if hessian:
                H[j, -1, :-1] = H[j, :-1, -1]
        W = self.W
        return f / W, (g / W[:, None] if grad else None), (H / W[:, None, None] if hessian else None)


def _solve_stack(H: np.ndarray, G: np.ndarray) -> np.ndarray:
    """``H[i]^{-1} G[i]`` for every ``i`` (symmetric positive semi-definite ``H``, with a
    ridge of 1e-12 of its mean diagonal)."""
    k = H.shape[-1]
    ridge = 1e-12 * (np.trace(H, axis1=1, axis2=2) / k + 1e-300)
    Hr = H + ridge[:, None, None] * np.eye(k)[None]
    try:
        return np.linalg.solve(Hr, G[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.stack([np.linalg.lstsq(Hr[i], G[i], rcond=None)[0] for i in range(len(G))])


def _newton_inside(batch: _Batch, X: np.ndarray, gtol: float, max_steps: int = 30):
    """Damped Newton for every group from ``X`` while its iterates stay strictly inside
    the set: ``(X, state)`` with state 1 (optimal: largest gradient entry below
    ``gtol``), 2 (a full step left the set, or no step was accepted) or 0 (not
    converged)."""
    X = X.copy()
    state = np.zeros(batch.Gb, dtype=np.int64)
    f, g, H = batch.evaluate(X, True)
    for _ in range(max_steps):
        state[(state == 0) & (np.max(np.abs(g), axis=1) <= gtol)] = 1
        run = state == 0
        if not run.any():
            break
        D = _solve_stack(H, g)
        D[~run] = 0.0
        step = np.where(run, 1.0, 0.0)
        accepted = ~run
        for _ in range(30):
            trying = ~accepted
            if not trying.any():
                break
            cand = X - step[:, None] * D
            s1, s2, _, _ = batch.slacks(cand)
            inside = (s1 > 0) & (s2 > 0)
            left = trying & ~inside & (step == 1.0)
            state[left] = 2  # the minimum is not (clearly) inside: the barrier method
            accepted |= left
            fc = (batch.evaluate(np.where(inside[:, None], cand, X), False, grad=False)[0] if inside.any()
                  else f)
            ok = trying & inside & np.isfinite(fc) & (fc <= f + 8 * np.spacing(np.abs(f)))
            X[ok] = cand[ok]
            accepted |= ok
            step[trying & ~ok] *= 0.5
        state[~accepted] = 2
        f, g, H = batch.evaluate(X, True)
    state[(state == 0) & (np.max(np.abs(g), axis=1) <= gtol)] = 1
    return X, state


def _on_ball(batch: _Batch, X: np.ndarray, gap: float, max_iter: int = 40):
    """Every group's minimum when the ball binds and the interval does not, from its
    (feasible) point ``X``: ``(X, state)``, state 1 where the point is certified (inside
    the set, duality gap below ``gap`` relative to its loss), else 0 (left to the
    barrier method: the interval binds, the minimum is inside the ball, or no
    certificate within ``max_iter`` Hessians).

    For ``lam > 0`` the minimum ``x(lam)`` of ``F = L + lam / 2 ||w - c||^2`` (damped
    Newton, warm-started) has ``psi(lam) = ||w(lam) - c||`` decreasing in ``lam``;
    ``lam`` is found by Newton's method on ``1 / psi(lam) = 1 / R`` (the secular
    equation of trust-region methods, Nocedal & Wright, *Numerical Optimization*, 4.3),
    its derivative from the same Hessian: from outside the ball it approaches the root
    monotonically, from inside it overshoots and is held to a tenth of ``lam``; a step
    outside the bracket of the ``lam`` seen on either side is replaced by the bracket's
    geometric mean.  At a centred ``x(lam)`` (Newton decrement below 1e-13 of the loss),
    ``F(x) - lam R^2 / 2`` less the decrement bounds the optimum below (weak duality),
    and ``x`` with ``w - c`` scaled into the ball is feasible: that point is kept once
    the two are within ``gap``.  A few Newton steps per value of ``lam``, where the
    barrier method takes several per tenfold increase of its ``t`` over a dozen of them.
    """
    Gb, k = batch.Gb, batch.k
    X = X.copy()
    C, R = batch.C, np.sqrt(batch.R2)
    state = np.zeros(Gb, dtype=np.int64)
    f, g, H = batch.evaluate(X, True)
    # at the optimum grad_w L = -lam (w - c) with ||w - c|| = R: lam ~ ||grad_w L|| / R
    lam = np.maximum(np.sqrt(np.einsum("ij,ij->i", g[:, :-1], g[:, :-1])) / R, 1e-8)
    lam0 = lam.copy()
    lo, hi = np.zeros(Gb), np.full(Gb, np.inf)  # lam with psi > R, lam with psi < R
    ball = np.ones(k)
    ball[-1] = 0.0
    for _ in range(max_iter):
        act = state == 0
        if not act.any():
            break
        dw = X[:, :-1] - C
        Gl = g.copy()
        Gl[:, :-1] += lam[:, None] * dw
        Hl = H + lam[:, None, None] * np.diag(ball)[None]
        D = _solve_stack(Hl, Gl)
        dec = np.einsum("ij,ij->i", Gl, D)  # Newton decrement of F, squared
        scale = np.maximum(1.0, np.abs(f))
        psi = np.sqrt(np.einsum("ij,ij->i", dw, dw))
        centred = act & (dec <= 1e-13 * scale)
        if centred.any():
            dual = f + 0.5 * lam * (psi * psi - R * R) - dec
            shrink = np.where(psi * (1.0 + 1e-13) < R, 1.0, R / np.maximum(psi, 1e-300) * (1.0 - 1e-13))
            Xp = X.copy()
            Xp[:, :-1] = C + dw * shrink[:, None]
            fp = batch.evaluate(np.where(centred[:, None], Xp, X), False, grad=False)[0]
            s1, s2, _, _ = batch.slacks(Xp)
            done = centred & (fp - dual <= gap * scale) & (s1 > 0) & (s2 > 0)
            X[done] = Xp[done]
            state[done] = 1
            # the interval binds at lam's solution near the ball: not this method's case
            state[centred & ~done & (s2 <= 0) & (np.abs(psi - R) <= 1e-3 * R)] = 2
        upd = centred & (state == 0)
        if upd.any():
            rhs = np.zeros_like(X)
            rhs[:, :-1] = dw
            dpsi = -np.einsum("ij,ij->i", dw, _solve_stack(Hl, rhs)[:, :-1]) / np.maximum(psi, 1e-300)
            out = psi > R
            lo = np.where(upd & out, np.maximum(lo, lam), lo)
            hi = np.where(upd & ~out, np.minimum(hi, lam), hi)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                new = lam + (1.0 / psi - 1.0 / R) * psi * psi / dpsi  # Newton on 1/psi - 1/R
                # from inside the ball Newton overshoots (1/psi is concave): at most a
                # factor 10 down; from outside it approaches monotonically, below hi
                new = np.where(out, new, np.maximum(new, 0.1 * lam))
                mid = np.where(np.isfinite(hi), np.where(lo > 0, np.sqrt(lo * hi), 0.1 * hi), 10.0 * lam)
            bad = ~np.isfinite(new) | ~(new > lo) | ~(new < hi)
            lam = np.where(upd, np.where(bad, mid, new), lam)
            # lam all but 0 and the point still inside: the minimum is inside the ball
            # (Newton left the set on its way there), not this method's case
            state[upd & ~out & (lam < 1e-4 * lam0)] = 2
        moving = act & ~centred & (state == 0)
        if moving.any():  # a damped Newton step on F
            Fl = f + 0.5 * lam * psi * psi
            step = np.where(moving, 1.0, 0.0)
            accepted = ~moving
            for _ in range(40):
                trying = ~accepted
                if not trying.any():
                    break
                cand = X - step[:, None] * D
                fc = batch.evaluate(np.where(trying[:, None], cand, X), False, grad=False)[0]
                dc = cand[:, :-1] - C
                Fc = fc + 0.5 * lam * np.einsum("ij,ij->i", dc, dc)
                ok = trying & np.isfinite(Fc) & (Fc <= Fl - 0.25 * step * dec)
                X[ok] = cand[ok]
                accepted |= ok
                step[trying & ~ok] *= 0.5
            state[moving & ~accepted] = 2  # no step lowers F: left to the barrier method
        f, g, H = batch.evaluate(X, True)
    return X, np.where(state == 1, 1, 0)


def _barrier(batch: _Batch, X: np.ndarray, todo: np.ndarray, gap: float, t0: float = 1.0,
             mu: float = 10.0, max_iter: int = 500):
    """The log-barrier method for the groups in ``todo`` from their (strictly feasible)
    points ``X``: ``(X, state)``, state 1 once a centred point's duality gap ``2 / t`` is
    below ``gap`` (relative to its loss), else 0."""
    X = X.copy()
    t = np.full(batch.Gb, t0)
    state = np.where(todo, 0, 1)
    k = batch.k
    eye = np.eye(k - 1)
    evaluated = None  # (f, g, H) at X when no point has moved since
    for _ in range(max_iter):
        act = state == 0
        if not act.any():
            break
        f, g, H = evaluated if evaluated is not None else batch.evaluate(X, True)
        evaluated = None
        s1, s2, dw, db = batch.slacks(X)
        Gr = t[:, None] * g
        Gr[:, :-1] += 2 * dw / s1[:, None]
        Gr[:, -1] += 2 * db / s2
        Hb = t[:, None, None] * H
        Hb[:, :-1, :-1] += (2 / s1)[:, None, None] * eye + dw[:, :, None] * dw[:, None, :] * (4 / (s1 * s1))[:, None, None]
        Hb[:, -1, -1] += 2 / s2 + 4 * db * db / (s2 * s2)
        D = _solve_stack(Hb, Gr)
        dec = np.einsum("ij,ij->i", Gr, D)  # the Newton decrement squared
        # centred when the barrier problem's own suboptimality (dec / 2, in units of t L)
        # is below 1e-12 of the loss: then the duality gap 2 / t bounds the error in L
        scale = np.maximum(1.0, np.abs(f))
        centred = act & (dec <= 2e-12 * t * scale)
        done = centred & (2.0 / t <= gap * scale)
        state[done] = 1
        t[centred & ~done] *= mu
        moving = act & ~centred
        if not moving.any():  # every active point centred: t raised, the points unchanged
            evaluated = (f, g, H)
            continue
        phi = t * f - np.log(s1) - np.log(s2)
        step = np.where(moving, 1.0, 0.0)
        accepted = ~moving
        for _ in range(40):
            trying = ~accepted
            if not trying.any():
                break
            cand = X - step[:, None] * D
            c1, c2, _, _ = batch.slacks(cand)
            inside = trying & (c1 > 0) & (c2 > 0)
            if not inside.any():  # every step tried leaves the set: shorter ones, no pass
                step[trying] *= 0.5
                continue
            fc = batch.evaluate(np.where(inside[:, None], cand, X), False, grad=False)[0]
            with np.errstate(invalid="ignore", divide="ignore"):
                phic = t * fc - np.log(np.where(inside, c1, 1.0)) - np.log(np.where(inside, c2, 1.0))
            ok = inside & np.isfinite(phic) & (phic <= phi - 0.25 * step * dec)
            X[ok] = cand[ok]
            accepted |= ok
            step[trying & ~ok] *= 0.5
        # a group whose line search found no step is centred as far as float64 can tell
        stuck = ~accepted & moving
        state[stuck & (2.0 / t <= gap * scale)] = 1
        t[stuck & (state == 0)] *= mu
    return X, state


def solve(problem, theta0: np.ndarray, gtol: float = 1e-10, gap: float = 1e-11, progress=None,
          stage: str = "unconstrained fit (per group)") -> Result:
    """The block-separable problem (:func:`separable`), every group on its own (batched
    by block size); the parameters of groups without rows stay as in ``theta0``."""
    t0 = time.perf_counter()
    fam, data, spec = problem.family, problem.data, problem.set_spec
    theta = np.array(theta0, dtype=np.float64, copy=True)
    d = problem.d
    c_full = np.asarray(spec.coef_center, dtype=np.float64)
    act = [g for g in problem.active]
    # groups with fewer rows than features: in the row space of their rows (batched by
    # the rank); the others on the rows as they are (one batch, no copy)
    wide = {g: wide_basis(data.Z[data.group_rows[g]]) for g in act if data.group_size(g) < d}
    full = [g for g in act if g not in wide]
    batches = []
    if full:
        local = np.full(problem.G + 1, len(full), dtype=np.int64)
        local[full] = np.arange(len(full))
        codes = local[data.codes]
        C = np.tile(c_full, (len(full), 1))
        batches.append((full, None, _Batch(data.Z, data.stats, codes, problem.Wg[full], C, spec, problem.loss)))
    by_rank: dict[int, list] = {}
    for g, V in wide.items():
        by_rank.setdefault(V.shape[1], []).append(g)
    for r, groups in by_rank.items():
        F = np.vstack([data.Z[data.group_rows[g]] @ wide[g] for g in groups])
        stats = np.vstack([data.stats[data.group_rows[g]] for g in groups])
        codes = np.repeat(np.arange(len(groups)), [data.group_size(g) for g in groups])
        C = np.vstack([wide[g].T @ c_full for g in groups]) if r else np.zeros((len(groups), 0))
        batches.append((groups, [wide[g] for g in groups],
                        _Batch(F, stats, codes, problem.Wg[groups], C, spec, problem.loss)))
    status = "optimal"
    counts = {"newton": 0, "ball": 0, "barrier": 0}
    for groups, bases, batch in batches:
        X0 = batch.centres()
        # (the tolerance scaled by each group's gradient scale: Poisson rates of order 1e9)
        scales = np.array([problem.gradient_scale(groups=[g]) for g in groups])
        X, state = _newton_inside(batch, X0, gtol * scales)
        counts["newton"] += int(np.sum(state == 1))
        todo = state != 1
        if todo.any():
            # the minimum is on the boundary of the set (or not inside it): on the ball
            # from Newton's last point; what that does not certify (the interval binds,
            # no features, no progress), the barrier method from the centre (a start
            # near the boundary slows it to a crawl)
            sub = batch.subset(todo)
            Xs, sstate = _on_ball(sub, X[todo], gap) if batch.k > 1 else (X[todo], np.zeros(sub.Gb, dtype=np.int64))
            counts["ball"] += int(np.sum(sstate == 1))
            rest = sstate != 1
            if rest.any():
                Xb, bstate = _barrier(sub.subset(rest), X0[todo][rest], np.ones(int(rest.sum()), dtype=bool), gap)
                Xs[rest] = Xb
                counts["barrier"] += int(np.sum(rest))
                if not np.all(bstate == 1):
                    status = "not converged"
            X[todo] = Xs
        for j, g in enumerate(groups):
            a, b = X[j, :-1], X[j, -1]
            if bases is not None:
                V = bases[j]
                a = c_full - V @ (V.T @ c_full) + V @ a
            theta[fam.block_weights[g]] = a
            theta[fam.block_intercept[g]] = b
        if progress is not None and progress.wanted():
            progress(stage, len(groups), float("nan"), 0.0)
    res = Result(backend=NATIVE, status=status, solution=theta, objective=problem.objective(theta),
                 iterations=len(act), seconds=time.perf_counter() - t0, attempts=[("NATIVE/per-group", status)])
    res.notes = [f"groups at an inside minimum (Newton): {counts['newton']}, on the ball: {counts['ball']}, "
                 f"by the barrier method: {counts['barrier']}, in their rows' space: {len(wide)}"]
    return res
