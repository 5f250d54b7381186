"""The certificate kept with every fitted model: what was guaranteed, and the evidence."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._validation import check_groups, check_sample_weight, split_group_columns
from .exceptions import MSG_NO_GENERIC_LOADED, InputError

__all__ = ["Certificate", "CERTIFICATE_COLUMNS"]

#: Columns of :attr:`Certificate.table`, one row per intersectional group.
CERTIFICATE_COLUMNS = {
    "group": "the intersectional group (tuple of attribute values)",
    "n": "training rows of the group",
    "weight": "total sample weight of the group",
    "generic_loss": "L_g(h0): mean training loss of the generic model on the group",
    "own_loss": "L_g(theta, g): mean training loss when the group reports itself",
    "gain": "generic_loss - own_loss (positive: personalization helps)",
    "margin": "required gain eps_g",
    "rationality_slack": "generic_loss - margin - own_loss (>= 0 when rationality holds)",
    "best_alternative": "the other report with the lowest loss for this group",
    "best_alternative_loss": "L_g(theta, r) for that report",
    "envy_slack": "best_alternative_loss - own_loss (>= 0 when the group envies no report)",
    "rationality_active": "the rationality constraint binds at the solution",
    "dual": ("price of the group's rationality constraint: relaxing its bound on the mean "
             "loss by d lowers the objective (mean loss + penalty) by about dual * d"),
    "at_set_boundary": "the group's block touches the common set's boundary",
    "generic_fallback": "the group was given the generic model (on_infeasible='generic')",
}


@dataclass
class Certificate:
    """Evidence that a fitted model makes fair use of group attributes on its training data.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per intersectional group; columns are described in
        :data:`CERTIFICATE_COLUMNS`.
    fair_use : tuple of str
        The guarantees requested (``"rationality"``, ``"envy_freeness"``).
    route : str
        ``"unconstrained"`` (no guarantee asked), ``"unconstrained-feasible"`` (the
        unconstrained fit already met every constraint: the global optimum),
        ``"exact"`` (one convex program, section 3a) or ``"ccp"`` (sequence of convex
        restrictions, section 3b).
    verified : bool
        Every requested constraint was re-checked in numpy on the training data at
        tolerance ``tolerance`` and holds.
    failures : list of str
        What did not verify (empty when ``verified``).
    objective_lower_bound : float or None
        A proven lower bound on the objective of every model in the family that meets
        the requested constraints: the Lagrangian dual value of the rationality-only
        program (a convex relaxation of the problem with envy-freeness), or the
        unconstrained optimum.  ``None`` where no bound was computed.
    optimality_gap : float or None
        ``objective - objective_lower_bound``: what a better fit could at most gain.
    gain_out_of_reach : float or None
        Share of the available gain (``objective_generic - objective_unconstrained``)
        that no model meeting the constraints can keep:
        ``(objective_lower_bound - objective_unconstrained) / available gain``.
    """

    table: pd.DataFrame
    fair_use: tuple = ()
    route: str = "unconstrained"
    solver: str | None = None
    status: str = ""
    iterations: int = 0
    objective: float = float("nan")
    objective_unconstrained: float = float("nan")
    objective_generic: float = float("nan")
    gain_kept: float = float("nan")
    trace: list = field(default_factory=list)
    seconds: float = 0.0
    verified: bool = False
    tolerance: float = 1e-7
    failures: list = field(default_factory=list)
    attempts: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    objective_lower_bound: float | None = None
    optimality_gap: float | None = None
    gain_out_of_reach: float | None = None

    @property
    def n_violations(self) -> int:
        t = self.table
        bad = 0
        if "rationality" in self.fair_use:
            bad += int((t["rationality_slack"] < -self.tolerance).sum())
        if "envy_freeness" in self.fair_use:
            bad += int((t["envy_slack"] < -self.tolerance).sum())
        return bad

    def verify(self, model, X, y, *, groups=None, sample_weight=None, tol: float | None = None,
               generic=None) -> list[str]:
        """Recompute every guaranteed constraint from the model's predictions on ``(X, y)``.

        Group losses are recomputed from ``predict_proba`` (classifier) or ``predict``
        (regressor) with ``report=`` for every report, and the generic losses from
        ``generic`` (default: ``model.generic_``); nothing of the fit is reused.  Returns
        the constraints that do not hold at ``tol`` (default: this certificate's
        tolerance); an empty list means the guarantee holds on these data.  On the
        training data of a verified certificate it is empty.

        Raises
        ------
        InputError
            The model was read from a file and was fitted with an external ``generic=``
            model, which the file does not hold, and ``generic`` is not given.
        """
        return _verify(self, model, X, y, groups=groups, sample_weight=sample_weight,
                            tol=self.tolerance if tol is None else tol, generic=generic)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        out = asdict(self)
        out["table"] = [{k: _jsonable(v) for k, v in row.items()} for row in self.table.to_dict("records")]
        out["fair_use"] = list(self.fair_use)
        return {k: _jsonable(v) for k, v in out.items()}

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Certificate":
        d = dict(d)
        rows = d.pop("table")
        table = pd.DataFrame(rows)
        for col in ("group", "best_alternative"):
            if col in table:
                table[col] = [tuple(v) if isinstance(v, list) else v for v in table[col]]
        d["fair_use"] = tuple(d.get("fair_use", ()))
        d["attempts"] = [tuple(a) for a in d.get("attempts", [])]
        return cls(table=table, **d)

    def __str__(self) -> str:
        head = (f"fair use {'+'.join(self.fair_use) or 'none'}: route {self.route}, solver {self.solver} "
                f"({self.status}), {self.iterations} iteration(s), {self.seconds:.2f} s, "
                f"verified={self.verified}")
        cols = ["group", "n", "generic_loss", "own_loss", "gain", "rationality_slack", "envy_slack",
                "rationality_active", "dual"]
        return head + "\n" + self.table[[c for c in cols if c in self.table]].to_string(index=False)


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if np.isnan(f) else f
    return v


def _verify(cert, model, X, y, *, groups=None, sample_weight=None, tol: float, generic=None) -> list[str]:
    """See :meth:`Certificate.verify`."""

    fair_use = tuple(cert.fair_use)
    loss = model._get_loss()
    classification = hasattr(model, "predict_proba")
    if classification:
        yv = np.asarray(y)
        y01 = (yv == model.classes_[1]).astype(np.float64)
    else:
        y01 = np.asarray(y, dtype=np.float64)
    n = len(y01)
    w = check_sample_weight(sample_weight, n)
    index = model.group_index_
    if index is None or not fair_use:
        return []
    _, grp = split_group_columns(X, model.group_cols, groups)
    codes = index.codes(check_groups(grp, n, fit=False))
    G = index.n_groups
    keys = index.keys

    def group_means(row_loss):
        wsum = np.bincount(codes, weights=w, minlength=G)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.bincount(codes, weights=w * row_loss, minlength=G) / wsum

    def losses(pred):
        return loss.loss_of_prediction(y01, pred)

    def predict(est, **kw):
        return est.predict_proba(X, **kw) if classification else est.predict(X, **kw)

    L = np.column_stack([group_means(losses(predict(model, report=keys[r]))) for r in range(G)])
    gen = generic if generic is not None else getattr(model, "generic_", None)
    if gen is None:  # read from a file that could not hold the external generic= model
        raise InputError(MSG_NO_GENERIC_LOADED.format(
            description=getattr(model, "generic_external_", None) or "not recorded"))
    if hasattr(gen, "group_index_"):
        p0 = predict(gen, groups=grp) if gen.group_index_ is not None else predict(gen)
    else:
        Xf = X.drop(columns=list(model.group_cols)) if model.group_cols is not None else X
        p0 = gen.predict_proba(Xf) if classification else gen.predict(Xf)
    L0 = group_means(losses(np.asarray(p0, dtype=np.float64)))
    margins = cert.table["margin"].to_numpy(dtype=np.float64) if "margin" in cert.table else np.zeros(G)
    present = np.bincount(codes, minlength=G) > 0
    from .problem.constraints import constraints_of

    failures = []
    found = {c.name: c for c in constraints_of(fair_use, L0, margins)}
    for g in np.flatnonzero(present):  # (a NaN loss fails)
        for c in found.values():
            failures += c.violations(L, tol, keys, rows=[g])
    return failures
