"""Exceptions and warnings raised by :mod:`fairuse_opt`, with their messages.

Every error the library raises on purpose derives from :class:`FairUseError`, so a
caller can catch the whole family at once.  Errors about bad input also derive from
:class:`ValueError`, as scikit-learn's do, so generic scikit-learn tooling (for example
``GridSearchCV(error_score=...)``) treats them as it would its own.

Messages are module constants (``MSG_*``) formatted with :meth:`str.format`; tests
assert on them, so a message changes in one place only.
"""

from __future__ import annotations

__all__ = [
    "FairUseError",
    "InputError",
    "UnseenGroupError",
    "SolverError",
    "FairUseInfeasibleError",
    "VerificationError",
    "FairUseWarning",
    "SmallGroupWarning",
    "SolverWarning",
    "FallbackWarning",
]


class FairUseError(Exception):
    """Base class of every error raised on purpose by :mod:`fairuse_opt`."""


class InputError(FairUseError, ValueError):
    """Input data or parameters are invalid (also a :class:`ValueError`)."""


class UnseenGroupError(InputError):
    """A group (or report) was not seen when the model was trained."""


class SolverError(FairUseError, RuntimeError):
    """Every solver tried failed to return a usable solution."""


class FairUseInfeasibleError(FairUseError):
    """The fair-use constraints (with the requested margin) cannot be met."""


class VerificationError(FairUseError):
    """A solution failed the numpy re-check of its fair-use constraints."""


class FairUseWarning(UserWarning):
    """Base class of the library's warnings."""


class SmallGroupWarning(FairUseWarning):
    """A group is very small or has a single class: its fit is driven by its bounds."""


class SolverWarning(FairUseWarning):
    """A solver returned an inaccurate status or failed and another was tried."""


class FallbackWarning(FairUseWarning):
    """Some groups were given the generic model because a guarantee could not be met."""


# --------------------------------------------------------------------------- messages
# Input checks (fairuse_opt/_validation.py, fairuse_opt/_groups.py)
MSG_NOT_FINITE = "{what} has {kind} values in column(s) {columns} ({n_rows} row(s) affected)"
MSG_NOT_NUMERIC = "{what} must be numeric; column(s) {columns} are not"
MSG_NO_ROWS = "{what} has no rows"
MSG_NO_FEATURES = "X has no feature columns"
MSG_BAD_NDIM = "{what} must be {expected}; got an array with shape {shape} (Reshape your data)"
MSG_LENGTH_MISMATCH = "{what} has {n_other} rows but X has {n_rows}"
MSG_NOT_BINARY = (  # its first words are those scikit-learn's check_estimator looks for
    "Only binary classification is supported: y must have exactly two classes for "
    "FairUseClassifier; found {n_classes}: {classes}"
)
MSG_CONTINUOUS = ("Unknown label type: continuous target ({n_values} distinct values); "
                  "FairUseClassifier needs exactly two classes (use FairUseRegressor)")
