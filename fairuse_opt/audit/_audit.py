"""The fair-use audit: per intersectional group, on held-out data, does personalization
help (rationality) and does the group prefer its own report to every other (envy)?"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .._groups import GroupIndex, sort_key
from .._validation import _py, check_classification_target, check_groups, check_param
from .._validation import check_regression_target
from ..exceptions import (
    MSG_BAD_PARAM,
    MSG_GROUP_COLS_NEED_FRAME,
    MSG_GROUP_COLS_NOT_IN_X,
    MSG_GROUP_NAMES_MISMATCH,
    MSG_LENGTH_MISMATCH,
    MSG_UNSEEN_GROUP,
    InputError,
    UnseenGroupError,
)
from ._errors import (
    MSG_BAD_OUTPUT,
    MSG_CLASSES_MISMATCH,
    MSG_GROUPS_DISAGREE,
    MSG_NEED_GROUPS,
    MSG_NO_GENERIC,
    MSG_NO_METHOD,
    MSG_NO_PREDICT,
    MSG_Y_NOT_01,
    MSG_Y_NOT_IN_CLASSES,
    ModelInterfaceError,
)
from ._fitted import as_auditable
from ._frames import distinct_rows, group_codes
from ._labels import group_labels, short_labels
from ._metrics import CLASSIFICATION, REGRESSION, Metric, resolve_metrics
from ._report import (
    BENEFIT,
    CANNOT_CHANGE,
    INCONCLUSIVE_GAIN,
    INCONCLUSIVE_HARM,
    INCONCLUSIVE_ZERO,
    TOO_SMALL,
    VIOLATION,
    FairUseReport,
)
from ._stats import (
    adjust_pvalues,
    bootstrap_summary,
    bootstrap_tails,
    correction_factors,
    delong_bound,
    delong_pvalues,
    delong_statistic,
    distinct_columns,
    mcnemar_bound,
    mcnemar_counts,
    mcnemar_test,
    percentile_bound,
    resample_counts,
    spawn_generators,
)

__all__ = ["audit"]

logger = logging.getLogger(__name__)

RATIONALITY, ENVY, ENVY_PAIR = "rationality", "envy", "envy_pair"


def audit(model: Any, X: Any, y: Any, *, groups: Any = None, generic: Any = None,
          metrics: Any = None, n_boot: int = 1000, alpha: float = 0.10,
          correction: str | None = "holm", random_state: Any = 0,
          task: str | None = None, test: str = "bootstrap", ci_level: float = 0.95,
          n_bins: int = 10, min_group_size: int = 10) -> FairUseReport:
    """Audit a personalized model for fair use of group attributes on held-out data.

    For every intersectional group ``g`` present in the data, and every metric, the
    audit compares the model under the group's own report with

    * the generic model (*rationality*; gain = how much better the own report is), and
    * the same model under every other report ``r`` the model accepts (*envy*; gap =
      how much better the own report is than reporting ``r``), plus the worst such
      report.

    Gains are oriented so that positive means personalization (or the own report)
    helps: for a loss, ``baseline - own``; for a score such as AUC, ``own - baseline``.

    Parameters
    ----------
    model : object
        A personalized model: ``predict_proba(X, *, groups=None, report=None)``
        (classification, column 1 is the positive class) or ``predict(X, *,
        groups=None, report=None)`` (regression).  ``report`` is a tuple of attribute
        values in the order of ``model.group_names_``: every row is scored as if it had
        reported that group.  Optional attributes: ``groups_`` (the reportable
        groups; otherwise the groups present in the data), ``group_names_``,
        ``generic_``, ``classes_``, ``group_cols`` (the group attributes are columns of
        ``X``; ``groups=`` is then optional).

        Any other fitted model with ``predict_proba`` or ``predict`` - a scikit-learn
        estimator or pipeline, such as both recipes of ``docs/pipelines.md`` - is
        wrapped in :class:`FittedGroupModel` and audited as it is, never refitted: the
        group attributes reach it as the group columns of ``X`` (the final step's
        ``group_cols``) or through the ``groups`` keyword of its predict method (metadata
        routing).  Build a :class:`FittedGroupModel` to say which, for an estimator that
        does not tell; :class:`SklearnGroupModel` fits a scikit-learn estimator on
        features plus group indicators; :func:`audit_predictions` audits predictions
        computed by other means.
    X : array-like or DataFrame, shape (n, d)
        Held-out features, passed to the models unchanged.
    y : array-like, shape (n,)
        Held-out targets.  For classification, labels from ``model.classes_`` when the
        model has it (``classes_[1]`` is positive), otherwise 0/1, booleans or two
        labels (the larger is positive).
    groups : DataFrame, Series or array-like, optional
        Group attributes of each row (one column per attribute).  Required unless the
        model reads them from columns of ``X`` (``group_cols``); given as well, they
        must agree with those columns.
    generic : object, optional
        The model without group attributes (``generic.predict_proba(X)`` or
        ``generic.predict(X)``); defaults to ``model.generic_`` (for a pipeline whose
        final step has a ``generic_``, that model scored on ``X`` passed through the
        pipeline's preprocessing).
    metrics : str, Metric or list of them, optional
        ``"error"`` (threshold 0.5), ``"auc"``, ``"ece"``, ``"log_loss"``, ``"brier"``
        for classification; ``"mse"``, ``"mae"`` for regression; or :class:`Metric`
        objects.  Default: error, AUC, log loss and Brier score (classification), MSE
        and MAE (regression).
    n_boot : int, default 1000
        Bootstrap resamples.
    alpha : float, default 0.10
        Significance level of the one-sided tests (in (0, 0.5)).
    correction : {"holm", "bonferroni", None}, default "holm"
        Multiple-testing correction, applied per metric and condition across groups
        (across all (group, report) pairs for the ``envy_pair`` rows).
    random_state : int, numpy.random.Generator or None, default 0
        Seed of the bootstrap.  Each group gets its own stream spawned from it, so a
        group's resamples do not depend on the other groups.  ``None`` draws a seed and
        records it in ``report.settings["random_state"]``.
    task : {"classification", "regression"}, optional
        Default: classification when the model has ``predict_proba``.
    test : {"bootstrap", "exact"}, default "bootstrap"
        ``"exact"`` replaces the bootstrap p-values of the error rate by exact one-sided
        McNemar tests and those of AUC by DeLong's test (normal approximation; the
        bootstrap is kept when a class has fewer than two rows), and their bounds by the
        tests' inversion.  The ``test`` column says which test was used.
    ci_level : float, default 0.95
        Level of the two-sided percentile intervals ``ci_low``/``ci_high`` (descriptive:
        the verdicts use the one-sided bounds).
    n_bins : int, default 10
        Equal-width bins of ``"ece"``.
    min_group_size : int, default 10
        Groups with fewer rows are reported as ``"too small to judge"``; so are groups
        with a single class for metrics that need both (AUC).

    Returns
    -------
    FairUseReport
        ``.table`` has one row per group, metric and comparison (see
        :class:`FairUseReport`).

    Notes
    -----
    *Bootstrap.*  Rows are resampled with replacement within each group, so every
    resample keeps the group's size (fixed by the design) but not its label counts: a
    gain is an average over the group's population, its label mix included, and a gain
    that differs by label (any intercept shift) varies with that mix.  (Resampling within
    (group, label) cells, as earlier versions of this audit did, leaves that variance out
    and is anti-conservative for a population gain; measured in
    ``benchmarks/results/audit_calibration.md``.)  All models and reports are scored on
    the same resamples (paired).  p-values are one-sided percentile-bootstrap p-values,
    ``p_violation = (1 + #{gain_b >= 0}) / (B + 1)`` and ``p_benefit = (1 + #{gain_b <=
    0}) / (B + 1)`` (see :func:`~fairuse_opt.audit._stats.bootstrap_summary`).  A
    resample that drew a single class has no AUC: it is counted as evidence for neither
    direction (on the null side of both tests, and as an infinite bound), which makes the
    AUC tests conservative by at most the chance of such a resample
    (``(1 - prevalence)^n + prevalence^n``), never liberal.

    *Verdicts.*  ``"violation"`` when the corrected ``p_violation <= alpha``,
    ``"benefit"`` when the corrected ``p_benefit <= alpha``, otherwise ``"inconclusive
    (estimate: gain)"``, ``"inconclusive (estimate: harm)"`` or ``"inconclusive
    (estimate: 0)"`` by the sign of the point estimate; ``"cannot change"`` when the metric
    is equal for the two columns under every weighting of the rows (the same scores; for
    AUC the same ranking of the group's rows, as under reports that only shift an
    intercept; for error, log loss, Brier, MSE and MAE the same per-row losses): the gain
    is 0 on every resample, nothing is tested and the row is left out of the correction;
    ``"too small to judge"`` as above.

    *Bounds that agree with the verdicts.*  Each row has a lower bound (``lower_bound``,
    confidence ``lower_level``) and an upper bound (``upper_bound``, ``upper_level``) on
    its gain, at the corrected level at which its benefit and violation tests were
    decided: ``alpha`` without correction, ``alpha / m`` with Bonferroni, and with Holm
    ``alpha / (m - j + 1)`` for the hypothesis rejected at step ``j`` and ``alpha / (m -
    r)`` for those not rejected after ``r`` rejections (see
    :func:`~fairuse_opt.audit._stats.correction_factors` for why these levels and not
    simultaneous ones).  By construction ``lower_bound > 0`` exactly when the verdict is
    ``"benefit"`` and ``upper_bound < 0`` exactly when it is ``"violation"``.  Bootstrap
    bounds are order statistics of the resampled gains (the percentile at the level, see
    :func:`~fairuse_opt.audit._stats.percentile_bound`); McNemar bounds invert the exact
    binomial test given the discordant rows (Clopper-Pearson); DeLong bounds are ``gain
    -/+ z se``.  For the worst-envy row the lower bound is the smallest per-report lower
    bound (intersection-union) and the upper bound the smallest per-report upper bound at
    level ``alpha / (f R)`` (union), bounds on the smallest gap.

    *Envy.*  Each (group, report) pair is tested (``condition="envy_pair"``).  The
    ``condition="envy"`` row answers "does the group envy some report?" without the
    selection bias of testing the report that looks worst: its ``p_violation`` is the
    Bonferroni union test ``min(1, R min_r p_violation_r)`` over the group's ``R``
    alternatives that can change the metric, its ``p_benefit`` is the intersection-union
    test ``max_r p_benefit_r`` over all alternatives (own report better than every
    alternative; 1 when one cannot change the metric), and its
    interval is ``[min_r low_r, min_r high_r]`` built from per-pair intervals at level
    ``1 - (1 - ci_level) / K`` over all ``K`` alternatives, a simultaneous (Bonferroni) interval for the
    smallest gap.  Its ``gain`` is the smallest estimated gap and ``comparison`` the
    report that attains it.
    """
    started = time.perf_counter()
    n_boot = _check_settings(n_boot=n_boot, alpha=alpha, ci_level=ci_level,
                             correction=correction, test=test, task=task, n_bins=n_bins,
                             min_group_size=min_group_size)
    model, generic = as_auditable(model, generic)
    task = _resolve_task(model, task)
    generic = _resolve_generic(model, generic, task)
    metric_list = resolve_metrics(metrics, task, n_bins=n_bins)

    n = _n_rows(X)
    frame = _group_frame(_groups_of(model, X, groups), n, model)
    index = GroupIndex.from_frame(distinct_rows(frame)[0])
    codes = group_codes(index, frame)
    reports = _reportable(model, index)
    target = _target(y, n, task, _classes(model, generic))
    scores = _scores(model, generic, X, frame, reports, task, n)
    report = audit_scores(index, codes, target, scores, reports, metric_list, task=task,
                          n_boot=n_boot, alpha=alpha, ci_level=ci_level, correction=correction,
                          test=test, random_state=random_state, min_group_size=min_group_size,
                          n_bins=n_bins, started=started)
    served_generic = _served_generic(model, list(index.keys))
    if served_generic is not None:  # a certified system: which groups it serves the generic model
        labels = dict(zip(map(tuple, index.keys), report.groups["group"])) if "group" in report.groups else {}
        report.settings["system_generic"] = [labels.get(tuple(k), str(k)) for k in served_generic]
        report.settings["system_groups"] = len(index.keys)
    return report


def _check_settings(*, n_boot, alpha, ci_level, correction, test, task, n_bins,
                    min_group_size) -> int:
    """Check the settings shared by :func:`audit` and :func:`audit_predictions`."""
    n_boot = check_param("n_boot", n_boot, integer=True, low=1)
    _check_open_interval("alpha", alpha, 0.0, 0.5)
    _check_open_interval("ci_level", ci_level, 0.0, 1.0)
    check_param("correction", correction, choices=("holm", "bonferroni", None))
    check_param("test", test, choices=("bootstrap", "exact"))
    check_param("task", task, choices=(CLASSIFICATION, REGRESSION, None))
    check_param("n_bins", n_bins, integer=True, low=1)
    check_param("min_group_size", min_group_size, integer=True, low=1)
    return n_boot


def audit_scores(index: GroupIndex, codes: np.ndarray, target: np.ndarray, scores: np.ndarray,
                 reports: list[tuple], metric_list: list[Metric], *, task: str, n_boot: int,
                 alpha: float, ci_level: float, correction: str | None, test: str,
                 random_state: Any, min_group_size: int, n_bins: int,
                 started: float) -> FairUseReport:
    """The audit of checked arrays: the one computation behind :func:`audit` and
    :func:`~fairuse_opt.audit.audit_predictions`.

    Parameters
    ----------
    index : GroupIndex
        The groups present in the data.
    codes : ndarray of int, shape (n,)
        Each row's group (a position in ``index.keys``).
    target : ndarray, shape (n,)
        0/1 labels (classification) or targets (regression).
    scores : ndarray, shape (n, 2 + len(reports))
        Columns: the generic model, the own report, then the model under each report.
    reports : list of tuple
        The reportable groups, in the order of ``scores``' last columns.
    """
    n = int(target.size)
    names = index.names
    generators, seed = spawn_generators(random_state, index.n_groups)
    labels = group_labels(names, list(index.keys) + list(reports))

    rows: list[dict] = []
    group_rows: list[dict] = []
    # the bootstrap's matrix products are small: one BLAS thread is as fast, and does not
    # stall when the machine is busy
    with threadpool_limits(limits=1, user_api="blas"):
        for g, key in enumerate(index.keys):
            members = np.flatnonzero(codes == g)
            rows += _audit_group(
                key, members, target, scores, reports, metric_list, generators[g], task=task,
                n_boot=n_boot, ci_level=ci_level, alpha=alpha, test=test,
                min_group_size=min_group_size, labels=labels)
            group_rows.append(_group_row(names, key, labels[key], target[members], task,
                                         min_group_size, in_data=True))
    for key in reports:
        if key not in set(index.keys):
            group_rows.append(_group_row(names, key, labels[key], np.empty(0), task,
                                         min_group_size, in_data=False))

    table = _finalise(pd.DataFrame(rows), task, correction, alpha, ci_level)
    settings = {
        "task": task,
        "metrics": [m.name for m in metric_list],
        "n_boot": n_boot,
        "alpha": alpha,
        "ci_level": ci_level,
        "correction": correction,
        "test": test,
        "random_state": seed if seed is not None else "numpy Generator",
        "min_group_size": min_group_size,
        "n_bins": n_bins,
        "group_names": names,
        "reports": [labels[r] for r in reports],
        "short_labels": short_labels(list(index.keys) + list(reports), labels),
        "n_rows": n,
        "elapsed_s": round(time.perf_counter() - started, 4),
    }
    return FairUseReport(table=table, groups=pd.DataFrame(group_rows), settings=settings)


def _served_generic(model: Any, keys: list[tuple]) -> list[tuple] | None:
    """For a certified system: the audited groups it serves the generic model; else None."""
    if not (hasattr(model, "served_") and hasattr(model, "_serving_option")):
        return None
    generic = ("generic", ())
    return [k for k in keys if model.served_.get(model._serving_option(tuple(k)), generic) == generic]


# ------------------------------------------------------------------ inputs and models
def _check_open_interval(name: str, value: Any, low: float, high: float) -> None:
    check_param(name, value)
    if not low < value < high:
        raise InputError(MSG_BAD_PARAM.format(name=name, value=value,
                                              reason=f"must be in ({low:g}, {high:g})"))


def _resolve_task(model: Any, task: str | None) -> str:
    if task is None:
        if hasattr(model, "predict_proba"):
            return CLASSIFICATION
        if hasattr(model, "predict"):
            return REGRESSION
        raise ModelInterfaceError(MSG_NO_PREDICT.format(what="model"))
    method = "predict_proba" if task == CLASSIFICATION else "predict"
    if not hasattr(model, method):
        raise ModelInterfaceError(MSG_NO_METHOD.format(what="model", method=method, task=task))
    return task


def _resolve_generic(model: Any, generic: Any, task: str) -> Any:
    if generic is None:
        generic = getattr(model, "generic_", None)
        if generic is None:
            raise InputError(MSG_NO_GENERIC)
    method = "predict_proba" if task == CLASSIFICATION else "predict"
    if not hasattr(generic, method):
        raise ModelInterfaceError(MSG_NO_METHOD.format(what="the generic model", method=method,
                                                       task=task))
    return generic


def _n_rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 1:
        return int(shape[0])
    return len(X)


def _groups_of(model: Any, X: Any, groups: Any) -> Any:
    """The group attributes: ``groups``, or the model's group columns of ``X``.

    A model that reads its groups from columns of ``X`` (``group_cols``) needs no
    ``groups=``; given anyway, it must agree with those columns.
    """
    cols = getattr(model, "group_cols", None)
    if cols is None:
        if groups is None:
            raise InputError(MSG_NEED_GROUPS)
        return groups
    cols = [cols] if isinstance(cols, str) else list(cols)
    if not isinstance(X, pd.DataFrame):
        raise InputError(MSG_GROUP_COLS_NEED_FRAME)
    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise InputError(MSG_GROUP_COLS_NOT_IN_X.format(missing=missing, columns=list(X.columns)))
    in_x = X[cols].reset_index(drop=True)
    if groups is None:
        return in_x
    given = _group_frame(groups, len(X), model)
    from_x = _group_frame(in_x, len(X), model)
    differ = np.zeros(len(X), dtype=bool)
    for name in given.columns:
        a = given[name].to_numpy(dtype=object)
        b = from_x[name].to_numpy(dtype=object)
        differ |= np.array([_py(u) != _py(v) for u, v in zip(a, b)], dtype=bool)
    if differ.any():
        raise InputError(MSG_GROUPS_DISAGREE.format(cols=cols, n_rows=int(differ.sum()),
                                                    first=int(np.flatnonzero(differ)[0])))
    return groups


def _group_frame(groups: Any, n: int, model: Any) -> pd.DataFrame:
    """Checked group attributes, columns named and ordered as the model's."""
    frame = check_groups(groups, n, fit=False)
    names = getattr(model, "group_names_", None)
    if names is None:
        return frame
    names = [str(v) for v in names]
    got = list(frame.columns)
    if sorted(got) == sorted(names):
        return frame[names]
    if len(got) == len(names) and all(c.startswith("group") for c in got):
        return frame.set_axis(names, axis=1)  # unnamed attributes, by position
    raise InputError(MSG_GROUP_NAMES_MISMATCH.format(got=got, expected=names))


