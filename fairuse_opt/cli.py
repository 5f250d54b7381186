"""The ``fairuse`` command: fit, score, audit and demonstrate fair-use models from CSV files.

::

    fairuse fit     --data D.csv --target COL --groups A,B [--features C,...] --out model.json
    fairuse fit     --system --data D.csv --target COL --groups A,B [--assign-size 0.5] --out system.json
    fairuse predict --model model.json --data D.csv [--report A=a,B=b] --out scores.csv
    fairuse audit   --data D.csv --model model.json [--out report.json] [--markdown R.md] [--plot R.png]
    fairuse audit   --predictions P.csv --target COL --groups A,B --scores COL --generic-scores COL --out report.json
    fairuse demo    [--out DIR] [--data nhefs|apnea|NAME|PATH] [--folds K]
    fairuse --version

``fit --system`` builds a certified system (:func:`~fairuse_opt.fit_system`) instead of one
model: a row with a missing group value is then a partial report, not an error; ``predict``
and ``audit`` read a system file like a model file; ``audit --predictions`` audits the score
columns of a CSV file instead (:func:`~fairuse_opt.audit.audit_predictions`), no model needed.

``python -m fairuse_opt`` runs the same command.  Categorical feature columns (text, or
named with ``--categorical``) are one-hot encoded and the model file records how, so a
raw CSV row can be scored from the model file alone.

Conventions: one meaning per flag name across subcommands (``--alpha`` is always a
significance level; the L2 penalty of ``fit`` is ``--l2``); the values of ``--fair-use``,
``--margin``, ``--group-reg`` and ``--on-infeasible`` are spelled as the estimators'
parameters and the model file's settings; an output path may not be an input or another
output, and every file is written whole or not at all (a temporary file then a rename).
A symbolic link as an output has its target replaced (the link stays); a character
device, a pipe or ``/dev/stdout`` is written in place; a block device or socket is refused.
Group and categorical columns are read exactly as written: only an empty cell is missing
(``NA``, ``None``, ``null`` are values) unless ``--na-values`` names other spellings.  In
comma-separated lists (``--groups``, ``--features``, ``--categorical``, ``--keep``,
``--metrics``, ``--na-values``) and in ``--report NAME=VALUE,...``, a name or value that
holds ``,``, ``=`` or ``\\`` writes it ``\\,``, ``\\=`` or ``\\\\``.
Bad input exits with status 2 and one line on standard error (levels and values listed
at most 20, the line at most 2,000 characters); a fit or audit that cannot be done (for
example a margin no model can meet) exits with status 1; Ctrl-C exits with status 130
and says what was written before it (nothing, or the files named; several outputs of one
command are renamed together, so all of them or none); standard output closed by its
reader after the outputs are written (``| head``) is not an error.  Progress goes to standard error through :mod:`logging`
(logger ``fairuse_opt``, every line prefixed ``fairuse:``), results to standard output.

Adding a subcommand: write ``add_NAME(subparsers)`` that registers its parser and sets
``func=cmd_NAME`` (``cmd_NAME(args) -> int``), and append it to :data:`COMMANDS`.  Keep
imports of the heavy modules inside ``cmd_NAME``: ``fairuse --help`` imports none of them.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from ._solver_names import SOLVER_CHOICES
from .exceptions import (
    MSG_ALL_DROPPED,
    MSG_BAD_CSV,
    MSG_BAD_FAIR_USE,
    MSG_BAD_MARGIN,
    MSG_BAD_MODEL,
    MSG_BAD_REPORT_ARG,
    MSG_CANNOT_WRITE,
    MSG_CLI_GROUP_AMBIGUOUS,
    MSG_CLI_NOT_BINARY,
    MSG_CLI_ONE_CLASS,
    MSG_COLUMN_REPEATED,
    MSG_COLUMN_TWICE,
    MSG_DEMO_DATA_IN_OUT,
    MSG_DEMO_OUT_IS_FILE,
    MSG_DROPPED,
    MSG_EMPTY_FILE,
    MSG_INTERRUPTED,
    MSG_MISSING_VALUES,
    MSG_MISSING_VALUES_PREDICT,
    MSG_MODEL_NO_GROUPS,
    MSG_MODEL_NO_INPUT,
    MSG_NEED_MATPLOTLIB,
    MSG_NEED_OUTPUT,
    MSG_NO_AUDIT,
    MSG_NO_COMMAND,
    MSG_NO_DATA_ROWS,
    MSG_NO_FILE,
    MSG_NO_GROUPS,
    MSG_NOT_A_FILE,
    MSG_NOT_NUMERIC_TARGET,
    MSG_NOT_UTF8,
    MSG_OLD_ALPHA,
    MSG_ONE_LEVEL,
    MSG_OUT_DIR_MISSING,
    MSG_OUT_IS_DIR,
    MSG_OUT_IS_INPUT,
    MSG_OUT_TWICE,
    MSG_PLOT_METRIC_NOT_AUDITED,
    MSG_UNKNOWN_COLUMNS,
    MSG_UNKNOWN_GROUP_VALUE,
    FairUseError,
    InputError,
)

__all__ = ["main", "build_parser", "COMMANDS", "CLIError", "read_table", "logger"]

PROG = "fairuse"
#: Exit status for bad input (files, columns, values, arguments), as argparse uses.
EXIT_INPUT = 2
#: Exit status for a fit or audit that was attempted and could not be done.
EXIT_FAILED = 1
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

DEFAULT_METRICS = {"classification": "error,auc,ece,log_loss", "regression": "mse,mae"}
SOLVERS = SOLVER_CHOICES  # defined once, in fairuse_opt._solver_names
#: ``encoding=`` values (``fairuse_opt._family.ENCODINGS``; a test checks they agree).
ENCODINGS = ("none", "onehot", "intersectional", "decoupled")
#: ``fair_use=`` values as the command line, the estimators and the model file spell them.
FAIR_USE_VALUES = {"both": "both", "rationality": "rationality", "envy_freeness": "envy_freeness",
                   "none": None}
CORRECTIONS = {"holm": "holm", "bonferroni": "bonferroni", "none": None}
TESTS = ("auto", "t", "bootstrap", "exact")
#: Assignment procedures of ``fit --system`` (:func:`~fairuse_opt.fit_system`).
PROCEDURES = ("ladder", "crossfit", "split")

#: The logger of the command line's progress lines (a child of ``fairuse_opt``).
logger = logging.getLogger("fairuse_opt.cli")

# names kept for callers of earlier versions
MSG_NOT_BINARY = MSG_CLI_NOT_BINARY
MSG_ONE_CLASS = MSG_CLI_ONE_CLASS


class CLIError(Exception):
    """An error the command line reports on one line, with an exit status."""

    def __init__(self, message: str, status: int = EXIT_INPUT):
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block)."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        self.exit(EXIT_INPUT, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


#: Most items an error message lists (levels, columns, values); the rest are counted, so
#: that an error stays one readable line whatever the data.
MAX_LISTED = 20


#: Longest text of one listed item (a cell of 10 KB is shown by its start).
MAX_ITEM_CHARS = 60
#: Longest error line: a safety net behind the capped lists.
MAX_ERROR_CHARS = 2000


def _short(item: Any, width: int = MAX_ITEM_CHARS) -> Any:
    if isinstance(item, str) and len(item) > width:
        return f"{item[:width - 3]}..."
    return item


def _capped(items: Any, limit: int = MAX_LISTED, *, cut: bool = True) -> list:
    """``items`` as a list: the first ``limit`` of them (long texts cut to their start,
    unless ``cut`` is false) and ``'... N more'`` for the rest."""
    items = [_short(i) if cut else i for i in items]
    return items if len(items) <= limit else [*items[:limit], f"... {len(items) - limit} more"]


# --------------------------------------------------------------------------- progress
class _Formatter(logging.Formatter):
    """``fairuse: [  1.2 s] message`` for progress, ``fairuse: warning: message`` for warnings."""

    def __init__(self, started: float):
        super().__init__()
        self.started = started

    def format(self, record: logging.LogRecord) -> str:
        message = _one_line(record.getMessage())
        if record.levelno >= logging.WARNING:
            return f"{PROG}: warning: {message}"
        return f"{PROG}: [{time.perf_counter() - self.started:6.1f} s] {message}"


#: Loggers whose progress lines a command shows by default: the command's own steps, and
#: for ``fit --system`` the system's (split, one line per candidate fitted with its time,
#: assignment).  The estimators' per-fit lines (``fairuse_opt.fit``: solver runs,
#: objectives) show with ``--verbose``; warnings always show.
SHOWN_LOGGERS = {"bench": ("fairuse_opt.cli", "fairuse_opt.bench"),
                 "default": ("fairuse_opt.cli", "fairuse_opt.system", "fairuse_opt.bench")}


class _StepFilter(logging.Filter):
    """Let through warnings, and progress lines of the loggers named (and their children)."""

    def __init__(self, shown: Sequence[str]):
        super().__init__()
        self.shown = tuple(shown)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return any(record.name == n or record.name.startswith(n + ".") for n in self.shown)


class _Logging:
    """Progress of one command: a handler on the ``fairuse_opt`` logger, removed afterwards.

    Default: one line per step of the command (with the time since it started); ``quiet``:
    warnings only; ``verbose``: every progress line of the library too."""

    def __init__(self, quiet: bool, verbose: bool = False, shown: Sequence[str] = SHOWN_LOGGERS["default"]):
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(_Formatter(time.perf_counter()))
        self.handler.setLevel(logging.WARNING if quiet else logging.INFO)
        if not verbose:
            self.handler.addFilter(_StepFilter(shown))
        self.root = logging.getLogger("fairuse_opt")

    def __enter__(self) -> "_Logging":
        self.level = self.root.level
        self.root.addHandler(self.handler)
        if self.root.getEffectiveLevel() > logging.INFO:
            self.root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc) -> None:
        self.root.removeHandler(self.handler)
        self.root.setLevel(self.level)


def progress(message: str) -> None:
    """One progress line (standard error, unless ``--quiet``)."""
    logger.info(message)


# --------------------------------------------------------------------------- parser
def _split_escaped(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    """Split ``text`` at each ``sep`` not preceded by a backslash; the escapes are kept (see
    :func:`_unescape`)."""
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch == sep and maxsplit != 0:
            parts.append("".join(current))
            current = []
            maxsplit -= 1
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    """``\\x`` -> ``x``: a backslash makes the next character (``,`` ``=`` or ``\\``) literal."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def _csv_list(text: str) -> list[str]:
    """Comma-separated names; a name holding a comma (or a backslash) writes it ``\\,``
    (``\\\\``)."""
    return [_unescape(s.strip()) for s in _split_escaped(text, ",") if s.strip()]


