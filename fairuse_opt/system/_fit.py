""":func:`fit_system`: split, train the candidate pool, assign; and the default pool."""

from __future__ import annotations

import logging
import numbers
import time
import warnings
from itertools import combinations
from typing import Any, Mapping

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from .._validation import check_param, check_reports
from ..estimators import FairUseClassifier, FairUseRegressor
from ..exceptions import (
    MSG_BAD_PARAM,
    MSG_LENGTH_MISMATCH,
    MSG_SYSTEM_ASSIGN_SIZE,
    MSG_SYSTEM_SPLIT_FALLBACK,
    FairUseWarning,
    InputError,
)
from ._system import FairUseSystem, _n_rows, _take

__all__ = ["fit_system", "default_candidates", "stratified_split"]

logger = logging.getLogger("fairuse_opt.system")

#: Encodings of the default pool, each unconstrained and with fair use.
DEFAULT_ENCODINGS = ("onehot", "intersectional", "decoupled")


def default_candidates(attributes: list[str], task: str = "classification", *,
                       encodings: tuple[str, ...] = DEFAULT_ENCODINGS,
                       onehot_fair_use: bool = False) -> dict[str, tuple[Any, list[str]]]:
    """The default candidate pool: every encoding, unconstrained and with fair use, on
    every non-empty subset of the group attributes.

    Parameters
    ----------
    attributes : list of str
        Group attributes.
    task : {"classification", "regression"}
    encodings : tuple of str
        Encodings to include.
    onehot_fair_use : bool, default False
        Include the fair-use one-hot models.  They are fitted by a sequence of convex
        programs through cvxpy, which on a few thousand rows takes tens of seconds per
        model (about 10 s on apnea's 1,345 training rows, and on support2-sized data it
        ran out of a 6 GB memory limit after 27 s), so the default leaves them out; the
        unconstrained one-hot models stay in.

    Returns
    -------
    dict
        ``name -> (unfitted estimator, attributes it uses)``, e.g.
        ``"intersectional+fair_use[Age,Sex]"``.
    """
    est = FairUseClassifier if task == "classification" else FairUseRegressor
    out: dict[str, tuple[Any, list[str]]] = {}
    for k in range(len(attributes), 0, -1):
        for subset in combinations(attributes, k):
            suffix = f"[{','.join(subset)}]"
            for enc in encodings:
                out[f"{enc}{suffix}"] = (est(encoding=enc, fair_use=None), list(subset))
                if enc != "onehot" or onehot_fair_use:
                    out[f"{enc}+fair_use{suffix}"] = (est(encoding=enc, fair_use="both",
                                                          on_infeasible="generic"), list(subset))
    return out


