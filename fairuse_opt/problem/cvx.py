"""The compiler from :class:`~fairuse_opt.problem.Problem` to cvxpy, in one place.

:class:`Program` is the convex program of one problem::

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

from dataclasses import dataclass
from typing import Callable

import cvxpy as cp
import numpy as np

from ..exceptions import MSG_BAD_PARAM, InputError
from .constraints import EnvyFreeness, Rationality

__all__ = ["Program", "ModelVariables", "FORMS"]

FORMS = ("epigraph", "direct")


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
    """One problem's convex program (built once, solved many times)."""

    def __init__(self, problem, *, rationality: bool = False, envy_pairs: list[tuple[int, int]] | None = None,
                 repair: bool = False, form: str = "epigraph", floor_of: int | None = None):
        family, loss, data = problem.family, problem.loss, problem.data
        self.problem_def = problem
        self.family, self.loss, self.data, self.form = family, loss, data, form
        G, p = family.n_groups, family.n_params
        self.theta = theta = cp.Variable(p, name="theta")
        W = data.total_weight
        self.const = np.array([loss.constant(data.stats[r]) for r in data.group_rows])
        sums = []
        for g, rows in enumerate(data.group_rows):
            if data.group_size(g) == 0 or (floor_of is not None and g != floor_of):
                sums.append(None)
                continue
            D = family.design(data.Z[rows], np.full(data.group_size(g), g))
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
        self.direct_sums = sums
        # mean loss of each group under its own report, an affine expression of u (epigraph)
        self.group_loss = {g: (group_total[g] + self.const[g]) / data.group_weight[g] for g in active}
        q = problem.q
        pen_idx = np.flatnonzero(q > 0)
        objective = cp.sum([group_total[g] for g in active]) / W
        if problem.alpha > 0 and len(pen_idx):
            objective = objective + problem.alpha * cp.sum_squares(cp.multiply(q[pen_idx], theta[pen_idx]))
        objective = objective + float(self.const[active].sum()) / W
        if floor_of is not None:  # the lowest mean loss group `floor_of` can reach in the family
            objective = self.group_loss[floor_of]
        # the common set
        set_spec = problem.set_spec
        self.set_constraints: dict[str, list] = {"intercept": [], "coef": []}
        if set_spec is not None and family.uses_set:
            for i in family.block_intercept:
                c = cp.abs(theta[i] - set_spec.intercept_center) <= set_spec.intercept_bound
                self.set_constraints["intercept"].append(c)
            for idx in family.block_weights:
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
                self.rationality[g] = Rationality.cvx(self.group_loss[g], self.rhs[g],
                                                      self.slack_r[g] if self.slack_r is not None else None)
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
                self.envy.append(EnvyFreeness.cvx(self.group_loss[g], lin[k],
                                                  self.slack_e[k] if self.slack_e is not None else None))
            cons += self.envy
        if repair:
            slack_terms = [s for s in (self.slack_r, self.slack_e) if s is not None]
            if slack_terms:
                objective = objective + self.rho * cp.sum(cp.hstack([cp.sum(s) for s in slack_terms]))
        # researcher's hook
        self.hook_constraints: list[cp.Constraint] = []
        hook = problem.hook
        if hook is not None:
            self.variables = self._model_variables(problem)
            extra_cons, extra_pen = _call_hook(hook, self.variables)
            self.hook_constraints = extra_cons
            cons += extra_cons
            if extra_pen is not None:
                objective = objective + extra_pen
        self.objective = objective
        self.problem = cp.Problem(cp.Minimize(objective), cons)
        if not self.problem.is_dcp(dpp=True):
            raise InputError(MSG_BAD_PARAM.format(name="constraint_hook", value=hook,
                                                  reason="the resulting problem is not DCP/DPP"))

    def _model_variables(self, problem) -> ModelVariables:
        fam = self.family
        d, G = fam.n_features, fam.n_groups
        Mc, Mb = fam.raw_coef_map(problem.mean, problem.scale)
        coef = cp.reshape(Mc @ self.theta, (G, d), order="C") if d else None
        intercept = Mb @ self.theta + getattr(problem, "y_shift", 0.0)
        shared = None
        if fam.encoding != "decoupled" and d:
            idx = np.array([fam.names.index(f"w[{j}]") for j in range(d)])
            shared = cp.multiply(1.0 / problem.scale, self.theta[idx])
        return ModelVariables(theta=self.theta, coef=coef, intercept=intercept, shared_coef=shared,
                              groups=list(problem.groups or []), feature_names=list(problem.feature_names or []),
                              names=list(fam.names))

    # --------------------------------------------------------------- helpers
    def group_loss_expr(self, g: int, r: int) -> cp.Expression:
        """``L[g, r]`` as a cvxpy expression of ``theta`` (for checks against numpy)."""
        data = self.data
        rows = data.group_rows[g]
        D = self.family.design(data.Z[rows], np.full(data.group_size(g), r))
        return (self.loss.cvx(data.stats[rows], D @ self.theta) + self.const[g]) / data.group_weight[g]

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
