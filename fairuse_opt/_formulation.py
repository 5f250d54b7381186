"""The cvxpy formulation, in one place.

:class:`TrainData` holds the training rows on the standardised scale, merged by
(features, group) with the loss's sufficient statistics.  :class:`Program` is the
convex program of one family on that data::

    minimise   (1/W) sum_g S_g(theta) + alpha * ||q * theta||^2  [+ hook penalty]
                                                                 [+ rho * sum(slack)]
    subject to every group block in the common set C           (group_reg="set")
               L_g(theta, g) <= c_g [+ slack_g]                 (rationality, optional)
               L_g(theta, g) <= a_k + G_k . theta [+ slack_k]   (linearised envy, optional)
               hook constraints

where ``S_g`` is the (weighted) total loss of group g's rows under their own report and
``L_g = (S_g + const_g) / W_g`` its mean.  Each row's loss appears once: with
``form="epigraph"`` (default) one variable ``u_g >= S_g`` per group carries it into the
objective and the constraints; with ``form="direct"`` the group sums are written
where they are used (some solvers prefer one or the other; both are tried).

Everything that changes between solves of a sequence (bounds ``c``, linearisations
``a, G``, repair weight ``rho``) is a ``cp.Parameter``: the problem compiles once (DPP).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import cvxpy as cp
import numpy as np

from ._family import Family
from .exceptions import MSG_BAD_PARAM, InputError

__all__ = ["TrainData", "Program", "SetSpec", "ModelVariables"]


@dataclass
class TrainData:
    """Training rows, standardised and merged.

    Attributes
    ----------
    Z : ndarray (m, d)
        Distinct rows of standardised features.
    codes : ndarray (m,)
        Intersectional group code of each distinct row.
    stats : ndarray (m, k)
        Sufficient statistics of the loss (see :mod:`fairuse_opt._losses`).
    n_rows : int
        Number of original rows (before merging).
    """

    Z: np.ndarray
    codes: np.ndarray
    stats: np.ndarray
    n_groups: int
    n_rows: int
    group_rows: list[np.ndarray] = field(default_factory=list)
    group_weight: np.ndarray | None = None
    total_weight: float = 0.0

    @classmethod
    def build(cls, Z: np.ndarray, codes: np.ndarray, stats: np.ndarray, n_groups: int,
              merge: bool = True) -> "TrainData":
        n = Z.shape[0]
        keep = stats[:, 0] > 0  # rows of weight zero carry no loss
        Z, codes, stats = Z[keep], codes[keep], stats[keep]
        if merge and Z.shape[0] > 1 and _worth_merging(Z, codes):
            key = np.column_stack([Z, codes.astype(np.float64)])
            uniq, inverse = np.unique(key, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            merged = np.zeros((uniq.shape[0], stats.shape[1]))
            np.add.at(merged, inverse, stats)
            Z, codes, stats = uniq[:, :-1], uniq[:, -1].astype(np.int64), merged
        group_rows = [np.flatnonzero(codes == g) for g in range(n_groups)]
        group_weight = np.array([stats[r, 0].sum() for r in group_rows])
        return cls(Z=np.ascontiguousarray(Z), codes=codes, stats=stats, n_groups=n_groups, n_rows=n,
                   group_rows=group_rows, group_weight=group_weight, total_weight=float(stats[:, 0].sum()))

    @property
    def n_distinct(self) -> int:
        return int(self.Z.shape[0])


def _worth_merging(Z: np.ndarray, codes: np.ndarray, sample: int = 5000) -> bool:
    """Merging sorts every row (a third of a 10^6-row fit): skip it when a random sample
    of rows shows almost no duplicates (continuous features).  The fit is the same
    either way; only its cost changes."""
    n = Z.shape[0]
    if n <= 2 * sample:
        return True
    idx = np.random.default_rng(0).choice(n, sample, replace=False)
    key = np.column_stack([Z[idx], codes[idx].astype(np.float64)])
    return np.unique(key, axis=0).shape[0] < 0.95 * sample


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


@dataclass
class ModelVariables:
    """The cvxpy handles a constraint hook receives.

    Attributes
    ----------
    theta : cp.Variable
        All parameters (standardised scale; see ``names``).
    coef : cp.Expression (n_groups, n_features)
        Each reportable group's effective feature weights on the raw feature scale.
    intercept : cp.Expression (n_groups,)
        Each group's effective intercept on the raw scale.
    shared_coef : cp.Expression or None
        The shared feature weights (raw scale) of the ``onehot``/``intersectional``
        (and ``none``) encodings; ``None`` for ``decoupled``.
    groups : list of tuple
        The groups, in the row order of ``coef``.
    feature_names : list of str
    names : list of str
        Names of the entries of ``theta``.
    """

    theta: cp.Variable
    coef: cp.Expression
    intercept: cp.Expression
    shared_coef: cp.Expression | None
    groups: list
    feature_names: list[str]
    names: list[str]


class Program:
    """One family's convex program on one data set (built once, solved many times)."""

    def __init__(self, family: Family, loss, data: TrainData, *, alpha: float,
                 scale: np.ndarray, mean: np.ndarray, set_spec: SetSpec | None = None,
                 rationality: bool = False, envy_pairs: list[tuple[int, int]] | None = None,
                 repair: bool = False, hook: Callable | None = None, form: str = "epigraph",
                 groups: list | None = None, feature_names: list[str] | None = None,
                 floor_of: int | None = None):
        self.family, self.loss, self.data, self.form = family, loss, data, form
        G, p = family.n_groups, family.n_params
        self.theta = theta = cp.Variable(p, name="theta")
        W = data.total_weight
        self.const = np.array([loss.constant(data.stats[r]) for r in data.group_rows])
        sums = []
        for g, rows in enumerate(data.group_rows):
            if len(rows) == 0 or (floor_of is not None and g != floor_of):
                sums.append(None)
                continue
            D = family.design(data.Z[rows], np.full(len(rows), g))
            sums.append(loss.cvx(data.stats[rows], D @ theta))
        active = [g for g in range(G) if sums[g] is not None]
        cons: list[cp.Constraint] = []
        if form == "epigraph":
            u = cp.Variable(G, name="group_loss")
            for g in active:
                cons.append(u[g] >= sums[g])
            group_total = [u[g] if sums[g] is not None else None for g in range(G)]
        elif form == "direct":
            group_total = sums
        else:
            raise InputError(MSG_BAD_PARAM.format(name="formulation", value=form,
                                                  reason="choose 'epigraph' or 'direct'"))
        # mean loss of each group under its own report, an affine expression of u (epigraph)
        self.group_loss = {g: (group_total[g] + self.const[g]) / data.group_weight[g] for g in active}
        q = family.penalty_scale(scale)
        pen_idx = np.flatnonzero(q > 0)
        objective = cp.sum([group_total[g] for g in active]) / W
        if alpha > 0 and len(pen_idx):
            objective = objective + alpha * cp.sum_squares(cp.multiply(q[pen_idx], theta[pen_idx]))
        objective = objective + float(self.const.sum()) / W
        if floor_of is not None:  # the lowest mean loss group `floor_of` can reach in the family
            objective = self.group_loss[floor_of]
        # the common set
        self.set_constraints: dict[str, list] = {"intercept": [], "coef": []}
        if set_spec is not None and family.uses_set:
            for g, i in enumerate(family.block_intercept):
                c = cp.abs(theta[i] - set_spec.intercept_center) <= set_spec.intercept_bound
                self.set_constraints["intercept"].append(c)
            for g, idx in enumerate(family.block_weights):
                if len(idx):
                    c = cp.norm(theta[idx] - set_spec.coef_center, 2) <= set_spec.coef_bound
                    self.set_constraints["coef"].append(c)
            cons += self.set_constraints["intercept"] + self.set_constraints["coef"]
        # rationality
        self.rhs = cp.Parameter(G, name="rationality_bound") if rationality else None
        self.rho = cp.Parameter(nonneg=True, name="repair_weight", value=1.0) if repair else None
        self.rationality: dict[int, cp.Constraint] = {}
        self.slack_r = cp.Variable(G, nonneg=True, name="slack_rationality") if (repair and rationality) else None
        if rationality:
            for g in active:
                rhs = self.rhs[g] + (self.slack_r[g] if self.slack_r is not None else 0)
                self.rationality[g] = self.group_loss[g] <= rhs
            cons += list(self.rationality.values())
        # linearised envy-freeness (convex restriction of L_g(own) <= L_g(report r))
        self.envy_pairs = list(envy_pairs or [])
        self.envy: list[cp.Constraint] = []
        self.slack_e = None
        if self.envy_pairs:
            K = len(self.envy_pairs)
            self.lin_grad = cp.Parameter((K, p), name="envy_gradient")
            self.lin_const = cp.Parameter(K, name="envy_constant")
            lin = self.lin_const + self.lin_grad @ theta
            if repair:
                self.slack_e = cp.Variable(K, nonneg=True, name="slack_envy")
            for k, (g, r) in enumerate(self.envy_pairs):
                rhs = lin[k] + (self.slack_e[k] if self.slack_e is not None else 0)
                self.envy.append(self.group_loss[g] <= rhs)
            cons += self.envy
        if repair:
            slack_terms = [s for s in (self.slack_r, self.slack_e) if s is not None]
            if slack_terms:
                objective = objective + self.rho * cp.sum(cp.hstack([cp.sum(s) for s in slack_terms]))
        # researcher's hook
        self.hook_constraints: list[cp.Constraint] = []
        if hook is not None:
            self.variables = self._model_variables(mean, scale, groups, feature_names)
            extra_cons, extra_pen = _call_hook(hook, self.variables)
            self.hook_constraints = extra_cons
            cons += extra_cons
            if extra_pen is not None:
                objective = objective + extra_pen
        self.problem = cp.Problem(cp.Minimize(objective), cons)
        if not self.problem.is_dcp(dpp=True):
            raise InputError(MSG_BAD_PARAM.format(name="constraint_hook", value=hook,
                                                  reason="the resulting problem is not DCP/DPP"))

    def _model_variables(self, mean, scale, groups, feature_names) -> ModelVariables:
        fam = self.family
        d, G = fam.n_features, fam.n_groups
        Mc, Mb = fam.raw_coef_map(mean, scale)
        coef = cp.reshape(Mc @ self.theta, (G, d), order="C") if d else None
        intercept = Mb @ self.theta
        shared = None
        if fam.encoding != "decoupled" and d:
            idx = np.array([fam.names.index(f"w[{j}]") for j in range(d)])
            shared = cp.multiply(1.0 / scale, self.theta[idx])
        return ModelVariables(theta=self.theta, coef=coef, intercept=intercept, shared_coef=shared,
                              groups=list(groups or []), feature_names=list(feature_names or []),
                              names=list(fam.names))

    # --------------------------------------------------------------- helpers
    def set_linearisation(self, grad: np.ndarray, const: np.ndarray) -> None:
        self.lin_grad.value = grad
        self.lin_const.value = const

    def value(self) -> np.ndarray:
        return np.asarray(self.theta.value, dtype=np.float64)

    def rationality_duals(self) -> dict[int, float]:
        return {g: float(np.ravel(c.dual_value)[0]) if c.dual_value is not None else float("nan")
                for g, c in self.rationality.items()}


