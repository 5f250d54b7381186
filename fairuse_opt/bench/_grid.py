"""The grid: which (model class, technique, method) combinations run, cells, ids, seeds, splits.

Not every combination makes sense, so the grid is a list, not a product:

================  =======================================  =====================================
model class       technique                                method
================  =======================================  =====================================
logistic, linear  generic                                  unconstrained (the reference model)
logistic, linear  onehot, intersectional, decoupled        unconstrained, fairuse (margin 0),
                                                           fairuse-se (margin in standard errors),
                                                           minimal
logistic, linear  pool (every technique, every attribute   system (the certified system)
                  subset, with and without fair use)
rf, hgb, mlp      onehot, intersectional                   unconstrained (audit-only comparison)
================  =======================================  =====================================

``logistic`` runs on classification datasets, ``linear`` on regression datasets; the
scikit-learn models (random forest, histogram gradient boosting, a small MLP, through
:class:`~fairuse_opt.audit.SklearnGroupModel`) on both.  Fair use does not apply to a
generic model (it uses no group attribute), and the scikit-learn models cannot be
constrained, so those rows are absent by design.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from ..exceptions import InputError
from ._config import BenchConfig, DatasetSpec
from ._errors import MSG_NO_CELLS, MSG_UNKNOWN_CHOICE

__all__ = ["GRID", "MODELS", "TECHNIQUES", "METHODS", "Cell", "build_cells", "derive_seed",
           "fold_split"]

#: Model classes, with the task they run on (``None``: both).
MODELS = {"logistic": "classification", "linear": "regression", "rf": None, "hgb": None, "mlp": None}
TECHNIQUES = ("generic", "onehot", "intersectional", "decoupled", "pool")
METHODS = ("unconstrained", "fairuse", "fairuse-se", "minimal", "system")

_LIBRARY_ROWS = ([("generic", "unconstrained")]
                 + [(t, m) for t in ("onehot", "intersectional", "decoupled")
                    for m in ("unconstrained", "fairuse", "fairuse-se", "minimal")]
                 + [("pool", "system")])
_SKLEARN_ROWS = [(t, "unconstrained") for t in ("onehot", "intersectional")]

#: The grid, explicitly: (model class, technique, method).
GRID: tuple = tuple([("logistic", t, m) for t, m in _LIBRARY_ROWS]
                    + [("linear", t, m) for t, m in _LIBRARY_ROWS]
                    + [(c, t, m) for c in ("rf", "hgb", "mlp") for t, m in _SKLEARN_ROWS])


def derive_seed(*parts: object) -> int:
    """A 32-bit seed from the parts' text (stable across runs, machines and orders)."""
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


@dataclass(frozen=True)
class Cell:
    """One unit of work: a model fitted on one fold of one dataset and audited on it.

    Attributes
    ----------
    dataset : DatasetSpec
    task : str
    fold : int
        The fold's position, 0 to ``folds - 1`` (it selects the split and seeds it); every
        output numbers the fold from 1 (:attr:`number`), as the demo does.
    model, technique, method : str
    settings : dict
        :meth:`BenchConfig.settings` (everything else that changes the numbers).
    """

    dataset: DatasetSpec
    task: str
    fold: int
    model: str
    technique: str
    method: str
    settings: tuple

    @property
    def spec(self) -> dict:
        """Everything that determines the cell's numbers."""
        return {"dataset": self.dataset.key(), "task": self.task, "fold": self.fold,
                "model": self.model, "technique": self.technique, "method": self.method,
                "settings": dict(self.settings)}

    @property
    def number(self) -> int:
        """The fold's number in every output (CSV files, cell ids, progress lines): from 1."""
        return self.fold + 1

    def _id(self, fold_text: str) -> str:
        digest = hashlib.sha256(json.dumps(self.spec, sort_keys=True, default=str).encode())
        return "__".join([self.dataset.name, fold_text, self.model, self.technique, self.method,
                          digest.hexdigest()[:10]])

    @property
    def cell_id(self) -> str:
        """Readable and stable: ``apnea__f1__logistic__onehot__fairuse__<hash>`` (fold 1 is
        the first)."""
        return self._id(f"f{self.number}")

    @property
    def legacy_id(self) -> str:
        """The id as earlier versions spelled it, the fold counted from 0 (``apnea__f0__...``):
        the cells of an earlier output folder are found under it."""
        return self._id(f"f{self.fold}")

    @property
    def seed(self) -> int:
        """Seed of the cell's models (from the cell's spec, not from execution order).  It is
        derived from :attr:`legacy_id`, so the results of earlier versions reproduce."""
        return derive_seed(self.legacy_id)

    @property
    def audit_seed(self) -> int:
        """Seed of the test audit: shared by the cells of one (dataset, fold), so every
        method is judged on the same bootstrap resamples (paired across methods)."""
        return derive_seed(json.dumps(self.dataset.key(), sort_keys=True), self.fold, "audit",
                           dict(self.settings)["seed"])