def _report_pairs(text: str, names: list[str]) -> dict[str, str] | None:
    """``--report NAME=VALUE,...`` as ``{name: value}`` (a lone VALUE for a single attribute);
    ``,``, ``=`` and ``\\`` inside a name or value are written ``\\,``, ``\\=`` and ``\\\\``.
    ``None`` when malformed or an attribute is given twice."""
    parts = [p.strip() for p in _split_escaped(text, ",") if p.strip()]
    given: dict[str, str] = {}
    for p in parts:
        pair = _split_escaped(p, "=", maxsplit=1)
        if len(pair) == 2:
            k, v = _unescape(pair[0].strip()), _unescape(pair[1].strip())
            if k in given:
                return None
            given[k] = v
        elif len(names) == 1 and len(parts) == 1:
            given[names[0]] = _unescape(p)
        else:
            return None
    return given


def _solver_name(text: str) -> str:
    for name in SOLVERS:  # case-insensitive, as the estimators' solver=
        if text.lower() == name.lower():
            return name
    raise argparse.ArgumentTypeError(f"invalid solver {text!r}; choose from {', '.join(SOLVERS)}")


def _fair_use(text: str) -> Any:
    key = text.strip().lower()
    if key in FAIR_USE_VALUES:
        return FAIR_USE_VALUES[key]
    items = _csv_list(key)
    if items and all(i in ("rationality", "envy_freeness") for i in items):  # earlier spelling
        return "both" if set(items) == {"rationality", "envy_freeness"} else items[0]
    raise argparse.ArgumentTypeError(MSG_BAD_FAIR_USE.format(value=text))


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid level {text!r}: give a number in (0, 1)") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"invalid level {text!r}: give a number in (0, 1)")
    return value


def _test_level(text: str) -> float:
    """A significance level: in (0, 0.5), as the audit and the system require."""
    value = _level(text)
    if value >= 0.5:
        raise argparse.ArgumentTypeError(f"invalid level {text!r}: give a number in (0, 0.5)")
    return value


def _l2(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_L2:
        raise argparse.ArgumentTypeError(f"invalid penalty {text!r}: give a number from 0 to {MAX_L2:g}")
    return value


#: Largest --l2: beyond it the shared weights are zero in practice, and near 1e308 the
#: penalised objective overflows (a decoupled fit with --l2 1e308 failed in LAPACK).
MAX_L2 = 1e12


#: Largest seed: numpy and scikit-learn take seeds in [0, 2**32 - 1].
MAX_SEED = 2 ** 32 - 1


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: give an integer from 0 to {MAX_SEED}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: give a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: give a positive integer")
    return value


class _Removed(argparse.Action):
    """A flag that no longer exists here: fail with a message that says what replaced it."""

    def __init__(self, option_strings, dest, message: str = "", **kw):
        kw.pop("nargs", None)
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kw)
        self.message = message

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(self.message)