def _call_hook(hook: Callable, variables: ModelVariables):
    """Normalise what a hook returns to ``(constraints, penalty or None)``."""
    out = hook(variables)
    constraints: list = []
    penalty = None
    if out is None:
        return constraints, penalty
    if isinstance(out, dict):
        constraints = list(out.get("constraints", []))
        penalty = out.get("penalty")
    elif isinstance(out, tuple) and len(out) == 2 and not isinstance(out[0], cp.Constraint):
        constraints, penalty = list(out[0] or []), out[1]
    elif isinstance(out, cp.Expression):
        penalty = out
    else:
        constraints = list(out) if not isinstance(out, cp.Constraint) else [out]
    for c in constraints:
        if not isinstance(c, cp.Constraint):
            raise InputError(MSG_BAD_PARAM.format(name="constraint_hook", value=hook,
                                                  reason=f"returned {type(c).__name__}, not a cvxpy constraint"))
    if penalty is not None and (not isinstance(penalty, cp.Expression) or not penalty.is_scalar()):
        raise InputError(MSG_BAD_PARAM.format(name="constraint_hook", value=hook,
                                              reason="the penalty must be a scalar cvxpy expression"))
    return constraints, penalty


def group_losses(family: Family, loss, data: TrainData, theta: np.ndarray) -> np.ndarray:
    """Matrix ``L[g, r]``: mean loss of group g's rows when they report r (numpy)."""
    return loss_matrix(loss, data, *family.effective(theta))