def _check_choice(what: str, values, known) -> None:
    if values is None:
        return
    bad = [v for v in values if v not in known]
    if bad:
        raise InputError(MSG_UNKNOWN_CHOICE.format(what=what, value=bad[0], known=list(known)))


def selected_rows(config: BenchConfig, task: str) -> list[tuple]:
    """The grid rows that run for a task under the config's filters."""
    _check_choice("model", config.models, MODELS)
    _check_choice("technique", config.techniques, TECHNIQUES)
    _check_choice("method", config.methods, METHODS)
    rows = []
    for model, technique, method in GRID:
        if MODELS[model] not in (None, task):
            continue
        if config.models is not None and model not in config.models:
            continue
        if config.techniques is not None and technique not in config.techniques:
            continue
        if config.methods is not None and method not in config.methods:
            continue
        rows.append((model, technique, method))
    return rows


def build_cells(config: BenchConfig, tasks: dict[str, str]) -> list[Cell]:
    """Every cell of the grid, in a fixed order (dataset, fold, grid row).

    Parameters
    ----------
    config : BenchConfig
    tasks : dict
        Dataset name -> task, for the datasets that loaded.
    """
    settings = tuple(sorted(config.settings().items()))
    cells = []
    for spec in config.datasets:
        if spec.name not in tasks:
            continue
        rows = selected_rows(config, tasks[spec.name])
        for fold in range(config.folds):
            cells += [Cell(spec, tasks[spec.name], fold, m, t, me, settings) for m, t, me in rows]
    if not cells:
        raise InputError(MSG_NO_CELLS)
    return cells


def _strata(groups: pd.DataFrame, y, task: str, min_count: int) -> np.ndarray:
    """Stratification labels: group x label; cells too small for the split fall back to
    the group, then to one shared "rare" stratum (nothing is dropped)."""
    g = groups.astype(str).agg("|".join, axis=1).to_numpy()
    if task == "classification":
        s = np.array([f"{a}#{b}" for a, b in zip(g, np.asarray(y))], dtype=object)
    else:
        s = g.astype(object)
    for fallback in (g, np.full(len(g), "rare", dtype=object)):
        values, counts = np.unique(s, return_counts=True)
        small = set(values[counts < min_count])
        if not small:
            break
        mask = np.array([v in small for v in s])
        s = s.copy()
        s[mask] = fallback[mask]
    return s


def fold_split(spec: DatasetSpec, groups: pd.DataFrame, y, task: str, fold: int, *, folds: int,
               assign_size: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(train, assign, test)`` of one fold.

    ``fold`` is the fold's position, 0 to ``folds - 1`` (outputs number it from 1).
    Folds are stratified by group and label, seeded by the dataset and the base seed;
    the non-test rows are split train / assignment (``assign_size``), stratified, seeded
    by the dataset, the fold and the base seed.
    """
    key = json.dumps(spec.key(), sort_keys=True)
    strata = _strata(groups, y, task, folds)
    kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=derive_seed(key, "folds", seed))
    rest, test = list(kfold.split(np.zeros(len(strata)), strata))[fold]
    inner = _strata(groups.iloc[rest].reset_index(drop=True), np.asarray(y)[rest], task, 2)
    train, assign = train_test_split(rest, test_size=assign_size, stratify=inner,
                                     random_state=derive_seed(key, "assign", fold, seed))
    return np.sort(train), np.sort(assign), np.sort(test)
