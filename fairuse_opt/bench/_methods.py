"""How each (model class, technique, method) is fitted: a registry of builders.

A builder takes a :class:`FitData` and returns a :class:`Fitted` (the model the audit
judges, its generic model, and notes).  Methods that do not assign (``unconstrained``,
``fairuse``, ``fairuse-se``) train on the training *and* assignment rows: standard
practice uses all the data it has.  ``minimal`` and ``system`` train their candidates on
the training rows only and assign on the assignment rows (refitting on them would void
the guarantee).  The test rows are never seen by any fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..exceptions import InputError
from ._errors import MSG_CAPPED, MSG_CAPPED_DECOUPLED, MSG_SYSTEM_MISSING

__all__ = ["FitData", "Fitted", "Skip", "BUILDERS", "build_model", "system_available"]


class Skip(Exception):
    """A cell that is not run, with the reason (recorded in the results)."""

    def __init__(self, reason: str, status: str = "skipped"):
        super().__init__(reason)
        self.status = status


@dataclass
class FitData:
    """The rows a builder may use, and the cell's settings."""

    X_train: pd.DataFrame
    y_train: pd.Series
    g_train: pd.DataFrame
    X_assign: pd.DataFrame
    y_assign: pd.Series
    g_assign: pd.DataFrame
    task: str
    seed: int
    settings: dict

    @property
    def X_fit(self) -> pd.DataFrame:
        return pd.concat([self.X_train, self.X_assign], ignore_index=True)

    @property
    def y_fit(self) -> pd.Series:
        return pd.concat([self.y_train, self.y_assign], ignore_index=True)

    @property
    def g_fit(self) -> pd.DataFrame:
        return pd.concat([self.g_train, self.g_assign], ignore_index=True)

    @property
    def metric(self) -> str:
        return self.settings["system_metric"][self.task]


@dataclass
class Fitted:
    """A fitted model, its generic model, the rows it trained on, and notes."""

    model: Any
    generic: Any
    X_train: pd.DataFrame
    y_train: pd.Series
    g_train: pd.DataFrame
    info: dict = field(default_factory=dict)


def system_available() -> bool:
    """Whether this version of the library has the certified system."""
    import fairuse_opt
    return hasattr(fairuse_opt, "FairUseSystem")


def _library_class(task: str):
    from ..estimators import FairUseClassifier, FairUseRegressor
    return FairUseClassifier if task == "classification" else FairUseRegressor


def _library_params(technique: str, method: str, data: FitData) -> dict:
    params: dict[str, Any] = {"encoding": "none" if technique == "generic" else technique,
                              "fair_use": None, "on_infeasible": "generic"}
    if method in ("fairuse", "fairuse-se"):
        params["fair_use"] = "both"
        params["margin"] = 0.0 if method == "fairuse" else f"se:{data.settings['margin_se']:g}"
    return params


def _check_decoupled(technique: str, n: int, data: FitData) -> None:
    cap = data.settings["decoupled_max_train"]
    if technique == "decoupled" and n > cap:
        raise Skip(MSG_CAPPED_DECOUPLED.format(cap=cap, n=n))


def _fit_library(technique: str, method: str, data: FitData) -> Fitted:
    params = _library_params(technique, method, data)
    X, y, g = data.X_fit, data.y_fit, data.g_fit
    info: dict[str, Any] = {}
    _check_decoupled(technique, len(X), data)
    if technique == "onehot" and params["fair_use"]:
        cap = data.settings["ccp_max_train"]
        if len(X) > cap:
            raise Skip(MSG_CAPPED.format(what="one-hot fair-use", cap=cap, n=len(X)))
        params["max_iter"] = data.settings["ccp_max_iter"]
    model = _library_class(data.task)(**params)
    model.fit(X, y, groups=None if technique == "generic" else g)
    info["route"] = model.certificate_.route
    generic = model if technique == "generic" else model.generic_
    return Fitted(model, generic, X, y, g, info)