def loss_matrix(loss, data: TrainData, Wf: np.ndarray, bf: np.ndarray) -> np.ndarray:
    """``L[g, r]`` for effective models ``Wf`` (G, d), ``bf`` (G) on the standardised scale."""
    G = Wf.shape[0]
    out = np.full((G, G), np.nan)
    for g, rows in enumerate(data.group_rows):
        if len(rows) == 0:
            continue
        Zg, st = data.Z[rows], data.stats[rows]
        S = Zg @ Wf.T + bf[None, :]  # (n_g, G): scores under every report
        for r in range(G):
            out[g, r] = loss.value(st, S[:, r]).sum() / data.group_weight[g]
    return out


def group_loss_grad(family: Family, loss, data: TrainData, theta: np.ndarray, g: int, r: int):
    """Value and gradient (in ``theta``) of ``L_g(theta, r)``."""
    rows = data.group_rows[g]
    Zg, st = data.Z[rows], data.stats[rows]
    M = family.maps[r]
    eff = M @ theta
    s = Zg @ eff[:-1] + eff[-1]
    gs = loss.grad(st, s)
    g_eff = np.concatenate([Zg.T @ gs, [gs.sum()]]) / data.group_weight[g]
    return loss.value(st, s).sum() / data.group_weight[g], np.asarray(M.T @ g_eff).ravel()


def objective_value(family: Family, loss, data: TrainData, theta: np.ndarray, alpha: float,
                    scale: np.ndarray) -> float:
    """The training objective, in numpy: weighted mean loss + alpha * penalty."""
    total = 0.0
    Wf, bf = family.effective(theta)
    for g, rows in enumerate(data.group_rows):
        if len(rows):
            s = data.Z[rows] @ Wf[g] + bf[g]
            total += loss.value(data.stats[rows], s).sum()
    q = family.penalty_scale(scale)
    return total / data.total_weight + alpha * float(np.sum((q * theta) ** 2))


