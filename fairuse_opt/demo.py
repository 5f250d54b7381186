"""The demo behind ``fairuse demo``: the whole story on real data in one command.

On a real classification dataset (by default scikit-learn's diabetes data, binary
version, which the core install provides) the demo

1. splits the rows into training and test sets (seeded, stratified by group and label);
2. fits four models on the training set: the generic model (no group attributes), the
   one-hot and intersectional personalized models (no guarantee), and the fair-use model
   (:class:`~fairuse_opt.FairUseClassifier` with its defaults: intersectional encoding,
   rationality and envy-freeness guaranteed on the training data);
3. prints, per group, training and test log loss and error of every model, with the gain
   of each personalized model over the generic one;
4. audits the three personalized models on the test set (paired stratified bootstrap,
   one-sided tests, Holm correction; :func:`fairuse_opt.audit.audit`);
5. writes a report (``demo_report.md`` and ``demo_report.png``), the per-group table
   (``per_group.csv``), the audits (``audit_<model>.json``) and the fair-use model file
   (``fair_use_model.json``) to the output folder, and prints a short table: per group,
   the test gain of each model and the audit's verdicts.

Nothing is created at import; the output folder is created when the demo runs.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .exceptions import InputError

__all__ = ["run_demo", "DemoResult", "MODELS", "MODEL_NAMES", "PERSONALIZED", "DEFAULT_OUT", "DEFAULT_N_BOOT", "load_demo_data"]

#: Output folder used when none is given (relative to the current folder).
DEFAULT_OUT = "fairuse_demo_output"
#: Bootstrap resamples of the demo's audits.
DEFAULT_N_BOOT = 500
#: Share of rows held out for the test set.
TEST_SIZE = 0.3
#: Metrics of the audit (log loss is the training loss; error is what clinicians read).
AUDIT_METRICS = ("log_loss", "error", "auc")
#: Significance level of the audit's one-sided tests.
AUDIT_ALPHA = 0.10

#: The personalized models of the demo: name -> parameters of FairUseClassifier.  The
#: generic model is the fair-use model's own ``generic_`` (same data, loss and penalty):
#: the model its guarantees are certified against.
MODELS: dict[str, dict[str, Any]] = {
    "one-hot": {"encoding": "onehot", "fair_use": None},
    "intersectional": {"encoding": "intersectional", "fair_use": None},
    "fair use": {},
}
PERSONALIZED = tuple(MODELS)
#: Every model of the tables, in display order.
MODEL_NAMES = ("generic", *PERSONALIZED)

REPORT_MD = "demo_report.md"
REPORT_PNG = "demo_report.png"
TABLE_CSV = "per_group.csv"
MODEL_JSON = "fair_use_model.json"

MSG_UNKNOWN_DATA = "--data {value!r} is neither 'diabetes', 'apnea' nor an existing file or folder"
MSG_NO_AUDIT = "audit skipped: fairuse_opt.audit is not available ({reason})"
MSG_NO_PLOT = "plot skipped: matplotlib is not installed (pip install 'fairuse_opt[plot]')"


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    table : DataFrame
        Per group (and ``all``) and model: rows, training and test log loss and error,
        and gains over the generic model (positive: the model does better).
    verdicts : DataFrame or None
        The short table: per group and personalized model, test gains and the audit's
        verdicts (``None`` when the audit module is not available).
    audits : dict
        Model name -> :class:`~fairuse_opt.audit.FairUseReport` (empty without audit).
    models : dict
        Model name -> fitted :class:`~fairuse_opt.FairUseClassifier`.
    paths : dict
        What was written: ``"markdown"``, ``"png"``, ``"table"``, ``"model"``,
        ``"audit:<model>"`` -> path.
    seconds : float
        Wall time of the whole demo.
    """

    table: pd.DataFrame
    verdicts: pd.DataFrame | None
    audits: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)
    seconds: float = 0.0
    dataset: str = ""
    notes: list = field(default_factory=list)