MSG_ONE_CLASS = "y has only one class ({cls!r}); a classifier needs two"
MSG_Y_NOT_NUMERIC = "Unknown label type: y must be numeric for FairUseRegressor; got dtype {dtype}"
MSG_Y_NONE = "{name} requires y to be passed, but the target y is None"
MSG_SPARSE = "sparse input is not supported: pass a dense array or DataFrame"
MSG_COMPLEX = "Complex data not supported"
MSG_GROUP_MISSING = "group attribute {name!r} has {n_missing} missing value(s) (first at row {first})"
MSG_GROUPS_REQUIRED = (
    "encoding={encoding!r} needs group attributes: pass groups= to {method}, or build the "
    "estimator with group_cols=[...] and pass them as columns of X"
)
MSG_GROUPS_TWICE = "groups= was passed but the estimator also has group_cols={cols!r}; use one"
MSG_GROUP_COLS_NOT_IN_X = "group_cols {missing!r} are not columns of X (columns: {columns!r})"
MSG_GROUP_COLS_NEED_FRAME = "group_cols is set, so X must be a pandas DataFrame holding those columns"
MSG_NO_GROUP_ATTRIBUTES = "groups has no columns"
MSG_EMPTY_GROUP = "group attribute {name!r} declares level(s) {levels!r} that have no rows"
MSG_EMPTY_WEIGHT_GROUP = "group {group!r} has zero total sample weight"
MSG_GROUP_NAMES_MISMATCH = "groups has attributes {got!r}; the model was trained with {expected!r}"
MSG_UNSEEN_GROUP = "group(s) {groups} were not seen in training; known groups: {known}"
MSG_BAD_REPORT = "report {report!r} must give one value for each group attribute {names!r}"
MSG_SMALL_GROUP = "group {group!r} has {n} row(s){detail}; its fit is held by the common set or penalty"
MSG_ONE_CLASS_GROUP = "group {group!r} has a single class ({cls!r}) in {n} row(s); its fit is held by the common set or penalty"
MSG_WEIGHT_BAD = "sample_weight must be finite and non-negative; {problem}"
MSG_WEIGHT_ZERO = "sample_weight sums to zero"
MSG_N_FEATURES = "X has {got} features, but {name} is expecting {expected} features as input"
MSG_FEATURE_NAMES = "X has feature columns {got!r} but the model was trained with {expected!r}"
MSG_BAD_PARAM = "{name}={value!r} is invalid: {reason}"

# Solving and fair use (fairuse_opt/_solve.py, fairuse_opt/_fairuse.py)
MSG_SOLVER_FAILED = "no solver produced a usable solution ({attempts})"
MSG_SOLVER_UNKNOWN = "solver {solver!r} is not available; installed: {installed}"
MSG_WRONG_OPTIMAL = (
    "{solver} reported the {what} optimal, but its solution is not: a Newton step from it lowers the objective by "
    "about {excess:.3g} (relative to the objective's scale; at most {limit:g} is a solver's rounding); refused "
    "rather than served (targets of a very large scale, such as Poisson rates of order 1e9, defeat the conic "
    "solvers' tolerances: solver='native' solves it)"
)
MSG_BACKEND_TASK = (
    "solver {solver!r} cannot solve this fit: it needs the task(s) {missing} ({why}), and the backend declares "
    "only {declared}; use solver='auto' or a backend that declares them"
)
MSG_BACKEND_NEEDS = (
    "solver {solver!r} cannot solve this problem: the backend needs {missing} from the problem, which provides "
    "only {provided} ({why})"
)
MSG_BACKEND_NAME = "cannot register backend {name!r}: {reason}"
MSG_NO_GENERIC_LOADED = (
    "this model was fitted with an external generic= model ({description}), which a model file "
    "does not hold; pass generic= where it is needed (for example to audit())"
)
MSG_SEQUENCE_TOO_LARGE = (
    "{setting} with envy-freeness is fitted by a sequence of convex restrictions, and this one would be "
    "too large to finish in reasonable time: {what}; {advice}"
)
MSG_CONIC_TOO_LARGE = (
    "solver={solver!r} would solve the {route} through cvxpy: a sequence of convex programs, each with "
    "{pairs} envy-freeness constraints ({groups} groups), compiled and solved one after the other (minutes "
    "at this size; at most {limit} constraints are accepted); solver='auto' solves the same programs with "
    "the native interior-point method"
)
MSG_INFEASIBLE_MARGIN = (
    "the fair-use constraints cannot be met for group(s) {groups}: {reason}"
)
MSG_VERIFY_FAILED = "the fitted model failed verification: {failures}"
MSG_FALLBACK = "group(s) {groups} were given the generic model: {reason}"
MSG_FALLBACK_EXTERNAL = (
    "on_infeasible='generic' cannot give groups the generic= model ({generic}): only a fitted generic "
    "FairUseClassifier/FairUseRegressor (encoding='none', same features and loss) can be served in place "
    "of the personalized model; {reason}"
)

# The fitting core (fairuse_opt/model, problem, solvers, fairness)
MSG_TARGET_RANGE = ("y has {n_bad} value(s) outside [{low:g}, {high:g}], the range of the {loss} loss "
                    "(first at row {first})")
