"""The audit of predictions a user already has: no model needed."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .._groups import GroupIndex, sort_key
from .._validation import _py, check_groups
from ..exceptions import InputError, UnseenGroupError
from ._audit import (
    _check_settings,
    _target,
    audit_scores,
    check_scores,
)
from ._errors import (
    MSG_DUPLICATE_REPORT,
    MSG_NEED_DATA,
    MSG_NO_COLUMN,
    MSG_NO_SCORES,
    MSG_OWN_DISAGREE,
    MSG_POS_LABEL,
    MSG_REPORTS_MISSING,
    MSG_REPORTS_TYPE,
)
from ._fitted import report_key
from ._frames import distinct_rows, group_codes
from ._metrics import CLASSIFICATION, REGRESSION, resolve_metrics
from ._report import FairUseReport

__all__ = ["audit_predictions"]


def audit_predictions(y: Any, *, groups: Any, scores: Any = None, generic_scores: Any,
                      scores_as_reported: Any = None, data: pd.DataFrame | None = None,
                      task: str | None = None, pos_label: Any = None, metrics: Any = None,
                      n_boot: int = 1000, alpha: float = 0.10,
                      correction: str | None = "holm", random_state: Any = 0,
                      test: str = "bootstrap", ci_level: float = 0.95, n_bins: int = 10,
                      min_group_size: int = 10) -> FairUseReport:
    """Audit predictions for fair use of group attributes: no model needed.

    The same audit as :func:`~fairuse_opt.audit.audit`, from the scores a user already
    has: the personalized model's, each row under its own group; the generic model's;
    and, for the envy comparisons, the personalized model's with every row under each
    group it could report.  Given the scores a model would produce, the report is the
    one :func:`~fairuse_opt.audit.audit` gives for that model (same seed, same
    resamples, same table).

    Parameters
    ----------
    y : array-like or str
        Held-out targets, shape (n,), or the name of a column of ``data``.
        Classification: two labels; ``pos_label`` is the one whose probability the
        scores give (default: 1 for 0/1, ``True`` for booleans, otherwise the larger of
        the two labels).
    groups : DataFrame, Series, array-like, str or list of str
        Group attributes of each row (one column per attribute), or names of columns of
        ``data``.
    scores : array-like or str, optional
        The personalized model's scores, each row under its own group: probabilities of
        the positive class, shape (n,), or ``predict_proba`` output, shape (n, 2)
        (classification); predictions (regression).  Or a column of ``data``.  May be
        left out when ``scores_as_reported`` covers every group of the data: each row
        then takes the scores under its own group from there.
    generic_scores : array-like or str
        The generic model's scores (same form), or a column of ``data``.
    scores_as_reported : mapping or DataFrame, optional
        For the envy comparisons: ``{report: scores}``, the personalized model's scores
        of every row as if it had reported ``report`` (arrays of the same form, or
        columns of ``data``).  A report is a tuple of attribute values in the order of
        the columns of ``groups``, a dict keyed by attribute, or a scalar for one
        attribute; a DataFrame's column labels are the reports.  The keys are the
        groups that can be reported, and every group of the data must be among them;
        where both are given, each row's scores under its own group must equal
        ``scores``.  Without it the report has no envy rows.
    data : DataFrame, optional
        Where names given for ``y``, ``groups``, the scores and the values of
        ``scores_as_reported`` are looked up.
    task : {"classification", "regression"}, optional
        Default: classification when ``y`` holds at most two distinct values or the
        scores are given as ``predict_proba`` output, otherwise regression.
    pos_label : scalar, optional
        The label of ``y`` whose probability the scores give (classification).
    metrics, n_boot, alpha, correction, random_state, test, ci_level, n_bins, min_group_size
        As in :func:`~fairuse_opt.audit.audit`.

    Returns
    -------
    FairUseReport

    Raises
    ------
    InputError
        Scores of the wrong shape, with NaN or infinite values, or (classification)
        outside [0, 1]; a column not in ``data``; own-report scores that differ between
        ``scores`` and ``scores_as_reported``; a ``pos_label`` that is not in ``y``.
    UnseenGroupError
        A group of the data that ``scores_as_reported`` does not cover.

    Examples
    --------
    >>> report = audit_predictions(                                    # doctest: +SKIP
    ...     y_test, groups=g_test,
    ...     scores=model.predict_proba(X_test, groups=g_test)[:, 1],
    ...     generic_scores=generic.predict_proba(X_test)[:, 1],
    ...     scores_as_reported={key: model.predict_proba(X_test, report=key)[:, 1]
    ...                         for key in model.groups_})

    From a table of predictions, columns named::

        audit_predictions("y", groups=["Age", "Sex"], scores="p_own",
                          generic_scores="p_generic", data=predictions)
    """
    started = time.perf_counter()
    n_boot = _check_settings(n_boot=n_boot, alpha=alpha, ci_level=ci_level,
                             correction=correction, test=test, task=task, n_bins=n_bins,
                             min_group_size=min_group_size)
    y = _column(data, y, "y")
    groups = _column(data, groups, "groups")
    arr_y = _as_1d(y)
    n = len(arr_y)
    frame = check_groups(groups, n, fit=False)
    index = GroupIndex.from_frame(distinct_rows(frame)[0])
    codes = group_codes(index, frame)
    names = index.names

    raw_generic = _column(data, generic_scores, "generic_scores")
    raw_own = None if scores is None else _column(data, scores, "scores")
    raw_reports = _reports(scores_as_reported, data, names)
    if task is None:
        task = _infer_task(arr_y, [raw_own, raw_generic, *raw_reports.values()])
    metric_list = resolve_metrics(metrics, task, n_bins=n_bins)
    target = _target(_binary(arr_y, pos_label) if task == CLASSIFICATION else y, n, task, None)

    generic = check_scores(raw_generic, n, task, "generic_scores")
    reports = sorted(raw_reports, key=sort_key)
    as_reported = [check_scores(raw_reports[r], n, task, f"scores_as_reported[{r!r}]")
                   for r in reports]
    missing = [k for k in index.keys if k not in set(reports)]
    if reports and missing:
        raise UnseenGroupError(MSG_REPORTS_MISSING.format(groups=missing, known=reports))
    if raw_own is None:
        if not reports:
            raise InputError(MSG_NO_SCORES)
        own = np.empty(n)
        for g, key in enumerate(index.keys):
            rows = codes == g
            own[rows] = as_reported[reports.index(key)][rows]
    else:
        own = check_scores(raw_own, n, task, "scores")
        for g, key in enumerate(index.keys):
            if key not in set(reports):
                continue
            rows = codes == g
            diff = np.abs(own[rows] - as_reported[reports.index(key)][rows])
            if (diff > 0).any():
                raise InputError(MSG_OWN_DISAGREE.format(report=key, n_rows=int((diff > 0).sum()),
                                                         diff=float(diff.max())))
    matrix = np.column_stack([generic, own, *as_reported])
    return audit_scores(index, codes, target, matrix, reports, metric_list, task=task,
                        n_boot=n_boot, alpha=alpha, ci_level=ci_level, correction=correction,
                        test=test, random_state=random_state, min_group_size=min_group_size,
                        n_bins=n_bins, started=started)


def _column(data: pd.DataFrame | None, value: Any, what: str) -> Any:
    """``value``, or the column(s) of ``data`` it names."""
    is_name = isinstance(value, str) or (
        what == "groups" and isinstance(value, list) and value
        and all(isinstance(v, str) for v in value) and data is not None)
    if not is_name:
        return value
    if data is None:
        raise InputError(MSG_NEED_DATA.format(what=what, name=value))
    cols = [value] if isinstance(value, str) else list(value)
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise InputError(MSG_NO_COLUMN.format(what=what, name=missing[0] if len(missing) == 1
                                              else missing, columns=list(data.columns)))
    if what == "groups":
        return data[cols].reset_index(drop=True)
    return data[value].to_numpy()


def _as_1d(y: Any) -> np.ndarray:
    arr = np.asarray(y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr


def _reports(scores_as_reported: Any, data: pd.DataFrame | None, names: list[str]) -> dict:
    """``{report key: raw scores}`` from a mapping or a DataFrame."""
    if scores_as_reported is None:
        return {}
    if isinstance(scores_as_reported, pd.DataFrame):
        items = [(c, scores_as_reported[c].to_numpy()) for c in scores_as_reported.columns]
    elif isinstance(scores_as_reported, Mapping):
        items = list(scores_as_reported.items())
    else:
        raise InputError(MSG_REPORTS_TYPE.format(type=type(scores_as_reported).__name__))
    out: dict = {}
    for report, values in items:
        key = report_key(report, names)
        if key in out:
            raise InputError(MSG_DUPLICATE_REPORT.format(report=key))
        out[key] = _column(data, values, f"scores_as_reported[{key!r}]")
    return out


def _infer_task(y: np.ndarray, raw_scores: list) -> str:
    if any(np.ndim(s) == 2 and np.shape(s)[1] == 2 for s in raw_scores if s is not None):
        return CLASSIFICATION
    return CLASSIFICATION if pd.unique(pd.Series(y, dtype=object)).size <= 2 else REGRESSION


def _binary(y: np.ndarray, pos_label: Any) -> np.ndarray:
    """Labels as 0/1 when ``pos_label`` says which is positive; unchanged otherwise."""
    if pos_label is None:
        return y
    values = pd.unique(pd.Series(y, dtype=object))
    if not any(_py(v) == _py(pos_label) for v in values):
        shown = sorted({_py(v) for v in values}, key=sort_key)[:5]
        raise InputError(MSG_POS_LABEL.format(label=pos_label, values=shown))
    if values.size > 2:
        return y  # the target check names the extra labels
    return np.array([_py(v) == _py(pos_label) for v in y], dtype=np.float64)