def load_demo_data(data: str) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, str]:
    """``(X, y, groups, description)`` of the demo dataset.

    Parameters
    ----------
    data : str
        ``"diabetes"`` (scikit-learn's diabetes data, outcome progression > 140),
        ``"apnea"`` (from the folder named by ``FAIRUSE_DATA_DIR``) or the path of
        ``apnea.csv`` (or of its folder).
    """
    from . import datasets

    if data == "diabetes":
        X, y, g = datasets.load_diabetes(binary=True)
        desc = (f"scikit-learn diabetes data, binary outcome progression > {datasets.DIABETES_THRESHOLD} "
                f"(`fairuse_opt.datasets.load_diabetes(binary=True)`)")
    elif data == "apnea":
        X, y, g = datasets.load_apnea()
        desc = "obstructive sleep apnea screening data (`fairuse_opt.datasets.load_apnea()`, FAIRUSE_DATA_DIR)"
    elif Path(data).exists():
        X, y, g = datasets.load_apnea(data)
        desc = f"obstructive sleep apnea screening data read from {data}"
    else:
        raise InputError(MSG_UNKNOWN_DATA.format(value=data))
    return X, y, g, desc


def _split(X, y, g, seed: int):
    from sklearn.model_selection import train_test_split

    strata = g.astype(str).agg("|".join, axis=1) + "|" + y.astype(str)
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=TEST_SIZE, random_state=seed, stratify=strata)
    tr, te = np.sort(tr), np.sort(te)
    pick = lambda obj, rows: obj.iloc[rows].reset_index(drop=True)  # noqa: E731
    return ((pick(X, tr), pick(y, tr), pick(g, tr)), (pick(X, te), pick(y, te), pick(g, te)))


