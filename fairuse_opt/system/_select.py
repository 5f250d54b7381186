"""Out-of-fold scores of the candidate pool, and the plan of every option chosen from them.

Used by :func:`~fairuse_opt.fit_system` on the training part only (procedure
``"ladder"``), so that the whole assignment sample tests; and on all rows by the
cross-fitted procedure.  A *function* is a candidate used with a fixed report (its values
of the attributes it uses).
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from .._fitcache import shared_fits
from .._validation import check_features
from ..audit._metrics import Metric
from ..exceptions import FairUseWarning
from ._assign import GENERIC
from ._ladder import LadderPlan
from ._options import member_mask, project, row_options, sub_options

__all__ = ["OutOfFold", "out_of_fold", "fold_ids", "select_plans", "nested_plans"]

logger = logging.getLogger("fairuse_opt.system")


class OutOfFold:
    """Out-of-fold outputs on ``n`` rows.

    Attributes
    ----------
    generic : ndarray (n,)
        The generic model's output on every row, from the fold model not trained on it.
    candidates : dict
        ``name -> ndarray (n,)``: the candidate's output on every row with the row's own
        report (projected on the attributes it uses); NaN where it cannot score the row
        (an attribute not reported, a group its fold model did not see, a failed fit).
    folds : ndarray of int (n,)
        Fold of every row.
    """

    def __init__(self, generic: np.ndarray, candidates: dict[str, np.ndarray], folds: np.ndarray):
        self.generic = generic
        self.candidates = candidates
        self.folds = folds


def fold_ids(y: np.ndarray | None, frame: pd.DataFrame, n_folds: int, random_state: int) -> np.ndarray:
    """Fold of every row, stratified by report (and label for classification) where the
    cells allow it, else by label, else not at all."""
    n = len(frame)
    keys = np.array(["|".join(map(str, r)) for r in frame.itertuples(index=False, name=None)], dtype=str)
    label = np.full(n, "") if y is None else np.asarray(y).astype(str)
    attempts = [np.char.add(np.char.add(keys, "#"), label), label, np.zeros(n, dtype=int)]
    for strata in attempts:
        _, counts = np.unique(strata, return_counts=True)
        if counts.min() >= n_folds or strata is attempts[-1]:
            if counts.min() < n_folds:
                from sklearn.model_selection import KFold

                split = KFold(n_folds, shuffle=True, random_state=random_state).split(np.zeros(n))
            else:
                split = StratifiedKFold(n_folds, shuffle=True, random_state=random_state).split(np.zeros(n), strata)
            folds = np.empty(n, dtype=np.int64)
            for k, (_, test) in enumerate(split):
                folds[test] = k
            return folds
    raise AssertionError("unreachable")


def _output(model: Any, X: Any, classification: bool, report: tuple | None) -> np.ndarray:
    kwargs = {} if report is None else {"report": report}
    if classification:
        return np.asarray(model.predict_proba(X, **kwargs), dtype=np.float64)[:, 1]
    return np.asarray(model.predict(X, **kwargs), dtype=np.float64).reshape(-1)


def _take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if isinstance(X, (pd.DataFrame, pd.Series)) else np.asarray(X)[rows]


class RowSubsets:
    """``X``'s rows at given positions, each distinct set taken once (the candidates
    of a pool mostly train on the same rows: all those reporting their attributes).

    With ``arrays=True`` each subset is kept as the float array the library's estimators
    make of it (:func:`~fairuse_opt._validation.check_features`): an estimator given
    that array computes exactly what it computes from the subset, without converting
    it again.
    """

    def __init__(self, X: Any, keep: int = 4, arrays: bool = False):
        self.X = X
        self.keep = keep  # subsets kept at once (the oldest dropped first)
        self.arrays = arrays
        self._kept: dict[bytes, Any] = {}

    def take(self, rows: np.ndarray) -> Any:
        key = np.asarray(rows, dtype=np.int64).tobytes()
        if key not in self._kept:
            if len(self._kept) >= self.keep:
                self._kept.pop(next(iter(self._kept)))
            sub = _take(self.X, rows)
            if self.arrays:
                sub = check_features(sub, allow_empty_columns=True)[0]
                if sub is not self.X:
                    sub.flags.writeable = False  # shared by several fits (see _fitcache)
            self._kept[key] = sub
        return self._kept[key]


def _plain(est: Any) -> bool:
    """An estimator of this library that takes its features as they are (no group
    columns in ``X``): it may be given the float array of a subset."""
    # recognised by what the library's estimators have (importing them here would put this
    # module in the circle estimators -> model_io -> system)
    return (type(est).__module__ == "fairuse_opt.estimators" and callable(getattr(est, "_get_loss", None))
            and getattr(est, "group_cols", None) is None)


def out_of_fold(X: Any, y: np.ndarray, frame: pd.DataFrame, pool: dict[str, tuple[Any, list[str]]],
                generic: Any, folds: np.ndarray, *, classification: bool, progress: Any = None) -> OutOfFold:
    """Fit the generic model and every candidate on all folds but one; score that fold.

    Parameters
    ----------
    pool : dict
        ``name -> (unfitted estimator, attributes)``.
    generic : unfitted estimator
    folds : ndarray of int
    progress : callable, optional
        Called with one line of text per fold.
    """
    n = len(frame)
    gen_out = np.full(n, np.nan)
    cand_out = {name: np.full(n, np.nan) for name in pool}
    ids = np.unique(folds)
    for k in ids:
        held, gen, cands, seconds = _fold(X, y, frame, pool, generic, folds, k, classification)
        gen_out[held] = gen
        for name, out in cands.items():
            cand_out[name][held] = out
        if progress is not None:
            progress(f"fold {k + 1} of {len(ids)}: generic and {len(pool)} candidate(s) "
                     f"fitted and scored in {seconds:.1f}s")
    return OutOfFold(gen_out, cand_out, folds)


def _fold(X: Any, y: np.ndarray, frame: pd.DataFrame, pool: dict, generic: Any, folds: np.ndarray, k: int,
          classification: bool) -> tuple:
    """The generic model and every candidate fitted on all folds but ``k``:
    ``(held rows, generic's outputs on them, {name: candidate's outputs}, seconds)``
    (NaN where a candidate cannot score a row)."""
    started = time.perf_counter()
    fit_rows = np.flatnonzero(folds != k)
    held = np.flatnonzero(folds == k)
    g = clone(generic).fit(_take(X, fit_rows), y[fit_rows])
    gen = _output(g, _take(X, held), classification, None)
    X_held = _take(X, held)
    cands: dict[str, np.ndarray] = {}
    # the fold models are scored here and dropped: the library's own estimators are
    # given each subset's float array, converted once (the same numbers: the fits and
    # scores are those of the frames, their feature names aside)
    subsets = {False: RowSubsets(X), True: RowSubsets(X, arrays=True)}
    held_subsets = {False: RowSubsets(X_held, keep=64), True: RowSubsets(X_held, keep=64, arrays=True)}
    # the candidates on the same rows share their standardised rows, generic model and
    # unconstrained fit (each model is the one its own fit gives: see _fitcache)
    with shared_fits():
        for name, (est, attrs) in pool.items():
            ok = frame.iloc[fit_rows][attrs].notna().all(axis=1).to_numpy()
            rows = fit_rows[ok]
            plain = _plain(est)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FairUseWarning)
                    model = clone(est).fit(subsets[plain].take(rows), y[rows],
                                           groups=frame.iloc[rows][attrs].reset_index(drop=True))
            except Exception as exc:  # noqa: BLE001 - a candidate that cannot be fitted scores nothing
                logger.warning("fold %d: candidate %r could not be fitted (%s: %s)", k + 1, name,
                               type(exc).__name__, exc)
                continue
            out = np.full(held.size, np.nan)
            cands[name] = out
            if not attrs:
                out[:] = _output(model, X_held, classification, None)
                continue
            held_frame = frame.iloc[held][attrs]
            held_ok = held_frame.notna().all(axis=1).to_numpy()
            by_key: dict[tuple, list[int]] = {}
            for i, (key, good) in enumerate(zip(held_frame.itertuples(index=False, name=None), held_ok)):
                if good:
                    by_key.setdefault(tuple(key), []).append(i)
            for key, pos in by_key.items():
                try:
                    out[pos] = _output(model, held_subsets[plain].take(np.asarray(pos)), classification, key)
                except Exception:  # noqa: BLE001 - a group the fold model did not see
                    pass
    return held, gen, cands, time.perf_counter() - started


def _losses(metric: Metric, y: np.ndarray, S: np.ndarray) -> np.ndarray:
    state = metric.prepare(y, S)
    v = metric.evaluate(state, np.ones((1, y.size), dtype=np.int64))[0]
    return -v if metric.greater_is_better else v


def _eligible(option: tuple, names: list[str], pool_attrs: dict[str, list[str]]) -> list[tuple]:
    out = []
    for name, attrs in pool_attrs.items():
        pos = [names.index(a) for a in attrs]
        if any(option[j] is None for j in pos):
            continue
        out.append((name, project(option, pos)))
    return out


def select_plans(oof: OutOfFold, y: np.ndarray, frame: pd.DataFrame, pool_attrs: dict[str, list[str]],
                 metric: Metric, rows: np.ndarray | None = None) -> dict[tuple, LadderPlan]:
    """The plan of every option with members among ``rows`` (default: all): the
    candidate function with the best out-of-fold metric on the option's rows, if it
    beats the generic model's out-of-fold metric there; else no plan."""
    names = list(frame.columns)
    keep = np.arange(len(frame)) if rows is None else np.asarray(rows)
    sub = frame.iloc[keep]
    row_keys, row_codes = row_options(sub.reset_index(drop=True))
    options = sorted({o for k in row_keys for o in sub_options(k)}, key=lambda o: tuple(v is None for v in o))
    plans: dict[tuple, LadderPlan] = {}
    root = tuple(None for _ in names)
    for o in options:
        if o == root:
            continue
        m = keep[member_mask(o, row_keys, row_codes)]
        fids = _eligible(o, names, pool_attrs)
        if not fids:
            plans[o] = LadderPlan(GENERIC, why="no candidate uses only what this option reports")
            continue
        cols = np.column_stack([oof.generic[m]] + [oof.candidates[f[0]][m] for f in fids])
        ok = ~np.isnan(cols).any(axis=1)
        # a candidate that could not score some rows is judged on fewer rows; drop it instead
        usable = [j for j in range(1, cols.shape[1]) if not np.isnan(cols[:, j]).any()]
        if not usable or m.size == 0:
            plans[o] = LadderPlan(GENERIC, why="no candidate could be scored out of fold on this option's rows")
            continue
        S = cols[:, [0] + usable]
        v = _losses(metric, y[m], S)
        if np.isnan(v).all() or np.isnan(v[0]):
            plans[o] = LadderPlan(GENERIC, why="the metric is undefined on this option's training rows")
            continue
        k = int(np.nanargmin(np.where(np.isnan(v), np.inf, v)))
        gain = float(v[0] - v[k])
        if k == 0:
            j = int(np.nanargmin(np.where(np.isnan(v[1:]), np.inf, v[1:])))
            plans[o] = LadderPlan(GENERIC, cv_gain=float(v[0] - v[1 + j]), best=fids[usable[j] - 1],
                                  why="no candidate beats the generic model in cross-validation on the training part")
        else:
            plans[o] = LadderPlan(fids[usable[k - 1] - 1], cv_gain=gain)
        del ok
    return plans


