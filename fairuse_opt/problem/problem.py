"""The fitting problem, once: family, loss, data, penalty, common set and constraints.

:class:`Problem` is what every backend consumes.  Its numpy methods give the
objective, its gradient and Hessian, every group's loss under every report (the
matrix ``L[g, r]``) and its Jacobian; :meth:`Problem.to_cvxpy` compiles the same
problem (with the requested constraints) to cvxpy.  The native backend and the conic
backends therefore solve the same object, and a test checks that both agree on values
and gradients.

Notation: ``theta`` (length ``p``) are the parameters on the standardised scale;
``eff[r] = M_r @ theta`` is the effective model ``[w_r; b_r]`` served to report ``r``.
Group g's mean loss under report r is
``L[g, r] = (1/W_g) sum_{i in g} loss_i(z_i . w_r + b_r)``.  Its gradient in the effective
coordinates is ``E[g, r] = (1/W_g) sum_i loss_i' [z_i; 1]``; in ``theta`` it is
``M_r' E[g, r]``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import scipy.sparse as sp

from ..exceptions import MSG_ONE_CLASS_WEIGHTED, MSG_SEPARABLE, MSG_SEPARABLE_DIRECTION, InputError
from ..model.family import Family
from ..model.losses import Loss
from .data import TrainData

__all__ = ["Problem", "SetSpec"]


#: the largest design matrix (rows x parameters) :meth:`Problem.design_matrix` keeps
#: (16 MB of float64)
DESIGN_CELLS = 1 << 21
#: passes over the rows go a block of about this many entries of ``Z`` at a time (2 MB of
#: float64): the scores, the loss, its derivative and the gradient's product are
#: computed while the block is in cache (on 100,000 x 30 rows a pass took 2.6 ms on
#: whole arrays, whose temporaries go through memory, and 1.5 ms by blocks)
BLOCK_CELLS = 1 << 17


@dataclass
class SetSpec:
    """The common set C of every group block (standardised scale).

    ``|b_g - intercept_center| <= intercept_bound`` and
    ``||w_g - coef_center||_2 <= coef_bound`` (decoupled only).
    """

    intercept_center: float
    intercept_bound: float
    coef_center: np.ndarray
    coef_bound: float

    def at_boundary(self, family: Family, Ws: np.ndarray, bs: np.ndarray, rel: float = 1e-6) -> np.ndarray:
        """Per group: its block (effective intercept ``bs``, weights ``Ws``, standardised
        scale) touches the set's boundary, within relative ``rel``.  All False for a
        family without set-constrained blocks."""
        out = np.zeros(Ws.shape[0], dtype=bool)
        if not family.uses_set:
            return out
        out |= np.abs(bs - self.intercept_center) >= self.intercept_bound * (1 - rel)
        if family.block_weights and Ws.shape[1]:
            out |= np.linalg.norm(Ws - self.coef_center[None, :], axis=1) >= self.coef_bound * (1 - rel)
        return out

    def constraints(self, family: Family, theta: np.ndarray):
        """Values ``>= 0`` when inside the set and their gradients: ``(c (m,), J (m, p))``."""
        vals, rows = [], []
        p = len(theta)
        for i in family.block_intercept:
            e = np.zeros(p)
            e[i] = 1.0
            vals += [self.intercept_bound - (theta[i] - self.intercept_center),
                     self.intercept_bound + (theta[i] - self.intercept_center)]
            rows += [-e, e]
        for idx in family.block_weights:
            if len(idx):
                diff = theta[idx] - self.coef_center
                e = np.zeros(p)
                e[idx] = -2 * diff
                vals.append(self.coef_bound ** 2 - float(diff @ diff))
                rows.append(e)
        return np.array(vals), (np.array(rows) if rows else np.zeros((0, p)))

    def project_inside(self, family: Family, theta: np.ndarray, shrink: float = 1e-9) -> np.ndarray:
        """``theta`` moved (if need be) strictly inside the set, towards its centre."""
        theta = np.array(theta, dtype=np.float64, copy=True)
        lim = self.intercept_bound * (1 - shrink)
        for i in family.block_intercept:
            theta[i] = self.intercept_center + np.clip(theta[i] - self.intercept_center, -lim, lim)
        for idx in family.block_weights:
            if len(idx):
                diff = theta[idx] - self.coef_center
                nrm = float(np.linalg.norm(diff))
                if nrm > self.coef_bound * (1 - shrink):
                    theta[idx] = self.coef_center + diff * (self.coef_bound * (1 - shrink) / nrm)
        return theta


class Problem:
    """One family's fitting problem on one data set.

    Parameters
    ----------
    family : Family
    loss : Loss
    data : TrainData
    alpha : float
        Weight of the squared L2 penalty (raw feature scale).
    scale, mean : ndarray (d,)
        Standardisation of the features.
    set_spec : SetSpec, optional
        The common set of the group blocks (``group_reg="set"``).
    hook : callable, optional
        A researcher's ``constraint_hook`` (cvxpy terms: conic backends only).
    y_shift : float
        The regression target is fitted centred (``y - y_shift``, so that the squared
        error's sufficient statistics do not cancel catastrophically); raw-scale
        intercepts add it back.
    """

    def __init__(self, family: Family, loss: Loss, data: TrainData, *, alpha: float, scale: np.ndarray,
                 mean: np.ndarray, set_spec: SetSpec | None = None, hook: Callable | None = None,
                 groups: list | None = None, feature_names: list[str] | None = None,
                 y_shift: float = 0.0):
        self.family, self.loss, self.data = family, loss, data
        self.y_shift = float(y_shift)
        self.alpha, self.scale, self.mean = float(alpha), scale, mean
        self.set_spec = set_spec if family.uses_set else None
        self.hook, self.groups, self.feature_names = hook, groups, feature_names
        self.q = family.penalty_scale(scale)
        self.q2 = self.q * self.q
        G, d, p = family.n_groups, family.n_features, family.n_params
        self.G, self.d, self.p = G, d, p
        self.M_all = sp.vstack(family.maps).tocsr() if G else sp.csr_matrix((0, p))  # (G(d+1), p)
        self.M_all_T = self.M_all.T.tocsr()
        self._map_cols = [_map_columns(M) for M in family.maps]
        self._map_runs = [_column_runs(c) for c, _, _ in self._map_cols]
        self.active = [g for g in range(G) if data.group_size(g) > 0]
        self.Wg = data.group_weight
        # shared feature weights: every report has the same w (none, onehot, intersectional)
        self.shared_weights = family.encoding != "decoupled"
        self._design: np.ndarray | None = None
        self._design_built = False
        if hook is None:  # a hook's constraints may bound the problem: not checked then
            self.check_minimum()

    @property
    def provides(self) -> frozenset:
        """What this problem provides to a backend (the keys of
        :data:`fairuse_opt.solvers.base.PROBLEM_PROVIDES`): ``"cvxpy"`` always, ``"numpy"``
        (every constraint in numpy) unless it has a ``constraint_hook``."""
        return frozenset({"cvxpy"} | ({"numpy"} if self.hook is None else set()))

    def thinned(self, rows: int) -> "Problem":
        """The same problem on about ``rows`` of the distinct rows (see
        :meth:`TrainData.thinned`): a cheap start for Newton's method on all of them.
        Not checked for a minimum (the caller keeps its result only if it lowers the
        objective on every row)."""
        sub = copy.copy(self)
        sub.data = self.data.thinned(rows)
        sub._design, sub._design_built = None, False
        sub._last_objective = sub._recent_blocks = sub._last_pass = None
        sub.Wg = sub.data.group_weight
        sub.active = [g for g in range(self.G) if sub.data.group_size(g) > 0]
        return sub

    # ------------------------------------------------------ existence of a minimum
    def free_parameters(self) -> np.ndarray:
        """Parameters neither penalised nor held by the common set (bool (p,))."""
        free = np.ones(self.p, dtype=bool) if self.alpha == 0 else (self.q == 0)
        if self.set_spec is not None:
            free[self.family.block_intercept] = False
            for idx in self.family.block_weights:
                free[idx] = False
        return free

    def unbounded_direction(self) -> np.ndarray | None:
        """A direction of the free parameters along which the objective decreases without
        bound (and so has no minimum), or ``None``.

        The loss says which way each merged row's score may go without its loss growing
        (:meth:`~fairuse_opt.model.Loss.recession`); such a direction exists when a linear
        program finds free parameters moving every score that way (and none of the others)
        with some score moving: separable classes, for the logistic loss.
        """
        free = self.free_parameters()
        if not free.any() or self.data.n_distinct == 0:
            return None
        signs = self.loss.recession(self.data.stats)
        if signs is None:
            return None
        names = np.array(self.family.names)
        if self.alpha > 0 and set(names[free]) <= {"b"}:  # the global intercept alone
            if np.all(signs == 1) or np.all(signs == -1):
                v = np.zeros(self.p)
                v[free] = float(signs[0])
                return v
            return None
        from scipy.optimize import linprog

        D = self.family.design(self.data.Z, self.data.codes)[:, np.flatnonzero(free)].tocsr()
        one_way = signs != 0
        if not one_way.any():
            return None
        A = sp.diags(signs[one_way].astype(np.float64)) @ D[one_way]
        c = -np.asarray(A.sum(axis=0)).ravel()
        two_way = ~one_way
        res = linprog(c, A_ub=-A, b_ub=np.zeros(A.shape[0]),
                      A_eq=D[two_way] if two_way.any() else None,
                      b_eq=np.zeros(int(two_way.sum())) if two_way.any() else None,
                      bounds=(-1, 1), method="highs")
        if res.status != 0 or -res.fun <= 1e-7:
            return None
        v = np.zeros(self.p)
        v[free] = res.x
        return v

    def check_minimum(self) -> None:
        """Raise :class:`~fairuse_opt.exceptions.InputError` when the objective has no
        minimum (see :meth:`unbounded_direction`)."""
        v = self.unbounded_direction()
        if v is None:
            return
        fam = self.family
        what = "generic model" if fam.encoding == "none" else "personalized model"
        moving = [fam.names[k] for k in np.flatnonzero(np.abs(v) > 1e-9 * np.abs(v).max())]
        if moving == ["b"]:  # the intercept alone: one label among the rows that carry weight
            raise InputError(MSG_ONE_CLASS_WEIGHTED.format(what=what))
        raise InputError(MSG_SEPARABLE.format(what=what) + MSG_SEPARABLE_DIRECTION.format(
            model=f"encoding={fam.encoding!r}, group_reg={fam.group_reg!r}, {self.loss.name}",
            direction=", ".join(moving[:6]) + (", ..." if len(moving) > 6 else "")))

    # ----------------------------------------------------------- the model
    def effective(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Effective models on the standardised scale: ``W`` (G, d), ``b`` (G)."""
        eff = (self.M_all @ theta).reshape(self.G, self.d + 1)
        return eff[:, :-1], eff[:, -1]

    def _own_scores(self, g: int, Wf: np.ndarray, bf: np.ndarray) -> np.ndarray:
        rows = self.data.group_rows[g]
        return self.data.Z[rows] @ Wf[g] + bf[g]

    def penalty(self, theta: np.ndarray) -> float:
        return self.alpha * float(np.sum(self.q2 * theta * theta))

    # ------------------------------------------------------- design matrix
    def design_matrix(self) -> np.ndarray | None:
        """The rows in ``theta``'s coordinates, dense ``(n_distinct, p)`` (row i is
        ``[z_i, 1] M_{g(i)}``, so that its score is ``row . theta``: the dense counterpart
        of :meth:`Family.design`, built a group's contiguous rows at a time), built once;
        ``None`` unless the groups share their feature weights (``p`` is then ``d``
        plus the offsets) and it has at most ``DESIGN_CELLS`` entries.

        With it, the scores of all rows are one product and a weighted Hessian one
        symmetric product, instead of a Python loop over the groups and the mapping of
        each group's block (the slow-path cases of ``benchmarks/bench_slow_paths.py`` -
        SUPPORT2 one-hot, 200 groups of 5 rows, 30 penalised groups - are faster with it,
        even where ``p`` is many times ``d``).  On large data the per-group blocks are as
        fast (their width is ``d + 1``, not ``p``) and need no copy."""
        if not self._design_built:
            self._design_built = True
            data = self.data
            n, d = data.n_distinct, self.d
            if self.shared_weights and self.G and n * self.p <= DESIGN_CELLS:
                X = np.zeros((n, self.p))
                for g in range(self.G):
                    a, b = data.group_rows[g].start, data.group_rows[g].stop
                    if b > a:
                        # [z, 1] M_g through the dense restriction of M_g to its columns
                        cols, Md, unit = self._map_cols[g]
                        if unit:  # a column per coordinate: the features and a 1 put in place
                            c0 = int(cols[0]) if d else 0
                            if d and np.array_equal(cols[:d], np.arange(c0, c0 + d)):
                                X[a:b, c0:c0 + d] = data.Z[a:b]  # contiguous: a block copy
                            else:
                                X[a:b, cols[:d]] = data.Z[a:b]
                            X[a:b, cols[d]] = 1.0
                        else:
                            Mdd = Md.toarray()
                            X[a:b, cols] = data.Z[a:b] @ Mdd[:d] + Mdd[d]
                self._design = X
        return self._design

    def _group_sums(self, values: np.ndarray) -> np.ndarray:
        """Sum of ``values`` (one per distinct row) over each active group's rows, by
        numpy's pairwise summation (``np.add.reduceat`` adds sequentially, with a rounding
        error growing like ``n eps``; SLSQP compares the objective's changes at 1e-14)."""
        return np.array([values[self.data.group_rows[g]].sum() for g in self.active])

    # ---------------------------------------------------------- objective
    def objective(self, theta: np.ndarray) -> float:
        """Weighted mean loss + ``alpha`` * penalty, in numpy (the values of the last few
        points asked for are kept: the routes, the trace and the certificate ask for the
        objective at the points a solver has just evaluated)."""
        theta = np.asarray(theta, dtype=np.float64)
        value = self._recalled(theta)
        return value if value is not None else self.value_grad(theta, grad=False)[0]

    def _recalled(self, theta: np.ndarray):
        key = (theta.tobytes(), float(self.alpha))
        for k, v in getattr(self, "_last_objective", None) or ():
            if k == key:
                return v
        return None

    def _remember(self, theta: np.ndarray, value: float) -> None:
        kept = list(getattr(self, "_last_objective", None) or ())[-3:]
        self._last_objective = kept + [((np.asarray(theta, dtype=np.float64).tobytes(), float(self.alpha)), value)]

    def value_grad(self, theta: np.ndarray, grad: bool = True):
        """Objective and (optionally) its gradient."""
        data, loss = self.data, self.loss
        X = self.design_matrix()
        if X is not None:
            s = X @ theta
            if not grad:
                val = float(loss.value(data.stats, s).sum()) / data.total_weight + self.penalty(theta)
                self._remember(theta, val)
                return val, None
            v, ls = loss.value_grad(data.stats, s)
            val = float(v.sum()) / data.total_weight + self.penalty(theta)
            self._remember(theta, val)
            return val, X.T @ ls / data.total_weight + 2 * self.alpha * self.q2 * theta
        vals, E = self._group_pass(*self.effective(theta), self.active, grad)
        W = data.total_weight
        val = self._objective_of_sums(theta, vals)
        if not grad:
            return val, None
        gr = self.M_all_T @ E.ravel() / W + 2 * self.alpha * self.q2 * theta
        return val, np.asarray(gr).ravel()

    def _objective_of_sums(self, theta: np.ndarray, sums: np.ndarray) -> float:
        """The objective from every active group's summed loss (:meth:`_group_pass`),
        remembered for :meth:`objective`."""
        value = float(sums[self.active].sum()) / self.data.total_weight + self.penalty(theta)
        self._remember(theta, value)
        return value

    def share_passes(self, other: "Problem") -> None:
        """Let this problem reuse ``other``'s last pass over the rows when both are on the
        same data (the passes are keyed by the effective models, so only a point where
        both serve the same models matches: the generic model, embedded)."""
        if other.data is self.data and other.loss is self.loss and other.d == self.d and other.G == self.G:
            self._last_pass = getattr(other, "_last_pass", None)

    def _blocks(self, g: int):
        """The row blocks ``(a, b)`` of group g (:data:`BLOCK_CELLS`)."""
        rows = self.data.group_rows[g]
        step = max(1024, BLOCK_CELLS // (self.d + 1))
        return [(a, min(a + step, rows.stop)) for a in range(rows.start, rows.stop, step)]

    def _group_pass(self, Wf: np.ndarray, bf: np.ndarray, groups, grad: bool):
        """Summed loss of each group in ``groups`` under its own effective model, ``(G,)``
        (0 elsewhere), and with ``grad`` its gradient in the effective coordinates,
        ``E`` (G, d+1) (unscaled), in one pass over the rows a block at a time."""
        # the last pass is kept: a solver's last evaluation is where the next one starts
        # (the unconstrained fit's optimum: the group losses of the feasibility check and
        # the first SQP iterate)
        key = (Wf.tobytes(), bf.tobytes(), tuple(int(g) for g in groups))
        last = getattr(self, "_last_pass", None)
        if last is not None and last[0] == key and (last[2] is not None or not grad):
            return last[1].copy(), (last[2].copy() if grad else None)
        data, loss = self.data, self.loss
        vals = np.zeros(self.G)
        E = np.zeros((self.G, self.d + 1)) if grad else None
        for g in groups:
            total = 0.0
            for a, b in self._blocks(g):
                Z, st = data.Z[a:b], data.stats[a:b]
                s = Z @ Wf[g]
                s += bf[g]
                if grad:
                    v, ls = loss.value_grad(st, s)
                    E[g, :-1] += Z.T @ ls
                    E[g, -1] += ls.sum()
                else:
                    v = loss.value(st, s)
                total += float(v.sum())
            vals[g] = total
        self._last_pass = (key, vals.copy(), E.copy() if grad else None)
        return vals, E

    def effective_hessians(self, theta: np.ndarray, groups=None) -> list:
        """Per group ``(1/W_g) [Z 1]' diag(loss'') [Z 1]`` (effective coordinates);
        ``None`` for empty groups and for groups not in ``groups`` (default: all)."""
        Wf, bf = self.effective(theta)
        data, out = self.data, []
        wanted = set(self.active) if groups is None else set(groups) & set(self.active)
        for g in range(self.G):
            if g not in wanted:
                out.append(None)
                continue
            rows = data.group_rows[g]
            H = np.zeros((self.d + 1, self.d + 1))
            # a block of rows at a time (temporaries of ~4 MB, not n_g x d), each block's
            # Z' diag(c) Z as (sqrt(c) Z)' (sqrt(c) Z): a symmetric rank-k update
            step = max(1024, (1 << 17) // max(self.d, 1))
            for a in range(rows.start, rows.stop, step):
                b = min(a + step, rows.stop)
                Z = data.Z[a:b]
                c = self.loss.curvature(data.stats[a:b], Z @ Wf[g] + bf[g])
                Zs = Z * np.sqrt(c)[:, None]
                H[:-1, :-1] += Zs.T @ Zs
                H[:-1, -1] += Z.T @ c
                H[-1, -1] += c.sum()
                del Zs
            H[-1, :-1] = H[:-1, -1]
            out.append(H / self.Wg[g])
        if groups is None:
            self._recent_blocks = (np.array(theta, dtype=np.float64), out)
        return out

    def recent_hessians(self, theta: np.ndarray, rel: float = 1e-2) -> tuple[list, np.ndarray]:
        """``(blocks, point)``: the blocks of the last :meth:`effective_hessians` call over
        every group when it was taken within ``rel`` of ``theta`` (largest entry,
        relative to ``max(1, |theta|)``; for methods that lag their Hessian anyway: a
        Newton fit's last Hessian serves the program started at its solution), else
        the blocks at ``theta``."""
        theta = np.asarray(theta, dtype=np.float64)
        recent = getattr(self, "_recent_blocks", None)
        if recent is not None and recent[0].shape == theta.shape and (
                np.max(np.abs(recent[0] - theta), initial=0.0) <= rel * max(1.0, float(np.max(np.abs(theta),
                                                                                          initial=0.0)))):
            return recent[1], recent[0]
        return self.effective_hessians(theta), theta.copy()

    def combine_hessians(self, blocks: list, weights: np.ndarray) -> np.ndarray:
        """``sum_g weights[g] * M_g' blocks[g] M_g`` (dense p x p).

        Each ``M_g`` touches a few columns of ``theta`` only: its block is mapped through
        the dense ``(d+1) x |cols_g|`` restriction of ``M_g`` and added into those
        columns (no sparse block-diagonal of dense blocks: that cost 80% of a Newton
        step with many features)."""
        H = np.zeros((self.p, self.p))
        for g in range(self.G):
            if blocks[g] is None or weights[g] == 0:
                continue
            self._add_block(H, g, weights[g] * blocks[g])
        return H

    def _add_block(self, H: np.ndarray, g: int, B: np.ndarray) -> None:
        """``H[cols, cols] += M_g' B M_g`` by slices over the runs of consecutive columns
        (the features' weights are one run: a fancy-indexed add of a 1,500 x 1,500 block
        took 25 ms, its slices a fraction)."""
        cols, Bm = self._block_in_theta(g, B)
        runs = self._map_runs[g]
        if runs is None:
            H[cols] += Bm
            return
        for bi, hi in runs:
            for bj, hj in runs:
                H[hi, hj] += Bm[bi, bj]

    def _block_in_theta(self, g: int, B: np.ndarray):
        """A block ``B`` of group g (its effective coordinates) in theta's: ``(index,
        M_g' B M_g)`` restricted to the columns ``M_g`` touches, ``index`` their ``np.ix_``
        (through the sparse restriction of ``M_g``: ``O(nnz (d+1))``, where the dense
        one was cubic in the columns)."""
        cols, Md, unit = self._map_cols[g]
        # unit: M_g selects one column per effective coordinate
        if unit:
            return np.ix_(cols, cols), B
        return np.ix_(cols, cols), np.asarray((Md.T @ (Md.T @ B).T).T)

    def mapped_hessians(self, blocks: list, max_cells: int = 1 << 24):
        """``T`` (G, p, p) with ``T[g] = M_g' blocks[g] M_g`` (zeros for missing blocks), so
        that ``combine_hessians(blocks, w) == tensordot(w, T, 1)`` for any weights in one
        product (for methods that re-weight the same blocks at every iteration); ``None``
        when ``G p^2`` exceeds ``max_cells`` (128 MB; the one-hot route on 1,500 x 1,510
        features and 4 groups, 72 MB, spent half its time mapping the blocks again at
        every iteration below it)."""
        if self.G * self.p * self.p > max_cells:
            return None
        T = np.zeros((self.G, self.p, self.p))
        for g in range(self.G):
            if blocks[g] is not None:
                self._add_block(T[g], g, blocks[g])
        return T

    def weighted_hessian(self, theta: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Hessian of ``sum_g weights[g] * (group g's own mean loss)`` (dense p x p, no
        penalty): ``combine_hessians(effective_hessians(theta), weights)``, in one product
        when the design matrix is kept (weights >= 0)."""
        X = self.design_matrix()
        weights = np.asarray(weights, dtype=np.float64)
        if X is None or np.any(weights < 0):
            return self.combine_hessians(self.effective_hessians(theta), weights)
        data = self.data
        per_group = np.zeros(self.G)
        act = self.active
        per_group[act] = weights[act] / self.Wg[act]
        c = self.loss.curvature(data.stats, X @ theta) * per_group[data.codes]
        A = X * np.sqrt(c)[:, None]
        return A.T @ A

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """Hessian of the objective (dense p x p)."""
        H = self.weighted_hessian(theta, self.Wg / self.data.total_weight)
        H[np.diag_indices_from(H)] += 2 * self.alpha * self.q2
        return H

    # --------------------------------------------------------- group losses
    def own_losses(self, theta: np.ndarray, grad: bool = False, groups=None):
        """Mean loss of each group under its own report ``(G,)`` and, with ``grad``, their
        gradients in ``theta`` ``(G, p)`` (dense).  Empty groups: NaN and zeros; with
        ``groups``, only those groups are computed (the others as if empty)."""
        data, loss = self.data, self.loss
        vals = np.full(self.G, np.nan)
        X = self.design_matrix() if groups is None else None
        if X is not None:
            act = self.active
            s = X @ theta
            if not grad:
                vals[act] = self._group_sums(loss.value(data.stats, s)) / self.Wg[act]
                return vals
            v, ls = loss.value_grad(data.stats, s)
            vals[act] = self._group_sums(v) / self.Wg[act]
            E = np.zeros((self.G, self.p))
            for g in act:  # one product a group (faster than a sparse sum over groups)
                rows = data.group_rows[g]
                E[g] = X[rows].T @ ls[rows] / self.Wg[g]
            return vals, E
        Wf, bf = self.effective(theta)
        E = np.zeros((self.G, self.G * (self.d + 1))) if grad else None
        k = self.d + 1
        if (groups is None and self.shared_weights and self.G > 1 and data.n_distinct * k <= 2_000_000
                and data.n_distinct <= 50 * self.G):
            # many small groups (50 rows or fewer on average): all rows at once (one score
            # vector, sums by group) instead of a Python loop over groups (the loop
            # dominated fits with 30+ tiny groups; for larger groups the loop is faster)
            act = np.asarray(self.active, dtype=np.int64)
            codes = data.codes
            s = data.Z @ Wf[0] + bf[codes]
            if not grad:
                vals[act] = np.bincount(codes, weights=loss.value(data.stats, s), minlength=self.G)[act] / self.Wg[act]
                return vals
            v, ls = loss.value_grad(data.stats, s)
            vals[act] = np.bincount(codes, weights=v, minlength=self.G)[act] / self.Wg[act]
            ls /= self.Wg[codes]
            starts = [data.group_rows[g].start for g in act]
            cols = act[:, None] * k + np.arange(k)[None, :]
            E[act[:, None], cols[:, :-1]] = np.add.reduceat(data.Z * ls[:, None], starts, axis=0)
            E[act, cols[:, -1]] = np.add.reduceat(ls, starts)
            return vals, np.asarray((self.M_all_T @ E.T).T)
        groups = self.active if groups is None else [g for g in self.active if g in set(groups)]
        sums, Eg = self._group_pass(Wf, bf, groups, grad)
        if groups == self.active:  # the objective, as value_grad computes it from the same sums
            self._objective_of_sums(theta, sums)
        vals[groups] = sums[groups] / self.Wg[groups]
        if not grad:
            return vals
        for g in groups:
            E[g, g * k:g * k + k] = Eg[g] / self.Wg[g]
        return vals, np.asarray((self.M_all_T @ E.T).T)

    def loss_matrix(self, theta: np.ndarray, jacobian: bool = False):
        """``L[g, r]`` (G, G): group g's mean loss when its rows report r.

        With ``jacobian``, also ``E`` (G, G, d+1): the gradient of ``L[g, r]`` in the
        effective coordinates of report r (see :meth:`pair_gradients`).
        """
        return self.loss_matrix_of(*self.effective(theta), jacobian=jacobian)

    def loss_matrix_of(self, Wf: np.ndarray, bf: np.ndarray, jacobian: bool = False):
        """:meth:`loss_matrix` for given effective models (standardised scale).

        Rows a block at a time (about ``2^20`` scores: the block's rows under every report),
        the loss of every score in one call and the sums by (group, report) over each
        group's run of the block in one call: no Python loop over groups or reports (a
        loop over 400 x 400 (group, report) pairs took seconds)."""
        data, loss, G = self.data, self.loss, self.G
        n, d = data.n_distinct, self.d
        sums = np.zeros((G, G))  # [g, r]
        E = np.zeros((G, G, d + 1)) if jacobian else None
        shared = self.shared_weights or G == 1 or np.all(Wf == Wf[:1])
        step = max(1, min(n, (1 << 20) // max(G, 1), BLOCK_CELLS // (d + 1) if not shared else n))
        k = data.stats.shape[1]
        for a in range(0, n, step):
            b = min(a + step, n)
            Z, st, cc = data.Z[a:b], data.stats[a:b], data.codes[a:b]
            # row r of S: the block's scores under report r (O(n_b d + n_b G) with shared
            # weights, else O(n_b d G))
            S = (Z @ Wf[0])[None, :] + bf[:, None] if shared else Wf @ Z.T + bf[:, None]
            st_all = np.broadcast_to(st, (G, b - a, k)).reshape(-1, k)
            if jacobian:
                v, Ls = loss.value_grad(st_all, S.ravel())
                Ls = Ls.reshape(G, b - a)
            else:
                v = loss.value(st_all, S.ravel())
            v = v.reshape(G, b - a)
            starts = np.flatnonzero(np.concatenate([[True], cc[1:] != cc[:-1]]))
            runs = cc[starts]
            sums[runs] += np.add.reduceat(v, starts, axis=1).T
            if jacobian:
                bounds = np.append(starts, b - a)
                for j, g in enumerate(runs):
                    part = Ls[:, bounds[j]:bounds[j + 1]]
                    E[g, :, :-1] += part @ Z[bounds[j]:bounds[j + 1]]
                    E[g, :, -1] += part.sum(axis=1)
        L = np.full((G, G), np.nan)
        act = np.asarray(self.active, dtype=np.int64)
        L[act] = sums[act] / self.Wg[act][:, None]
        if jacobian:
            E[act] /= self.Wg[act][:, None, None]
        return (L, E) if jacobian else L

    def pair_gradients(self, E: np.ndarray, pairs: list[tuple[int, int]]) -> sp.csr_matrix:
        """Gradients in ``theta`` of ``L[g, r]`` for the given pairs, a sparse ``(K, p)``."""
        K, k = len(pairs), self.d + 1
        if K == 0:
            return sp.csr_matrix((0, self.p))
        g_idx = np.array([g for g, _ in pairs])
        r_idx = np.array([r for _, r in pairs])
        vals = E[g_idx, r_idx]  # (K, k)
        rows = np.repeat(np.arange(K), k)
        cols = (r_idx[:, None] * k + np.arange(k)[None, :]).ravel()
        S = sp.csr_matrix((vals.ravel(), (rows, cols)), shape=(K, self.G * k))
        return (S @ self.M_all).tocsr()

    # ------------------------------------------------------------- rescaling
    def gradient_scale(self, groups=None) -> float:
        """The loss's :meth:`~fairuse_opt.model.losses.Loss.gradient_scale` of the targets
        (of the rows of ``groups`` only, when given): the native solvers' gradient
        tolerances are multiplied by it."""
        stats = self.data.stats
        if groups is not None:
            stats = np.vstack([stats[self.data.group_rows[g]] for g in groups])
        return float(self.loss.gradient_scale(stats))

    def rescaled(self) -> tuple["Problem", float]:
        """The same problem for targets divided by the loss's :meth:`target_scale` ``c``:
        ``(problem', c)`` with ``theta = c theta'`` and every loss and objective value
        ``c^2`` times its value in ``problem'`` (multipliers unchanged).  Conic solvers
        reach their tolerances on losses of order one, not on a regression target in the
        hundreds.  ``c = 1`` (and ``self``) for losses that are not rescaled and with a
        constraint hook (its constraints are written on the original scale)."""
        c = float(self.loss.target_scale(self.data.stats)) if self.hook is None else 1.0
        if c == 1.0:
            return self, 1.0
        data = replace(self.data, stats=self.loss.scaled_stats(self.data.stats, c))
        spec = None
        if self.set_spec is not None:
            spec = SetSpec(self.set_spec.intercept_center / c, self.set_spec.intercept_bound / c,
                           self.set_spec.coef_center / c, self.set_spec.coef_bound / c)
        return Problem(self.family, self.loss, data, alpha=self.alpha, scale=self.scale, mean=self.mean,
                       set_spec=spec, hook=None, groups=self.groups, feature_names=self.feature_names,
                       y_shift=self.y_shift / c), c

    # ---------------------------------------------------------- the compiler
    def to_cvxpy(self, **kw):
        """This problem as a cvxpy program (see :class:`fairuse_opt.problem.cvx.Program`)."""
        from .cvx import Program

        return Program(self, **kw)


def _column_runs(cols: np.ndarray, most: int = 8):
    """``[(slice in the block, slice in theta)]`` for the runs of consecutive columns of
    ``cols`` (in their order), or ``None`` when there are more than ``most`` runs."""
    if not len(cols):
        return []
    breaks = np.flatnonzero(np.diff(cols) != 1) + 1
    if len(breaks) + 1 > most:
        return None
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(cols)]])
    return [(slice(int(a), int(b)), slice(int(cols[a]), int(cols[a]) + int(b - a))) for a, b in zip(starts, stops)]


def _map_columns(M: sp.csr_matrix):
    """``(cols, dense restriction of M to cols, unit)``: ``unit`` when ``M`` is, up to the
    order of its columns, the identity (one entry 1.0 per row, distinct columns); the
    dense restriction is then not needed and is ``None`` (for the decoupled encoding it is
    a (d+1) x (d+1) identity per group: 264 MB for 16 groups of 1,436 features)."""
    M = M.tocsr()
    cols = np.unique(M.indices)
    counts = np.diff(M.indptr)
    unit = bool(np.all(counts == 1) and np.all(M.data == 1.0) and len(cols) == M.shape[0])
    if unit:
        cols = M.indices[np.argsort(np.repeat(np.arange(M.shape[0]), counts), kind="stable")]
        return np.asarray(cols, dtype=np.int64), None, True
    return cols, M[:, cols].tocsr(), False

