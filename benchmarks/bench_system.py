"""The certified system on real data, held out: how much of the gain of standard
personalization it keeps, and what it costs in violations.

For each dataset, 5 folds stratified by group and label.  In each fold, on the other
four folds (the fold's *training rows*):

* the models a user could fit instead, trained on ALL the training rows: the generic
  model (``FairUseClassifier(encoding="none")``) and the unconstrained intersectional
  and one-hot models (``fair_use=None``);
* ``fit_system`` with each procedure (``split``: the previous design, the baseline;
  ``ladder``: the default; ``crossfit``), assigned on the log loss, then on the error
  rate with ``reuse=`` (the same pool, assigned again), default candidate pool.

On the test fold: log loss and error rate; the *gain* of a model = the generic model's
(trained on all training rows) metric minus the model's; *kept* = the model's mean gain
over the folds / the mean gain of standard personalization (the better, on the dataset,
of the intersectional and one-hot models); the library's audit (500 resamples, alpha 0.10,
uncorrected, each model against its own generic model): (fold, group) cells with a
significant rationality violation and groups with significant envy; options served a
model other than the system's generic model; fit time.

Folds are numbered from 1 in the CSV file and the progress lines, as in the demo (the
fold at position ``k`` is fold ``k + 1``; seeds still take the position, so the numbers
reproduce).  A CSV file written before, its folds counted from 0, is renumbered when read
(``--resume``, ``--report-only``) and written back numbered from 1.

Usage::

    FAIRUSE_DATA_DIR=/work/shared/data python benchmarks/bench_system.py \\
        [--datasets apnea support2 ...] [--audit-boot 500] [--out benchmarks/results] [--resume]
"""

from __future__ import annotations

import argparse
import inspect
import logging
import resource
import subprocess
import sys
import time
import warnings
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from fairuse_opt import FairUseClassifier, audit, fit_system
from fairuse_opt.datasets import load

#: Datasets of ``../shared/data/README.md`` the library loads (whas500, flchain and compas
#: need packages outside the ``datasets`` extra; they run when installed).
DATASETS = ["apnea", "support2", "nhefs", "framingham", "pima", "birthwt", "diabetes",
            "whas500", "flchain", "compas"]
LOAD_KW = {"diabetes": {"binary": True}}
#: Decoupled models (a full logistic model per group) on support2's 48 features and 12
#: groups take 10 to 90 s each here, and the ladder fits the pool 4 times, crossfit 6
#: times: support2's pool leaves them out (every other dataset uses the default pool).
ENCODINGS = {"support2": ("onehot", "intersectional")}
PROCEDURES = ["split", "ladder", "crossfit"]
REFERENCES = ["generic (all rows)", "intersectional (all rows)", "one-hot (all rows)"]
#: The generic model that split and ladder serve: trained on their training part only.
HOLDOUT_GENERIC = "generic (70%: split's)"
METRICS = ["log_loss", "error"]
CSV = "system_datasets.csv"


def _strata(y, groups):
    return groups.astype(str).agg("|".join, axis=1).to_numpy() + "#" + np.asarray(y).astype(str)


