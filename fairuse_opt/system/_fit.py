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

from .._fitcache import shared_fits
from .._validation import check_classification_target, check_param, check_reports
from ..estimators import FairUseClassifier, FairUseRegressor
from ..model.losses import loss_of
from ..exceptions import (
    MSG_BAD_PARAM,
    MSG_LENGTH_MISMATCH,
    MSG_SYSTEM_ASSIGN_SIZE,
    MSG_SYSTEM_SPLIT_FALLBACK,
    FairUseWarning,
    InputError,
)
from ._assign import GENERIC
from ._ladder import DEFAULT_RUNGS
from ._select import RowSubsets, fold_ids, nested_plans, out_of_fold, select_plans
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
        Include the fair-use one-hot models (a sequence of convex restrictions, the
        slowest route).  Left out by default; the unconstrained one-hot models stay in.

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


def fit_system(X: Any, y: Any, groups: Any, *, procedure: str = "ladder", assign_size: float | int | None = None,
               candidates: Any = "default", metric: Any = None, alpha: float = 0.10,
               rungs: tuple = DEFAULT_RUNGS, cv: int = 3, n_folds: int = 5,
               correction: str | None = "holm", test: str = "auto", n_boot: int = 1000,
               envy: bool | None = None, kind: str = "full", min_group_size: int | None = None,
               onehot_fair_use: bool = False, encodings: tuple[str, ...] = DEFAULT_ENCODINGS,
               task: str | None = None, generic: Any = None, generic_rows: str = "all", assign_rows: Any = None,
               reuse: Any = None,
               verbose: bool = False, random_state: Any = 0) -> FairUseSystem:
    """Train a candidate pool and certify, per reporting option, the models it is served.

    Three procedures (``docs/system.md`` explains and measures them):

    * ``"ladder"`` (default): split the rows into a training part and an assignment part
      (``assign_size``).  On the training part, fit the generic model and the pool, and
      choose each option's candidate by ``cv``-fold cross-validation; the whole
      assignment part then tests each choice shrunk toward the generic model at the
      strengths ``rungs``, in a graphical Holm-type procedure (family-wise level
      ``alpha``).  The assignment part is never used to fit or choose a personalized
      model.  With ``generic_rows="all"`` (default) the generic model served and
      tested against is trained on all rows, and a candidate at strength ``t`` is
      served as that model plus ``t`` times the candidate's departure from the
      training part's generic model (``FairUseSystem(reference=...)``).
    * ``"crossfit"``: no assignment part.  ``n_folds`` folds over all rows; each row's
      gain is measured out of fold, with the candidate chosen without its fold; the same
      tests and procedure; the models served are refitted on all rows.  Keeps more of
      the gain; its guarantee is approximate (it is about the fitting procedure, not
      the refitted models).
    * ``"split"``: the earlier design (the assignment part halved to choose and to test,
      bootstrap within (report, label) cells, point-estimate envy), kept as a baseline.

    Parameters
    ----------
    X : array-like or DataFrame, shape (n, d)
        Features.
    y : array-like, shape (n,)
        Binary labels (classification) or real targets (regression: a float target with
        more than two values).
    groups : DataFrame, Series or array-like
        Group attributes; missing values mean "not reported".
    procedure : {"ladder", "crossfit", "split"}, default "ladder"
    assign_size : float or int, optional
        Share (in (0, 1)) or number of rows used for the assignment (not for
        ``"crossfit"``).  Default: 0.5 for ``"ladder"`` (its generic model is trained
        on all rows, so a larger test sample costs only the candidates' training
        rows; ``docs/system.md`` measures 0.3 against 0.5), 0.3 for ``"split"``.
    candidates : "default", dict or list
        ``"default"``: :func:`default_candidates`.  Otherwise unfitted estimators
        taking ``fit(X, y, groups=...)``: a dict ``name -> estimator`` (trained on all
        attributes) or ``name -> (estimator, [attributes])``, or a list.
    metric : str, optional
        Assignment metric; default ``"log_loss"`` (classification; ``"error"`` for
        ``"split"``) or the generic model's loss's (``"mse"``; ``"poisson_deviance"`` for the Poisson loss).
    alpha : float, default 0.10
        Family-wise level.
    rungs : tuple of float, default (0.25, 0.5, 1.0)
        Shrinkage strengths tested, weakest first.
    cv : int, default 3
        Folds of the cross-validation on the training part that chooses the candidates.
    n_folds : int, default 5
        Folds of ``"crossfit"``.
    correction, test, n_boot, kind, min_group_size, random_state
        As in :class:`FairUseSystem` (``random_state`` also seeds the split and folds).
    envy : bool, optional
        Run the envy step (default: yes for ``"ladder"`` and ``"split"``).  The
        cross-fitted procedure has none (out-of-fold outputs exist only under each row's
        own report): ``envy=True`` with ``"crossfit"`` is an error.
    onehot_fair_use : bool, default False
        Include the fair-use one-hot models in the default pool.
    encodings : tuple of str, default ("onehot", "intersectional", "decoupled")
        Encodings of the default pool.
    task : {"classification", "regression"}, optional
        Default: regression for a float target with more than two values.
    generic : unfitted estimator, optional
        The generic model.  Default: ``FairUseClassifier(encoding="none")`` (or the
        regressor).
    generic_rows : {"all", "train"}, default "all"
        Ladder only: train the generic model served (and tested against) on all rows,
        personalized models adding their departure from the training part's generic
        model (``"all"``); or serve the training part's generic model and the
        candidates themselves (``"train"``, the design before; every row then has a
        model trained without the assignment rows, and the guarantee is exact under
        the tests' assumptions).  ``"all"`` costs nothing in the generic model's
        accuracy; its harm is measured in ``docs/system.md``.
    assign_rows : array-like of int, optional
        Row positions of the assignment part (``"ladder"``, ``"split"``), instead of a
        stratified random split of ``assign_size``: an assignment sample you chose, for
        example rows from the population the system will serve.  The other rows are the
        training part.
    reuse : FairUseSystem, optional
        A system returned by an earlier call on the same data with the same
        ``random_state``, ``cv``/``n_folds`` and pool: its fitted pool and out-of-fold
        scores are reused (to compare metrics, levels or procedures of the same family
        cheaply).  Checked against the data's size and the split.
    verbose : bool, default False
        Print one line per step with its time (the same lines go to the
        ``fairuse_opt.system`` logger at INFO level).

    Returns
    -------
    FairUseSystem
        Fitted; also ``train_index_`` and ``assign_index_`` (row positions of the two
        parts; for ``"crossfit"`` all rows and none), ``folds_`` (crossfit) and
        ``pool_`` (what ``reuse=`` takes).
    """
    check_param("procedure", procedure, choices=("ladder", "crossfit", "split"))
    if procedure == "crossfit" and envy:
        raise InputError(MSG_BAD_PARAM.format(name="envy", value=envy,
                                              reason="procedure='crossfit' has no envy step; leave envy unset"))
    envy = procedure != "crossfit" if envy is None else envy
    check_param("cv", cv, integer=True, low=2)
    check_param("n_folds", n_folds, integer=True, low=2)
    check_param("generic_rows", generic_rows, choices=("all", "train"))
    n = _n_rows(X)
    frame = check_reports(groups, n)
    names = list(frame.columns)
    check_param("task", task, choices=("classification", "regression", None))
    task = task or _task_of(y, n)
    y_arr = np.asarray(y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else y).reshape(-1)
    if y_arr.size != n:
        raise InputError(MSG_LENGTH_MISMATCH.format(what="y", n_other=y_arr.size, n_rows=n))
    seed = random_state if isinstance(random_state, numbers.Integral) else 0
    say = _Progress(verbose)
    pool = _pool(candidates, names, task, onehot_fair_use, tuple(encodings))
    generic_est = (clone(generic) if generic is not None
                   else (FairUseClassifier if task == "classification" else FairUseRegressor)(encoding="none"))
    system_kw = dict(metric=metric, alpha=alpha, rungs=rungs, correction=correction, test=test, n_boot=n_boot,
                     envy=envy, kind=kind, min_group_size=min_group_size, random_state=random_state)
    if procedure == "crossfit":
        return _fit_crossfit(X, y_arr, frame, pool, generic_est, task, n_folds, seed, system_kw, reuse, say)
    if assign_rows is not None:
        if assign_size is not None:
            raise InputError(MSG_BAD_PARAM.format(name="assign_size", value=assign_size,
                                                  reason="give assign_size or assign_rows, not both"))
        assign_rows = _check_rows(assign_rows, n)
        train = np.setdiff1d(np.arange(n), assign_rows)
    else:
        if assign_size is None:
            assign_size = 0.5 if procedure == "ladder" and generic_rows == "all" else 0.3
        size = _check_size(assign_size, n)
        train, assign_rows = stratified_split(y_arr if task == "classification" else None, frame, size, seed)
    say(f"split: {train.size} training rows, {assign_rows.size} assignment rows")
    X_tr, y_tr, g_tr = _take(X, train), y_arr[train], frame.iloc[train].reset_index(drop=True)
    cached = _reusable(reuse, "holdout", n, train, pool)
    if cached is not None:
        fitted_generic, fitted, oof = cached["generic"], cached["fitted"], cached.get("oof")
        say("reusing the fitted pool of the system passed as reuse=")
    else:
        fitted_generic, fitted = _fit_pool(X_tr, y_tr, g_tr, pool, generic_est, say)
        oof = None
    plans = None
    if procedure == "ladder":
        if oof is None or oof.folds.max() + 1 != cv:
            started = time.perf_counter()
            folds = fold_ids(y_tr if task == "classification" else None, g_tr, cv, seed)
            oof = out_of_fold(X_tr, y_tr, g_tr, {k: pool[k] for k in fitted}, generic_est, folds,
                              classification=task == "classification", progress=say)
            say(f"cross-validation of the pool on the training part ({cv} folds) in "
                f"{time.perf_counter() - started:.1f}s")
        m = FairUseSystem(fitted, fitted_generic, **system_kw)._metric(task)
        y_sel = check_classification_target(y_tr, y_tr.size)[0] if task == "classification" else y_tr
        plans = select_plans(oof, y_sel, g_tr, {k: pool[k][1] for k in fitted}, m)
    served_generic, reference = fitted_generic, None
    if procedure == "ladder" and generic_rows == "all":
        served_generic = cached.get("generic_all") if cached is not None else None
        if served_generic is None:
            started = time.perf_counter()
            served_generic = clone(generic_est).fit(X, y_arr)
            say(f"fitted the generic model served on all {n} rows in {time.perf_counter() - started:.2f}s")
        reference = fitted_generic
    system = FairUseSystem(fitted, served_generic, procedure="split" if procedure == "split" else "ladder",
                           plans=plans, reference=reference, **system_kw)
    started = time.perf_counter()
    system.fit(_take(X, assign_rows), y_arr[assign_rows], groups=frame.iloc[assign_rows].reset_index(drop=True))
    say(f"assignment on {assign_rows.size} rows in {time.perf_counter() - started:.1f}s: "
        f"{_n_personalized(system)} of {len(system.served_) - 1} option(s) personalized")
    system.train_index_, system.assign_index_ = train, assign_rows
    system.pool_ = {"kind": "holdout", "n": n, "train": train, "generic": fitted_generic, "fitted": fitted,
                    "oof": oof, "names": list(pool), "generic_all": served_generic if reference is not None else None}
    system.procedure_ = procedure
    return system


