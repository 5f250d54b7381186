"""Messages (and the one extra error class) of :mod:`fairuse_opt.audit`.

Messages are module constants formatted with :meth:`str.format`, as in
:mod:`fairuse_opt.exceptions`; tests assert on them.
"""

from __future__ import annotations

from ..exceptions import InputError

__all__ = ["ModelInterfaceError"]


class ModelInterfaceError(InputError, TypeError):
    """A model lacks a method the audit needs (also a :class:`TypeError`)."""


MSG_NO_METHOD = (
    "{what} has no {method}() method, which a {task} audit needs; a personalized model must "
    "provide {method}(X, *, groups=None, report=None) (wrap a scikit-learn estimator in "
    "SklearnGroupModel)"
)
MSG_NO_PREDICT = (
    "{what} has neither predict_proba() nor predict(); the audit cannot score it"
)
MSG_NO_GENERIC = (
    "no generic model to compare with: pass generic=... or a model with a fitted generic_ attribute"
)
MSG_BAD_OUTPUT = "{call} returned {problem}"
MSG_UNKNOWN_METRIC = "unknown metric {name!r}; choose from {known}, or pass a Metric(...)"
MSG_METRIC_TASK = (
    "metric {name!r} does not apply to {task}; metrics for {task}: {known}"
)
MSG_METRIC_CALLABLE = (
    "metric {name!r} is a bare callable, so its direction is unknown: wrap it as "
    "Metric({name!r}, func, greater_is_better=...)"
)
MSG_NO_METRICS = "metrics is empty; give at least one metric"
MSG_DUPLICATE_METRIC = "metric names must be unique; {name!r} appears more than once"
MSG_Y_NOT_IN_CLASSES = (
    "y has value(s) {values} that are not among the model's classes_ {classes}"
)
MSG_Y_NOT_01 = (
    "y must hold two classes (0/1, booleans or two labels) for a classification audit; got {values}"
)
MSG_CLASSES_MISMATCH = (
    "the generic model's classes_ {generic} differ from the model's classes_ {model}"
)
MSG_BAD_RANDOM_STATE = (
    "random_state={value!r} is invalid: give a non-negative integer, a numpy Generator or None"
)
MSG_NEED_MATPLOTLIB = (
    "FairUseReport.plot() needs matplotlib, which is not installed: "
    "pip install 'fairuse_opt[plot]'"
)
MSG_PLOT_METRIC = "metric {name!r} is not in this report; it has {known}"
MSG_ADAPTER_NEEDS_GROUPS = (
    "SklearnGroupModel(encoding={encoding!r}).{method}() needs groups= (one value per row) or report="
)
MSG_ADAPTER_ENCODING = "encoding={value!r} is invalid: choose one of {choices!r}"
