"""A fitted estimator or pipeline, audited as it is: never refitted, never cloned.

:func:`~fairuse_opt.audit.audit` needs a personalized model's scores under each group's
own report and under every other report.  A fitted scikit-learn estimator or pipeline
has no ``report=``; it takes the group attributes either

* as columns of ``X`` (a DataFrame), as ``FairUseClassifier(group_cols=[...])`` does, or
  any pipeline whose preprocessing encodes those columns (a ``ColumnTransformer`` with a
  ``OneHotEncoder``); a report is then scored by setting those columns of every row to
  the report's values; or
* as a keyword of ``predict_proba``/``predict`` (``groups=``, routed by scikit-learn's
  metadata routing in a pipeline); a report is then scored by passing a group frame whose
  every row is the report.

:class:`FittedGroupModel` does either, and only calls ``predict_proba``/``predict`` (and
``transform`` of a pipeline's preprocessing, to reach a final step's ``generic_``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import UnsetMetadataPassedError

from .._validation import _py, check_groups
from ..exceptions import (
    MSG_GROUP_COLS_NEED_FRAME,
    MSG_GROUP_COLS_NOT_IN_X,
    MSG_GROUP_NAMES_MISMATCH,
    InputError,
)
from ._errors import (
    MSG_FITTED_BOTH_ROUTES,
    MSG_FITTED_NO_ROUTE,
    MSG_FITTED_ROUTING,
    MSG_REPORT_SHAPE,
)

__all__ = ["FittedGroupModel", "as_auditable", "final_step"]

#: Keywords through which an estimator's predict methods may take the group attributes,
#: in the order they are looked for.
GROUP_KEYWORDS = ("sensitive_features", "groups")


def final_step(estimator: Any) -> Any:
    """The last step of a (possibly nested) scikit-learn pipeline; the estimator itself
    otherwise."""
    while hasattr(estimator, "steps") and estimator.steps:
        estimator = estimator.steps[-1][1]
    return estimator


def _preprocess(estimator: Any, X: Any) -> Any:
    """``X`` through every step of a (possibly nested) pipeline but the last."""
    while hasattr(estimator, "steps") and estimator.steps:
        if len(estimator.steps) > 1:
            X = estimator[:-1].transform(X)
        estimator = estimator.steps[-1][1]
    return X


def _keyword_of(final: Any, method_name: str) -> str | None:
    """The keyword of ``final.<method_name>`` that takes the group attributes: the one
    requested through metadata routing if any, else the first of :data:`GROUP_KEYWORDS`
    the method has."""
    method = getattr(final, method_name, None)
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return None
    found = [name for name in GROUP_KEYWORDS if name in params and params[name].kind in (
        inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    if found and hasattr(final, "get_metadata_routing"):
        try:
            requests = getattr(final.get_metadata_routing(), method_name).requests
        except AttributeError:
            requests = {}
        for name in found:  # a parameter requested under an alias is passed by its alias
            if isinstance(requests.get(name), str):
                return requests[name]
        requested = [name for name in found if requests.get(name) is True]
        if requested:
            return requested[0]
    return found[0] if found else None


def takes_report(model: Any) -> bool:
    """Whether the model scores reports itself: its ``predict_proba`` (or ``predict``)
    has an explicit ``report`` parameter (``**kwargs`` does not count: a pipeline's
    ``**params`` would pass ``report`` on to a step that does not take it)."""
    method = getattr(model, "predict_proba", None) or getattr(model, "predict", None)
    if method is None:
        return False
    try:
        return "report" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class FittedGroupModel:
    """A fitted scikit-learn estimator or pipeline as a personalized model for the audit.

    Nothing is refitted or cloned: the wrapper only calls the estimator's
    ``predict_proba`` or ``predict``.  To score every row as if it had reported group
    ``r``, it either sets the group columns of ``X`` to ``r``'s values (``group_cols``)
    or passes a group frame whose every row is ``r`` through a keyword of the predict
    method (``groups_param``; in a pipeline, scikit-learn's metadata routing carries it
    to the step that requested it).  :func:`~fairuse_opt.audit.audit` wraps a model in
    this class by itself when the model has no ``report=`` parameter; build one
    explicitly to choose the route, the generic model or the reportable groups.

    Parameters
    ----------
    estimator : fitted estimator or Pipeline
        Anything with ``predict_proba(X, ...)`` (classification) or ``predict(X, ...)``
        (regression).
    generic : fitted model, optional
        The model without group attributes, with ``predict_proba(X)`` or ``predict(X)``
        on the same ``X``.  Default: the ``generic_`` of the estimator's final step
        (a :class:`~fairuse_opt.FairUseClassifier` has one), scored on ``X`` passed
        through the pipeline's preprocessing.
    group_cols : str or list of str, optional
        Columns of ``X`` that hold the group attributes.  Default: the final step's
        ``group_cols`` when it has them.
    groups_param : str, optional
        Keyword of the predict method that takes the group attributes.  Default: the
        final step's ``sensitive_features`` or ``groups`` parameter, when it has one and
        there are no group columns.
    reports : sequence, optional
        The groups that can be reported (tuples of attribute values, in the order of the
        group attributes; dicts; or scalars for one attribute).  Default: the final
        step's ``groups_`` when it has them, otherwise the groups present in the audit
        data.

    Attributes
    ----------
    estimator, generic_ :
        As given (``generic_`` resolved as above; ``None`` when none was found).
    group_cols : list of str or None
        Set when the groups are read from columns of ``X``.
    groups_param : str or None
        Set when the groups are passed as a keyword.
    group_names_ : list of str or None
        The group attributes, in order (the group columns, or the final step's
        ``group_names_``).
    groups_ : list of tuple
        Only present when the reportable groups are known.
    classes_ : ndarray
        The estimator's classes (classifiers).

    Examples
    --------
    >>> pipe = make_pipeline(pre, FairUseClassifier(group_cols=["Age", "Sex"]))  # doctest: +SKIP
    >>> pipe.fit(frame, y)                                                          # doctest: +SKIP
    >>> audit(pipe, frame_test, y_test)  # wraps it: FittedGroupModel(pipe)         # doctest: +SKIP
    """

    def __init__(self, estimator: Any, *, generic: Any = None, group_cols: Any = None,
                 groups_param: str | None = None, reports: Sequence | None = None):
        self.estimator = estimator
        final = final_step(estimator)
        if group_cols is not None and groups_param is not None:
            raise InputError(MSG_FITTED_BOTH_ROUTES)
        if group_cols is None and groups_param is None:
            group_cols = getattr(final, "group_cols", None)
            if group_cols is None:
                method = "predict_proba" if hasattr(final, "predict_proba") else "predict"
                groups_param = _keyword_of(final, method)
        if group_cols is None and groups_param is None:
            raise InputError(MSG_FITTED_NO_ROUTE.format(estimator=type(estimator).__name__))
        self.group_cols = (None if group_cols is None
                           else [group_cols] if isinstance(group_cols, str) else list(group_cols))
        self.groups_param = groups_param
        names = self.group_cols if self.group_cols is not None else getattr(final, "group_names_", None)
        self.group_names_ = None if names is None else [str(v) for v in names]
        if reports is None:
            reports = getattr(final, "groups_", None)
        if reports is not None:
            if self.group_names_ is None:
                self.groups_ = [tuple(r) if isinstance(r, (tuple, list)) else (r,) for r in reports]
            else:
                self.groups_ = [report_key(r, self.group_names_) for r in reports]
        if hasattr(estimator, "classes_"):
            self.classes_ = estimator.classes_
        if generic is None and getattr(final, "generic_", None) is not None:
            generic = _ThroughPreprocessing(estimator, final.generic_)
        self.generic_ = generic
        if hasattr(estimator, "predict_proba"):
            self.predict_proba = self._predict_proba
        if hasattr(estimator, "predict"):
            self.predict = self._predict

    def _rows(self, X: Any, groups: Any, report: Any) -> tuple[Any, dict]:
        """``X`` and keyword arguments that give the rows the requested groups."""
        n = len(X)
        if self.group_cols is not None:
            if not isinstance(X, pd.DataFrame):
                raise InputError(MSG_GROUP_COLS_NEED_FRAME)
            missing = [c for c in self.group_cols if c not in X.columns]
            if missing:
                raise InputError(MSG_GROUP_COLS_NOT_IN_X.format(missing=missing,
                                                                columns=list(X.columns)))
            if report is None and groups is None:
                return X, {}
            X = X.copy()
            if report is not None:
                key = report_key(report, self.group_cols)
                for name, value in zip(self.group_cols, key):
                    X[name] = _constant_column(X[name], value, n)
            else:
                frame = _named(check_groups(groups, n, fit=False), self.group_cols)
                for name in self.group_cols:
                    X[name] = _like(X[name], frame[name].to_numpy())
            return X, {}
        if report is not None:
            names = self.group_names_
            if names is None:
                names = ["group"] if not isinstance(report, (tuple, list)) or len(report) == 1 \
                    else [f"group_{j}" for j in range(len(report))]
            key = report_key(report, names)
            groups = pd.DataFrame({name: [value] * n for name, value in zip(names, key)})
        return X, ({} if groups is None else {self.groups_param: groups})

    def _call(self, method: str, X: Any, groups: Any, report: Any) -> np.ndarray:
        X_rows, kwargs = self._rows(X, groups, report)
        try:
            return getattr(self.estimator, method)(X_rows, **kwargs)
        except UnsetMetadataPassedError as exc:
            raise InputError(MSG_FITTED_ROUTING.format(
                param=self.groups_param, method=method, error=exc)) from exc

    def _predict_proba(self, X: Any, *, groups: Any = None, report: Any = None) -> np.ndarray:
        """Class probabilities, every row under its own group (``groups``, or the group
        columns of ``X``) or under ``report``."""
        return self._call("predict_proba", X, groups, report)

    def _predict(self, X: Any, *, groups: Any = None, report: Any = None) -> np.ndarray:
        """Predictions, every row under its own group or under ``report``."""
        return self._call("predict", X, groups, report)

    def __repr__(self) -> str:
        route = (f"group_cols={self.group_cols!r}" if self.group_cols is not None
                 else f"groups_param={self.groups_param!r}")
        return f"FittedGroupModel({type(self.estimator).__name__}, {route})"


class _ThroughPreprocessing:
    """A final step's ``generic_``, scored on ``X`` passed through the pipeline's
    preprocessing (so it sees what the final step sees)."""

    def __init__(self, estimator: Any, generic: Any):
        self.estimator, self.generic = estimator, generic
        if hasattr(generic, "classes_"):
            self.classes_ = generic.classes_
        if hasattr(generic, "predict_proba"):
            self.predict_proba = lambda X: generic.predict_proba(_preprocess(self.estimator, X))
        if hasattr(generic, "predict"):
            self.predict = lambda X: generic.predict(_preprocess(self.estimator, X))


def report_key(report: Any, names: Sequence[str]) -> tuple:
    """A report as a tuple of attribute values in the order of ``names`` (from a tuple
    or list, a dict keyed by attribute, or a scalar for one attribute)."""
    names = list(names)
    if isinstance(report, Mapping):
        if sorted(map(str, report)) != sorted(names):
            raise InputError(MSG_REPORT_SHAPE.format(report=report, names=names))
        return tuple(_py(report[n]) for n in names)
    if isinstance(report, (tuple, list, np.ndarray)):
        if len(report) != len(names):
            raise InputError(MSG_REPORT_SHAPE.format(report=report, names=names))
        return tuple(_py(v) for v in report)
    if len(names) != 1:
        raise InputError(MSG_REPORT_SHAPE.format(report=report, names=names))
    return (_py(report),)


def _named(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    got = list(frame.columns)
    if sorted(got) == sorted(names):
        return frame[names]
    if len(got) == len(names) and all(c.startswith("group") for c in got):
        return frame.set_axis(names, axis=1)
    raise InputError(MSG_GROUP_NAMES_MISMATCH.format(got=got, expected=names))


def _constant_column(column: pd.Series, value: Any, n: int) -> pd.Series:
    """A column of ``n`` copies of ``value`` with the dtype of ``column`` where it can
    hold the value (a categorical column gains the value as a category if needed)."""
    return _like(column, [value] * n)


def _like(column: pd.Series, values: Any) -> pd.Series:
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = list(dtype.categories)
        extra = [v for v in pd.unique(pd.Series(values, dtype=object)) if v not in set(categories)]
        return pd.Series(pd.Categorical(values, categories=categories + extra,
                                        ordered=dtype.ordered), index=column.index)
    plain = pd.Series(values, index=column.index)
    try:
        out = plain.astype(dtype)
    except (TypeError, ValueError):
        return plain
    # a cast that changed a value (1.5 into an integer column) would score another group
    if not np.array_equal(out.to_numpy(dtype=object), plain.to_numpy(dtype=object)):
        return plain
    return out


def as_auditable(model: Any, generic: Any = None) -> tuple[Any, Any]:
    """The model as the audit calls it, and the generic model.

    A model whose predict method takes ``report=`` is audited as it is.  Any other
    (a fitted scikit-learn estimator or pipeline) is wrapped in :class:`FittedGroupModel`
    (never refitted); the generic model defaults to the wrapper's.
    """
    if isinstance(model, FittedGroupModel) or takes_report(model):
        return model, generic
    if not (hasattr(model, "predict_proba") or hasattr(model, "predict")):
        return model, generic  # the audit's own check names what is missing
    wrapped = FittedGroupModel(model, generic=generic)
    return wrapped, generic