def fold_splits(y, groups) -> list[tuple[np.ndarray, np.ndarray]]:
    """The study's 5 folds ``(training rows, test rows)``, stratified by group and label
    (seed 0); small-group stratification warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(y)), _strata(y, groups)))


def _new_api() -> bool:
    return "procedure" in inspect.signature(fit_system).parameters


def _fit(X, y, groups, *, procedure, metric, random_state, reuse=None, encodings=None):
    kw = {} if encodings is None else {"encodings": encodings}
    if _new_api():
        kw["procedure"] = procedure
        if reuse is not None:
            kw["reuse"] = reuse
    elif procedure != "split":
        raise NotImplementedError(procedure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_system(X, y, groups, metric=metric, random_state=random_state, **kw)


def _losses(p, y):
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return {"log_loss": float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q))),
            "error": float(np.mean((p > 0.5) != (y == 1)))}


def _options(groups: pd.DataFrame) -> list[tuple]:
    out = set()
    for key in groups.astype(object).itertuples(index=False, name=None):
        for k in range(1, len(key) + 1):
            for keep in combinations(range(len(key)), k):
                out.add(tuple(v if j in keep else None for j, v in enumerate(key)))
    return sorted(out, key=lambda o: tuple("" if v is None else str(v) for v in o))


def holdout_generic(X_r, y_r, g_r, fold):
    """The generic model of ``fit_system``'s split and ladder procedures for this fold:
    trained on the training part of ``stratified_split`` (assignment share 0.3, seed =
    the fold), as ``fit_system(..., random_state=fold)`` splits."""
    from fairuse_opt._validation import check_reports
    from fairuse_opt.system._fit import stratified_split

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, _ = stratified_split(np.asarray(y_r), check_reports(g_r, len(y_r)), 0.3, fold)
        return FairUseClassifier(encoding="none").fit(X_r.iloc[train], np.asarray(y_r)[train])


def add_holdout_generic(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of :data:`HOLDOUT_GENERIC` for the datasets of ``df`` that lack them (test
    metrics only; a few seconds per dataset)."""
    extra = []
    for name in df["dataset"].unique():
        if (df[(df["dataset"] == name)]["model"] == HOLDOUT_GENERIC).any():
            continue
        X, y, groups = load(name, **LOAD_KW.get(name, {}))
        y = np.asarray(y)
        for fold, (rest, test) in enumerate(fold_splits(y, groups)):
            model = holdout_generic(X.iloc[rest].reset_index(drop=True), y[rest],
                                    groups.iloc[rest].reset_index(drop=True), fold)
            p = model.predict_proba(X.iloc[test])[:, 1]
            extra.append({"dataset": name, "fold": fold + 1, "model": HOLDOUT_GENERIC, "n_test": len(test),
                          "n_train": len(rest), **_losses(p, y[test])})
    extra = pd.DataFrame(extra)
    parts = []
    for name in df["dataset"].unique():  # each dataset's rows: the generic models first
        d, e = df[df["dataset"] == name], extra[extra["dataset"] == name] if len(extra) else extra
        parts += [d[d["model"] == REFERENCES[0]], e, d[d["model"] != REFERENCES[0]]]
    return pd.concat(parts, ignore_index=True)


def n_personalized(system, X_probe, options) -> int:
    """Options whose served model differs from the system's generic model (on a probe of
    rows), through ``predict_proba`` only."""
    base = system.generic_.predict_proba(X_probe)[:, 1]
    n = 0
    for o in options:
        try:
            p = system.predict_proba(X_probe, report=o)[:, 1]
        except Exception:
            continue
        n += not np.allclose(p, base, rtol=0, atol=1e-9)
    return n


def _audit_counts(model, X_t, y_t, g_t, generic, fold, audit_boot) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = audit(model, X_t, y_t, groups=g_t, generic=generic, metrics=METRICS, n_boot=audit_boot,
                    alpha=0.10, correction=None, random_state=fold)
    t = rep.table
    out = {}
    for metric in METRICS:
        rat = t[(t["condition"] == "rationality") & (t["metric"] == metric)]
        env = t[(t["condition"] == "envy") & (t["metric"] == metric)]
        out[f"cells_{metric}"] = int(len(rat))
        out[f"rationality_{metric}"] = int((rat["verdict"] == "violation").sum())
        out[f"benefit_{metric}"] = int((rat["verdict"] == "benefit").sum())
        out[f"envy_{metric}"] = int((env["verdict"] == "violation").sum())
    return out