def _as_key(value: Any) -> tuple:
    if isinstance(value, (tuple, list, np.ndarray)):
        return tuple(_py(v) for v in value)
    return (_py(value),)


def _reportable(model: Any, index: GroupIndex) -> list[tuple]:
    """Groups the model can be given as a report; error for data groups it never saw."""
    known = getattr(model, "groups_", None)
    if known is None:
        return list(index.keys)
    known = sorted({_as_key(k) for k in known}, key=sort_key)
    unseen = [k for k in index.keys if k not in set(known)]
    if unseen:
        raise UnseenGroupError(MSG_UNSEEN_GROUP.format(groups=unseen, known=known))
    return known


def _classes(model: Any, generic: Any) -> Any:
    """The model's ``classes_`` (``None`` without); error if the generic model's differ."""
    classes = getattr(model, "classes_", None)
    generic_classes = getattr(generic, "classes_", None)
    if classes is not None and generic_classes is not None and not np.array_equal(
            np.asarray(classes), np.asarray(generic_classes)):
        raise InputError(MSG_CLASSES_MISMATCH.format(
            generic=list(map(_py, generic_classes)), model=list(map(_py, classes))))
    return classes


def _target(y: Any, n: int, task: str, classes: Any) -> np.ndarray:
    """Checked targets: 0/1 floats for classification (``classes[1]`` positive when given)."""
    if task == REGRESSION:
        return check_regression_target(y, n)
    arr = np.asarray(y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or len(arr) != n:
        raise InputError(MSG_LENGTH_MISMATCH.format(what="y", n_other=len(arr), n_rows=n))
    if classes is not None:
        classes = np.asarray(classes)
        pos, neg = arr == classes[1], arr == classes[0]
        bad = ~(pos | neg)
        if bad.any():
            shown = sorted({_py(v) for v in arr[bad]}, key=sort_key)[:5]
            raise InputError(MSG_Y_NOT_IN_CLASSES.format(values=shown,
                                                         classes=list(map(_py, classes))))
        return pos.astype(np.float64)
    if arr.dtype.kind in "biuf":
        values = np.unique(arr)
        if np.isin(values, [0, 1]).all():
            return arr.astype(np.float64)
    try:
        y01, _ = check_classification_target(arr, n)
    except InputError as exc:
        shown = sorted({_py(v) for v in arr}, key=sort_key)[:5]
        raise InputError(MSG_Y_NOT_01.format(values=shown)) from exc
    return y01


def _call(model: Any, method: str, X: Any, n: int, task: str, what: str, **kwargs) -> np.ndarray:
    """Call a model and check the shape, finiteness and range of what it returns."""
    out = getattr(model, method)(X, **kwargs)
    call = f"{what}.{method}({', '.join(['X'] + [f'{k}=...' for k in kwargs])})"
    return check_scores(out, n, task, call, two_columns=task == CLASSIFICATION)


def check_scores(values: Any, n: int, task: str, what: str, *,
                 two_columns: bool | None = None) -> np.ndarray:
    """One score per row, checked: shape, finiteness, probabilities in [0, 1].

    Parameters
    ----------
    values : array-like
        Classification: ``predict_proba`` output of shape ``(n, 2)`` (column 1 is the
        positive class) or, with ``two_columns=None``, also the positive-class
        probabilities of shape ``(n,)``.  Regression: predictions ``(n,)`` or ``(n, 1)``.
    n : int
        Rows expected.
    task : {"classification", "regression"}
    what : str
        How the values were obtained, for the error message.
    two_columns : bool or None
        ``True``: only the ``(n, 2)`` form is accepted (a model's ``predict_proba``).

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    if isinstance(values, (pd.Series, pd.DataFrame)):
        values = values.to_numpy()
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(MSG_BAD_OUTPUT.format(call=what, problem="values that are not numbers")) from exc
    if task == CLASSIFICATION:
        if out.ndim == 2 and out.shape == (n, 2):
            out = out[:, 1]
        elif two_columns or out.shape != (n,):
            expected = f"({n}, 2)" if two_columns else f"({n},) or ({n}, 2)"
            raise InputError(MSG_BAD_OUTPUT.format(
                call=what, problem=f"shape {out.shape}; expected {expected}"))
    else:
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != (n,):
            raise InputError(MSG_BAD_OUTPUT.format(
                call=what, problem=f"shape {out.shape}; expected ({n},)"))
    if not np.isfinite(out).all():
        raise InputError(MSG_BAD_OUTPUT.format(call=what, problem="NaN or infinite values"))
    if task == CLASSIFICATION and ((out < 0).any() or (out > 1).any()):
        raise InputError(MSG_BAD_OUTPUT.format(call=what, problem="probabilities outside [0, 1]"))
    return out


def _scores(model, generic, X, frame, reports, task, n) -> np.ndarray:
    """Columns: generic model, own report, then each reportable group as the report."""
    method = "predict_proba" if task == CLASSIFICATION else "predict"
    # a model that reads its group attributes from columns of X takes no groups=
    own = ({} if getattr(model, "group_cols", None) else {"groups": frame})
    columns = [_call(generic, method, X, n, task, "generic"),
               _call(model, method, X, n, task, "model", **own)]
    for key in reports:
        columns.append(_call(model, method, X, n, task, "model", report=key))
    return np.column_stack(columns)


_GROUP_COLUMNS = {"group", "n", "n_pos", "prevalence", "y_mean", "status"}


def _group_row(names, key, label, y, task, min_group_size, *, in_data: bool) -> dict:
    row: dict[str, Any] = {"group": label}
    # attribute columns; a name that clashes with a column of this table gets "_value"
    row.update({(f"{name}_value" if name in _GROUP_COLUMNS else name): value
                for name, value in zip(names, key)})
    row["n"] = int(y.size)
    if task == CLASSIFICATION:
        row["n_pos"] = int(y.sum())
        row["prevalence"] = float(y.mean()) if y.size else np.nan
    else:
        row["y_mean"] = float(y.mean()) if y.size else np.nan
    row["status"] = ("no rows in the audit data" if not in_data else
                     TOO_SMALL if y.size < min_group_size else "audited")
    return row


# ------------------------------------------------------------------ one group
def _audit_group(key, members, target, scores, reports, metric_list, rng, *, task, n_boot,
                 ci_level, alpha, test, min_group_size, labels) -> list[dict]:
    """All rows of one group: rationality, each envy pair and the worst envy gap."""
    y = target[members]
    alternatives = [r for r in reports if r != key]
    columns = [0, 1] + [2 + j for j, r in enumerate(reports) if r != key]
    S = scores[np.ix_(members, columns)]
    # identical columns (e.g. a report that changes nothing) are evaluated once, so their
    # gains are exactly zero on every resample
    unique, inverse = distinct_columns(S)

    n_g = int(y.size)
    n_pos = int(y.sum()) if task == CLASSIFICATION else 0
    both_classes = 0 < n_pos < n_g
    judged = [m for m in metric_list
              if n_g >= min_group_size and (both_classes or not m.needs_both_classes)]
    is_judged = {m.name: m in judged for m in metric_list}

    states = {m.name: m.prepare(y, unique) for m in judged}
    values = {}
    for m in metric_list:
        if m.needs_both_classes and not both_classes:
            values[m.name] = np.full(S.shape[1], np.nan)
        else:
            state = states[m.name] if m.name in states else m.prepare(y, unique)
            values[m.name] = m.evaluate(state, np.ones((1, n_g), dtype=np.int64))[0][inverse]

    gains = {m.name: np.empty((n_boot, S.shape[1] - 1)) for m in judged}
    if judged:
        # one stratum, the group: its size is fixed by the design, its label mix is not
        _bootstrap(rng, [n_g], n_boot, judged, states, inverse, gains)

    base = {"group": labels[key], "n": n_g}
    if task == CLASSIFICATION:
        base.update(n_pos=n_pos, prevalence=n_pos / n_g)
    else:
        base["y_mean"] = float(y.mean())
    # the comparisons' columns of S: the generic model, then each other report
    compared = [0] + list(range(2, S.shape[1]))
    comparisons = ["generic"] + [labels[r] for r in alternatives]
    out = []
    for m in metric_list:
        v = values[m.name]
        sign = -1.0 if m.greater_is_better else 1.0
        point = sign * (np.delete(v, 1) - v[1]) + 0.0
        k_all = len(comparisons)
        nan = np.full(k_all, np.nan)
        fixed = np.zeros(k_all, dtype=bool)
        parts: list = [None] * k_all
        test_used: list = [None] * k_all
        if is_judged[m.name]:
            summ = bootstrap_summary(gains[m.name], ci_level)
            low, high = bootstrap_tails(gains[m.name], alpha)
            # a gain between columns the metric cannot tell apart is 0 on every resample
            classes = np.asarray(m.equal_columns(states[m.name]))[inverse]
            fixed = classes[compared] == classes[1]
            for k in range(k_all):
                parts[k] = ("fixed",) if fixed[k] else ("bootstrap", low[:, k], high[:, k], n_boot)
                test_used[k] = None if fixed[k] else "bootstrap"
            if test == "exact":
                _exact_tests(m, y, S, compared, fixed, summ, parts, test_used)
            for col in ("p_violation", "p_benefit"):
                summ[col] = np.where(fixed, np.nan, summ[col])
        else:
            summ = {"ci_low": nan, "ci_high": nan, "p_violation": nan, "p_benefit": nan}
        for k, comparison in enumerate(comparisons):
            out.append({**base, "metric": m.name,
                        "condition": RATIONALITY if k == 0 else ENVY_PAIR,
                        "comparison": comparison, "value": v[1],
                        "baseline": v[0] if k == 0 else v[k + 1], "gain": point[k],
                        "ci_low": summ["ci_low"][k], "ci_high": summ["ci_high"][k],
                        "p_violation": summ["p_violation"][k], "p_benefit": summ["p_benefit"][k],
                        "judged": is_judged[m.name], "test": test_used[k],
                        "_fixed": bool(fixed[k]), "_parts": [parts[k]], "_union": 1.0})
        if alternatives:
            out.append(_worst_row(out[-len(alternatives):], gains.get(m.name), ci_level,
                                  is_judged[m.name]))
    return out


def _bootstrap(rng, cells, n_boot, metric_list, states, inverse, gains) -> None:
    """Fill ``gains[name]`` (B, K - 1): gains over the generic model, then each report."""
    for start, counts in resample_counts(rng, cells, n_boot):
        for m in metric_list:
            v = m.evaluate(states[m.name], counts)[:, inverse]
            sign = -1.0 if m.greater_is_better else 1.0
            baseline = np.delete(v, 1, axis=1)  # generic, then the other reports
            gains[m.name][start:start + len(v)] = sign * (baseline - v[:, [1]]) + 0.0


def _exact_tests(m: Metric, y, S, compared, fixed, summ, parts, test_used) -> None:
    """McNemar (error) or DeLong (AUC) p-values and the evidence for their bounds."""
    kind = getattr(m, "exact_test", None)
    if kind is None:
        return
    correct = (S > 0.5) == (y == 1)[:, None]  # as the "error" metric: positive when p > 0.5
    for k, col in enumerate(compared):
        if fixed[k]:
            continue
        if kind == "mcnemar":
            b, c = mcnemar_counts(correct[:, 1], correct[:, col])
            p_v, p_b = mcnemar_test(correct[:, 1], correct[:, col])
            parts[k] = ("mcnemar", b, c, int(y.size))
        else:
            stat = delong_statistic(y, S[:, 1], S[:, col])
            if stat is None:  # a class with fewer than two rows: the bootstrap stays
                continue
            p_v, p_b = delong_pvalues(*stat)
            parts[k] = ("delong", *stat)
        summ["p_violation"][k], summ["p_benefit"][k] = p_v, p_b
        test_used[k] = kind


def _worst_row(pairs: list[dict], gains: np.ndarray | None, ci_level: float,
               judged: bool) -> dict:
    """Group-level envy row from the group's envy pairs (see :func:`audit`, Notes)."""
    gaps = np.array([p["gain"] for p in pairs], dtype=np.float64)
    worst = int(np.argmin(gaps)) if not np.isnan(gaps).all() else 0
    row = {**pairs[worst], "condition": ENVY}
    if not judged:
        return row
    n_alt = len(pairs)
    pair_gains = gains[:, 1:]
    level = 1.0 - (1.0 - ci_level) / n_alt
    simultaneous = bootstrap_summary(pair_gains, level)
    tested = [p for p in pairs if not p["_fixed"]]
    row.update(ci_low=float(simultaneous["ci_low"].min()),
               ci_high=float(simultaneous["ci_high"].min()),
               _parts=[p["_parts"][0] for p in pairs], _union=float(max(len(tested), 1)),
               _fixed=not tested)
    if not tested:  # every other report gives the same metric on every resample
        row.update(p_violation=np.nan, p_benefit=np.nan, test=None)
        return row
    p_violation = np.array([p["p_violation"] for p in tested])
    # "better than every report" fails for a report that cannot differ: p = 1 there
    p_benefit = np.array([1.0 if p["_fixed"] else p["p_benefit"] for p in pairs])
    row.update(p_violation=float(min(1.0, len(tested) * p_violation.min())),
               p_benefit=float(p_benefit.max()),
               test="+".join(sorted({p["test"] for p in tested})))
    return row


# ------------------------------------------------------------------ corrections, verdicts
def _part_bound(part: tuple, side: str, factor: float, alpha: float, union: float) -> float:
    """One comparison's one-sided bound at the level ``alpha / (factor * union)``."""
    kind = part[0]
    if kind == "fixed":
        return 0.0
    if kind == "bootstrap":
        _, low, high, n_boot = part
        return percentile_bound(low if side == "lower" else high, n_boot, factor, alpha, union,
                                side=side)
    level = alpha / (factor * union)
    if kind == "mcnemar":
        return mcnemar_bound(*part[1:], level, side)
    return delong_bound(*part[1:], level, side)


def _bounds(table: pd.DataFrame, alpha: float) -> None:
    """``lower_bound``/``upper_bound`` of every row at the level its verdict was decided.

    The lower bound of a row is the minimum over its comparisons' lower bounds at level
    ``alpha / f`` (``f`` from the correction of the benefit p-values); for the group's
    worst-envy row that is the bound on the smallest gap matching the intersection-union
    test.  The upper bound is the minimum of the comparisons' upper bounds at ``alpha /
    (f R)`` (``f`` from the violation family, ``R`` tested reports: the Bonferroni union
    test), a simultaneous bound on the smallest gap.  Bootstrap bounds agree with the
    p-values by construction (:func:`~fairuse_opt.audit._stats.percentile_bound`); for
    an exact test the inverted bound and the p-value are two computations that can
    differ in the last bits when the p-value equals the level, and the verdict decides.
    """
    for side, family, col in (("lower", "benefit", "p_benefit"),
                              ("upper", "violation", "p_violation")):
        bound = np.full(len(table), np.nan)
        sig = (table["verdict"] == (BENEFIT if side == "lower" else VIOLATION)).to_numpy()
        factors = table[f"_f_{family}"].to_numpy()
        for i, (parts, union, fixed, judged) in enumerate(zip(
                table["_parts"], table["_union"], table["_fixed"], table["judged"])):
            if not judged:
                continue
            if fixed:
                bound[i] = 0.0
                continue
            u = union if side == "upper" else 1.0
            bound[i] = min(_part_bound(p, side, factors[i], alpha, u) for p in parts)
            excludes = bound[i] > 0 if side == "lower" else bound[i] < 0
            if excludes != sig[i]:
                logger.debug("%s bound %r of row %d set by its verdict at the level's boundary",
                             side, bound[i], i)
                bound[i] = (np.nextafter(0.0, 1.0 if side == "lower" else -1.0) if sig[i]
                            else 0.0)
        table[f"{side}_bound"] = bound
        table[f"{side}_level"] = 1.0 - alpha / factors


def _finalise(table: pd.DataFrame, task: str, correction: str | None, alpha: float,
              ci_level: float) -> pd.DataFrame:
    if table.empty:
        return table
    for col, family in (("p_violation", "violation"), ("p_benefit", "benefit")):
        adjusted = np.full(len(table), np.nan)
        factors = np.full(len(table), np.nan)
        for _, idx in table.groupby(["metric", "condition"], sort=False).groups.items():
            where = table.index.get_indexer(idx)
            adjusted[where] = adjust_pvalues(table.loc[idx, col], correction)
            factors[where] = correction_factors(table.loc[idx, col], correction, alpha)
        table[col + "_adj"] = adjusted
        table[f"_f_{family}"] = factors
    gain = table["gain"].to_numpy()
    inconclusive = np.where(gain > 0, INCONCLUSIVE_GAIN,
                            np.where(gain < 0, INCONCLUSIVE_HARM, INCONCLUSIVE_ZERO))
    verdict = np.where(table["p_violation_adj"] <= alpha, VIOLATION,
                       np.where(table["p_benefit_adj"] <= alpha, BENEFIT, inconclusive))
    verdict = np.where(table["_fixed"], CANNOT_CHANGE, verdict)
    table["verdict"] = np.where(table["judged"], verdict, TOO_SMALL)
    _bounds(table, alpha)
    table["ci_level"] = np.where(table["judged"], ci_level, np.nan)
    first = ["group", "metric", "condition", "comparison", "n"]
    first += ["n_pos", "prevalence"] if task == CLASSIFICATION else ["y_mean"]
    rest = ["value", "baseline", "gain", "ci_low", "ci_high", "p_violation", "p_benefit",
            "p_violation_adj", "p_benefit_adj", "verdict", "test",
            "lower_bound", "lower_level", "upper_bound", "upper_level", "ci_level"]
    return table[first + rest].reset_index(drop=True)