class _Store(argparse._StoreAction):
    """``store``, also recording in ``namespace.given_`` that the flag was given (so that a
    flag that does not apply can be refused even when its value equals the default)."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.given_ = frozenset(getattr(namespace, "given_", frozenset())) | {self.dest}
        super().__call__(parser, namespace, values, option_string)


class _StoreFalse(argparse._StoreFalseAction):
    """``store_false`` that records the flag in ``namespace.given_`` (see :class:`_Store`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.given_ = frozenset(getattr(namespace, "given_", frozenset())) | {self.dest}
        super().__call__(parser, namespace, values, option_string)


#: ``fit`` flags of a single model, refused with ``--system`` (destination -> flag).
FIT_MODEL_ONLY = {"encoding": "--encoding", "fair_use": "--fair-use", "margin": "--margin",
                  "group_reg": "--group-reg", "on_infeasible": "--on-infeasible"}
#: ``fit`` flags of the system, refused without ``--system``.
FIT_SYSTEM_ONLY = {"assign_size": "--assign-size", "metric": "--metric", "seed": "--seed",
                   "n_boot": "--n-boot", "correction": "--correction", "test": "--test", "kind": "--kind",
                   "envy": "--no-envy", "procedure": "--procedure"}
MSG_FIT_NOT_WITH_SYSTEM = (
    "{flags}: not used by --system, which trains the default candidate pool (one-hot, "
    "intersectional and decoupled models, with and without fair use, on every subset of the "
    "group attributes); leave {them} out"
)
MSG_FIT_NEEDS_SYSTEM = "{flags}: given without --system; these flags set the certified system's assignment"
MSG_FIT_BAD_ASSIGN_SIZE = (
    "--assign-size {value!r} is invalid: give a share in (0, 1) or a number of rows"
)
MSG_FIT_EXACT_METRIC = (
    "--test exact is McNemar's test, which applies to the error rate only (--metric error, "
    "classification); the metric here is {metric!r}: leave --test out or use --metric error"
)
MSG_FEATURE_RANGE = (
    "data file {path}: feature column(s) {columns} have values that are not finite or are beyond "
    "±{limit:g} in {n_rows} row(s); fix or drop them"
)
MSG_AUDIT_NO_GROUPS = (
    "model file {path} uses no group attribute (fitted with --encoding none): it gives every group the "
    "scores of its generic model, so an audit per group has nothing to compare; audit a model fitted "
    "with group attributes (any other --encoding)"
)
MSG_FIT_NO_REPORTED_VALUE = "group column {column!r} has no value at all; drop it from --groups"
MSG_SYSTEM_BAD_REPORT_ARG = (
    "--report {value!r} is invalid: give group attributes as NAME=VALUE, comma-separated; an "
    "attribute left out is not reported (attributes: {names})"
)


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress lines (warnings are still shown)")
    p.add_argument("--verbose", action="store_true",
                   help="also the library's progress lines (each fit's solver runs and objectives)")


def _add_na_values(p: argparse.ArgumentParser) -> None:
    p.add_argument("--na-values", type=_csv_list, default=[], metavar="TEXT,...",
                   help="cell spellings that mean a missing value (with --system: an attribute not "
                        "reported); group and categorical columns are read exactly as written, so by "
                        "default only an empty cell is missing there (NA, None, null are values); "
                        "numeric columns also read NA, NaN, null, ... as missing")


def add_fit(sub) -> None:
    """Register ``fairuse fit``."""
    fit = sub.add_parser("fit", help="fit a model (or a certified system) on a CSV file and write the model file",
                         description="Fit a model on a CSV file and write the portable JSON model file; with "
                                     "--system, build a certified system (fit_system): train the default "
                                     "candidate pool on part of the rows, assign a model to every reporting "
                                     "option on the rest, and write the system file.")
    fit.add_argument("--data", required=True, help="CSV file with a header row")
    fit.add_argument("--target", required=True, help="target column")
    fit.add_argument("--groups", required=True, type=_csv_list,
                     help="comma-separated group attribute columns, e.g. Age,Sex (a name holding ',' "
                          "or '=' writes it '\\,' or '\\=')")
    fit.add_argument("--features", type=_csv_list, default=None,
                     help="comma-separated feature columns (default: every other column)")
    fit.add_argument("--categorical", type=_csv_list, default=[],
                     help="feature columns to one-hot encode even if numeric (text columns always are)")
    fit.add_argument("--task", choices=tuple(TASK_ESTIMATORS), default="classification",
                     help="classification (binary target, logistic loss; default), regression (squared error) "
                          "or poisson (counts or rates >= 0, Poisson loss, log link)")
    fit.add_argument("--encoding", action=_Store, choices=ENCODINGS, default="intersectional",
                     help="how group attributes enter the model (encoding=; default: intersectional)")
    fit.add_argument("--fair-use", action=_Store, type=_fair_use, default="both", metavar="{both,rationality,envy_freeness,none}",
                     help="guarantees to enforce (fair_use=): both (default), rationality, envy_freeness or none")
    fit.add_argument("--margin", action=_Store, default="0",
                     help="gain required of every group over the generic model (margin=): a number "
                          "(loss units) or se:k (k standard errors); default 0")
    fit.add_argument("--l2", type=_l2, default=1e-3, metavar="L2",
                     help="weight of the L2 penalty on the shared weights (the estimators' l2=; default 1e-3)")
    fit.add_argument("--alpha", action=_Store, default=None, metavar="LEVEL",
                     help="with --system: family-wise significance level of the assignment (default 0.1); "
                          "without --system refused (the L2 penalty is --l2)")
    fit.add_argument("--group-reg", action=_Store, choices=("set", "penalty"), default="set",
                     help="regularisation of group-specific parameters (group_reg=; default: set)")
    fit.add_argument("--on-infeasible", action=_Store, choices=("raise", "generic"), default="raise",
                     help="when a guarantee cannot be met (on_infeasible=): fail (raise, default) or "
                          "give those groups the generic model (generic)")
    fit.add_argument("--solver", type=_solver_name, default="auto",
                     help=f"solver tried first (solver=): {', '.join(SOLVERS)} (default: auto)")
    fit.add_argument("--dropna", action="store_true",
                     help="drop rows with missing values in the used columns (reported per group)")
    fit.add_argument("--out", required=True, help="model file to write (JSON)")
    system = fit.add_argument_group("certified system (--system)")
    system.add_argument("--system", action="store_true",
                        help="build a certified system with fit_system instead of one model; rows with a "
                             "missing group value are partial reports (other missing values need --dropna)")
    system.add_argument("--procedure", action=_Store, choices=PROCEDURES, default="ladder",
                        help="ladder (default): candidates chosen by cross-validation on the training part, "
                             "tested at shrinkage strengths on the whole assignment part; crossfit: out-of-fold "
                             "evidence on every row, models refitted (approximate guarantee); split: the "
                             "earlier design (see docs/system.md)")
    system.add_argument("--assign-size", action=_Store, default=None,
                        help="share (in (0, 1)) or number of rows kept out of training to assign the "
                             "models (default 0.5 with --procedure ladder, 0.3 with split)")
    system.add_argument("--metric", action=_Store, default=None,
                        help="assignment metric: log_loss (default; error with --procedure split or "
                             "--test exact), error, brier, auc, ece for classification; mse (default), mae "
                             "for regression; poisson_deviance (default), mse, mae for poisson")
    system.add_argument("--n-boot", action=_Store, type=_positive_int, default=1000,
                        help="bootstrap resamples of the assignment tests (default 1000)")
    system.add_argument("--correction", action=_Store, choices=tuple(CORRECTIONS), default="holm",
                        help="multiple-testing correction across the options tested (default: holm)")
    system.add_argument("--test", action=_Store, choices=TESTS, default="auto",
                        help="assignment tests: auto (default: paired t-test for mean-of-row metrics, "
                             "bootstrap otherwise; bootstrap with --procedure split), t, bootstrap, or exact "
                             "(McNemar; --metric error only)")
    system.add_argument("--kind", action=_Store, choices=("full", "minimal"), default="full",
                        help="--procedure split only: full (default) or minimal, a single candidate where it "
                             "significantly helps")
    system.add_argument("--no-envy", dest="envy", action=_StoreFalse,
                        help="keep personalizations that another reporting option would rather have (envy=False)")
    system.add_argument("--seed", action=_Store, type=_seed, default=0,
                        help="seed of the split and the bootstrap (default 0)")
    _add_na_values(fit)
    _add_quiet(fit)
    fit.set_defaults(func=cmd_fit)


def add_predict(sub) -> None:
    """Register ``fairuse predict``."""
    pred = sub.add_parser("predict", help="score a CSV file with a model file",
                          description="Score every row of a CSV file with a model file: under the row's "
                                      "own group, or under one reported group for every row (--report).")
    pred.add_argument("--model", required=True, help="model file (or system file) written by 'fairuse fit'")
    pred.add_argument("--data", required=True, help="CSV file with the model's feature and group columns")
    pred.add_argument("--report", default=None,
                      help="score every row as if it reported this group: NAME=VALUE,... for every "
                           "group attribute, e.g. Age=60+,Sex=Male (group columns are then not needed); "
                           "for a system file an attribute left out is not reported; ',' '=' '\\' inside "
                           "a name or value are written '\\,' '\\=' '\\\\'")
    pred.add_argument("--keep", type=_csv_list, default=[],
                      help="comma-separated columns of the data copied to the output (e.g. an id)")
    pred.add_argument("--groups", type=_csv_list, default=None,
                      help="group columns (default: from the model file)")
    pred.add_argument("--dropna", action="store_true",
                      help="drop rows with missing values in the feature (and, for a model file, group) "
                           "columns, reported per group; use --keep to carry an id column")
    pred.add_argument("--out", required=True, help="CSV file of scores to write: score, probability (of the "
                                                   "class named in positive_class) and prediction, or "
                                                   "prediction for regression")
    _add_na_values(pred)
    _add_quiet(pred)
    pred.set_defaults(func=cmd_predict)


def add_audit(sub) -> None:
    """Register ``fairuse audit``."""
    aud = sub.add_parser("audit", help="audit a model file, or a CSV file of predictions, on (held-out) data",
                         description="Audit a model file on a CSV file (--model and --data), or the "
                                     "predictions in a CSV file (--predictions): per group, gain over the "
                                     "generic model and envy of other reports, with bootstrap bounds and "
                                     "one-sided tests.  Prints the per-group gains.")
    aud.add_argument("--data", default=None, help="CSV file with the model's columns (with --model)")
    aud.add_argument("--model", default=None, help="model file (or system file) written by 'fairuse fit'")
    aud.add_argument("--metrics", type=_csv_list, default=None,
                     help="comma-separated metrics (default: error,auc,ece,log_loss for classification; "
                          "mse,mae for regression)")
    aud.add_argument("--n-boot", type=_positive_int, default=1000, help="bootstrap resamples (default 1000)")
    aud.add_argument("--alpha", type=_test_level, default=0.1,
                     help="significance level of the one-sided tests, in (0, 0.5) (default 0.1)")
    aud.add_argument("--correction", choices=tuple(CORRECTIONS), default="holm",
                     help="multiple-testing correction across groups (default: holm)")
    aud.add_argument("--test", choices=TESTS, default="bootstrap",
                     help="p-values: bootstrap (default) or exact (McNemar for error, DeLong for AUC)")
    aud.add_argument("--ci-level", type=_level, default=0.95,
                     help="level of the two-sided bootstrap intervals (default 0.95)")
    aud.add_argument("--seed", type=_seed, default=0, help="bootstrap seed (default 0)")
    aud.add_argument("--target", default=None,
                     help="target column (default: from the model file; required with --predictions)")
    aud.add_argument("--groups", type=_csv_list, default=None,
                     help="group columns (default: from the model file; required with --predictions)")
    aud.add_argument("--dropna", action="store_true", help="drop rows with missing values (reported per group)")
    aud.add_argument("--out", default=None,
                     help="audit report to write (JSON); optional when --markdown or --plot is given")
    aud.add_argument("--markdown", default=None, help="also write the report as markdown")
    aud.add_argument("--plot", default=None, help="also write a plot (PNG; needs matplotlib)")
    aud.add_argument("--plot-metric", default=None,
                     help="metric shown in the plot (default: the first audited metric)")
    _add_na_values(aud)
    pred = aud.add_argument_group(
        "audit of predictions (--predictions, instead of --model and --data)",
        "Predictions made by any model: a CSV file with the target, the group columns and score "
        "columns (classification: the probability of the positive class; regression: the "
        "prediction).  The report is the one fairuse_opt.audit.audit_predictions() gives.")
    pred.add_argument("--predictions", default=None, metavar="CSV",
                      help="CSV file of predictions (needs --target, --groups and --generic-scores)")
    pred.add_argument("--scores", default=None, metavar="COLUMN",
                      help="the personalized model's scores, each row under its own group (may be left out "
                           "when --scores-as-reported covers every group of the file)")
    pred.add_argument("--generic-scores", default=None, metavar="COLUMN",
                      help="the generic model's scores")
    pred.add_argument("--scores-as-reported", nargs=2, action="append", default=None,
                      metavar=("REPORT", "COLUMN"),
                      help="for envy: the personalized model's scores of every row as if it had reported "
                           "REPORT (NAME=VALUE,... as in 'predict --report'); once per group that can be "
                           "reported, covering every group of the file; without it, no envy rows")
    pred.add_argument("--task", choices=("classification", "regression"), default=None,
                      help="default: classification when the target has at most 2 values, else regression")
    pred.add_argument("--pos-label", default=None, metavar="VALUE",
                      help="classification: the target value whose probability the scores give (default: "
                           "1 for 0/1 targets, otherwise the larger of the two values)")
    _add_quiet(aud)
    aud.set_defaults(func=cmd_audit)


def add_demo(sub) -> None:
    """Register ``fairuse demo``."""
    demo = sub.add_parser("demo", help="run the demo on real data and write a report",
                          description="Over repeated held-out folds of a real dataset, audit standard "
                                      "personalized models, the fair-use model and the certified system "
                                      "on new patients, and write a report.")
    demo.add_argument("--out", default=None,
                      help="output folder (default: fairuse_demo_output in the current folder)")
    demo.add_argument("--data", default="nhefs",
                      help="nhefs (default; pip install 'fairuse_opt[demo]'), apnea (from FAIRUSE_DATA_DIR), "
                           "framingham, pima, birthwt, diabetes, the path of apnea.csv, or the path of any "
                           "CSV file with --target and --groups")
    demo.add_argument("--target", default=None,
                      help="with --data PATH of a CSV file: its binary target column (the second value in "
                           "sorted order is the positive class)")
    demo.add_argument("--groups", type=_csv_list, default=None,
                      help="with --data PATH of a CSV file: its group attribute columns, e.g. Age,Sex; every "
                           "other column is a feature (text columns one-hot encoded)")
    demo.add_argument("--dropna", action="store_true",
                      help="with --data PATH of a CSV file: drop rows with missing values (reported per group)")
    _add_na_values(demo)
    demo.add_argument("--folds", type=_positive_int, default=None, help="folds (default 5, at least 2)")
    demo.add_argument("--n-boot", type=_positive_int, default=None,
                      help="bootstrap resamples of the audits and of the assignment (default 500)")
    demo.add_argument("--seed", type=_seed, default=0, help="seed of the folds and the bootstrap (default 0)")
    _add_quiet(demo)
    demo.set_defaults(func=cmd_demo)



def add_bench(sub) -> None:
    """Register ``fairuse bench`` (the study benchmark, :mod:`fairuse_opt.bench`)."""
    from .bench._cli import add_arguments as _bench_arguments, cmd_bench

    bench = sub.add_parser("bench", help="run the study benchmark (datasets x models x methods x folds)",
                           description="The study benchmark: see benchmarks/README.md.")
    _bench_arguments(bench).set_defaults(func=cmd_bench)

#: The subcommands, in the order ``--help`` lists them: each registers its own parser.
COMMANDS: list[Callable[[Any], None]] = [add_fit, add_predict, add_audit, add_demo, add_bench]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fairuse`` command (one subparser per :data:`COMMANDS`).

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = _Parser(prog=PROG, description=(
        "Fit personalized logistic/linear models that make fair use of group attributes "
        "(every group gains from reporting them, and envies no other group's report), "
        "score and audit them on other data, or run the demo."))
    parser.add_argument("--version", action="version", version=f"{PROG} (fairuse_opt) {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    sub.metavar = "{" + ",".join(sub.choices) + "}"
    return parser


# --------------------------------------------------------------------------- paths
def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_paths(inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Path]:
    """Refuse an output that is an input or another output; check each output's folder.

    Parameters
    ----------
    inputs, outputs : dict
        ``{flag: path or None}`` (``None``: not given).

    Returns
    -------
    dict
        ``{flag: Path}`` of the outputs given.
    """
    from ._files import output_kind

    ins = {f: _resolved(p) for f, p in inputs.items() if p is not None}
    outs: dict[str, Path] = {}
    for flag, p in outputs.items():
        if p is None:
            continue
        path = Path(p)
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise CLIError(MSG_OUT_DIR_MISSING.format(path=p, folder=folder))
        if path.is_dir():
            raise CLIError(MSG_OUT_IS_DIR.format(path=p))
        try:  # a block device or a socket: refused before any work
            output_kind(path)
        except OSError as exc:
            raise CLIError(MSG_CANNOT_WRITE.format(path=p, reason=_one_line(exc))) from None
        r = _resolved(p)
        for other, q in ins.items():
            if _same_file(r, q):
                raise CLIError(MSG_OUT_IS_INPUT.format(flag=flag, path=p, other=other))
        for other, q in outs.items():
            if _same_file(r, _resolved(q)):
                raise CLIError(MSG_OUT_TWICE.format(flag=flag, path=p, other=other))
        outs[flag] = path
    return outs


def _commit(staged: Any) -> None:
    try:
        for path in staged.commit():
            progress(f"wrote {path}")
    except OSError as exc:
        raise CLIError(MSG_CANNOT_WRITE.format(path=getattr(exc, "filename", "?"), reason=_one_line(exc))) from None


def _stage(staged: Any, path: Path, content: Any) -> None:
    try:
        staged.add(path, content)
    except OSError as exc:
        raise CLIError(MSG_CANNOT_WRITE.format(path=path, reason=_one_line(exc))) from None


# --------------------------------------------------------------------------- data
#: The cell spellings pandas reads as a missing value by default (``read_csv``'s
#: ``na_values``): in numeric columns they still mean "missing"; in group and categorical
#: columns only an empty cell does (``NA`` is North America, ``None`` a level), unless
#: ``--na-values`` names a spelling.
DEFAULT_NA_SPELLINGS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def read_table(path: str | Path, *, text_columns: Sequence[str] = (), needed: Sequence[str] = (),
               na_values: Sequence[str] = ()):
    """Read a CSV file, checking that it exists, has rows and has the ``needed`` columns.

    Parameters
    ----------
    path : str or Path
        The CSV file (header row required).
    text_columns : sequence of str
        Columns read as text, exactly as written (group attributes, categorical
        features): only an empty cell (or a spelling of ``na_values``) is missing, so
        ``NA``, ``None`` or ``null`` are values; they are matched to the model file's
        values by value.
    needed : sequence of str
        Columns that must be present.
    na_values : sequence of str
        More spellings of a missing cell, in every column (``--na-values``).  The other
        columns also read pandas' default spellings (:data:`DEFAULT_NA_SPELLINGS`) as
        missing.

    Returns
    -------
    DataFrame
        A column that is not a text column and whose every non-missing cell is a
        number is numeric (float64), even when a cell does not fit in an integer.

    Raises
    ------
    CLIError
        The file is missing, unreadable or has no rows, or lacks a needed column.
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise CLIError(MSG_NO_FILE.format(path=path))
    if not p.is_file():
        raise CLIError(MSG_NOT_A_FILE.format(path=path))
    try:
        header = pd.read_csv(p, nrows=0)
        columns = [str(c) for c in header.columns]
        missing = [c for c in dict.fromkeys(needed) if c not in columns]
        if missing:
            raise CLIError(MSG_UNKNOWN_COLUMNS.format(missing=_capped(missing), path=path,
                                                      columns=_capped(columns, 30)))
        text = {c for c in text_columns if c in columns}
        extra = [str(v) for v in na_values]
        na = {c: ["", *extra] if c in text else [*DEFAULT_NA_SPELLINGS, *extra] for c in header.columns}
        frame = pd.read_csv(p, dtype={c: str for c in text}, keep_default_na=False, na_values=na)
    except pd.errors.EmptyDataError:
        raise CLIError(MSG_EMPTY_FILE.format(path=path)) from None
    except pd.errors.ParserError as exc:
        raise CLIError(MSG_BAD_CSV.format(path=path, reason=_one_line(exc))) from None
    except UnicodeDecodeError:
        raise CLIError(MSG_NOT_UTF8.format(path=path)) from None
    except OSError as exc:
        raise CLIError(MSG_BAD_CSV.format(path=path, reason=_one_line(exc))) from None
    if len(frame) == 0:
        raise CLIError(MSG_NO_DATA_ROWS.format(path=path))
    for c in frame.columns:  # numbers pandas left as text (an integer beyond int64): numeric
        col = frame[c]
        if str(c) in text or pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        values = pd.to_numeric(col, errors="coerce")
        if col.notna().any() and not (values.isna() & col.notna()).any():
            frame[c] = values.astype("float64")
    return frame


def handle_missing(frame, columns: Sequence[str], group_columns: Sequence[str], *,
                   dropna: bool, path: str, what: str):
    """Refuse rows with missing values in ``columns``, or drop them and say how many per group.

    Returns
    -------
    frame : DataFrame
        ``frame`` without the dropped rows (index reset).
    message : str or None
        What was dropped, per intersectional group (``None``: nothing was).
    """
    used = frame[list(dict.fromkeys(columns))]
    na = used.isna()
    bad_rows = na.any(axis=1).to_numpy()
    if not bad_rows.any():
        return frame, None
    n_total, n_bad = len(frame), int(bad_rows.sum())
    if not dropna:
        counts = na.sum()
        detail = ", ".join(_capped([f"{c} ({int(k)} row(s))" for c, k in counts.items() if k]))
        template = MSG_MISSING_VALUES  # every subcommand has --dropna
        raise CLIError(template.format(path=path, detail=detail, n_rows=n_bad, n_total=n_total))
    if n_bad == n_total:
        raise CLIError(MSG_ALL_DROPPED.format(path=path, what=what))
    dropped = frame.loc[bad_rows, list(group_columns)]
    known = ~dropped.isna().any(axis=1)
    parts = []
    if known.any():
        lost = dropped[known].value_counts(sort=False).sort_index()
        for key, k in lost.items():
            key = key if isinstance(key, tuple) else (key,)
            parts.append(", ".join(f"{a}={v}" for a, v in zip(group_columns, key)) + f": {int(k)}")
    if (~known).any():
        parts.append(f"(group value missing): {int((~known).sum())}")
    message = MSG_DROPPED.format(n_rows=n_bad, n_total=n_total, detail="; ".join(_capped(parts)))
    return frame.loc[~bad_rows].reset_index(drop=True), message


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v


#: ``fit --task``: the estimator fitted (a class of :mod:`fairuse_opt.estimators`, imported
#: when the fit starts); its loss decides the rest (targets, default metric, predictions).
TASK_ESTIMATORS = {"classification": "FairUseClassifier", "regression": "FairUseRegressor",
                   "poisson": "FairUsePoissonRegressor"}
#: The loss (its name in :data:`fairuse_opt.model.losses.LOSSES`) of each task's estimator.
TASK_LOSSES = {"classification": "log_loss", "regression": "squared_error", "poisson": "poisson"}


def _estimator_class(task: str) -> Any:
    from . import estimators

    return getattr(estimators, TASK_ESTIMATORS[task])


def _check_target(y, column: str, task: str) -> None:
    import pandas as pd

    if task == "classification":
        values = pd.unique(y)
        if len(values) == 1:
            raise CLIError(MSG_CLI_ONE_CLASS.format(column=column, value=_py(values[0])))
        if len(values) != 2:
            shown = _capped(sorted(map(str, values)), 6)
            raise CLIError(MSG_CLI_NOT_BINARY.format(column=column, n=len(values), values=", ".join(shown)))
    elif not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        bad = y[pd.to_numeric(y, errors="coerce").isna()]
        example = bad.iloc[0] if len(bad) else y.iloc[0]
        raise CLIError(MSG_NOT_NUMERIC_TARGET.format(column=column, value=_py(example)))


def _number(text: Any) -> float | None:
    import math

    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _check_group_columns(frame, group_columns: Sequence[str], *, min_levels: int = 2) -> None:
    """At least ``min_levels`` values per attribute, and no number written two ways (``1`` and
    ``1.0``)."""
    import pandas as pd

    for c in group_columns:
        values = pd.unique(frame[c])
        if len(values) < min_levels:
            raise CLIError(MSG_ONE_LEVEL.format(column=c, value=_py(values[0])))
        spellings: dict[float, list[str]] = {}
        for v in values:
            x = _number(v)
            if x is not None:
                spellings.setdefault(x, []).append(str(v))
        clash = [sorted(s) for s in spellings.values() if len(s) > 1]
        if clash:
            raise CLIError(MSG_CLI_GROUP_AMBIGUOUS.format(column=c, values=", ".join(_capped(clash[0]))))


def _check_roles(target: str | None, groups: Sequence[str], features: Sequence[str]) -> None:
    for flag, cols in (("--groups", groups), ("--features", features)):
        seen = set()
        for c in cols:
            if c in seen:
                raise CLIError(MSG_COLUMN_REPEATED.format(flag=flag, column=c))
            seen.add(c)
    roles: dict[str, list[str]] = {}
    for role, cols in (("--target", [target] if target else []), ("--groups", groups),
                       ("--features", features)):
        for c in cols:
            roles.setdefault(c, []).append(role)
    for c, rs in roles.items():
        if len(rs) > 1:
            raise CLIError(MSG_COLUMN_TWICE.format(column=c, roles=" and ".join(rs)))


def _parse_margin(text: str) -> Any:
    text = text.strip()
    if text.startswith("se:"):
        k = _number(text[3:])
        if k is None or k < 0:
            raise CLIError(MSG_BAD_MARGIN.format(value=text))
        return text
    value = _number(text)
    if value is None or value < 0:
        raise CLIError(MSG_BAD_MARGIN.format(value=text))
    return value


def _value_matcher(levels: Sequence[Any]) -> Callable[[Any], Any]:
    """Map a cell (text from a CSV) to the model's level it denotes, by value.

    Text matches a text level exactly; a number (or text that reads as one) matches the
    level with the same numeric value.  Unmatched cells come back unchanged.
    """
    exact = {lv: lv for lv in levels if isinstance(lv, str)}
    by_number: dict[float, Any] = {}
    clashes = set()
    for lv in levels:
        if isinstance(lv, bool):
            exact.setdefault(str(lv), lv)
            continue
        x = _number(lv)
        if x is None:
            continue
        if x in by_number and by_number[x] != lv:
            clashes.add(x)
        by_number.setdefault(x, lv)
    for x in clashes:
        by_number.pop(x)

    def match(cell: Any) -> Any:
        if cell in exact:
            return exact[cell]
        x = _number(cell)
        if x is not None and x in by_number:
            return by_number[x]
        return cell

    return match


def _model_group_values(G, est: Any, *, strict: bool = False):
    """Group cells (read as text) as the model's group values, matched by value."""
    import pandas as pd

    index = est.group_index_
    if index is None:
        return G
    out = {}
    for col, name in zip(G.columns, index.names):
        levels = index.levels[name]
        match = _value_matcher(levels)
        values = [match(v) for v in G[col]]
        if strict:
            unknown = sorted({str(v) for v in values if v not in set(levels)})
            if unknown:
                raise CLIError(MSG_UNKNOWN_GROUP_VALUE.format(column=col, values=_capped(unknown, 5), levels=_capped(levels)))
        out[name] = values
    return pd.DataFrame(out, index=G.index)


def _read_model(path: str) -> Any:
    from .model_io import read

    try:
        return read(path)
    except InputError as exc:
        raise CLIError(MSG_BAD_MODEL.format(reason=_one_line(exc))) from None


def _command_text(args: argparse.Namespace) -> str:
    return " ".join([PROG, *map(shlex.quote, args.argv)])


# --------------------------------------------------------------------------- fit
@dataclass
class TrainingTable:
    """A training CSV read, checked and encoded (what ``fairuse fit`` fits on).

    Attributes
    ----------
    X : DataFrame
        Numeric features (``encoding.feature_names``).
    y : Series
        The target.
    G : DataFrame
        The group columns, as text.
    encoding : TabularEncoding
        How the raw columns became ``X`` (written to the model file).
    groups : list of str
        Group column names.
    n_rows : int
        Rows used (after ``--dropna``).
    dropped : str or None
        What ``--dropna`` dropped, per group.
    """

    X: Any
    y: Any
    G: Any
    encoding: Any
    groups: list
    n_rows: int
    dropped: str | None


def load_training_table(args: argparse.Namespace, *, partial_reports: bool = False) -> TrainingTable:
    """Read ``--data`` with the roles given by ``--target``, ``--groups``, ``--features`` and
    ``--categorical``; refuse bad input (``CLIError``) before any progress line.

    ``partial_reports`` (``fit --system``): a missing group value is a partial report, kept
    (missing target or feature values are still refused, or dropped with ``--dropna``)."""
    groups = list(args.groups)
    if not groups:
        raise CLIError(MSG_NO_GROUPS)
    explicit = list(args.features) if args.features is not None else []
    _check_roles(args.target, groups, explicit)
    frame = read_table(args.data, text_columns=[*groups, *args.categorical],
                       needed=[args.target, *groups, *explicit, *args.categorical], na_values=args.na_values)
    features = explicit if args.features is not None else [
        c for c in frame.columns if c != args.target and c not in groups]
    _check_roles(args.target, groups, features)
    unknown_cat = [c for c in args.categorical if c not in features]
    if unknown_cat:
        raise CLIError(MSG_COLUMN_TWICE.format(column=unknown_cat[0], roles="--categorical but not a feature"))
    frame, dropped = handle_missing(frame, [args.target, *([] if partial_reports else groups), *features], groups,
                                    dropna=args.dropna, path=args.data, what="fit")
    _check_target(frame[args.target], args.target, args.task)
    if partial_reports:
        for c in groups:  # the values reported, each attribute on its own
            reported = frame[[c]].dropna()
            if not len(reported):
                raise CLIError(MSG_FIT_NO_REPORTED_VALUE.format(column=c))
            _check_group_columns(reported, [c])
    else:
        _check_group_columns(frame, groups)
    from .tabular import TabularEncoding

    _check_text_columns(frame, features, args.categorical, args.data)
    encoding = TabularEncoding.fit(frame[features], categorical=args.categorical)
    X = encoding.transform(frame)
    _check_feature_range(X, args.data)
    return TrainingTable(X=X, y=frame[args.target], G=frame[groups], encoding=encoding,
                         groups=groups, n_rows=len(frame), dropped=dropped)


MSG_MOSTLY_NUMERIC = (
    "data file {path}: column {column!r} holds numbers in {n_num} of {n} row(s) but also {values}, which "
    "would make it a text column one-hot encoded into {n_levels} feature(s); fix those cells, or name the "
    "column in --categorical if it is a category"
)


#: A feature column whose cells are numbers but for this share or less is refused (typos).
MAX_TEXT_SHARE = 0.05


def _check_text_columns(frame, features: Sequence[str], categorical: Sequence[str], path: Any) -> None:
    """Refuse a feature column of numbers with a few text cells (at most 5%: a typo such as
    ``1.2.3`` would otherwise turn it into one feature per distinct value)."""
    import pandas as pd

    for c in features:
        col = frame[c]
        if c in categorical or pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        cells = col.dropna()
        numbers = pd.to_numeric(cells, errors="coerce")
        n_num = int(numbers.notna().sum())
        if n_num and len(cells) - n_num <= MAX_TEXT_SHARE * len(cells):
            text = sorted({str(v) for v in cells[numbers.isna()]})
            raise CLIError(MSG_MOSTLY_NUMERIC.format(path=path, column=c, n_num=n_num, n=len(cells),
                                                     values=_capped(text, 5), n_levels=cells.nunique() - 1))


def _check_feature_range(X, path: Any) -> None:
    """Refuse a feature value that is infinite (a cell ``1e999``) or too large to fit in
    float64 (:data:`fairuse_opt._validation.MAX_FEATURE_MAGNITUDE`), naming the columns."""
    import numpy as np

    from ._validation import MAX_FEATURE_MAGNITUDE

    values = X.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(values) <= MAX_FEATURE_MAGNITUDE)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        cols = [str(c) for c, b in zip(X.columns, bad.any(axis=0)) if b]
        raise CLIError(MSG_FEATURE_RANGE.format(path=path, columns=_capped(cols), limit=MAX_FEATURE_MAGNITUDE,
                                                n_rows=len(rows)))


def write_model(path: Path, est: Any, table: TrainingTable, args: argparse.Namespace) -> None:
    """Write the model file of a ``fit`` (atomically), with the input encoding and metadata."""
    from ._files import Staged
    from .model_io import dumps

    metadata = {"data": str(args.data), "n_rows": int(table.n_rows), "command": _command_text(args)}
    text = dumps(est, encoding=table.encoding, target=args.target, group_columns=table.groups,
                 metadata=metadata)
    with Staged() as staged:
        _stage(staged, path, text)
        _commit(staged)


def _flags(given: frozenset, table: dict[str, str]) -> list[str]:
    return [flag for dest, flag in table.items() if dest in given]


def cmd_fit(args: argparse.Namespace) -> int:
    """``fairuse fit``: read the CSV, encode features, fit, write the model file (or, with
    ``--system``, :func:`cmd_fit_system`)."""
    given = getattr(args, "given_", frozenset())
    if args.system:
        return cmd_fit_system(args, given)
    if "alpha" in given:  # the usage error the removed flag always gave
        print(f"{PROG} fit: error: {_one_line(MSG_OLD_ALPHA)} (see '{PROG} fit --help')", file=sys.stderr)
        return EXIT_INPUT
    wrong = _flags(given, FIT_SYSTEM_ONLY)
    if wrong:
        raise CLIError(MSG_FIT_NEEDS_SYSTEM.format(flags=", ".join(wrong)))
    margin = _parse_margin(args.margin)
    outs = check_paths({"--data": args.data}, {"--out": args.out})
    table = load_training_table(args)
    # the input is valid: from here on, progress lines (before, a bad input gives one line only)
    progress(f"read {table.n_rows} row(s) of {args.data}; loading the fitting modules")
    cls = _estimator_class(args.task)

    if table.dropped:
        progress(table.dropped)
    if table.encoding.categorical:
        progress(f"one-hot encoded {', '.join(table.encoding.categorical)} -> {table.X.shape[1]} feature(s)")
    est = cls(encoding=args.encoding, fair_use=args.fair_use, margin=margin, l2=args.l2,
              group_reg=args.group_reg, on_infeasible=args.on_infeasible, solver=args.solver)
    progress(f"fitting {args.task}, encoding={args.encoding}, fair_use={args.fair_use}: {table.n_rows} rows, "
             f"{table.X.shape[1]} feature(s), {len(table.G.drop_duplicates())} group(s)")
    est.fit(table.X, table.y, groups=table.G)
    cert = est.certificate_
    progress(f"fitted: route {cert.route}, solver {cert.solver} ({cert.status}), verified={cert.verified}")
    write_model(outs["--out"], est, table, args)
    print(_certificate_text(est))
    return 0


def _certificate_text(est: Any) -> str:
    cert = est.certificate_
    table = cert.table.copy()
    if len(table):
        table["group"] = [est.group_index_.label(k) if est.group_index_ is not None else str(k)
                          for k in table["group"]]
        cols = [c for c in ("group", "n", "generic_loss", "own_loss", "gain", "rationality_slack",
                            "envy_slack", "rationality_active") if c in table]
        body = table[cols].to_string(index=False, float_format=lambda v: f"{v:.5f}")
    else:
        body = "(no groups)"
    head = (f"fair use {'+'.join(cert.fair_use) or 'none'}; route {cert.route}; "
            f"verified={cert.verified}; training loss per group:")
    return head + "\n" + body


# --------------------------------------------------------------------------- fit --system
def _parse_assign_size(text: str) -> float | int:
    value = _number(text)
    if value is None or value <= 0:
        raise CLIError(MSG_FIT_BAD_ASSIGN_SIZE.format(value=text))
    if value < 1:
        return value
    if value != int(value):
        raise CLIError(MSG_FIT_BAD_ASSIGN_SIZE.format(value=text))
    return int(value)


def cmd_fit_system(args: argparse.Namespace, given: frozenset) -> int:
    """``fairuse fit --system``: read the CSV (missing group values are partial reports),
    train the default pool and assign (:func:`~fairuse_opt.fit_system`), write the system file."""
    wrong = _flags(given, FIT_MODEL_ONLY)
    if wrong:
        raise CLIError(MSG_FIT_NOT_WITH_SYSTEM.format(flags=", ".join(wrong),
                                                      them="it" if len(wrong) == 1 else "them"))
    level = 0.1
    if args.alpha is not None:
        try:
            level = _level(args.alpha)
        except argparse.ArgumentTypeError as exc:
            raise CLIError(f"--alpha: {exc}") from None
        if level >= 0.5:
            raise CLIError(f"--alpha: invalid level {args.alpha!r}: the system's level must be below 0.5")
    size = None if args.assign_size is None else _parse_assign_size(args.assign_size)
    default_metric = "error" if (args.procedure == "split" or args.test == "exact") else "log_loss"
    # (a regressor's default metric is its loss's, known once the fitting modules are loaded)
    metric = args.metric or (default_metric if args.task == "classification" else None)
    kind = "classification" if args.task == "classification" else "regression"
    if args.kind != "full" and args.procedure != "split":
        raise CLIError("--kind minimal: only with --procedure split")
    if args.procedure == "crossfit" and "envy" in given:
        raise CLIError("--no-envy: --procedure crossfit has no envy step; leave it out")
    if args.test == "t" and args.procedure == "split":
        raise CLIError("--test t: not with --procedure split (its tests are bootstrap or exact)")
    from .audit._metrics import get_metric

    if metric is not None:
        get_metric(metric, kind)  # before anything is read or fitted
    if args.test == "exact" and metric != "error":
        if metric is None:  # a regressor's default: its loss's metric
            from .model.losses import LOSSES

            metric = LOSSES[TASK_LOSSES[args.task]].metric
        raise CLIError(MSG_FIT_EXACT_METRIC.format(metric=metric))
    outs = check_paths({"--data": args.data}, {"--out": args.out})
    table = load_training_table(args, partial_reports=True)
    progress(f"read {table.n_rows} row(s) of {args.data}; loading the fitting modules")
    from .system import default_candidates, fit_system

    if table.dropped:
        progress(table.dropped)
    if table.encoding.categorical:
        progress(f"one-hot encoded {', '.join(table.encoding.categorical)} -> {table.X.shape[1]} feature(s)")
    partial = int(table.G.isna().any(axis=1).sum())
    cls = _estimator_class(args.task)
    pool = {name: (cls(**{**est.get_params(), "l2": args.l2, "solver": args.solver}), attrs)
            for name, (est, attrs) in default_candidates(table.groups, kind).items()}
    generic = cls(encoding="none", l2=args.l2, solver=args.solver)
    metric = metric or generic._get_loss().metric
    progress(f"building a system ({args.task}): {table.n_rows} rows ({partial} with a partial report), "
             f"assign size {size}, {len(pool)} candidate(s), metric {metric}"
             f"{'' if args.metric else ' (the default)'}, alpha {level}, procedure {args.procedure}, "
             f"test {args.test}, {args.n_boot} resamples, envy {args.envy and args.procedure != 'crossfit'}, "
             f"seed {args.seed}")
    system = fit_system(table.X, table.y, table.G, procedure=args.procedure, assign_size=size, candidates=pool,
                        metric=metric, alpha=level, correction=CORRECTIONS[args.correction], test=args.test,
                        n_boot=args.n_boot, envy=None if args.procedure == "crossfit" else args.envy,
                        kind=args.kind, task=kind, generic=generic, random_state=args.seed)
    write_system(outs["--out"], system, table, args)
    print(_assignment_text(system))
    return 0


def write_system(path: Path, system: Any, table: TrainingTable, args: argparse.Namespace) -> None:
    """Write the system file of a ``fit --system`` (atomically), with the input encoding and metadata."""
    from ._files import Staged
    from .model_io import dumps

    metadata = {"data": str(args.data), "n_rows": int(table.n_rows), "n_train": int(len(system.train_index_)),
                "n_assign": int(len(system.assign_index_)), "command": _command_text(args)}
    text = dumps(system, encoding=table.encoding, target=args.target, group_columns=table.groups,
                 metadata=metadata)
    with Staged() as staged:
        _stage(staged, path, text)
        _commit(staged)


def _assignment_text(system: Any) -> str:
    """Per reporting option: the model served, the gain with its bound, the adjusted p-value,
    the smallest certifiable gain and the reason in words (:meth:`FairUseSystem.summary`)."""
    table = system.assignment_
    n_personal = int((table["served"] != "generic").sum())
    head = (f"system: {n_personal} of {len(table)} reporting option(s) served a personalized model; metric "
            f"{system.metric_}, alpha {system.alpha:g}; per option seen in the assignment sample:")
    return head + "\n" + system.summary()


# --------------------------------------------------------------------------- predict
def _task_of(mf: Any) -> str:
    est = mf.estimator
    return est._task() if mf.kind == "system" else est._task


def _feature_columns(mf: Any) -> list[str]:
    if mf.encoding is not None:
        return list(mf.encoding.input_columns)
    return list(mf.document["features"]["names"]) if mf.kind == "system" else list(mf.estimator.feature_names_)


def _parse_system_report(text: str, system: Any) -> tuple:
    """``--report`` for a system file: NAME=VALUE for the attributes reported; the others are
    not reported (``""``: nothing reported)."""
    names = list(system.group_names_)
    given = _report_pairs(text, names)
    if given is None or not set(given) <= set(names):
        raise CLIError(MSG_SYSTEM_BAD_REPORT_ARG.format(value=_short(text), names=_capped(names)))
    key = []
    for n in names:
        if n not in given:
            key.append(None)
            continue
        levels = system.levels_[n]
        value = _value_matcher(levels)(given[n])
        if value not in set(levels):
            raise CLIError(MSG_UNKNOWN_GROUP_VALUE.format(column=n, values=_capped([given[n]]), levels=_capped(levels)))
        key.append(value)
    return tuple(key)


def _system_group_values(G, system: Any, *, strict: bool = False):
    """Group cells (read as text) as the system's values, matched by value; a missing cell
    is an attribute not reported (``None``)."""
    import pandas as pd

    out = {}
    for col, name in zip(G.columns, system.group_names_):
        levels = system.levels_[name]
        match = _value_matcher(levels)
        values = [None if pd.isna(v) else match(v) for v in G[col]]
        if strict:
            unknown = sorted({str(v) for v in values if v is not None and v not in set(levels)})
            if unknown:
                raise CLIError(MSG_UNKNOWN_GROUP_VALUE.format(column=col, values=_capped(unknown, 5), levels=_capped(levels)))
        out[name] = pd.Series(values, index=G.index, dtype=object)
    return pd.DataFrame(out, index=G.index)


def _parse_report(text: str, est: Any) -> Any:
    index = est.group_index_
    if index is None:
        return None
    names = list(index.names)
    given = _report_pairs(text, names)
    if given is None or sorted(given) != sorted(names):
        raise CLIError(MSG_BAD_REPORT_ARG.format(value=_short(text), names=_capped(names)))
    key = []
    for n in names:
        value = _value_matcher(index.levels[n])(given[n])
        if value not in set(index.levels[n]):
            raise CLIError(MSG_UNKNOWN_GROUP_VALUE.format(column=n, values=_capped([given[n]]),
                                                                levels=_capped(index.levels[n])))
        key.append(value)
    return tuple(key)


def cmd_predict(args: argparse.Namespace) -> int:
    """``fairuse predict``: score a CSV file with a model file."""
    outs = check_paths({"--model": args.model, "--data": args.data}, {"--out": args.out})
    mf = _read_model(args.model)
    est = mf.estimator
    system = mf.kind == "system"
    if system:  # a system file: partial reports (missing group values) are scored
        report = _parse_system_report(args.report, est) if args.report is not None else None
    else:
        report = _parse_report(args.report, est) if args.report is not None else None
    grouped = system or est.group_index_ is not None
    groups: list[str] = []
    if grouped and report is None:
        groups = list(args.groups) if args.groups else (mf.group_columns or [])
        if not groups:
            raise CLIError(MSG_MODEL_NO_GROUPS.format(path=args.model))
    feature_cols = _feature_columns(mf)
    text_cols = [*groups, *(mf.encoding.categorical if mf.encoding is not None else [])]
    frame = read_table(args.data, text_columns=text_cols, needed=[*groups, *feature_cols, *args.keep],
                       na_values=args.na_values)
    n_read = len(frame)
    frame, dropped = handle_missing(frame, [*([] if system else groups), *feature_cols], groups,
                                    dropna=args.dropna, path=args.data, what="score")
    if dropped:
        progress(dropped)
    X = mf.encoding.transform(frame) if mf.encoding is not None else frame[feature_cols]
    kw: dict[str, Any] = {}
    if grouped:
        values = _system_group_values if system else _model_group_values
        kw = {"report": report} if report is not None else {"groups": values(frame[groups], est, strict=True)}
    import pandas as pd

    out = frame[list(args.keep)].copy() if args.keep else pd.DataFrame(index=frame.index)
    score = est.decision_function(X, **kw)
    positive = None
    if _task_of(mf) == "classification":
        positive = mf.document["classes"]["values"][1]
        out["score"] = score
        out["probability"] = est.predict_proba(X, **kw)[:, 1]
        out["positive_class"] = positive  # the class whose probability this is
        out["prediction"] = est.predict(X, **kw)
    else:  # the inverse link of the score (the score itself for the squared error)
        out["prediction"] = est.predict(X, **kw)
    from ._files import Staged

    with Staged() as staged:
        _stage(staged, outs["--out"], out.to_csv(index=False))
        _commit(staged)
    what = f"as if every row reported {args.report}" if report is not None else "under each row's own group"
    of = f" ({n_read - len(out)} row(s) with missing values dropped)" if len(out) < n_read else ""
    prob = f"; probability is that of class {positive!r}" if positive is not None else ""
    print(f"scored {len(out)} row(s){of} {what}; columns {', '.join(out.columns)}{prob}")
    return 0


# --------------------------------------------------------------------------- audit
#: ``audit`` flags of the audit of predictions, refused without ``--predictions``.
AUDIT_PREDICTIONS_ONLY = {"scores": "--scores", "generic_scores": "--generic-scores",
                          "scores_as_reported": "--scores-as-reported", "task": "--task",
                          "pos_label": "--pos-label"}
MSG_AUDIT_NEED_INPUT = (
    "audit needs a model and its data (--model and --data) or a file of predictions (--predictions)"
)
MSG_AUDIT_NEED_MODEL = "audit --{given} needs --{other} too (or audit a file of predictions with --predictions)"
MSG_AUDIT_BOTH_INPUTS = (
    "--predictions is audited instead of a model: leave {flags} out (the file holds the scores)"
)
MSG_AUDIT_NEEDS_PREDICTIONS = "{flags}: given without --predictions; these flags name columns of a file of predictions"
MSG_AUDIT_PREDICTIONS_NEED = "audit --predictions needs {flags}"
MSG_AUDIT_NO_OWN_SCORES = (
    "audit --predictions needs --scores (each row's scores under its own group) or "
    "--scores-as-reported for every group of the file"
)
MSG_AUDIT_SCORE_ROLE = "column {column!r} is given as {roles}; a score column cannot also be {what}"
MSG_AUDIT_REPORT_TWICE = "--scores-as-reported gives group {report} more than once"
MSG_AUDIT_BAD_REPORT = (
    "--scores-as-reported {value!r} {column!r} is invalid: give the report as NAME=VALUE for every "
    "group attribute, comma-separated (attributes: {names}), then the column"
)
MSG_AUDIT_REPORTS_MISSING = (
    "--scores-as-reported gives no column for group(s) {groups} of {path}: give one for every group "
    "of the file (its rows' scores as if they reported it), or leave --scores-as-reported out for an "
    "audit without envy"
)
MSG_AUDIT_SCORES_NOT_NUMERIC = "score column {column!r} ({flag}) of {path} is not numeric (for example {value!r})"
MSG_AUDIT_SCORES_BAD = (
    "score column {column!r} ({flag}) of {path} has {problem} in {n_rows} row(s) (first: data row {row}, "
    "value {value!r})"
)
MSG_AUDIT_OWN_DISAGREE = (
    "--scores column {own!r} and --scores-as-reported column {column!r} differ in {n_rows} row(s) of group "
    "{report} (first: data row {row}, largest difference {diff:.3g}): each row's scores under its own "
    "group must be the same in both"
)
MSG_AUDIT_POS_LABEL_REGRESSION = (
    "--pos-label applies to classification only; this audit is a regression (--task regression, or a "
    "target with more than 2 values)"
)
MSG_AUDIT_POS_LABEL = "--pos-label {value!r} is not a value of target column {column!r}; its values are {values}"


def cmd_audit(args: argparse.Namespace) -> int:
    """``fairuse audit``: read the model file and the CSV (or a CSV of predictions), audit, write
    the report."""
    import importlib.util

    if args.predictions is not None:
        return _audit_predictions_file(args)
    given = [flag for dest, flag in AUDIT_PREDICTIONS_ONLY.items() if getattr(args, dest) is not None]
    if given:
        raise CLIError(MSG_AUDIT_NEEDS_PREDICTIONS.format(flags=", ".join(given)))
    if args.model is None or args.data is None:
        if args.model is None and args.data is None:
            raise CLIError(MSG_AUDIT_NEED_INPUT)
        missing = ("model", "data") if args.model is None else ("data", "model")
        raise CLIError(MSG_AUDIT_NEED_MODEL.format(given=missing[1], other=missing[0]))
    if args.out is None and args.markdown is None and args.plot is None:
        raise CLIError(MSG_NEED_OUTPUT)
    outs = check_paths({"--model": args.model, "--data": args.data},
                       {"--out": args.out, "--markdown": args.markdown, "--plot": args.plot})
    if "--plot" in outs and importlib.util.find_spec("matplotlib") is None:
        raise CLIError(MSG_NEED_MATPLOTLIB)
    mf = _read_model(args.model)
    est = mf.estimator
    if mf.kind != "system" and est.group_index_ is None:
        raise CLIError(MSG_AUDIT_NO_GROUPS.format(path=args.model))
    target = args.target or mf.target
    groups = list(args.groups) if args.groups else mf.group_columns
    if target is None or groups is None:
        raise CLIError(MSG_MODEL_NO_INPUT.format(path=args.model))
    _check_roles(target, groups, [])
    metrics = args.metrics or _csv_list(DEFAULT_METRICS[_task_of(mf)])
    from .audit._metrics import resolve_metrics

    resolve_metrics(metrics, _task_of(mf))  # unknown, repeated or wrong-task names: before the data is read
    if args.plot_metric is not None and args.plot_metric not in metrics:
        raise CLIError(MSG_PLOT_METRIC_NOT_AUDITED.format(metric=args.plot_metric, metrics=metrics))
    feature_cols = _feature_columns(mf)
    text_cols = [*groups, *(mf.encoding.categorical if mf.encoding is not None else [])]
    try:
        from .audit import audit
    except ImportError as exc:  # the audit module is optional until it lands
        raise CLIError(MSG_NO_AUDIT.format(reason=_one_line(exc)), EXIT_FAILED) from None
    frame = read_table(args.data, text_columns=text_cols, needed=[target, *groups, *feature_cols],
                       na_values=args.na_values)
    frame, dropped = handle_missing(frame, [target, *groups, *feature_cols], groups, dropna=args.dropna,
                                    path=args.data, what="audit")
    X = mf.encoding.transform(frame) if mf.encoding is not None else frame[feature_cols]
    G = (_system_group_values if mf.kind == "system" else _model_group_values)(frame[groups], est)
    if dropped:
        progress(dropped)
    progress(f"auditing on {len(frame)} rows: metrics {', '.join(metrics)}, {args.n_boot} resamples, "
             f"alpha {args.alpha}, correction {args.correction}, test {args.test}, seed {args.seed}")
    report = audit(est, X, frame[target], groups=G, metrics=metrics, n_boot=args.n_boot,
                   alpha=args.alpha, correction=CORRECTIONS[args.correction], test=args.test,
                   ci_level=args.ci_level, random_state=args.seed)
    return _write_audit(report, outs, args)


def _write_audit(report: Any, outs: dict[str, Path], args: argparse.Namespace) -> int:
    """Write the audit's outputs (all or none) and print its summary."""
    from ._files import Staged

    with Staged() as staged:
        if "--out" in outs:
            _stage(staged, outs["--out"], report.to_json(indent=1))
        if "--markdown" in outs:
            _stage(staged, outs["--markdown"], report.to_markdown())
        if "--plot" in outs:
            _stage(staged, outs["--plot"], _figure_writer(report, args.plot_metric))
        _commit(staged)
    print(audit_text(report))
    return 0


def _audit_predictions_file(args: argparse.Namespace) -> int:
    """``fairuse audit --predictions``: the audit of a CSV file of predictions
    (:func:`~fairuse_opt.audit.audit_predictions` on its columns)."""
    import importlib.util

    import numpy as np
    import pandas as pd

    both = [flag for flag, value in (("--model", args.model), ("--data", args.data)) if value is not None]
    if both:
        raise CLIError(MSG_AUDIT_BOTH_INPUTS.format(flags=" and ".join(both)))
    needed = [flag for flag, value in (("--target", args.target), ("--groups", args.groups),
                                       ("--generic-scores", args.generic_scores)) if not value]
    if needed:
        raise CLIError(MSG_AUDIT_PREDICTIONS_NEED.format(flags=", ".join(needed)))
    if args.scores is None and not args.scores_as_reported:
        raise CLIError(MSG_AUDIT_NO_OWN_SCORES)
    if args.out is None and args.markdown is None and args.plot is None:
        raise CLIError(MSG_NEED_OUTPUT)
    target, groups, path = args.target, list(args.groups), args.predictions
    _check_roles(target, groups, [])
    # the score columns as (flag, column), the reports' in the order given
    scored = [("--generic-scores", args.generic_scores)]
    if args.scores is not None:
        scored.append(("--scores", args.scores))
    reported = [(text, column) for text, column in (args.scores_as_reported or [])]
    scored += [("--scores-as-reported", column) for _, column in reported]
    for flag, column in scored:
        roles = [r for r, cols in (("--target", [target]), ("--groups", groups)) if column in cols]
        if roles:
            raise CLIError(MSG_AUDIT_SCORE_ROLE.format(column=column, roles=" and ".join([flag, *roles]),
                                                       what="the target or a group column"))
    parsed = []
    for text, column in reported:
        pairs = _report_pairs(text, groups)
        if pairs is None or sorted(pairs) != sorted(groups):
            raise CLIError(MSG_AUDIT_BAD_REPORT.format(value=_short(text), column=_short(column),
                                                       names=_capped(groups)))
        parsed.append((pairs, column))
    outs = check_paths({"--predictions": path},
                       {"--out": args.out, "--markdown": args.markdown, "--plot": args.plot})
    if "--plot" in outs and importlib.util.find_spec("matplotlib") is None:
        raise CLIError(MSG_NEED_MATPLOTLIB)
    if args.task is not None:
        _check_metric_names(args, args.task)
    from ._groups import sort_key
    from .audit import audit_predictions

    score_cols = list(dict.fromkeys(column for _, column in scored))
    frame = read_table(path, text_columns=groups, needed=[target, *groups, *score_cols],
                       na_values=args.na_values)
    known_y = frame[target].dropna()
    task = args.task or ("classification" if known_y.nunique() <= 2 else "regression")
    if args.task is None:
        _check_metric_names(args, task)
    if task == "regression" and args.pos_label is not None:
        raise CLIError(MSG_AUDIT_POS_LABEL_REGRESSION)
    # the values, checked before rows with missing values are dropped, so that the rows named
    # are the file's (missing values are left to --dropna)
    for flag, column in scored:
        _check_score_column(frame, column, flag, path, task)
    matchers = {g: _value_matcher(list(pd.unique(frame[g].dropna()))) for g in groups}
    as_reported: dict[tuple, str] = {}
    for pairs, column in parsed:  # each value matched to the file's by value (1, 1.0 and "1" alike)
        key = tuple(matchers[g](pairs[g]) for g in groups)
        if key in as_reported:
            raise CLIError(MSG_AUDIT_REPORT_TWICE.format(report=_group_text(groups, key)))
        as_reported[key] = column
    keys = list(frame[groups].itertuples(index=False, name=None))
    if args.scores is not None:
        own = frame[args.scores].to_numpy(dtype=np.float64)
        for key, column in as_reported.items():
            rows = np.array([k == key for k in keys], dtype=bool)
            diff = np.where(rows, np.abs(own - frame[column].to_numpy(dtype=np.float64)), 0.0)
            differ = diff > 0  # NaN compares False: a missing value is --dropna's
            if differ.any():
                raise CLIError(MSG_AUDIT_OWN_DISAGREE.format(
                    own=args.scores, column=column, n_rows=int(differ.sum()), report=_group_text(groups, key),
                    row=int(np.argmax(differ)) + 1, diff=float(np.nanmax(np.where(differ, diff, 0.0)))))
    frame, dropped = handle_missing(frame, [target, *groups, *score_cols], groups, dropna=args.dropna,
                                    path=path, what="audit")
    if dropped:
        progress(dropped)
    _check_group_columns(frame, groups, min_levels=1)
    y = frame[target]
    _check_target(y, target, task)
    pos_label = None
    if task == "classification":
        levels = sorted((_py(v) for v in pd.unique(y)), key=sort_key)
        if args.pos_label is None:
            positive = levels[-1]  # as the library: 1 of 0/1, True of booleans, else the larger
        else:
            pos_label = positive = _value_matcher(levels)(args.pos_label)
            if pos_label not in set(levels):
                raise CLIError(MSG_AUDIT_POS_LABEL.format(value=args.pos_label, column=target,
                                                          values=_capped(levels)))
    if as_reported:
        present = set(frame[groups].itertuples(index=False, name=None))
        missing = sorted((k for k in present if k not in as_reported), key=sort_key)
        if missing:
            raise CLIError(MSG_AUDIT_REPORTS_MISSING.format(
                groups=_capped([_group_text(groups, k) for k in missing]), path=path))
    metrics = args.metrics or _csv_list(DEFAULT_METRICS[task])
    of = f" (scores: probability of {positive!r})" if task == "classification" else ""
    envy = (f"envy against {len(as_reported)} report(s)" if as_reported
            else "no envy (no --scores-as-reported)")
    progress(f"auditing predictions on {len(frame)} rows: {task}{of}, {envy}, metrics "
             f"{', '.join(metrics)}, {args.n_boot} resamples, alpha {args.alpha}, correction "
             f"{args.correction}, test {args.test}, seed {args.seed}")
    report = audit_predictions(
        target, groups=groups, scores=args.scores, generic_scores=args.generic_scores,
        scores_as_reported=as_reported or None, data=frame, task=task, pos_label=pos_label,
        metrics=metrics, n_boot=args.n_boot, alpha=args.alpha, correction=CORRECTIONS[args.correction],
        test=args.test, ci_level=args.ci_level, random_state=args.seed)
    return _write_audit(report, outs, args)


def _check_metric_names(args: argparse.Namespace, task: str) -> None:
    from .audit._metrics import resolve_metrics

    metrics = args.metrics or _csv_list(DEFAULT_METRICS[task])
    resolve_metrics(metrics, task)
    if args.plot_metric is not None and args.plot_metric not in metrics:
        raise CLIError(MSG_PLOT_METRIC_NOT_AUDITED.format(metric=args.plot_metric, metrics=metrics))


def _group_text(names: Sequence[str], key: tuple) -> str:
    return ",".join(f"{n}={v}" for n, v in zip(names, key))


def _check_score_column(frame, column: str, flag: str, path: str, task: str) -> None:
    """A score column: numbers, finite, and (classification) probabilities in [0, 1]."""
    import numpy as np
    import pandas as pd

    col = frame[column]
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        bad = col[pd.to_numeric(col, errors="coerce").isna()]
        example = bad.iloc[0] if len(bad) else col.iloc[0]
        raise CLIError(MSG_AUDIT_SCORES_NOT_NUMERIC.format(column=column, flag=flag, path=path,
                                                           value=_py(example)))
    values = col.to_numpy(dtype=np.float64)
    checks = [(np.isinf(values), "infinite values")]  # NaN: a missing value, left to --dropna
    if task == "classification":
        checks.append((np.isfinite(values) & ((values < 0) | (values > 1)), "probabilities outside [0, 1]"))
    for bad, problem in checks:
        if bad.any():
            first = int(np.argmax(bad))
            raise CLIError(MSG_AUDIT_SCORES_BAD.format(column=column, flag=flag, path=path, problem=problem,
                                                       n_rows=int(bad.sum()), row=first + 1,
                                                       value=float(values[first])))


def audit_text(report: Any) -> str:
    """Per group and metric: gain, the one-sided bound the verdict used, corrected p-value
    and verdict (the report's :meth:`~fairuse_opt.audit.FairUseReport.summary`)."""
    return str(report.summary())


def _figure_writer(report: Any, metric: str | None) -> Callable[[str], None]:
    def write(name: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = report.plot(metric)
        try:
            fig.savefig(name, dpi=120, format="png")
        finally:
            plt.close(fig)

    return write


# --------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    """``fairuse demo``: see :func:`fairuse_opt.demo.run_demo`."""
    from .demo import (ASSIGN_CSV, DEFAULT_FOLDS, DEFAULT_N_BOOT, DEFAULT_OUT, FOLDS_CSV, REPORT_MD, REPORT_PNG,
                       run_demo)

    out = Path(args.out or DEFAULT_OUT)
    if out.exists() and not out.is_dir():
        raise CLIError(MSG_DEMO_OUT_IS_FILE.format(path=out))
    data = Path(args.data)
    if data.is_file():
        written = {_resolved(out / n) for n in (ASSIGN_CSV, FOLDS_CSV, REPORT_MD, REPORT_PNG)}
        if _resolved(data) in written:
            raise CLIError(MSG_DEMO_DATA_IN_OUT.format(path=data, out=out))
    source: Any = args.data
    csv_flags = [f for f, v in (("--target", args.target), ("--groups", args.groups), ("--dropna", args.dropna),
                                ("--na-values", args.na_values)) if v]
    if csv_flags or (data.is_file() and not _is_apnea_file(data)):
        if not data.is_file():
            raise CLIError(MSG_DEMO_CSV_FLAGS.format(flags=", ".join(csv_flags), value=args.data))
        source = _demo_table(args)
    run_demo(out, data=source, folds=DEFAULT_FOLDS if args.folds is None else args.folds,
             n_boot=DEFAULT_N_BOOT if args.n_boot is None else args.n_boot,
             seed=args.seed, progress=progress, command=_command_text(args))
    return 0


MSG_DEMO_CSV_FLAGS = "{flags}: only with --data PATH of a CSV file; {value!r} is not a file"
MSG_DEMO_NEEDS_ROLES = (
    "demo --data {path}: give --target (a binary column) and --groups (the group attribute columns) of "
    "this CSV file; without them only apnea.csv (columns Apnea, Age, Sex) is understood"
)


def _is_apnea_file(path: Path) -> bool:
    """Whether a CSV file has the apnea data's columns (read as before: ``load_apnea``)."""
    import pandas as pd

    try:
        columns = set(pd.read_csv(path, nrows=0).columns)
    except Exception:  # noqa: BLE001 - unreadable: read_table says why
        return False
    return {"Apnea", "Age", "Sex"} <= columns


def _demo_table(args: argparse.Namespace) -> tuple:
    """``(X, y, groups, description)`` of ``demo --data PATH --target COL --groups A,B``: read,
    checked and encoded as ``fit`` does; the target's second value in sorted order is 1."""
    import numpy as np

    from .tabular import TabularEncoding

    if not args.target or not args.groups:
        raise CLIError(MSG_DEMO_NEEDS_ROLES.format(path=args.data))
    groups = list(args.groups)
    _check_roles(args.target, groups, [])
    frame = read_table(args.data, text_columns=groups, needed=[args.target, *groups], na_values=args.na_values)
    features = [c for c in frame.columns if c != args.target and c not in groups]
    frame, dropped = handle_missing(frame, [args.target, *groups, *features], groups, dropna=args.dropna,
                                    path=args.data, what="run the demo on")
    if dropped:
        progress(dropped)
    _check_target(frame[args.target], args.target, "classification")
    _check_group_columns(frame, groups)
    _check_text_columns(frame, features, [], args.data)
    encoding = TabularEncoding.fit(frame[features])
    X = encoding.transform(frame)
    _check_feature_range(X, args.data)
    classes = np.unique(frame[args.target].to_numpy())
    y = (frame[args.target].to_numpy() == classes[1]).astype(int)
    desc = (f"{args.data} (target {args.target}, positive class {_py(classes[1])!r}; groups "
            f"{', '.join(groups)}; {X.shape[1]} feature(s))")
    return X, y, frame[groups].reset_index(drop=True), desc


# --------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fairuse`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 success, 1 a fit or audit that could not be done, 2 bad input,
        130 interrupted (Ctrl-C).
    """
    from ._files import recording

    program = argv is None  # run as the program (the fairuse script, python -m fairuse_opt)
    with recording() as written:
        try:
            status = _run(argv)
        except KeyboardInterrupt as exc:
            status = _fail(interrupted_message(written, getattr(exc, "detail", None)), EXIT_INTERRUPTED)
    if program:
        _ignore_ctrl_c()  # the command is done: Ctrl-C while Python shuts down would only hide its status
    return status


def _ignore_ctrl_c() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2, already printed)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_INPUT
    except BrokenPipeError:  # `fairuse --help | head -1`
        _stdout_to_devnull()
        return 0
    if args.command is None:
        commands = ", ".join(parser._subparsers._group_actions[0].choices)  # noqa: SLF001
        print(f"{PROG}: error: {MSG_NO_COMMAND.format(commands=commands)}", file=sys.stderr)
        return EXIT_INPUT
    args.argv = argv
    shown = SHOWN_LOGGERS["bench" if args.command == "bench" else "default"]
    with _Logging(quiet=args.quiet, verbose=getattr(args, "verbose", False), shown=shown), \
            warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except BrokenPipeError:  # standard output closed (`| head`, `| true`) while the summary was
            _stdout_to_devnull()  # printed: the outputs were written before it, so this is success
            return 0
        except CLIError as exc:
            return _fail(str(exc), exc.status)
        except (InputError, ImportError, OSError) as exc:  # OSError: files (missing, unreadable)
            return _fail(str(exc), EXIT_INPUT)
        except FairUseError as exc:  # infeasible margin, solver failure, failed verification
            return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)


def _stdout_to_devnull() -> None:
    """Point standard output at /dev/null, so that flushing it at exit does not fail again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


#: After Ctrl-C, when some outputs had been written: which ones were kept.
MSG_INTERRUPTED_KEPT = "interrupted; kept what was written before: {kept}; nothing else was written"


def interrupted_message(written: Sequence[Any], detail: str | None = None) -> str:
    """The line printed after Ctrl-C: nothing was written, or exactly what was kept.

    Parameters
    ----------
    written : sequence of path
        The outputs written before the interruption (the :func:`fairuse_opt._files.recording`
        journal).
    detail : str, optional
        A sentence the command adds (the benchmark: how a rerun resumes).
    """
    if not written:
        text = MSG_INTERRUPTED
    else:
        folders: dict[str, list[str]] = {}
        for p in dict.fromkeys(str(p) for p in written):
            folders.setdefault(os.path.dirname(p) or ".", []).append(p)
        parts: list[str] = []
        for folder, paths in folders.items():
            parts += paths if len(paths) <= 6 else [f"{len(paths)} files in {folder}"]
        text = MSG_INTERRUPTED_KEPT.format(kept=", ".join(_capped(parts, 10, cut=False)))
    return f"{text} ({detail})" if detail else text


def _fail(message: str, status: int) -> int:
    text = _one_line(message)
    if len(text) > MAX_ERROR_CHARS:
        text = f"{text[:MAX_ERROR_CHARS]} ... ({len(text) - MAX_ERROR_CHARS} more characters)"
    print(f"{PROG}: error: {text}", file=sys.stderr, flush=True)
    return status


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    logging.getLogger("fairuse_opt").warning("%s", message)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