def nested_plans(oof: OutOfFold, y: np.ndarray, frame: pd.DataFrame, pool_attrs: dict[str, list[str]],
                 metric: Metric) -> tuple[dict[tuple, np.ndarray], dict[tuple, LadderPlan]]:
    """For the cross-fitted procedure: for every option, each row's out-of-fold output of
    the candidate chosen *without that row's fold* (nested selection), and the plan
    chosen on all rows (served after refitting).

    Returns
    -------
    nested : dict
        ``option -> ndarray (n,)`` (NaN outside the option, or where the option's plan in
        a fold is the generic model: then the generic output).
    plans : dict
        ``option -> LadderPlan`` on all rows.
    """
    plans = select_plans(oof, y, frame, pool_attrs, metric)
    folds = oof.folds
    per_fold = {k: select_plans(oof, y, frame, pool_attrs, metric, rows=np.flatnonzero(folds != k))
                for k in np.unique(folds)}
    names = list(frame.columns)
    row_keys, row_codes = row_options(frame)
    nested: dict[tuple, np.ndarray] = {}
    for o in plans:
        m = member_mask(o, row_keys, row_codes)
        out = np.full(len(frame), np.nan)
        for k, pk in per_fold.items():
            rows = np.flatnonzero(m & (folds == k))
            plan = pk.get(o, LadderPlan(GENERIC))
            out[rows] = oof.generic[rows] if plan.function == GENERIC else oof.candidates[plan.function[0]][rows]
        nested[o] = out
    del names
    return nested, plans