class _Progress:
    """One line per step: logged at INFO, printed to stderr when verbose."""

    def __init__(self, verbose: bool):
        self.verbose = bool(verbose)

    def __call__(self, line: str) -> None:
        logger.info(line)
        if self.verbose:
            import sys

            print(f"[fit_system] {line}", file=sys.stderr, flush=True)


def _n_personalized(system: FairUseSystem) -> int:
    return sum(f != GENERIC for o, f in system.served_.items())


def _reusable(reuse: Any, kind: str, n: int, train: np.ndarray | None, pool: dict) -> dict | None:
    if reuse is None:
        return None
    cached = getattr(reuse, "pool_", None)
    if not isinstance(cached, dict) or cached.get("kind") != kind or cached.get("n") != n \
            or (train is not None and not np.array_equal(cached.get("train"), train)) \
            or not set(cached.get("fitted", {})) <= set(pool) or cached.get("names") != list(pool):
        raise InputError(MSG_BAD_PARAM.format(
            name="reuse", value=type(reuse).__name__,
            reason="must be a system fitted by fit_system on the same data, split, pool and procedure family"))
    return cached


def _fit_pool(X_tr: Any, y_tr: np.ndarray, g_tr: pd.DataFrame, pool: dict, generic_est: Any, say) -> tuple:
    started = time.perf_counter()
    fitted_generic = clone(generic_est).fit(X_tr, y_tr)
    say(f"fitted the generic model on {len(y_tr)} rows in {time.perf_counter() - started:.2f}s")
    fitted: dict[str, Any] = {}
    # candidates on the same rows share their standardised rows, generic model and
    # unconstrained fit (the models are those of fits on their own: see _fitcache)
    subsets = RowSubsets(X_tr)
    with shared_fits():
        for name, (est, attrs) in pool.items():
            rows = np.flatnonzero(g_tr[attrs].notna().all(axis=1).to_numpy())
            started = time.perf_counter()
            try:
                model = clone(est).fit(subsets.take(rows), y_tr[rows],
                                       groups=g_tr.iloc[rows][attrs].reset_index(drop=True))
            except Exception as exc:  # a candidate that cannot be fitted is left out, loudly
                msg = f"candidate {name!r} could not be fitted and is left out: {type(exc).__name__}: {exc}"
                warnings.warn(msg, FairUseWarning, stacklevel=3)
                logger.warning(msg)
                continue
            fitted[name] = model
            say(f"fitted {name} on {rows.size} rows in {time.perf_counter() - started:.2f}s")
    return fitted_generic, fitted