MSG_BAD_PREDICTIONS = "the {what} model's predictions cannot be certified against: {problem}"

MSG_GENERIC_FAILED = "the generic model passed as generic= could not predict on the training data: {error}"
MSG_LITTLE_GAIN = (
    "the fair-use fit kept {kept:.0%} of the gain of personalization (at most {reach:.0%} is provably "
    "reachable): {reason}"
)
MSG_LITTLE_GAIN_ONEHOT = (
    "groups that share additive offsets cannot all prefer their own report; the intersectional "
    "encoding (encoding='intersectional') gives every group its own intercept and keeps the gain"
)
MSG_SERVED_PRECISION = (
    "the served raw-scale model cannot represent the fit to the verification tolerance: rounding in "
    "intercept + coef . x can reach {err:.2g} in a group's mean loss (column(s) {features} have "
    "offsets up to {ratio:.2g} times their spread); center or rescale those columns"
)
MSG_SERVED_PRECISION_SIZE = (
    "the served model's losses cannot be checked to the verification tolerance: rounding in "
    "intercept + coef . x can reach {err:.2g} in a group's mean loss, whose size is {size:.2g}; "
    "rescale the target (or the features) so that the losses are of order 1"
)
MSG_Y_SPREAD = (
    "y has a spread of {sd:.2g}, so squared errors of order {var:.2g}, whose float64 rounding "
    "({err:.2g}) exceeds what the fit and its verification can resolve: rescale y (for example "
    "divide it by {unit:.2g}); losses, margins and tol are in units of y squared"
)
MSG_SEPARABLE = (
    "alpha=0 and the training rows are separable for the {what}: its loss has no minimum (it decreases "
    "without bound as some parameters grow); use alpha > 0"
)
MSG_SEPARABLE_DIRECTION = " [{model}: the loss decreases along parameter(s) {direction}]"
MSG_ONE_CLASS_WEIGHTED = (
    "the rows of positive sample weight all have one target class: the {what}'s intercept has no "
    "minimum; a classifier needs two classes with positive weight"
)
MSG_ILL_SCALED = (
    "feature(s) {features} have offsets up to {ratio:.2g} times their spread; {what} is defined at "
    "x = 0 and cannot be fitted accurately in float64: center or rescale those features"
)
MSG_TOO_LARGE = ("X has values up to {value:.3g} in column(s) {columns}; squares of values above "
                 "1e150 overflow float64: rescale those features")
MSG_DUPLICATE_FEATURES = "{what} has duplicated column name(s) {columns}; every feature column needs its own name"
MSG_DUPLICATE_GROUP_COLUMNS = "groups has duplicated column name(s) {columns}; every group attribute needs its own name"
MSG_GROUP_VALUE_UNHASHABLE = (
    "group attribute {name!r} has a value of type {type} ({value!r}); group values must be "
    "strings, numbers or booleans"
)
MSG_GROUP_VALUES_AMBIGUOUS = (
    "group attribute {name!r} has values {values} of different types that compare equal "
    "(Python treats True == 1 == 1.0); use one type per attribute, for example strings"
)
MSG_GROUP_RECORDS = "groups given as a list of dicts must have the same keys in every row; row {row} has {keys}"
MSG_REPORT_VALUE = (
    "report {report!r}: value {value!r} of attribute {name!r} is a {type}; a report gives one "
    "string, number or boolean per attribute"
)

# Tabular encoding (fairuse_opt/tabular.py)
MSG_UNKNOWN_LEVEL = (
    "column {column!r} has value(s) {values} not seen in training; known levels: {levels}"
)
MSG_NOT_NUMBER = "column {column!r} must be numeric; value(s) {values} are not numbers"
MSG_MISSING_INPUT_COLUMNS = "the data lacks column(s) {missing} that the model needs"
MSG_FEATURE_NAME_COLLISION = (
    "encoded feature name {name!r} would be made by {sources}; rename a column or a level so "
    "that every feature has its own name"
)
MSG_LEVELS_AMBIGUOUS = (
    "column {column!r} has values {values} that are the same number written differently; "
    "write each level one way"
)
MSG_ENCODE_MISSING = "column {column!r} has {n} missing value(s); the encoding needs complete columns"

