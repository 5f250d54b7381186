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
    "provide {method}(X, *, groups=None, report=None), or be a fitted scikit-learn estimator "
    "(see FittedGroupModel); for predictions you already have, use audit_predictions()"
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
MSG_PLOT_AX = (
    "ax= must be one matplotlib Axes (one metric: its rationality panel only) or an array of "
    "Axes of shape {expected} (per metric: rationality, envy), got {got}"
)
MSG_ADAPTER_NEEDS_GROUPS = (
    "SklearnGroupModel(encoding={encoding!r}).{method}() needs groups= (one value per row) or report="
)
MSG_ADAPTER_ENCODING = "encoding={value!r} is invalid: choose one of {choices!r}"
MSG_NEED_GROUPS = (
    "groups= is required: the model does not read the group attributes from columns of X "
    "(no group_cols)"
)
MSG_GROUPS_DISAGREE = (
    "groups= differs from the group columns {cols!r} of X in {n_rows} row(s) (first: row "
    "{first}); give the group attributes once (in X), or make them agree"
)
MSG_FITTED_NO_ROUTE = (
    "cannot tell how the fitted {estimator} takes the group attributes: give "
    "FittedGroupModel(..., group_cols=[...]) when they are columns of X, or "
    "groups_param='groups' when its predict method takes them as a keyword; for "
    "predictions computed by other means, use audit_predictions()"
)
MSG_FITTED_BOTH_ROUTES = "give group_cols= or groups_param=, not both"
MSG_FITTED_ROUTING = (
    "the pipeline does not route {param}= to {method}(): with metadata routing on, the step "
    "that takes the groups must request them, e.g. "
    "est.set_{method}_request({param}=True) ({error})"
)
MSG_REPORT_SHAPE = "report {report!r} must give one value for each group attribute {names!r}"
MSG_NO_COLUMN = "{what}={name!r} is not a column of data (columns: {columns!r})"
MSG_NEED_DATA = "{what}={name!r} names a column, so data= (a DataFrame) is required"
MSG_NO_SCORES = (
    "give scores= (the personalized model's scores, each row under its own group) or "
    "scores_as_reported= with every group in the data"
)
MSG_REPORTS_MISSING = (
    "scores_as_reported has no scores for group(s) {groups} of the data; give the scores of "
    "every row under each group it can report, including its own (reports given: {known})"
)
MSG_OWN_DISAGREE = (
    "scores and scores_as_reported[{report!r}] differ on {n_rows} row(s) of group {report!r} "
    "(largest difference {diff:.3g}): each row's own-report scores must be the same in both"
)
MSG_REPORTS_TYPE = (
    "scores_as_reported must be a mapping {{report: scores}} or a DataFrame with one column per "
    "report; got {type}"
)
MSG_DUPLICATE_REPORT = "scores_as_reported gives group {report!r} more than once"
MSG_POS_LABEL = "pos_label={label!r} is not a value of y; y holds {values}"
