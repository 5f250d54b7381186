"""Personalized linear families: how each encoding lays out its parameters.

Internally features are standardised, ``z = (x - mean) / scale`` (weighted training
mean and standard deviation; a constant column gets scale 1).  This only conditions
the solvers: penalties are applied to the weights on the *raw* feature scale, so the
objective is exactly the documented one.

A family maps the parameter vector ``theta`` (length ``p``) to one effective linear
model per reportable group ``r``: ``[w_r; b_r] = M_r @ theta`` (standardised scale).
Every score is therefore ``[z, 1] @ M_r @ theta``: linear in ``theta`` for a fixed
report, which is what makes every loss convex in the parameters.

=============== ======================================= ==================================
encoding        group_reg="set" (default)               group_reg="penalty"
=============== ======================================= ==================================
none            ``w.z + b``                             same
onehot          ``w.z + b + sum_k beta[k, r_k]``        same (offsets are shared: always
                                                        penalised with ``alpha``)
intersectional  ``w.z + b_r``, every ``b_r`` in one     ``w.z + b + c_r``, ``c_r``
                interval, not penalised                 penalised
decoupled       ``w_r.z + b_r``, every ``(w_r, b_r)``   ``w_r.z + b + c_r``, ``w_r`` and
                in one set (ball x interval)            ``c_r`` penalised
=============== ======================================= ==================================

The global intercept ``b`` is never penalised.  With ``group_reg="set"`` there is no
global intercept (it would be a redundant, flat direction: the solvers fail on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

__all__ = ["Family", "ENCODINGS", "GROUP_REGS"]

ENCODINGS = ("none", "onehot", "intersectional", "decoupled")
GROUP_REGS = ("set", "penalty")


@dataclass
class Family:
    """Parameter layout of one encoding.

    Parameters
    ----------
    encoding, group_reg : str
    n_features : int
    level_codes : ndarray (n_groups, n_attributes)
        For each intersectional group, the position of each attribute's level.
    n_levels : list of int
        Number of levels of each attribute (onehot offsets).
    """

    encoding: str
    group_reg: str
    n_features: int
    level_codes: np.ndarray
    n_levels: list[int]
    names: list[str] = field(default_factory=list)
    penalised: np.ndarray | None = None  # bool (p,): penalised with alpha
    is_weight: np.ndarray | None = None  # bool (p,): a feature weight (penalty on raw scale)
    feature_of: np.ndarray | None = None  # int (p,): feature index of a weight, else -1
    block_intercept: list[int] = field(default_factory=list)  # set-constrained intercepts
    block_weights: list[np.ndarray] = field(default_factory=list)  # set-constrained weights
    maps: list[sp.csr_matrix] = field(default_factory=list)  # M_r, (d+1) x p each
    shift: np.ndarray | None = None  # mean / scale of the features (see below)

    def __post_init__(self):
        d, G = self.n_features, self.n_groups
        names: list[str] = []
        pen: list[bool] = []
        feat: list[int] = []
        rows: list[list[tuple]] = [[] for _ in range(G)]  # (row of M_r, column[, value])

        def add(name, penalised, feature=-1):
            names.append(name)
            pen.append(penalised)
            feat.append(feature)
            return len(names) - 1

        enc, reg = self.encoding, self.group_reg
        if enc in ("none", "onehot", "intersectional"):
            w_idx = [add(f"w[{j}]", True, j) for j in range(d)]
            for r in range(G):
                rows[r] += [(j, w_idx[j]) for j in range(d)]
        if enc == "none" or enc == "onehot" or (reg == "penalty" and enc != "none"):
            b_idx = add("b", False)
            for r in range(G):
                rows[r].append((d, b_idx))
        if enc == "onehot":
            for a, n_lev in enumerate(self.n_levels):
                lev_idx = [add(f"beta[{a},{v}]", True) for v in range(n_lev)]
                for r in range(G):
                    rows[r].append((d, lev_idx[self.level_codes[r, a]]))
        elif enc == "intersectional":
            for r in range(G):
                if reg == "set":
                    i = add(f"b_{r}", False)
                    self.block_intercept.append(i)
                else:
                    i = add(f"c_{r}", True)
                rows[r].append((d, i))
        elif enc == "decoupled":
            for r in range(G):
                wr = [add(f"w_{r}[{j}]", reg == "penalty", j) for j in range(d)]
                rows[r] += [(j, wr[j]) for j in range(d)]
                if reg == "set":
                    i = add(f"b_{r}", False)
                    self.block_intercept.append(i)
                    self.block_weights.append(np.array(wr, dtype=np.int64))
                else:
                    # penalised offsets are the raw-scale intercepts (x = 0, not the mean):
                    # score = w_r.z + b + c_r + shift.w_r = w_r.(x / scale) + b + c_r
                    i = add(f"c_{r}", True)
                    if self.shift is not None:
                        rows[r] += [(d, wr[j], float(self.shift[j])) for j in range(d)]
                rows[r].append((d, i))
        p = len(names)
        self.names = names
        self.penalised = np.array(pen, dtype=bool)
        self.feature_of = np.array(feat, dtype=np.int64)
        self.is_weight = self.feature_of >= 0
        self.maps = []
        for r in range(G):
            entries = [e if len(e) == 3 else (*e, 1.0) for e in rows[r]]
            ri, ci, vi = zip(*entries) if entries else ((), (), ())
            self.maps.append(sp.csr_matrix((np.array(vi, dtype=float), (ri, ci)), shape=(d + 1, p)))

    # ------------------------------------------------------------------ sizes
    @property
    def n_groups(self) -> int:
        return int(self.level_codes.shape[0])

    @property
    def n_params(self) -> int:
        return len(self.names)

    @property
    def uses_set(self) -> bool:
        return bool(self.block_intercept)

    # --------------------------------------------------------------- mapping
    def design(self, Z: np.ndarray, codes: np.ndarray) -> sp.csr_matrix:
        """Design matrix (n, p): row i is ``[z_i, 1] @ M_{codes_i}``."""
        n = Z.shape[0]
        Z1 = sp.csr_matrix(np.column_stack([Z, np.ones(n)]))
        parts, order = [], []
        for r in np.unique(codes):
            idx = np.flatnonzero(codes == r)
            parts.append(Z1[idx] @ self.maps[r])
            order.append(idx)
        if not parts:
            return sp.csr_matrix((n, self.n_params))
        stacked = sp.vstack(parts).tocsr()
        perm = np.empty(n, dtype=np.int64)
        perm[np.concatenate(order)] = np.arange(n)
        return stacked[perm]

    def effective(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Effective models on the standardised scale: ``W`` (G, d), ``b`` (G)."""
        eff = np.stack([M @ theta for M in self.maps]) if self.maps else np.zeros((0, self.n_features + 1))
        return eff[:, :-1], eff[:, -1]

    def penalty_scale(self, scale: np.ndarray) -> np.ndarray:
        """Per-parameter factor ``q`` so that the penalty is ``alpha * sum (q * theta)^2``.

        Feature weights are stored on the standardised scale, ``w_raw = w_std / scale``;
        the penalty is on ``w_raw``.
        """
        q = np.where(self.penalised, 1.0, 0.0)
        weights = self.is_weight & self.penalised
        q[weights] = 1.0 / scale[self.feature_of[weights]]
        return q

    def embed_generic(self, w0: np.ndarray, b0: float) -> np.ndarray:
        """The generic model ``(w0, b0)`` (standardised scale) written in this family."""
        theta = np.zeros(self.n_params)
        for k, name in enumerate(self.names):
            if self.feature_of[k] >= 0:
                theta[k] = w0[self.feature_of[k]]
            elif name == "b" or name.startswith("b_"):
                theta[k] = b0
        if self.encoding == "decoupled" and self.group_reg == "penalty" and self.shift is not None:
            theta[self.names.index("b")] = b0 - float(self.shift @ w0)
        return theta

    def raw_coef_map(self, mean: np.ndarray, scale: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Linear maps from ``theta`` to raw-scale effective models.

        Returns ``(Mc, Mb)`` with ``coef = (Mc @ theta).reshape(G, d)`` and
        ``intercept = Mb @ theta``.
        """
        d = self.n_features
        to_raw_w = sp.diags(1.0 / scale) if d else sp.csr_matrix((0, 0))
        shift = (mean / scale)[None, :] if d else np.zeros((1, 0))
        coef_rows, int_rows = [], []
        for M in self.maps:
            Mw = M[:d]
            coef_rows.append(to_raw_w @ Mw)
            int_rows.append(M[d] - sp.csr_matrix(shift) @ Mw)
        return sp.vstack(coef_rows).tocsr(), sp.vstack(int_rows).tocsr()