def run_dataset(name: str, *, audit_boot: int, procedures, log: logging.Logger) -> list[dict]:
    X, y, groups = load(name, **LOAD_KW.get(name, {}))
    y = np.asarray(y)
    names = list(groups.columns)
    rows = []
    for fold, (rest, test) in enumerate(fold_splits(y, groups)):
        X_r, y_r, g_r = X.iloc[rest].reset_index(drop=True), y[rest], groups.iloc[rest].reset_index(drop=True)
        X_t, y_t, g_t = X.iloc[test].reset_index(drop=True), y[test], groups.iloc[test].reset_index(drop=True)
        options = _options(g_r)
        probe = X_t.iloc[: min(200, len(X_t))]
        models, info = {}, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for label, enc in zip(REFERENCES, ["none", "intersectional", "onehot"]):
                started = time.perf_counter()
                est = FairUseClassifier(encoding="none") if enc == "none" else FairUseClassifier(encoding=enc,
                                                                                                   fair_use=None)
                models[label] = est.fit(X_r, y_r, groups=None if enc == "none" else g_r)
                info[label] = {"fit_s": time.perf_counter() - started}
        generic_all = models["generic (all rows)"]
        models[HOLDOUT_GENERIC] = holdout_generic(X_r, y_r, g_r, fold)
        info[HOLDOUT_GENERIC] = {"fit_s": np.nan}
        for proc in procedures:
            base = None
            for metric in METRICS:
                started = time.perf_counter()
                system = _fit(X_r, y_r, g_r, procedure=proc, metric=metric, random_state=fold, reuse=base,
                              encodings=ENCODINGS.get(name))
                label = f"{proc} ({metric})"
                models[label] = system
                info[label] = {"fit_s": time.perf_counter() - started, "reused": base is not None,
                               "options_personalized": n_personalized(system, probe, options),
                               "options": len(options)}
                if _new_api():
                    base = system
        for proc, own in (("ladder", "generic (all rows)"), ("split", HOLDOUT_GENERIC)):
            if f"{proc} (log_loss)" in models:  # the procedure's own generic model is the one named
                np.testing.assert_allclose(models[f"{proc} (log_loss)"].generic_.predict_proba(X_t),
                                           models[own].predict_proba(X_t), rtol=0, atol=1e-10)
        for label, model in models.items():
            kw = {} if label in ("generic (all rows)", HOLDOUT_GENERIC) else {"groups": g_t}
            p = model.predict_proba(X_t, **kw)[:, 1]
            row = {"dataset": name, "fold": fold + 1, "model": label, "n_test": len(test), "n_train": len(rest),
                   **_losses(p, y_t), **info.get(label, {})}
            if label not in ("generic (all rows)", HOLDOUT_GENERIC):
                generic = generic_all if label in REFERENCES else model.generic_
                row.update(_audit_counts(model, X_t, y_t, g_t, generic, fold, audit_boot))
            rows.append(row)
        log.info("%s fold %d of %d: %s", name, fold + 1, len(splits), ", ".join(
            f"{k} {v['fit_s']:.1f}s/{v.get('options_personalized', '-')}" for k, v in info.items()))
    return rows


def read_rows(csv: Path) -> tuple[list[dict], bool]:
    """The rows of a CSV file written by this script, folds numbered from 1; and whether
    they were renumbered (a file written before folds were numbered from 1 counts them
    from 0: each dataset's folds are then shifted by one)."""
    df = pd.read_csv(csv)
    old = df.groupby("dataset")["fold"].transform("min") == 0
    df.loc[old, "fold"] += 1
    return df.to_dict("records"), bool(old.any())