def _losses(model, X, y, g) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log loss and error of ``model`` (own report)."""
    p = model.predict_proba(X, groups=g)[:, 1]
    p = np.clip(p, 1e-15, 1 - 1e-15)
    y01 = (np.asarray(y) == model.classes_[1]).astype(float)
    ll = -(y01 * np.log(p) + (1 - y01) * np.log1p(-p))
    err = ((p > 0.5).astype(float) != y01).astype(float)
    return ll, err


def per_group_table(models: dict, train, test, names: list[str]) -> pd.DataFrame:
    """Training and test log loss and error per group and model, with gains over generic.

    Returns
    -------
    DataFrame
        Columns ``group``, ``model``, ``n_train``, ``n_test``, ``train_log_loss``,
        ``test_log_loss``, ``train_error``, ``test_error``, ``gain_train_log_loss``,
        ``gain_test_log_loss``, ``gain_train_error``, ``gain_test_error``.
    """
    rows = []
    per = {}
    for split, (X, y, g) in (("train", train), ("test", test)):
        labels = g[names].astype(str).apply(lambda r: ", ".join(f"{n}={v}" for n, v in zip(names, r)), axis=1)
        per[split] = (labels.to_numpy(), {m: _losses(est, X, y, g) for m, est in models.items()})
    groups = sorted(set(per["train"][0]) | set(per["test"][0]))
    for group in [*groups, "all"]:
        stats: dict[str, dict[str, float]] = {}
        for m in models:
            s: dict[str, float] = {}
            for split in ("train", "test"):
                labels, losses = per[split]
                mask = np.ones(len(labels), bool) if group == "all" else labels == group
                ll, err = losses[m]
                s[f"n_{split}"] = int(mask.sum())
                s[f"{split}_log_loss"] = float(ll[mask].mean()) if mask.any() else np.nan
                s[f"{split}_error"] = float(err[mask].mean()) if mask.any() else np.nan
            stats[m] = s
        for m, s in stats.items():
            row = {"group": group, "model": m, **s}
            for split in ("train", "test"):
                for metric in ("log_loss", "error"):
                    key = f"{split}_{metric}"
                    row[f"gain_{key}"] = stats["generic"][key] - s[key]
            rows.append(row)
    cols = ["group", "model", "n_train", "n_test", "train_log_loss", "test_log_loss", "train_error",
            "test_error", "gain_train_log_loss", "gain_test_log_loss", "gain_train_error", "gain_test_error"]
    return pd.DataFrame(rows)[cols]


def verdict_table(audits: dict) -> pd.DataFrame:
    """The short table: per group and model, test gains and the audit's verdicts.

    Columns ``group``, ``model``, ``n``, then for log loss and error the rationality gain
    (``gain_<metric>``), its verdict (``rationality_<metric>``) and the verdict of the
    envy test against the other reports (``envy_<metric>``).
    """
    rows = []
    for model, report in audits.items():
        t = report.table
        for group in dict.fromkeys(t["group"]):
            row: dict[str, Any] = {"group": group, "model": model}
            for metric in ("log_loss", "error"):
                sel = (t["group"] == group) & (t["metric"] == metric)
                rat = t[sel & (t["condition"] == "rationality")]
                env = t[sel & (t["condition"] == "envy")]
                if "n" not in row and len(rat):
                    row["n"] = int(rat["n"].iloc[0])
                row[f"gain_{metric}"] = float(rat["gain"].iloc[0]) if len(rat) else np.nan
                row[f"rationality_{metric}"] = rat["verdict"].iloc[0] if len(rat) else ""
                row[f"envy_{metric}"] = env["verdict"].iloc[0] if len(env) else ""
            rows.append(row)
    out = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(PERSONALIZED)}
    out["_o"] = out["model"].map(order)
    return out.sort_values(["group", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def run_demo(out: str | Path = DEFAULT_OUT, *, data: str = "diabetes", n_boot: int = DEFAULT_N_BOOT,
             seed: int = 0, progress: Callable[[str], None] | None = None, command: str | None = None,
             stdout: Any = None) -> DemoResult:
    """Run the demo and write its report to ``out``.

    Parameters
    ----------
    out : str or Path, default ``"fairuse_demo_output"``
        Output folder (created if needed, with its parents).
    data : str, default ``"diabetes"``
        ``"diabetes"``, ``"apnea"`` or the path of ``apnea.csv``; see
        :func:`load_demo_data`.
    n_boot : int, default 500
        Bootstrap resamples of each audit.
    seed : int, default 0
        Seed of the train/test split and of the bootstrap.
    progress : callable, optional
        Receives progress messages (the command line prints them on standard error).
    command : str, optional
        The command that ran the demo, quoted in the report.
    stdout : file-like, optional
        Where the tables are printed (default: ``sys.stdout``).

    Returns
    -------
    DemoResult
    """
    from . import __version__
    from .estimators import FairUseClassifier

    started = time.perf_counter()
    say = progress or (lambda msg: None)
    stdout = stdout if stdout is not None else sys.stdout
    out = Path(out)
    notes: list[str] = []

    X, y, g, desc = load_demo_data(data)
    names = list(g.columns)
    train, test = _split(X, y, g, seed)
    say(f"data: {len(y)} rows, {X.shape[1]} features, groups {' x '.join(names)}; "
        f"train {len(train[1])}, test {len(test[1])} (seed {seed})")

    fitted: dict[str, Any] = {}
    fit_seconds: dict[str, float] = {}
    for name, params in MODELS.items():
        t0 = time.perf_counter()
        fitted[name] = FairUseClassifier(**params).fit(train[0], train[1], groups=train[2])
        fit_seconds[name] = time.perf_counter() - t0
        say(f"fitted {name} model (and its generic model) in {fit_seconds[name]:.2f} s")
    models: dict[str, Any] = {"generic": fitted["fair use"].generic_, **fitted}
    table = per_group_table(models, train, test, names)

    audits: dict[str, Any] = {}
    try:
        from .audit import audit
    except ImportError as exc:
        audit = None
        notes.append(MSG_NO_AUDIT.format(reason=exc))
        say(notes[-1])
    if audit is not None:
        for name in PERSONALIZED:
            t0 = time.perf_counter()
            audits[name] = audit(models[name], test[0], test[1], groups=test[2], generic=models["generic"],
                                 metrics=list(AUDIT_METRICS), n_boot=n_boot, alpha=AUDIT_ALPHA,
                                 random_state=seed)
            say(f"audited {name} model on the test set in {time.perf_counter() - t0:.2f} s")
    verdicts = verdict_table(audits) if audits else None

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["table"] = out / TABLE_CSV
    table.to_csv(paths["table"], index=False)
    paths["model"] = out / MODEL_JSON
    models["fair use"].to_json(paths["model"])
    for name, report in audits.items():
        p = out / f"audit_{name.replace(' ', '_')}.json"
        p.write_text(report.to_json(indent=1), encoding="utf-8")
        paths[f"audit:{name}"] = p
    if importlib.util.find_spec("matplotlib") is not None:
        paths["png"] = out / REPORT_PNG
        _plot(table, audits, paths["png"], title=desc.split(" (")[0])
    else:
        notes.append(MSG_NO_PLOT)
        say(notes[-1])
    seconds = time.perf_counter() - started
    paths["markdown"] = out / REPORT_MD
    md = _markdown(table, verdicts, audits, models, desc=desc, names=names, seed=seed, n_boot=n_boot,
                   command=command or f"fairuse demo --out {out}", seconds=seconds, fit_seconds=fit_seconds,
                   n=(len(y), len(train[1]), len(test[1])), png=paths.get("png"), notes=notes,
                   version=__version__)
    paths["markdown"].write_text(md, encoding="utf-8")

    print(_terminal(table, verdicts), file=stdout)
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}", file=stdout)
    print(f"demo finished in {seconds:.1f} s", file=stdout)
    return DemoResult(table=table, verdicts=verdicts, audits=audits, models=models, paths=paths,
                      seconds=seconds, dataset=desc, notes=notes)


# --------------------------------------------------------------------------- output
def findings(table: pd.DataFrame, audits: dict, models: dict) -> list[str]:
    """Plain-language findings of the demo, computed from its numbers."""
    out = []
    groups = table[table["group"] != "all"]
    for m in PERSONALIZED:
        t = groups[groups["model"] == m]
        harmed = t[t["gain_train_log_loss"] < 0]
        test_harmed = t[t["gain_test_log_loss"] < 0]
        text = f"*{m}*: training log loss "
        text += ("lower than the generic model's for every group" if harmed.empty else
                 "higher than the generic model's for " + ", ".join(
                     f"{r.group} ({r.gain_train_log_loss:+.4f})" for r in harmed.itertuples()))
        text += f"; on the test set, {len(test_harmed)} of {len(t)} group(s) have a negative point gain in log loss"
        if m in audits:
            rt = audits[m].table
            for cond in ("rationality", "envy"):
                sel = rt[rt["condition"] == cond]
                viol = sel[sel["verdict"] == "violation"]
                ben = sel[sel["verdict"] == "benefit"]
                text += (f"; {cond}: {len(viol)} significant violation(s)"
                         + (" (" + ", ".join(f"{r.group} in {r.metric}" for r in viol.itertuples()) + ")"
                            if len(viol) else "")
                         + f", {len(ben)} significant benefit(s) (group x metric)")
        out.append(text + ".")
    fair = models["fair use"].certificate_
    note = (f"The fair-use model's certificate is verified = {fair.verified} (route `{fair.route}`): on the "
            "training data every group gains over the generic model and envies no other report.")
    if fair.route == "unconstrained-feasible":
        note += (" Here the unconstrained intersectional fit already met every constraint, so it is the "
                 "fair-use optimum and the two models coincide.")
    out.append(note)
    sizes = groups[groups["model"] == "generic"]["n_test"]
    text = ("A training guarantee does not carry over to new patients by itself: the test-set audit is the "
            f"check (test groups of {int(sizes.min())} to {int(sizes.max())} rows)")
    if audits:
        allv = pd.concat([r.table[r.table["condition"].isin(["rationality", "envy"])] for r in audits.values()])
        text += (f"; {int(allv['verdict'].str.startswith('inconclusive').sum())} of {len(allv)} verdicts "
                 "(model x group x condition x metric) are 'inconclusive'")
    out.append(text + ".")
    return out


def _fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:+.{digits}f}" if digits < 0 else f"{v:.{digits}f}"
    return str(v)


def _gain(v: float) -> str:
    return "" if np.isnan(v) else f"{v:+.4f}"


def _md_table(frame: pd.DataFrame, formats: dict[str, Callable[[Any], str]] | None = None) -> str:
    formats = formats or {}
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = []
    for row in frame.itertuples(index=False, name=None):
        cells = [formats.get(c, _fmt)(v) for c, v in zip(frame.columns, row)]
        body.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join([head, rule, *body])


GAIN_COLUMNS = ("gain_train_log_loss", "gain_test_log_loss", "gain_train_error", "gain_test_error")


#: Short column names of the terminal table.
TERMINAL_NAMES = {"n_train": "n tr", "n_test": "n te", "train_log_loss": "LL tr", "test_log_loss": "LL te",
                  "train_error": "err tr", "test_error": "err te", "gain_train_log_loss": "gain LL tr",
                  "gain_test_log_loss": "gain LL te", "gain_train_error": "gain err tr",
                  "gain_test_error": "gain err te"}


def _terminal(table: pd.DataFrame, verdicts: pd.DataFrame | None) -> str:
    t = table.copy()
    lines = ["Per group: training (tr) and test (te) log loss (LL) and error rate (err); "
             "gain = generic - model (positive: better)", ""]
    fmt = {c: (_gain if c.startswith("gain") else (lambda v: f"{v:.4f}")) for c in t.columns
           if c not in ("group", "model", "n_train", "n_test")}
    t = t.rename(columns=TERMINAL_NAMES)
    fmt = {TERMINAL_NAMES.get(k, k): v for k, v in fmt.items()}
    lines.append(t.to_string(index=False, formatters=fmt))
    if verdicts is not None:
        v = verdicts.copy()
        lines += ["", f"Audit on the test set (bootstrap, one-sided tests at {AUDIT_ALPHA}, Holm): "
                  "gain over generic and verdicts", ""]
        v = v[["group", "model", "n", "gain_log_loss", "rationality_log_loss", "envy_log_loss",
               "gain_error", "rationality_error", "envy_error"]]
        v.columns = ["group", "model", "n te", "gain LL", "rationality (LL)", "envy (LL)", "gain err",
                     "rationality (err)", "envy (err)"]
        lines.append(v.to_string(index=False, formatters={"gain LL": _gain, "gain err": _gain}))
    return "\n".join(lines)


def _markdown(table, verdicts, audits, models, *, desc, names, seed, n_boot, command, seconds, fit_seconds,
              n, png, notes, version) -> str:
    fair = models["fair use"].certificate_
    lines = [
        "# fairuse_opt demo report", "",
        f"Made by `{command}` (fairuse_opt {version}) in {seconds:.1f} s.", "",
        f"**Data.** {desc}: {n[0]} rows, group attributes {' x '.join(names)}. "
        f"Split {n[1]} training / {n[2]} test rows (test share {TEST_SIZE}), stratified by group and "
        f"label, seed {seed}.", "",
        "**Models** (all `FairUseClassifier`, logistic loss, fitted on the training rows): "
        "*generic* (no group attributes: the fair-use model's `generic_`, fitted on the same rows with the "
        "same loss and penalty, the model its guarantees are certified against); *one-hot* (`encoding='onehot'`, "
        "`fair_use=None`: additive offsets per attribute value, no guarantee); *intersectional* "
        "(`encoding='intersectional'`, `fair_use=None`: one intercept per group, no guarantee); "
        "*fair use* (the defaults: intersectional, rationality and envy-freeness guaranteed on "
        "the training data). Fit times (each includes its own generic fit): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in fit_seconds.items()) + ".", "",
        "Gains are `generic - model` (positive: the personalized model does better for the group).", "",
        "## What this shows", "", *[f"- {f}" for f in findings(table, audits, models)], "",
    ]
    if png is not None:
        lines += [f"![per-group gains and audit verdicts]({png.name})", ""]
    if verdicts is not None:
        lines += [f"## Audit on the test set", "",
                  f"`fairuse_opt.audit.audit(model, X_test, y_test, groups=g_test, generic=generic, "
                  f"metrics={list(AUDIT_METRICS)}, n_boot={n_boot}, alpha={AUDIT_ALPHA}, random_state={seed})`: "
                  "paired bootstrap stratified by (group, label), one-sided tests, Holm correction "
                  "across groups. *Rationality*: own report vs the generic model; *envy*: own report vs "
                  "every other report (union test).", "",
                  _md_table(verdicts, {"gain_log_loss": _gain, "gain_error": _gain}), ""]
        rows = []
        for name, rep in audits.items():
            s = rep.verdict_counts().reset_index()
            s.insert(0, "model", name)
            rows.append(s)
        summary = pd.concat(rows, ignore_index=True)
        lines += ["Verdict counts (groups) per model, condition and metric:", "",
                  _md_table(summary, {c: str for c in summary.columns}), ""]
    lines += ["## Per group: training and test loss", "",
              _md_table(table, {**{c: _gain for c in GAIN_COLUMNS},
                                **{c: (lambda v: f"{v:.4f}") for c in ("train_log_loss", "test_log_loss",
                                                                       "train_error", "test_error")}}), ""]
    cert = fair.table.copy()
    index = models["fair use"].group_index_
    cert["group"] = [index.label(k) for k in cert["group"]]
    cert["best_alternative"] = [index.label(k) if isinstance(k, tuple) else "" for k in cert["best_alternative"]]
    keep = ["group", "n", "generic_loss", "own_loss", "gain", "rationality_slack", "best_alternative",
            "envy_slack", "rationality_active", "dual"]
    lines += ["## Certificate of the fair-use model (training data)", "",
              f"Route `{fair.route}`, solver {fair.solver} ({fair.status}), verified = {fair.verified}; "
              f"objective {fair.objective:.6f} (unconstrained {fair.objective_unconstrained:.6f}, generic "
              f"{fair.objective_generic:.6f}).", "",
              _md_table(cert[[c for c in keep if c in cert]],
                        {"n": str, "rationality_active": str, "best_alternative": str, "group": str}), ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n_}" for n_ in notes], ""]
    return "\n".join(lines)


def _plot(table: pd.DataFrame, audits: dict, path: Path, *, title: str) -> None:
    """Per group: test gains of each personalized model (log loss, error) and the
    smallest envy gap, with the audit's intervals, coloured by verdict."""
    from matplotlib.figure import Figure  # no pyplot: no backend or global state touched
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from .audit import VERDICTS
    from .audit._report import _COLOURS, _used_bound

    colours = {**_COLOURS, "": "tab:blue"}
    markers = {"one-hot": "s", "intersectional": "D", "fair use": "o"}
    groups = [gr for gr in dict.fromkeys(table["group"]) if gr != "all"]
    panels = [("log_loss", "training", "training gain in log loss over generic\n(fair use: >= 0 guaranteed)"),
              ("log_loss", "rationality", "test gain in log loss over generic"),
              ("error", "rationality", "test gain in error rate over generic")]
    if audits:
        panels.append(("log_loss", "envy", "test: smallest envy gap in log loss\n(positive: own report is best)"))
    fig = Figure(figsize=(4.2 * len(panels), 1.8 + 0.55 * len(groups)), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True)
    ypos = {gr: len(groups) - 1 - i for i, gr in enumerate(groups)}
    offsets = {m: (1 - i) * 0.22 for i, m in enumerate(PERSONALIZED)}
    for ax, (metric, condition, label) in zip(np.atleast_1d(axes), panels):
        for m in PERSONALIZED:
            for gr in groups:
                y0 = ypos[gr] + offsets[m]
                verdict, lo, hi = "", np.nan, np.nan
                if condition == "training":
                    sel = table[(table["group"] == gr) & (table["model"] == m)]
                    gain = float(sel[f"gain_train_{metric}"].iloc[0])
                elif audits:
                    t = audits[m].table
                    r = t[(t["group"] == gr) & (t["metric"] == metric) & (t["condition"] == condition)]
                    if not len(r):
                        continue
                    gain, verdict = float(r["gain"].iloc[0]), str(r["verdict"].iloc[0])
                    # what the verdict used: its one-sided bound, drawn from the bound to the gain
                    _, bound = _used_bound(verdict, float(r["lower_bound"].iloc[0]),
                                           float(r["upper_bound"].iloc[0]))
                    lo, hi = min(bound, gain), max(bound, gain)
                else:
                    sel = table[(table["group"] == gr) & (table["model"] == m)]
                    gain = float(sel[f"gain_test_{metric}"].iloc[0])
                if np.isfinite(lo) and np.isfinite(hi):
                    ax.plot([lo, hi], [y0, y0], color=colours[verdict], lw=1.5)
                ax.plot([gain], [y0], marker=markers[m], color=colours[verdict], ms=7, ls="none",
                        markeredgecolor="black", markeredgewidth=0.5)
        ax.axvline(0.0, color="black", lw=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    first = np.atleast_1d(axes)[0]
    first.set_yticks([ypos[gr] for gr in groups], groups)
    handles = [Line2D([], [], marker=markers[m], ls="none", color="white", markeredgecolor="black", label=m)
               for m in PERSONALIZED]
    handles += [Line2D([], [], color=colours[""], lw=3, label="training (no test)")]
    if audits:
        shown = {str(v) for a in audits.values() for v in a.table["verdict"]}
        handles += [Line2D([], [], color=colours[v], lw=3, label=f"test: {v}") for v in VERDICTS
                    if v in shown]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), fontsize="small",
               frameon=False)
    fig.suptitle(f"{title}: per-group test gains of personalized models"
                 + (" (bar: from the one-sided bound the verdict used to the gain; colour = verdict)"
                    if audits else ""))
    fig.savefig(path, dpi=110)