# Command line (fairuse_opt/cli.py)
MSG_NO_FILE = "data file {path} does not exist"
MSG_NOT_A_FILE = "data file {path} is not a file"
MSG_EMPTY_FILE = "data file {path} is empty"
MSG_NO_DATA_ROWS = "data file {path} has a header but no rows"
MSG_BAD_CSV = "cannot read {path} as CSV: {reason}"
MSG_NOT_UTF8 = "data file {path} is not UTF-8 text"
MSG_UNKNOWN_COLUMNS = "column(s) {missing} not found in {path}; its columns are {columns}"
MSG_COLUMN_TWICE = "column {column!r} is given as {roles}; a column can have one role only"
MSG_COLUMN_REPEATED = "{flag} names column {column!r} more than once"
MSG_NO_GROUPS = "--groups needs at least one column name"
MSG_MISSING_VALUES = (
    "{path} has missing values in {detail} ({n_rows} of {n_total} row(s)); "
    "fix the file or pass --dropna to drop those rows"
)
MSG_MISSING_VALUES_PREDICT = (
    "{path} has missing values in {detail} ({n_rows} of {n_total} row(s)); every row to score "
    "needs its features and group values"
)
MSG_DROPPED = "dropped {n_rows} of {n_total} row(s) with missing values; rows lost per group: {detail}"
MSG_ALL_DROPPED = "every row of {path} has a missing value in a used column; nothing is left to {what}"
MSG_CLI_NOT_BINARY = (
    "target column {column!r} has {n} distinct values ({values}); --task classification needs "
    "exactly 2 (use --task regression for a numeric target)"
)
MSG_CLI_ONE_CLASS = "target column {column!r} has a single value ({value!r}); classification needs 2"
MSG_NOT_NUMERIC_TARGET = (
    "target column {column!r} is not numeric (for example {value!r}); --task regression needs numbers"
)
MSG_ONE_LEVEL = (
    "group column {column!r} has a single value ({value!r}); a group attribute needs at least 2 "
    "values (drop it from --groups)"
)
MSG_CLI_GROUP_AMBIGUOUS = (
    "group column {column!r} writes one number in several ways ({values}); write each group "
    "value one way"
)
MSG_UNKNOWN_GROUP_VALUE = (
    "group column {column!r} has value(s) {values} that the model was not trained on; its "
    "values are {levels}"
)
MSG_BAD_MARGIN = "--margin {value!r} is invalid: give a number >= 0 or 'se:k'"
MSG_BAD_FAIR_USE = (
    "--fair-use {value!r} is invalid: choose both, rationality, envy_freeness or none "
    "(the values of fair_use= in Python)"
)
MSG_BAD_REPORT_ARG = (
    "--report {value!r} is invalid: give every group attribute as NAME=VALUE, comma-separated "
    "(attributes: {names})"
)
MSG_OLD_ALPHA = (
    "fit --alpha is no longer the L2 penalty: use --l2 (the estimators' l2); --alpha is "
    "the audit's significance level"
)
MSG_ALPHA_RENAMED = (
    "{name}(alpha={value!r}): alpha is the earlier name of the L2 penalty, now l2; use "
    "l2={value!r} (alpha= is kept as an alias and will be removed; alpha is a significance "
    "level in audit, fit_system and FairUseSystem)"
)
MSG_ALPHA_AND_L2 = (
    "{name} got l2={l2!r} and alpha={alpha!r}, the L2 penalty's earlier name: give l2= only"
)
MSG_BAD_MODEL = "{reason}"
MSG_MODEL_NO_INPUT = (
    "model file {path} does not name its target and group columns (it was not written by "
    "'fairuse fit'); pass --target and --groups"
)
MSG_MODEL_NO_GROUPS = (
    "model file {path} does not name its group columns (it was not written by 'fairuse fit'); "
    "pass --groups"
)
MSG_NO_AUDIT = "the audit module (fairuse_opt.audit) is not available in this installation: {reason}"
MSG_NEED_MATPLOTLIB = "--plot needs matplotlib, which is not installed: pip install 'fairuse_opt[plot]'"
MSG_CANNOT_WRITE = "cannot write {path}: {reason}"
MSG_OUT_DIR_MISSING = "cannot write {path}: folder {folder} does not exist"
MSG_OUT_IS_DIR = "cannot write {path}: it is a folder"
MSG_OUT_IS_INPUT = "{flag} {path} is the input file given to {other}; choose another output file"
MSG_OUT_TWICE = "{flag} {path} is also given to {other}; give each output its own file"
MSG_NEED_OUTPUT = "audit needs somewhere to write: give --out, --markdown or --plot"
MSG_DEMO_OUT_IS_FILE = "demo --out {path} is an existing file; the demo writes a folder: choose a folder"
MSG_DEMO_DATA_IN_OUT = "demo --data {path} is a file that the demo would overwrite in --out {out}"
MSG_NO_COMMAND = "choose a command: {commands} (see 'fairuse --help')"
MSG_INTERRUPTED = "interrupted; nothing was written"
MSG_PLOT_METRIC_NOT_AUDITED = "--plot-metric {metric!r} is not among the audited metrics {metrics}"