def _fit_crossfit(X: Any, y: np.ndarray, frame: pd.DataFrame, pool: dict, generic_est: Any, task: str,
                  n_folds: int, seed: int, system_kw: dict, reuse: Any, say) -> FairUseSystem:
    """The cross-fitted procedure (see :func:`fit_system`)."""
    from ._assign import AssignmentProblem
    from ._ladder import LadderPlan, assign_ladder
    from ._options import member_mask, option_order, row_options, sub_options
    from ..audit._stats import spawn_generators

    n = len(frame)
    classification = task == "classification"
    cached = _reusable(reuse, "crossfit", n, None, pool)
    if cached is not None and cached["oof"].folds.max() + 1 == n_folds:
        fitted_generic, fitted, oof = cached["generic"], cached["fitted"], cached["oof"]
        say("reusing the fitted pool and out-of-fold scores of the system passed as reuse=")
    else:
        folds = fold_ids(y if classification else None, frame, n_folds, seed)
        started = time.perf_counter()
        oof = out_of_fold(X, y, frame, pool, generic_est, folds, classification=classification, progress=say)
        say(f"out-of-fold scores ({n_folds} folds) in {time.perf_counter() - started:.1f}s")
        fitted_generic, fitted = _fit_pool(X, y, frame, pool, generic_est, say)
    system = FairUseSystem(fitted, fitted_generic, procedure="crossfit", **system_kw)
    system._check_params()
    metric = system._metric(task)
    pool_attrs = {k: pool[k][1] for k in fitted}
    y01 = check_classification_target(y, y.size)[0] if classification else y
    nested, plans = nested_plans(oof, y01, frame, pool_attrs, metric)
    # the assignment problem on all rows: per option one column of nested out-of-fold outputs
    row_keys, row_codes = row_options(frame)
    options = sorted({o for k in row_keys for o in sub_options(k)}, key=option_order)
    options = [o for o in options if any(v is not None for v in o)]
    members = {o: member_mask(o, row_keys, row_codes) for o in options}
    cols = [GENERIC] + [("__nested__", o) for o in options]
    scores = np.column_stack([oof.generic] + [np.where(np.isnan(nested.get(o, np.full(n, np.nan))),
                                                       oof.generic, nested.get(o, oof.generic)) for o in options])
    nested_plan = {o: (LadderPlan(("__nested__", o), cv_gain=plans[o].cv_gain)
                       if plans.get(o) is not None and plans[o].function != GENERIC
                       else LadderPlan(GENERIC, why=plans[o].why if o in plans else "no plan"))
                   for o in options}
    names = list(frame.columns)
    problem = AssignmentProblem(names=names, y=y01, row_keys=row_keys,
                                row_codes=row_codes, options=options, members=members, scores=scores,
                                columns={f: k for k, f in enumerate(cols)},
                                eligible={o: [("__nested__", o)] for o in options},
                                names_of={"__nested__": names}, classification=classification,
                                loss=loss_of(generic_est))
    gens, _ = spawn_generators(system.random_state, len(options) + 1)
    result = assign_ladder(problem, metric=metric, alpha=float(system.alpha), rungs=tuple(system.rungs),
                           plans=nested_plan, test=system.test, n_boot=int(system.n_boot), envy=False,
                           min_group_size=system._min_group_size(),
                           generators={o: gens[1 + i] for i, o in enumerate(options)}, split_rng=gens[0])
    # translate: each certified option is served its plan on all rows, refitted, at the certified strength
    strength = dict(zip(result.table["option"], result.table["strength"]))
    served_plans: dict[tuple, LadderPlan] = {}
    for o in options:
        t = float(strength.get(_label(names, o), 0.0))
        if t > 0:
            served_plans[o] = plans[o]
    system._fit_served(X, y, frame, served_plans, all_plans=plans, strength={o: float(strength[_label(names, o)]) for o in served_plans},
                       table=result.table, decisions=result.decisions, task=task, metric=metric,
                       options=options, members=members, row_keys=row_keys)
    say(f"cross-fitted certification on {n} rows: {_n_personalized(system)} of {len(options)} option(s) personalized")
    system.train_index_, system.assign_index_ = np.arange(n), np.zeros(0, dtype=np.int64)
    system.folds_ = oof.folds
    system.pool_ = {"kind": "crossfit", "n": n, "train": None, "generic": fitted_generic, "fitted": fitted,
                    "oof": oof, "names": list(pool)}
    system.procedure_ = "crossfit"
    return system


def _label(names: list[str], o: tuple) -> str:
    from ._options import option_label

    return option_label(names, o)


def _task_of(y: Any, n: int) -> str:
    arr = np.asarray(y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else y).reshape(-1)
    if arr.dtype.kind == "f" and np.unique(arr[np.isfinite(arr)]).size > 2:
        return "regression"
    return "classification"


def _check_rows(rows: Any, n: int) -> np.ndarray:
    """``assign_rows``: distinct integer positions in ``[0, n)``, some rows left to train."""
    arr = np.asarray(rows)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        raise InputError(MSG_BAD_PARAM.format(name="assign_rows", value=type(rows).__name__,
                                              reason="a non-empty 1-d array of integer row positions"))
    if arr.min() < 0 or arr.max() >= n or np.unique(arr).size != arr.size:
        raise InputError(MSG_BAD_PARAM.format(name="assign_rows", value=f"{arr.size} positions",
                                              reason=f"distinct positions in [0, {n})"))
    if arr.size >= n:
        raise InputError(MSG_BAD_PARAM.format(name="assign_rows", value=f"{arr.size} positions",
                                              reason="leaves no row to train the candidates"))
    return np.sort(arr.astype(np.int64))


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