def _fit_minimal(technique: str, data: FitData) -> Fitted:
    if not system_available():
        raise Skip(MSG_SYSTEM_MISSING, status="unavailable")
    from .. import FairUseSystem
    _check_decoupled(technique, len(data.X_train), data)
    cand = _library_class(data.task)(encoding=technique, fair_use=None)
    cand.fit(data.X_train, data.y_train, groups=data.g_train)
    system = FairUseSystem([cand], cand.generic_, metric=data.metric, alpha=data.settings["alpha"],
                           correction=data.settings["correction"], n_boot=data.settings["n_boot"],
                           kind="minimal", random_state=data.seed)
    system.fit(data.X_assign, data.y_assign, groups=data.g_assign)
    return Fitted(system, cand.generic_, data.X_train, data.y_train, data.g_train,
                  {"route": "minimal"})


def _fit_system(data: FitData) -> Fitted:
    """The certified system as a user builds it: :func:`fairuse_opt.fit_system` on the
    non-test rows, its default pool, the cell's assignment sample as its assignment part
    (``assign_rows=``: the rows the other methods' split holds out)."""
    if not system_available():
        raise Skip(MSG_SYSTEM_MISSING, status="unavailable")
    from .. import fit_system
    from ..system import default_candidates
    X, y, g = data.X_fit, data.y_fit, data.g_fit
    encodings = ("onehot", "intersectional", "decoupled")
    if len(data.X_train) > data.settings["decoupled_max_train"]:
        encodings = encodings[:2]
    pool = default_candidates(list(g.columns), data.task, encodings=encodings)
    # the system's assignment part is the cell's assignment sample (the rows the other methods'
    # split holds out; in the failure modes, a sample of the deployment population)
    assign_rows = np.arange(len(data.X_train), len(data.X_train) + len(data.X_assign))
    system = fit_system(X, y, g, assign_rows=assign_rows, metric=data.metric, candidates=pool,
                        alpha=data.settings["alpha"], correction=data.settings["correction"],
                        n_boot=data.settings["n_boot"], task=data.task, random_state=data.seed)
    tr = np.asarray(system.train_index_)
    info = {"route": "system", "pool": "+".join(encodings), "n_candidates": len(system.candidates_),
            "n_personalized": int(sum(f[0] != "generic" for f in system.served_.values()))}
    return Fitted(system, system.generic_, X.iloc[tr].reset_index(drop=True),
                  y.iloc[tr].reset_index(drop=True), g.iloc[tr].reset_index(drop=True), info)


def _sklearn_estimator(model: str, task: str, seed: int):
    if model == "rf":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
        cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
        return cls(n_estimators=100, min_samples_leaf=5, random_state=seed, n_jobs=1)
    if model == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
        cls = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
        return cls(max_iter=100, random_state=seed)
    if model == "mlp":
        from sklearn.neural_network import MLPClassifier, MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        cls = MLPClassifier if task == "classification" else MLPRegressor
        return make_pipeline(StandardScaler(), cls(hidden_layer_sizes=(16,), alpha=1e-3,
                                                   max_iter=300, early_stopping=False,
                                                   random_state=seed))
    raise InputError(f"unknown model class {model!r}")  # pragma: no cover - guarded by the grid


def _fit_sklearn(model: str, technique: str, data: FitData) -> Fitted:
    from ..audit import SklearnGroupModel
    est = SklearnGroupModel(_sklearn_estimator(model, data.task, data.seed), encoding=technique)
    est.fit(data.X_fit, data.y_fit, groups=data.g_fit)
    return Fitted(est, est.generic_, data.X_fit, data.y_fit, data.g_fit, {"route": "sklearn"})


def _library_builder(technique: str, method: str) -> Callable[[FitData], Fitted]:
    if method == "minimal":
        return lambda data: _fit_minimal(technique, data)
    if method == "system":
        return _fit_system
    return lambda data: _fit_library(technique, method, data)


#: (model class, technique, method) -> builder; filled from the grid.
BUILDERS: dict[tuple, Callable[[FitData], Fitted]] = {}


def _register() -> None:
    from ._grid import GRID
    for model, technique, method in GRID:
        if model in ("logistic", "linear"):
            BUILDERS[(model, technique, method)] = _library_builder(technique, method)
        else:
            BUILDERS[(model, technique, method)] = (
                lambda data, m=model, t=technique: _fit_sklearn(m, t, data))


_register()


def build_model(model: str, technique: str, method: str, data: FitData) -> Fitted:
    """Fit one grid row's model (see the module docstring)."""
    return BUILDERS[(model, technique, method)](data)
