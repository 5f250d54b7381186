"""The ``fairuse`` command: fit, audit and demonstrate fair-use models from CSV files.

::

    fairuse fit   --data D.csv --target COL --groups A,B [--features C,...] --out model.json
    fairuse audit --data D.csv --model model.json --out report.json [--markdown R.md] [--plot R.png]
    fairuse demo  [--out DIR] [--data diabetes|apnea|PATH]

``python -m fairuse_opt`` runs the same command.  Categorical feature columns (text, or
named with ``--categorical``) are one-hot encoded and the model file records how, so a
raw CSV row can be scored from the model file alone.  Bad input exits with status 2 and
one line on standard error; a fit or audit that cannot be done (for example a margin no
model can meet) exits with status 1.  Progress goes to standard error, results to
standard output.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .exceptions import FairUseError, InputError

__all__ = ["main", "build_parser", "CLIError", "read_table"]

PROG = "fairuse"
#: Exit status for bad input (files, columns, values, arguments), as argparse uses.
EXIT_INPUT = 2
#: Exit status for a fit or audit that was attempted and could not be done.
EXIT_FAILED = 1

DEFAULT_METRICS = {"classification": "error,auc,ece,log_loss", "regression": "mse,mae"}
SOLVERS = ("auto", "CLARABEL", "ECOS", "SCS")

# --------------------------------------------------------------------------- messages
MSG_NO_FILE = "data file {path} does not exist"
MSG_NOT_A_FILE = "data file {path} is not a file"
MSG_EMPTY_FILE = "data file {path} is empty"
MSG_BAD_CSV = "cannot read {path} as CSV: {reason}"
MSG_NOT_UTF8 = "data file {path} is not UTF-8 text"
MSG_UNKNOWN_COLUMNS = "column(s) {missing} not found in {path}; its columns are {columns}"
MSG_COLUMN_TWICE = "column {column!r} is given as {roles}; a column can have one role only"
MSG_NO_GROUPS = "--groups needs at least one column name"
MSG_MISSING_VALUES = (
    "{path} has missing values in {detail} ({n_rows} of {n_total} row(s)); "
    "fix the file or pass --dropna to drop those rows"
)
MSG_DROPPED = "dropped {n_rows} of {n_total} row(s) with missing values; rows lost per group: {detail}"
MSG_ALL_DROPPED = "every row of {path} has a missing value in a used column; nothing is left to {what}"
MSG_NOT_BINARY = (
    "target column {column!r} has {n} distinct values ({values}); --task classification needs "
    "exactly 2 (use --task regression for a numeric target)"
)
MSG_ONE_CLASS = "target column {column!r} has a single value ({value!r}); classification needs 2"
MSG_NOT_NUMERIC_TARGET = (
    "target column {column!r} is not numeric (for example {value!r}); --task regression needs numbers"
)
MSG_ONE_LEVEL = (
    "group column {column!r} has a single value ({value!r}); a group attribute needs at least 2 "
    "values (drop it from --groups)"
)
MSG_BAD_MARGIN = "--margin {value!r} is invalid: give a number >= 0 or 'se:k'"
MSG_BAD_MODEL = "{reason}"
MSG_MODEL_NO_INPUT = (
    "model file {path} does not name its target and group columns (it was not written by "
    "'fairuse fit'); pass --target and --groups"
)
MSG_NO_AUDIT = "the audit module (fairuse_opt.audit) is not available in this installation: {reason}"
MSG_NEED_MATPLOTLIB = "--plot needs matplotlib, which is not installed: pip install 'fairuse_opt[plot]'"
MSG_CANNOT_WRITE = "cannot write {path}: {reason}"
MSG_OUT_DIR_MISSING = "cannot write {path}: folder {folder} does not exist"
MSG_NO_COMMAND = "choose a command: fit, audit or demo (see 'fairuse --help')"
MSG_INTERRUPTED = "interrupted"


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


# --------------------------------------------------------------------------- progress
class Progress:
    """Progress messages on standard error (silenced by ``--quiet``)."""

    def __init__(self, quiet: bool = False, stream: Any = None):
        self.quiet = quiet
        self.stream = stream
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            stream = self.stream if self.stream is not None else sys.stderr
            print(f"{PROG}: [{time.perf_counter() - self.started:6.1f} s] {message}", file=stream, flush=True)


# --------------------------------------------------------------------------- parser
def _csv_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fairuse`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    from ._family import ENCODINGS

    parser = _Parser(prog=PROG, description=(
        "Fit personalized logistic/linear models that make fair use of group attributes "
        "(every group gains from reporting them, and envies no other group's report), "
        "audit models on held-out data, or run the demo."))
    sub = parser.add_subparsers(dest="command", metavar="{fit,audit,demo,bench}", parser_class=_Parser)

    fit = sub.add_parser("fit", help="fit a model on a CSV file and write the model file",
                         description="Fit a model on a CSV file and write the portable JSON model file.")
    fit.add_argument("--data", required=True, help="CSV file with a header row")
    fit.add_argument("--target", required=True, help="target column")
    fit.add_argument("--groups", required=True, type=_csv_list,
                     help="comma-separated group attribute columns, e.g. Age,Sex")
    fit.add_argument("--features", type=_csv_list, default=None,
                     help="comma-separated feature columns (default: every other column)")
    fit.add_argument("--categorical", type=_csv_list, default=[],
                     help="feature columns to one-hot encode even if numeric (text columns always are)")
    fit.add_argument("--task", choices=("classification", "regression"), default="classification",
                     help="classification (binary target, logistic loss; default) or regression (squared error)")
    fit.add_argument("--encoding", choices=ENCODINGS, default="intersectional",
                     help="how group attributes enter the model (default: intersectional)")
    fit.add_argument("--fair-use", default="rationality,envy_freeness",
                     help="guarantees to enforce: rationality,envy_freeness (default), rationality, "
                          "envy_freeness or none")
    fit.add_argument("--margin", default="0",
                     help="gain required of every group over the generic model: a number (loss units) "
                          "or se:k (k standard errors); default 0")
    fit.add_argument("--alpha", type=float, default=1e-3, help="L2 penalty weight (default 1e-3)")
    fit.add_argument("--group-reg", choices=("set", "penalty"), default="set",
                     help="regularisation of group-specific parameters (default: set)")
    fit.add_argument("--on-infeasible", choices=("raise", "generic"), default="raise",
                     help="when a guarantee cannot be met: fail (default) or give those groups the generic model")
    fit.add_argument("--solver", type=_solver_name, default="auto",
                     help="conic solver tried first: auto (default), CLARABEL, ECOS or SCS")
    fit.add_argument("--dropna", action="store_true",
                     help="drop rows with missing values in the used columns (reported per group)")
    fit.add_argument("--out", required=True, help="model file to write (JSON)")
    fit.add_argument("--quiet", action="store_true", help="no progress messages")
    fit.set_defaults(func=cmd_fit)

    aud = sub.add_parser("audit", help="audit a model file on (held-out) data",
                         description="Audit a model file on a CSV file: per group, gain over the generic "
                                     "model and envy of other reports, with bootstrap intervals and "
                                     "one-sided tests.")
    aud.add_argument("--data", required=True, help="CSV file with the model's columns")
    aud.add_argument("--model", required=True, help="model file written by 'fairuse fit'")
    aud.add_argument("--metrics", type=_csv_list, default=None,
                     help="comma-separated metrics (default: error,auc,ece,log_loss for classification; "
                          "mse,mae for regression)")
    aud.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    aud.add_argument("--alpha", type=float, default=0.1, help="significance level (default 0.1)")
    aud.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    aud.add_argument("--target", default=None, help="target column (default: from the model file)")
    aud.add_argument("--groups", type=_csv_list, default=None,
                     help="group columns (default: from the model file)")
    aud.add_argument("--dropna", action="store_true", help="drop rows with missing values (reported per group)")
    aud.add_argument("--out", required=True, help="audit report to write (JSON)")
    aud.add_argument("--markdown", default=None, help="also write the report as markdown")
    aud.add_argument("--plot", default=None, help="also write a plot (PNG; needs matplotlib)")
    aud.add_argument("--quiet", action="store_true", help="no progress messages")
    aud.set_defaults(func=cmd_audit)

    demo = sub.add_parser("demo", help="run the demo on real data and write a report",
                          description="Fit the generic, one-hot, intersectional and fair-use models on a "
                                      "real dataset, audit them on a test split and write a report.")
    demo.add_argument("--out", default=None,
                      help="output folder (default: fairuse_demo_output in the current folder)")
    demo.add_argument("--data", default="diabetes",
                      help="diabetes (default; scikit-learn, binary), apnea (from FAIRUSE_DATA_DIR) "
                           "or the path of apnea.csv")
    demo.add_argument("--n-boot", type=int, default=None, help="bootstrap resamples of the audit (default 500)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the split and the bootstrap (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress messages")
    demo.set_defaults(func=cmd_demo)

    from .bench._cli import add_arguments as _bench_arguments, cmd_bench
    bench = sub.add_parser("bench", help="run the study benchmark (datasets x models x methods x folds)",
                           description="The study benchmark: see benchmarks/README.md.")
    _bench_arguments(bench).set_defaults(func=cmd_bench)
    return parser


def _solver_name(text: str) -> str:
    name = text if text.lower() == "auto" else text.upper()
    name = "auto" if name.lower() == "auto" else name
    if name not in SOLVERS:
        raise argparse.ArgumentTypeError(f"invalid solver {text!r}; choose from {', '.join(SOLVERS)}")
    return name


# --------------------------------------------------------------------------- data
def read_table(path: str | Path, *, text_columns: Sequence[str] = (),
               needed: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV file, checking that it exists and has the ``needed`` columns.

    Parameters
    ----------
    path : str or Path
        The CSV file (header row required).
    text_columns : sequence of str
        Columns read as text, exactly as written (group attributes, categorical
        features), so that their values match the model file.
    needed : sequence of str
        Columns that must be present.

    Returns
    -------
    DataFrame

    Raises
    ------
    CLIError
        The file is missing or unreadable, or lacks a needed column.
    """
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
            shown = columns if len(columns) <= 30 else columns[:30] + ["..."]
            raise CLIError(MSG_UNKNOWN_COLUMNS.format(missing=missing, path=path, columns=shown))
        dtype = {c: str for c in text_columns if c in columns}
        return pd.read_csv(p, dtype=dtype, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise CLIError(MSG_EMPTY_FILE.format(path=path)) from None
    except pd.errors.ParserError as exc:
        raise CLIError(MSG_BAD_CSV.format(path=path, reason=_one_line(exc))) from None
    except UnicodeDecodeError:
        raise CLIError(MSG_NOT_UTF8.format(path=path)) from None
    except OSError as exc:
        raise CLIError(MSG_BAD_CSV.format(path=path, reason=_one_line(exc))) from None


def handle_missing(frame: pd.DataFrame, columns: Sequence[str], group_columns: Sequence[str], *,
                   dropna: bool, path: str, what: str) -> tuple[pd.DataFrame, str | None]:
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
        detail = ", ".join(f"{c} ({int(k)} row(s))" for c, k in counts.items() if k)
        raise CLIError(MSG_MISSING_VALUES.format(path=path, detail=detail, n_rows=n_bad, n_total=n_total))
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
    message = MSG_DROPPED.format(n_rows=n_bad, n_total=n_total, detail="; ".join(parts))
    return frame.loc[~bad_rows].reset_index(drop=True), message


def _check_target(y: pd.Series, column: str, task: str) -> None:
    if task == "classification":
        values = pd.unique(y)
        if len(values) == 1:
            raise CLIError(MSG_ONE_CLASS.format(column=column, value=_py(values[0])))
        if len(values) != 2:
            shown = sorted(map(str, values))
            shown = shown[:6] + ["..."] if len(shown) > 6 else shown
            raise CLIError(MSG_NOT_BINARY.format(column=column, n=len(values), values=", ".join(shown)))
    elif not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        bad = y[pd.to_numeric(y, errors="coerce").isna()]
        example = bad.iloc[0] if len(bad) else y.iloc[0]
        raise CLIError(MSG_NOT_NUMERIC_TARGET.format(column=column, value=_py(example)))


def _check_group_columns(frame: pd.DataFrame, group_columns: Sequence[str]) -> None:
    for c in group_columns:
        values = pd.unique(frame[c])
        if len(values) < 2:
            raise CLIError(MSG_ONE_LEVEL.format(column=c, value=_py(values[0])))


def _check_roles(target: str, groups: Sequence[str], features: Sequence[str]) -> None:
    roles: dict[str, list[str]] = {}
    for role, cols in (("--target", [target]), ("--groups", groups), ("--features", features)):
        for c in cols:
            roles.setdefault(c, []).append(role)
    for c, rs in roles.items():
        if len(rs) > 1:
            raise CLIError(MSG_COLUMN_TWICE.format(column=c, roles=" and ".join(rs)))


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _parse_margin(text: str) -> Any:
    text = text.strip()
    if text.startswith("se:"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise CLIError(MSG_BAD_MARGIN.format(value=text)) from None
    if not np.isfinite(value) or value < 0:
        raise CLIError(MSG_BAD_MARGIN.format(value=text))
    return value


def _check_out(path: str | Path) -> Path:
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise CLIError(MSG_OUT_DIR_MISSING.format(path=path, folder=folder))
    return p


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CLIError(MSG_CANNOT_WRITE.format(path=path, reason=_one_line(exc))) from None


# --------------------------------------------------------------------------- fit
def cmd_fit(args: argparse.Namespace, progress: Progress) -> int:
    """``fairuse fit``: read the CSV, encode features, fit, write the model file."""
    from .estimators import FairUseClassifier, FairUseRegressor
    from .model_io import TabularEncoding, dumps

    groups = list(args.groups)
    if not groups:
        raise CLIError(MSG_NO_GROUPS)
    margin = _parse_margin(args.margin)
    out = _check_out(args.out)
    explicit = list(args.features) if args.features is not None else []
    needed = [args.target, *groups, *explicit, *args.categorical]
    frame = read_table(args.data, text_columns=[*groups, *args.categorical], needed=needed)
    features = explicit if args.features is not None else [
        c for c in frame.columns if c != args.target and c not in groups]
    _check_roles(args.target, groups, features)
    unknown_cat = [c for c in args.categorical if c not in features]
    if unknown_cat:
        raise CLIError(MSG_COLUMN_TWICE.format(column=unknown_cat[0], roles="--categorical but not a feature"))
    frame, dropped = handle_missing(frame, [args.target, *groups, *features], groups, dropna=args.dropna,
                                    path=args.data, what="fit")
    y = frame[args.target]
    _check_target(y, args.target, args.task)
    _check_group_columns(frame, groups)
    encoding = TabularEncoding.fit(frame[features], categorical=args.categorical)
    X = encoding.transform(frame)
    G = frame[groups]
    n_groups = len(G.drop_duplicates())
    # input is valid: from here on, progress (before, a bad input gives one line only)
    if dropped:
        progress(dropped)
    if encoding.categorical:
        progress(f"one-hot encoded {', '.join(encoding.categorical)} -> {X.shape[1]} feature(s)")
    cls = FairUseClassifier if args.task == "classification" else FairUseRegressor
    fair_use = None if args.fair_use.strip().lower() == "none" else args.fair_use
    est = cls(encoding=args.encoding, fair_use=fair_use, margin=margin, alpha=args.alpha,
              group_reg=args.group_reg, on_infeasible=args.on_infeasible, solver=args.solver,
              verbose=not args.quiet)
    progress(f"fitting {args.task}, encoding={args.encoding}, fair use {args.fair_use}: "
             f"{len(frame)} rows, {X.shape[1]} feature(s), {n_groups} group(s)")
    est.fit(X, y, groups=G)
    cert = est.certificate_
    progress(f"fitted: route {cert.route}, solver {cert.solver} ({cert.status}), verified={cert.verified}")
    metadata = {"data": str(args.data), "n_rows": int(len(frame)),
                "command": " ".join([PROG, *map(shlex.quote, args.argv)])}
    _write(out, dumps(est, encoding=encoding, target=args.target, group_columns=groups, metadata=metadata))
    progress(f"wrote {out}")
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


# --------------------------------------------------------------------------- audit
def cmd_audit(args: argparse.Namespace, progress: Progress) -> int:
    """``fairuse audit``: read the model file and the CSV, audit, write the report."""
    from .model_io import read

    out = _check_out(args.out)
    md = _check_out(args.markdown) if args.markdown else None
    png = _check_out(args.plot) if args.plot else None
    if png is not None and importlib.util.find_spec("matplotlib") is None:
        raise CLIError(MSG_NEED_MATPLOTLIB)
    try:
        mf = read(args.model)
    except InputError as exc:
        raise CLIError(MSG_BAD_MODEL.format(reason=_one_line(exc))) from None
    est = mf.estimator
    target = args.target or mf.target
    groups = list(args.groups) if args.groups else mf.group_columns
    if target is None or groups is None:
        raise CLIError(MSG_MODEL_NO_INPUT.format(path=args.model))
    feature_cols = mf.encoding.input_columns if mf.encoding is not None else list(est.feature_names_)
    text_cols = [*groups, *(mf.encoding.categorical if mf.encoding is not None else [])]
    try:
        from .audit import audit
    except ImportError as exc:  # the audit module is optional until it lands
        raise CLIError(MSG_NO_AUDIT.format(reason=_one_line(exc)), EXIT_FAILED) from None
    frame = read_table(args.data, text_columns=text_cols, needed=[target, *groups, *feature_cols])
    frame, dropped = handle_missing(frame, [target, *groups, *feature_cols], groups, dropna=args.dropna,
                                    path=args.data, what="audit")
    X = mf.encoding.transform(frame) if mf.encoding is not None else frame[feature_cols]
    G = _model_group_values(frame[groups], est)
    metrics = args.metrics or _csv_list(DEFAULT_METRICS[est._task])
    if dropped:
        progress(dropped)
    progress(f"auditing on {len(frame)} rows: metrics {', '.join(metrics)}, {args.n_boot} resamples, "
             f"alpha {args.alpha}, seed {args.seed}")
    report = audit(est, X, frame[target], groups=G, metrics=metrics, n_boot=args.n_boot,
                   alpha=args.alpha, random_state=args.seed)
    _write(out, report.to_json(indent=1))
    progress(f"wrote {out}")
    if md is not None:
        _write(md, report.to_markdown())
        progress(f"wrote {md}")
    if png is not None:
        fig = report.plot()
        _save_figure(fig, png)
        progress(f"wrote {png}")
    print(report.summary().to_string())
    return 0


def _model_group_values(G: pd.DataFrame, est: Any) -> pd.DataFrame:
    """Map group cells (read as text) to the model's group values (which may be numbers)."""
    index = est.group_index_
    if index is None:
        return G
    out = {}
    for col, name in zip(G.columns, index.names):
        levels = index.levels[name]
        mapping = {str(v): v for v in levels}
        out[col] = [mapping.get(v, v) for v in G[col]]
    return pd.DataFrame(out, index=G.index)


def _save_figure(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise CLIError(MSG_CANNOT_WRITE.format(path=path, reason=_one_line(exc))) from None
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace, progress: Progress) -> int:
    """``fairuse demo``: see :func:`fairuse_opt.demo.run_demo`."""
    from .demo import DEFAULT_N_BOOT, DEFAULT_OUT, run_demo

    run_demo(args.out or DEFAULT_OUT, data=args.data,
             n_boot=DEFAULT_N_BOOT if args.n_boot is None else args.n_boot, seed=args.seed,
             progress=progress, command=" ".join([PROG, *map(shlex.quote, args.argv)]))
    return 0


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
        Exit status: 0 success, 1 a fit or audit that could not be done, 2 bad input.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed on one line)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_INPUT
    if args.command is None:
        print(f"{PROG}: error: {MSG_NO_COMMAND}", file=sys.stderr)
        return EXIT_INPUT
    args.argv = argv
    progress = Progress(quiet=args.quiet)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.func(args, progress)
        except CLIError as exc:
            return _fail(str(exc), exc.status)
        except (InputError, FileNotFoundError, ImportError) as exc:
            return _fail(str(exc), EXIT_INPUT)
        except FairUseError as exc:  # infeasible margin, solver failure, failed verification
            return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
        except KeyboardInterrupt:
            return _fail(MSG_INTERRUPTED, 130)


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr, flush=True)
    return status


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr, flush=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