# The certified system (fairuse_opt/system/)
MSG_SYSTEM_NO_CANDIDATES = "candidates is empty; give at least one fitted personalized model"
MSG_SYSTEM_CANDIDATES_TYPE = (
    "candidates must be a dict {{name: fitted model}} or a list of fitted models; got {got}"
)
MSG_SYSTEM_CANDIDATE_NAME = "candidate names must be non-empty strings; got {name!r}"
MSG_SYSTEM_RESERVED_NAME = "candidate name {name!r} is reserved for the generic model"
MSG_SYSTEM_NOT_FITTED = "{what} is not fitted: fit it before building the system"
MSG_SYSTEM_NO_METHOD = "{what} has no {method}() method, which a {task} system needs"
MSG_SYSTEM_GENERIC_USES_GROUPS = (
    "the generic model uses group attributes {names!r}; it must be trained without them"
)
MSG_SYSTEM_GROUP_COLS = (
    "{what} reads its group attributes from columns of X (group_cols={cols!r}); fit the "
    "candidate with groups= instead"
)
MSG_SYSTEM_UNKNOWN_ATTRIBUTES = (
    "{what} uses group attribute(s) {unknown!r} that the assignment data does not have "
    "(attributes: {names!r})"
)
MSG_SYSTEM_N_FEATURES = "{what} expects {got} features but the generic model expects {expected}"
MSG_SYSTEM_CLASSES = "{what} has classes_ {got} but the generic model has {expected}"
MSG_SYSTEM_EXACT_METRIC = (
    "test='exact' is the McNemar test, which applies to metric='error' only; got metric={metric!r}"
)
MSG_SYSTEM_UNKNOWN_LEVEL = (
    "group attribute {name!r} has value(s) {values!r} never seen by the system (known: {known!r}); "
    "pass None to leave an attribute unreported"
)
MSG_SYSTEM_BAD_REPORT = (
    "report {report!r} must give one value (or None) for each group attribute {names!r}"
)
MSG_SYSTEM_NEEDS_GROUPS = "FairUseSystem.{method}() needs groups= (one report per row) or report="
MSG_SYSTEM_NOT_LINEAR = (
    "candidate {name!r} ({kind}) is not a linear library model and cannot be written to a model file"
)
MSG_SYSTEM_ASSIGN_SIZE = "assign_size={value!r} is invalid: give a share in (0, 1) or a row count"
MSG_SYSTEM_SPLIT_FALLBACK = (
    "{n_small} (group, label) cell(s) have fewer than {min_rows} rows; the split stratifies them "
    "by {fallback}"
)