def stratified_split(y: np.ndarray | None, frame: pd.DataFrame, size: float | int,
                     random_state: Any) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(train, assign)``, stratified by report and label.

    Cells (report, label) with fewer than 2 rows cannot be split by stratification;
    they are pooled with the other small cells of their label, then, if some stratum is
    still too small, the split is stratified by label only, then not at all.  Each
    fallback is warned about (:class:`~fairuse_opt.FairUseWarning`) and logged.
    """
    n = len(frame)
    keys = np.array(["|".join(map(str, r)) for r in frame.itertuples(index=False, name=None)], dtype=str)
    label = np.full(n, "") if y is None else np.asarray(y).astype(str)
    strata = np.char.add(np.char.add(keys.astype(str), "#"), label.astype(str))
    values, counts = np.unique(strata, return_counts=True)
    small = values[counts < 2]
    attempts: list[tuple[str, np.ndarray | None]] = [("report and label", strata)]
    if small.size:
        pooled = np.where(np.isin(strata, small), np.char.add("small#", label.astype(str)), strata)
        attempts = [("report and label, small cells pooled by label", pooled), ("label", label),
                    ("nothing", None)]
    idx = np.arange(n)
    last_error = None
    for i, (what, strat) in enumerate(attempts):
        try:
            train, assign = train_test_split(idx, test_size=size, random_state=random_state,
                                             stratify=strat)
        except ValueError as exc:
            last_error = exc
            continue
        if small.size:
            msg = MSG_SYSTEM_SPLIT_FALLBACK.format(n_small=int(small.size), min_rows=2, fallback=what)
            warnings.warn(msg, FairUseWarning, stacklevel=3)
            logger.warning(msg)
        return np.sort(train), np.sort(assign)
    raise InputError(str(last_error))


def fit_system(X: Any, y: Any, groups: Any, *, assign_size: float | int = 0.3,
               candidates: Any = "default", metric: Any = None, alpha: float = 0.10,
               correction: str | None = "holm", test: str = "bootstrap", n_boot: int = 1000,
               envy: bool = True, kind: str = "full", min_group_size: int = 10,
               onehot_fair_use: bool = False, encodings: tuple[str, ...] = DEFAULT_ENCODINGS,
               task: str | None = None, generic: Any = None,
               random_state: Any = 0) -> FairUseSystem:
    """Split the data, train the candidate pool on one part, assign on the other.

    The assignment part is never used to fit anything: refitting the candidates on all
    rows after the assignment would void the guarantee (the tests would no longer be
    about the models served).

    Parameters
    ----------
    X : array-like or DataFrame, shape (n, d)
        Features.
    y : array-like, shape (n,)
        Binary labels (classification) or real targets (regression: a float target with
        more than two values).
    groups : DataFrame, Series or array-like
        Group attributes; missing values mean "not reported".
    assign_size : float or int, default 0.3
        Share (in (0, 1)) or number of rows used for the assignment.
    candidates : "default", dict or list
        ``"default"``: :func:`default_candidates`.  Otherwise unfitted estimators
        taking ``fit(X, y, groups=...)``: a dict ``name -> estimator`` (trained on all
        attributes) or ``name -> (estimator, [attributes])``, or a list.
    metric, alpha, correction, test, n_boot, envy, kind, min_group_size, random_state
        As in :class:`FairUseSystem` (``random_state`` also seeds the split).
    onehot_fair_use : bool, default False
        Include the (slow) fair-use one-hot models in the default pool.
    encodings : tuple of str, default ("onehot", "intersectional", "decoupled")
        Encodings of the default pool (decoupled models are the slowest to fit: one full
        model per group).
    task : {"classification", "regression"}, optional
        Default: regression for a float target with more than two values.
    generic : unfitted estimator, optional
        The generic model, cloned and fitted on the training part without group
        attributes.  Default: ``FairUseClassifier(encoding="none")`` (or the regressor).

    Returns
    -------
    FairUseSystem
        Fitted; also ``train_index_`` and ``assign_index_`` (row positions of the two
        parts).
    """
    n = _n_rows(X)
    frame = check_reports(groups, n)
    names = list(frame.columns)
    check_param("task", task, choices=("classification", "regression", None))
    task = task or _task_of(y, n)
    size = _check_size(assign_size, n)
    y_arr = np.asarray(y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else y).reshape(-1)
    if y_arr.size != n:
        raise InputError(MSG_LENGTH_MISMATCH.format(what="y", n_other=y_arr.size, n_rows=n))
    train, assign_rows = stratified_split(y_arr if task == "classification" else None, frame, size,
                                          random_state if isinstance(random_state, numbers.Integral) else 0)
    logger.info("split: %d training rows, %d assignment rows", train.size, assign_rows.size)
    pool = _pool(candidates, names, task, onehot_fair_use, tuple(encodings))
    X_tr, y_tr, g_tr = _take(X, train), y_arr[train], frame.iloc[train].reset_index(drop=True)
    generic = (clone(generic) if generic is not None
               else (FairUseClassifier if task == "classification" else FairUseRegressor)(encoding="none"))
    started = time.perf_counter()
    generic.fit(X_tr, y_tr)
    logger.info("fitted the generic model in %.2fs", time.perf_counter() - started)
    fitted: dict[str, Any] = {}
    for name, (est, attrs) in pool.items():
        rows = np.flatnonzero(g_tr[attrs].notna().all(axis=1).to_numpy())
        started = time.perf_counter()
        try:
            model = clone(est).fit(_take(X_tr, rows), y_tr[rows],
                                   groups=g_tr.iloc[rows][attrs].reset_index(drop=True))
        except Exception as exc:  # a candidate that cannot be fitted is left out, loudly
            msg = f"candidate {name!r} could not be fitted and is left out: {type(exc).__name__}: {exc}"
            warnings.warn(msg, FairUseWarning, stacklevel=2)
            logger.warning(msg)
            continue
        fitted[name] = model
        logger.info("fitted %s on %d rows in %.2fs", name, rows.size, time.perf_counter() - started)
    system = FairUseSystem(fitted, generic, metric=metric, alpha=alpha, correction=correction, test=test,
                           n_boot=n_boot, envy=envy, kind=kind, min_group_size=min_group_size,
                           random_state=random_state)
    system.fit(_take(X, assign_rows), y_arr[assign_rows],
               groups=frame.iloc[assign_rows].reset_index(drop=True))
    system.train_index_, system.assign_index_ = train, assign_rows
    return system


def _task_of(y: Any, n: int) -> str:
    arr = np.asarray(y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else y).reshape(-1)
    if arr.dtype.kind == "f" and np.unique(arr[np.isfinite(arr)]).size > 2:
        return "regression"
    return "classification"


def _check_size(size: Any, n: int) -> float | int:
    if isinstance(size, bool) or not isinstance(size, numbers.Real):
        raise InputError(MSG_SYSTEM_ASSIGN_SIZE.format(value=size))
    if isinstance(size, numbers.Integral):
        if not 0 < size < n:
            raise InputError(MSG_SYSTEM_ASSIGN_SIZE.format(value=size))
        return int(size)
    if not 0.0 < size < 1.0:
        raise InputError(MSG_SYSTEM_ASSIGN_SIZE.format(value=size))
    return float(size)


def _pool(candidates: Any, names: list[str], task: str, onehot_fair_use: bool,
          encodings: tuple[str, ...]) -> dict[str, tuple[Any, list[str]]]:
    if isinstance(candidates, str):
        check_param("candidates", candidates, choices=("default",))
        for enc in encodings:
            check_param("encodings", enc, choices=DEFAULT_ENCODINGS)
        return default_candidates(names, task, encodings=encodings, onehot_fair_use=onehot_fair_use)
    if isinstance(candidates, Mapping):
        items = list(candidates.items())
    elif isinstance(candidates, (list, tuple)):
        items = [(f"{type(e).__name__}:{getattr(e, 'encoding', '')}#{i}", e) for i, e in enumerate(candidates)]
    else:
        raise InputError(MSG_BAD_PARAM.format(name="candidates", value=type(candidates).__name__,
                                              reason="'default', a dict or a list of estimators"))
    out = {}
    for name, spec in items:
        est, attrs = (spec if isinstance(spec, tuple) else (spec, list(names)))
        unknown = [a for a in attrs if a not in names]
        if unknown:
            raise InputError(MSG_BAD_PARAM.format(name="candidates", value=name,
                                                  reason=f"unknown attribute(s) {unknown}; groups has {names}"))
        out[str(name)] = (est, list(attrs))
    if not out:
        raise InputError(MSG_BAD_PARAM.format(name="candidates", value=candidates, reason="is empty"))
    return out