def summarise(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (dataset, model): test metrics, gains over the generic model trained on all
    rows, kept, audit counts; and per dataset the reference gains."""
    gen = df[df["model"] == "generic (all rows)"][["dataset", "fold", *METRICS]]
    d = df.merge(gen, on=["dataset", "fold"], how="left", suffixes=("", "_generic"))
    for m in METRICS:
        d[f"gain_{m}"] = d[f"{m}_generic"] - d[m]
    agg = {m: (m, "mean") for m in METRICS}
    agg.update({f"gain_{m}": (f"gain_{m}", "mean") for m in METRICS})
    for col in ["rationality_log_loss", "rationality_error", "envy_log_loss", "envy_error",
                "benefit_log_loss", "benefit_error", "cells_log_loss"]:
        agg[col] = (col, "sum")
    agg["options_personalized"] = ("options_personalized", "mean")
    agg["options"] = ("options", "mean")
    agg["fit_s"] = ("fit_s", "mean")
    s = d.groupby(["dataset", "model"], sort=False).agg(**agg).reset_index()
    ref = s[s["model"].isin(REFERENCES[1:])].groupby("dataset", sort=False)
    std = pd.DataFrame({f"std_gain_{m}": ref[f"gain_{m}"].max() for m in METRICS})
    inter = s[s["model"] == REFERENCES[1]].set_index("dataset")
    for m in METRICS:
        std[f"int_gain_{m}"] = inter[f"gain_{m}"]
    s = s.join(std, on="dataset")
    for m in METRICS:
        s[f"kept_{m}"] = np.where(s[f"std_gain_{m}"] > 0, s[f"gain_{m}"] / s[f"std_gain_{m}"], np.nan)
        s[f"kept_int_{m}"] = np.where(s[f"int_gain_{m}"] > 0, s[f"gain_{m}"] / s[f"int_gain_{m}"], np.nan)
        s.loc[s["model"] == REFERENCES[0], [f"kept_{m}", f"kept_int_{m}"]] = np.nan
        # over the model's own generic model: split serves the 70% one
        hold = s[s["model"] == HOLDOUT_GENERIC].set_index("dataset")[f"gain_{m}"]
        own = s[f"gain_{m}"] - np.where(s["model"].str.startswith("split"),
                                        s["dataset"].map(hold).fillna(0.0), 0.0)
        s[f"kept_own_{m}"] = np.where(s[f"std_gain_{m}"] > 0, own / s[f"std_gain_{m}"], np.nan)
        s.loc[s["model"].isin([REFERENCES[0], HOLDOUT_GENERIC]), f"kept_own_{m}"] = np.nan
    return s, std


def write_markdown(df: pd.DataFrame, path: Path, meta: dict) -> None:
    s, std = summarise(df)
    lines = ["# The certified system on real data, held out (`benchmarks/bench_system.py`)", "",
             f"Command: `{meta['command']}`", "",
             f"Library commit `{meta['commit']}`.  Elapsed {meta['elapsed_min']:.1f} min on the shared 2-core "
             f"machine (other sessions running); peak memory (max RSS) {meta['peak_mb']:.0f} MB.", "",
             __doc__.split("\n\n", 1)[1].split("Usage::")[0].strip(), "",
             "Columns: test log loss and error (%) averaged over the folds; *gain* (x 1000 for log loss, "
             "points for error) over the generic model trained on all training rows; *kept* = gain / the "
             "gain of the better standard model (blank where standard personalization does not gain on "
             "average); *rat.* = (fold, group) cells with a significant held-out rationality violation "
             "(log loss / error); *envy* = (fold, group) cells with significant envy of some other report "
             "(log loss / error); *opts* = options personalized / options (mean per fold); *fit s* = mean "
             "fit time (for the error-rate system: re-assignment of the log-loss system's pool through "
             "`reuse=`).", ""]
    for name, part in s.groupby("dataset", sort=False):
        n = int(df[(df["dataset"] == name)].drop_duplicates("fold")["n_test"].sum())
        cells = int(part[part["model"] == "intersectional (all rows)"]["cells_log_loss"].iloc[0])
        lines += [f"## {name} ({n:,} rows, {cells} (fold, group) cells)", "",
                  "| model | log loss | gain | kept | error % | gain | kept | rat. | envy | opts | fit s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in part.iterrows():
            gen = r["model"] in (REFERENCES[0], HOLDOUT_GENERIC)
            opts = "" if pd.isna(r["options_personalized"]) else f"{r['options_personalized']:.1f}/{r['options']:.0f}"
            aud = "" if gen else (f"{int(r['rationality_log_loss'])} / {int(r['rationality_error'])} | "
                                  f"{int(r['envy_log_loss'])} / {int(r['envy_error'])}")
            lines.append(
                f"| {r['model']} | {r['log_loss']:.4f} | {1000 * r['gain_log_loss']:+.2f} | {_f(r['kept_log_loss'])} | "
                f"{100 * r['error']:.2f} | {100 * r['gain_error']:+.2f} | {_f(r['kept_error'])} | "
                f"{aud if aud else ' | '} | {opts} | {_f(r['fit_s'])} |")
        lines.append("")
    if "as earlier versions of this audit did" not in (audit.__doc__ or ""):
        lines += ["The audit used here (the library's at the commit above) resamples within (group, label) "
                  "cells; issue 21 measured its log-loss verdicts as anti-conservative for a population gain, "
                  "so the log-loss violation and envy counts may shrink once the audit resamples within groups "
                  "only.", ""]
    if meta.get("holdout_generic_added"):
        lines += [f"The rows `{HOLDOUT_GENERIC}` were added afterwards with `--report-only --add-holdout-generic` "
                  "(the generic model refitted on the training part of the split that `fit_system` makes; a "
                  "full run checks it against the ladder's and split's own generic models).", ""]
    for name, why in meta.get("skipped", {}).items():
        lines += [f"{name}: skipped ({why}).", ""]
    if "support2" in set(df["dataset"]):
        lines += ["support2: the pool leaves out the decoupled models (see `ENCODINGS` in the script); every "
                  "other dataset uses the default pool of `fit_system`.", ""]
    lines += _must_show(s)
    path.write_text("\n".join(lines) + "\n")


def _f(x) -> str:
    return "" if pd.isna(x) else f"{x:.2f}"


def _must_show(s: pd.DataFrame) -> list[str]:
    out = ["## Over the datasets", "",
           "Mean over the datasets of *kept* (datasets where standard personalization does not gain on "
           "average left out of the mean, and counted), and held-out violations summed over the datasets "
           "against the unconstrained intersectional model's (trained on all rows).", "",
           "*pooled* = the model's log-loss gains summed over those datasets / the standard gains summed "
           "(datasets weighted by how much personalization gains there).", "",
           "*over own generic* = the same mean with the gain measured over the model's own generic model "
           "(split serves one trained on 70% of the rows; the ladder serves the generic model trained on all "
           "rows): what personalization itself keeps.", "",
           "| model | kept, log loss: mean (median) [datasets] | pooled | over own generic | "
           "against the intersectional model only | "
           "kept, error: mean (median) [datasets] | rationality violations, log loss / error | envy, log loss / error | options personalized "
           "(per fold, summed over the datasets) |",
           "|---|---|---|---|---|---|---|---|---|"]
    totals = {}
    for model, part in s.groupby("model", sort=False):
        if model == "generic (all rows)":
            continue
        kl, ke = part["kept_log_loss"].dropna(), part["kept_error"].dropna()
        ki = part["kept_int_log_loss"].dropna()
        totals[model] = (int(part["rationality_log_loss"].sum()), int(part["rationality_error"].sum()))
        opts = part["options_personalized"].sum() if part["options_personalized"].notna().any() else np.nan
        pos = part[part["std_gain_log_loss"] > 0]
        pooled = pos["gain_log_loss"].sum() / pos["std_gain_log_loss"].sum()
        ko = part["kept_own_log_loss"].dropna()
        own = f"{ko.mean():.2f} ({ko.median():.2f})" if len(ko) else ""
        out.append(f"| {model} | {kl.mean():.2f} ({kl.median():.2f}) [{len(kl)}] | {pooled:.2f} | {own} | {ki.mean():.2f} "
                   f"({ki.median():.2f}) [{len(ki)}] | {ke.mean():.2f} "
                   f"({ke.median():.2f}) [{len(ke)}] | " +
                   ("| | " if model == HOLDOUT_GENERIC else
                    f"{totals[model][0]} / {totals[model][1]} | "
                    f"{int(part['envy_log_loss'].sum())} / {int(part['envy_error'].sum())} | ") +
                   f"{'' if pd.isna(opts) else f'{opts:.1f}'} |")
    ref = totals.get("intersectional (all rows)")
    out += ["", "Must-show (log-loss systems, log-loss gain; violations: log loss, and both metrics):", ""]
    for proc, bar in (("ladder", 0.35), ("crossfit", 0.6), ("split", None)):
        part = s[s["model"] == f"{proc} (log_loss)"]
        if part.empty or ref is None:
            continue
        kept = part["kept_log_loss"].dropna().mean()
        viol = totals[f"{proc} (log_loss)"]
        ok_k = bar is None or kept >= bar
        ok_v = viol[0] <= ref[0] / 4 and sum(viol) <= sum(ref) / 4
        out.append(f"- {proc}: kept {kept:.2f}" + (f" (>= {bar}: {'PASS' if ok_k else 'FAIL'})" if bar else "") +
                   f"; rationality violations {viol[0]} (log loss), {sum(viol)} (both) against the "
                   f"intersectional model's {ref[0]} and {sum(ref)} (<= a quarter: {'PASS' if ok_v else 'FAIL'})")
    return out + [""]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--procedures", nargs="+", default=PROCEDURES, choices=PROCEDURES)
    parser.add_argument("--audit-boot", type=int, default=500)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--resume", action="store_true", help="keep the datasets already in the CSV")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--add-holdout-generic", action="store_true",
                        help="with --report-only: add the split/ladder generic model's rows to a CSV written "
                             "before the script computed them")
    parser.add_argument("--merge", nargs="*", default=[],
                        help="with --report-only: CSVs of other runs of this script (e.g. one dataset run "
                             "in a parallel process) whose datasets are added to the report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log = logging.getLogger("bench_system")
    logging.getLogger("fairuse_opt").setLevel(logging.WARNING)
    out = Path(args.out)
    csv = out / CSV
    procedures = args.procedures if _new_api() else ["split"]
    command = ("FAIRUSE_DATA_DIR=/work/shared/data python benchmarks/bench_system.py " +
               " ".join(a for a in (argv or sys.argv[1:]) if a not in ("--resume", "--report-only"))).strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta_path = out / "system_datasets.json"
    import json
    meta = json.loads(meta_path.read_text()) if (args.resume or args.report_only) and meta_path.exists() else {}
    rows, renumbered = read_rows(csv) if (args.resume or args.report_only) and csv.exists() else ([], False)
    started = time.perf_counter() - 60 * meta.get("elapsed_min", 0.0)
    done = {r["dataset"] for r in rows}
    skipped = dict(meta.get("skipped", {}))
    for name in ([] if args.report_only else args.datasets):
        if name in done:
            continue
        try:
            rows += run_dataset(name, audit_boot=args.audit_boot, procedures=procedures, log=log)
        except Exception as exc:
            if not isinstance(exc, (ImportError, FileNotFoundError)) and "needs the package" not in str(exc):
                raise
            log.warning("%s skipped: %s", name, exc)
            skipped[name] = str(exc).split(":")[0] + ": " + str(exc).split(":")[1].split(",")[0].strip()
            meta["skipped"] = skipped
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
            continue
        pd.DataFrame(rows).to_csv(csv, index=False)
        previous = meta.get("command")
        meta = {"command": command if previous in (None, command) else f"{previous}`, then `{command}",
                "commit": commit, "elapsed_min": (time.perf_counter() - started) / 60, "skipped": skipped,
                "peak_mb": max(meta.get("peak_mb", 0.0), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        write_markdown(pd.DataFrame(rows), out / "system_datasets.md", meta)
        log.info("%s done (%.1f min)", name, meta["elapsed_min"])
    if args.report_only:
        for path in args.merge:
            extra = pd.DataFrame(read_rows(Path(path))[0])
            rows += extra[~extra["dataset"].isin({r["dataset"] for r in rows})].to_dict("records")
            meta["command"] += f"`, and (in a parallel process, merged with `--report-only --merge`) " \
                               f"`{command.split(' --')[0]} --datasets {' '.join(extra['dataset'].unique())}"
        if args.add_holdout_generic:
            rows = add_holdout_generic(pd.DataFrame(rows)).to_dict("records")
            meta["holdout_generic_added"] = True
        if args.merge or args.add_holdout_generic or renumbered:
            pd.DataFrame(rows).to_csv(csv, index=False)
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        write_markdown(pd.DataFrame(rows), out / "system_datasets.md", meta)


if __name__ == "__main__":
    main()
