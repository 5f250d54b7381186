"""Tidy tables, the markdown summary and the plots of a benchmark run."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["tidy_results", "tidy_groups", "headline_table", "method_table", "totals_table", "write_outputs",
           "HEADLINE", "TIMING_COLUMNS"]

RESULTS_CSV = "results.csv"
GROUPS_CSV = "groups.csv"
SUMMARY_MD = "summary.md"
META_JSON = "run.json"
VIOLATIONS_PNG = "violations.png"
GAINS_PNG = "gains.png"

#: Columns that measure time (they differ between runs; everything else must not).
TIMING_COLUMNS = ("fit_seconds", "audit_seconds", "cell_seconds")

#: The headline comparison, per task: label -> (model class, technique, method).
HEADLINE = {
    "classification": {"one-hot logistic": ("logistic", "onehot", "unconstrained"),
                       "fair-use model": ("logistic", "intersectional", "fairuse"),
                       "certified system": ("logistic", "pool", "system")},
    "regression": {"one-hot linear": ("linear", "onehot", "unconstrained"),
                   "fair-use model": ("linear", "intersectional", "fairuse"),
                   "certified system": ("linear", "pool", "system")},
}
#: Metric whose violations the headline counts, per task (then the training loss).
HEADLINE_METRICS = {"classification": ("error", "log_loss"), "regression": ("mse",)}

_CELL_COLUMNS = ["cell_id", "dataset", "task", "fold", "model", "technique", "method", "status",
                 "reason", "route", "n_train", "n_assign", "n_test", "n_fit", "n_groups_test",
                 "pool", "n_candidates", "n_personalized", "fit_seconds", "audit_seconds",
                 "cell_seconds"]
_METRIC_COLUMNS = ["metric", "value", "generic_value", "rationality_judged",
                   "rationality_violations", "rationality_benefits", "envy_judged",
                   "envy_violations", "envy_benefits", "min_gain", "max_gain"]


def tidy_results(records: list[dict]) -> pd.DataFrame:
    """One row per (cell, metric); a cell that did not run has one row without a metric."""
    rows = []
    for r in records:
        base = {k: r.get(k) for k in _CELL_COLUMNS}
        tv = r.get("train_violations") or {}
        base["train_rationality_violations"] = tv.get("rationality")
        base["train_envy_violations"] = tv.get("envy")
        if r.get("metrics"):
            for m in r["metrics"]:
                rows.append({**base, **{k: m.get(k) for k in _METRIC_COLUMNS}})
        else:
            rows.append({**base, **{k: None for k in _METRIC_COLUMNS}})
    return pd.DataFrame(rows, columns=_CELL_COLUMNS[:4] + _CELL_COLUMNS[4:] + _METRIC_COLUMNS
                        + ["train_rationality_violations", "train_envy_violations"])


def tidy_groups(records: list[dict]) -> pd.DataFrame:
    """One row per (cell, metric, condition, group) of the test audits."""
    rows = [{"cell_id": r["cell_id"], "dataset": r["dataset"], "fold": r["fold"], "model": r["model"],
             "technique": r["technique"], "method": r["method"], **g}
            for r in records for g in r.get("groups", [])]
    return pd.DataFrame(rows)


def _note(cells: pd.DataFrame) -> str:
    """Why a row has no numbers: the first cell's status and reason, and how many cells
    share the status (reasons that differ only by a fold's size are not repeated)."""
    first = cells.iloc[0]
    reason = str(first["reason"]) if isinstance(first["reason"], str) else ""
    same = int((cells["status"] == first["status"]).sum())
    text = f"{first['status']} ({same} of {len(cells)} cells): {reason}" if reason else str(first["status"])
    return text.replace("|", "/")


def _ratio(v: float, n: float) -> str:
    return "" if pd.isna(n) else f"{int(v)}/{int(n)}"


def headline_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: test-set rationality violations (summed over folds, out of the
    (fold, group) cells judged) and the mean overall test metric, for the one-hot
    model, the fair-use model and the certified system side by side."""
    out = []
    ok = results[results["status"] == "ok"]
    for (dataset, task), part in ok.groupby(["dataset", "task"], sort=False):
        row: dict[str, Any] = {"dataset": dataset}
        metric0 = HEADLINE_METRICS[task][0]
        for label, (model, technique, method) in HEADLINE[task].items():
            sel = part[(part["model"] == model) & (part["technique"] == technique)
                       & (part["method"] == method)]
            for metric in HEADLINE_METRICS[task]:
                m = sel[sel["metric"] == metric]
                row[f"{label}: violations ({metric})"] = (
                    _ratio(m["rationality_violations"].sum(), m["rationality_judged"].sum())
                    if len(m) else "not run")
            m = sel[sel["metric"] == metric0]
            row[f"{label}: test {metric0}"] = float(m["value"].mean()) if len(m) else np.nan
        out.append(row)
    return pd.DataFrame(out)


def totals_table(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (model, technique, method), over datasets and folds: rationality violations and
    benefits out of the cells judged, and how many datasets had a violation."""
    m = results[(results["status"] == "ok") & (results["metric"] == metric)]
    rows = []
    for key, part in m.groupby(["model", "technique", "method"], sort=False):
        per_dataset = part.groupby("dataset", sort=False)["rationality_violations"].sum()
        judged = part["rationality_judged"].sum()
        rows.append({"model": key[0], "technique": key[1], "method": key[2],
                     "violations": _ratio(part["rationality_violations"].sum(), judged),
                     "benefits": _ratio(part["rationality_benefits"].sum(), judged),
                     "datasets with a violation": f"{int((per_dataset > 0).sum())}/{len(per_dataset)}"})
    return pd.DataFrame(rows)


def method_table(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per dataset and grid row, over folds: mean test metric (and the generic model's),
    violations / benefits summed (rationality and envy), smallest and largest group
    gain, training violations, mean fit time, cells run."""
    rows = []
    keys = ["dataset", "model", "technique", "method"]
    for key, part in results.groupby(keys, sort=False):
        m = part[part["metric"] == metric]
        ok = part.drop_duplicates("cell_id")
        row = dict(zip(keys, key))
        status = ok["status"].value_counts()
        row["cells ok"] = f"{int(status.get('ok', 0))}/{len(ok)}"
        if not len(m):
            row["note"] = _note(ok)
            rows.append(row)
            continue
        row[f"test {metric}"] = m["value"].mean()
        row[f"generic {metric}"] = m["generic_value"].mean()
        for cond in ("rationality", "envy"):
            row[f"{cond} viol."] = _ratio(m[f"{cond}_violations"].sum(), m[f"{cond}_judged"].sum())
            row[f"{cond} benef."] = _ratio(m[f"{cond}_benefits"].sum(), m[f"{cond}_judged"].sum())
        row["min gain"] = m["min_gain"].min()
        row["max gain"] = m["max_gain"].max()
        tr = ok["train_rationality_violations"].astype(float) + ok["train_envy_violations"].astype(float)
        row["train viol."] = "" if tr.isna().all() else int(tr.sum())
        row["fit s"] = ok["fit_seconds"].astype(float).mean()
        row["note"] = ""
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v).replace("|", "\\|")


def markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table."""
    if frame.empty:
        return "(none)"
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def stamp(command: str) -> dict:
    """Command, library version, date and machine of a run."""
    from .. import __version__
    usage = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return {"command": command, "fairuse_opt": __version__,
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "peak_rss_mb": round(usage / 1024, 1)}


def write_outputs(run: Any, config: Any, out: str | os.PathLike[str], command: str, *,
                  plots: bool = True) -> dict:
    """Write ``results.csv``, ``groups.csv``, ``summary.md``, ``run.json`` and the plots.

    Returns
    -------
    dict
        The paths written, by name.
    """
    from .._files import Staged

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = tidy_results(run.records)
    groups = tidy_groups(run.records)
    meta = stamp(command)
    status = results.drop_duplicates("cell_id")["status"].value_counts().to_dict()
    meta.update({"wall_seconds": round(run.seconds, 1), "cells": len(run.cells),
                 "computed": len(run.computed), "reused": len(run.reused),
                 "status": {str(k): int(v) for k, v in status.items()},
                 "datasets_unavailable": run.datasets_unavailable, "settings": config.settings()})
    # every output prepared first, then all renamed together: all of them or none
    with Staged() as staged:
        staged.add(out / RESULTS_CSV, results.to_csv(index=False))
        staged.add(out / GROUPS_CSV, groups.to_csv(index=False))
        staged.add(out / META_JSON, json.dumps(meta, indent=1, sort_keys=True))
        written = {"results": out / RESULTS_CSV, "groups": out / GROUPS_CSV, "meta": out / META_JSON}
        figures = _plots(results, groups, out, config.alpha, staged) if plots else {}
        written.update(figures)
        staged.add(out / SUMMARY_MD, _summary_text(results, run, meta, config, figures))
        written["summary"] = out / SUMMARY_MD
        staged.commit()
    return written


def _summary_text(results: pd.DataFrame, run: Any, meta: dict, config: Any, figures: dict) -> str:
    s = config.settings()
    lines = ["# Study benchmark", "",
             f"Command: `{meta['command']}`", "",
             f"fairuse_opt {meta['fairuse_opt']}, {meta['date']}, Python {meta['python']}, "
             f"{meta['cpus']} CPUs (load average {meta['load_average']}; the machine was shared), "
             f"peak RSS {meta['peak_rss_mb']} MB.", "",
             f"Wall time {meta['wall_seconds']} s: {meta['cells']} cells, {meta['computed']} run now, "
             f"{meta['reused']} kept from an earlier run; status {meta['status']}.", "",
             f"Settings: {s['folds']} folds (stratified by group and label), assignment share "
             f"{s['assign_size']} of the non-test rows, audit with {s['n_boot']} paired stratified "
             f"bootstrap resamples, one-sided tests at alpha = {s['alpha']}, {s['correction']} "
             f"correction across groups; fair-use-se margin se:{s['margin_se']:g}; systems assign "
             f"on {s['system_metric']}; one-hot fair-use capped at {s['ccp_max_train']} training "
             f"rows, max_iter {s['ccp_max_iter']}; decoupled fits (and the system's decoupled "
             f"candidates) capped at {s['decoupled_max_train']} training rows; base seed {s['seed']}.", ""]
    if run.datasets_unavailable:
        lines += ["Datasets left out (could not be loaded here):", ""]
        lines += [f"- {k}: {v}" for k, v in run.datasets_unavailable.items()] + [""]
    lines += ["## Headline", "",
              "Test-set rationality violations (groups whose metric is significantly worse than the "
              "generic model's, summed over folds, out of the (fold, group) cells judged) and the "
              "mean overall test metric. Fair-use model: `FairUseClassifier()` (intersectional, "
              "rationality and envy-freeness on the training data).", ""]
    for task in HEADLINE_METRICS:
        part = results[results["task"] == task]
        if len(part):
            lines += [f"{task.capitalize()}:", "", markdown(headline_table(part)), ""]
    lines += ["## Totals over the datasets", "",
              "Per grid row and metric, summed over datasets and folds: test-set rationality "
              "violations and benefits out of the (fold, group) cells judged, and the datasets "
              "with at least one violation (out of those where the row ran).", ""]
    for task, metrics in HEADLINE_METRICS.items():
        part = results[results["task"] == task]
        for metric in metrics if len(part) else ():
            lines += [f"{task.capitalize()}, {metric}:", "", markdown(totals_table(part, metric)), ""]
    for task, metrics in HEADLINE_METRICS.items():
        part = results[results["task"] == task]
        if not len(part):
            continue
        for metric in metrics:
            lines += [f"## All methods ({task}, {metric})", "", markdown(method_table(part, metric)), ""]
    cells = results.drop_duplicates("cell_id")
    bad = cells[cells["status"] != "ok"]
    if len(bad):
        lines += ["## Cells not run", "", markdown(bad[["cell_id", "status", "reason"]]), ""]
    for name, path in figures.items():
        lines += [f"![{name}]({Path(path).name})", ""]
    return "\n".join(lines)


def _saver(fig: Any) -> Any:
    return lambda name: fig.savefig(name, dpi=90, format="png")  # the name is a temporary one


def _plots(results: pd.DataFrame, groups: pd.DataFrame, out: Path, alpha: float, staged: Any) -> dict:
    """``violations.png`` (per metric, one row of heat maps: rationality violations, envy
    violations and rationality benefits of every method on every dataset, summed over the
    folds) and ``gains.png`` (per dataset, every group's gain in every fold for the headline
    methods, one x scale per dataset), staged in ``staged``; return their paths by name.
    Drawn without pyplot (no backend or global state touched); ``{}`` without matplotlib."""
    try:
        from matplotlib import colormaps
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:
        return {}
    import textwrap

    written = {}
    ok = results[(results["status"] == "ok")]
    datasets = list(dict.fromkeys(ok["dataset"]))
    if not datasets:
        return {}

    def wrap(text: str, fig) -> str:
        return "\n".join(textwrap.wrap(text, int(fig.get_figwidth() * 10)))

    # 1. per metric: violations and benefits of every method on every dataset (heat maps)
    kinds = (("rationality_violations", "rationality violations", "Reds"),
             ("envy_violations", "envy violations", "Oranges"),
             ("rationality_benefits", "rationality benefits", "Greens"))
    metrics = list(dict.fromkeys(ok["metric"].dropna()))
    rows = []  # per metric: (metric, datasets, method keys, {kind: counts (methods x datasets)})
    for metric in metrics:
        have = list(dict.fromkeys(ok[ok["metric"] == metric]["dataset"]))
        cells = results[results["dataset"].isin(have)]
        keys = list(dict.fromkeys(zip(cells["model"], cells["technique"], cells["method"])))
        m = ok[ok["metric"] == metric]
        counts = {}
        for column, _, _ in kinds:
            grid = np.full((len(keys), len(have)), np.nan)
            for (*key, dataset), part in m.groupby(["model", "technique", "method", "dataset"], sort=False):
                values = part[column].astype(float)
                if values.notna().any():  # all NaN: nothing to audit (the generic model itself)
                    grid[keys.index(tuple(key)), have.index(dataset)] = values.sum()
            counts[column] = grid
        rows.append((metric, have, keys, counts))
    if not rows:  # no cell audited any metric
        return {}
    top = {column: max([np.nanmax(np.append(r[3][column], 0.0)) for r in rows] + [1.0])
           for column, _, _ in kinds}
    n_cols = max(len(r[1]) for r in rows)
    label_width = max(len(" ".join(k)) for r in rows for k in r[2])
    heights = [len(r[2]) * 0.24 + 1.9 for r in rows]
    fig = Figure(figsize=(3 * (0.55 * n_cols + 0.5) + 0.085 * label_width + 0.6, sum(heights) + 0.9),
                 layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(rows), 1, height_ratios=heights))
    for sub, (metric, have, keys, counts) in zip(subfigs, rows):
        axes = np.atleast_1d(sub.subplots(1, len(kinds), sharey=True))
        for ax, (column, title, cmap) in zip(axes, kinds):
            grid = counts[column]
            ax.imshow(np.ma.masked_invalid(grid), cmap=colormaps[cmap].with_extremes(bad="0.9"), vmin=0,
                      vmax=top[column], aspect="auto", interpolation="nearest")
            for i, j in np.ndindex(grid.shape):
                v = grid[i, j]
                if np.isnan(v):
                    ax.text(j, i, "\u2013", ha="center", va="center", fontsize="small", color="0.45")
                elif v > 0:
                    ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize="medium",
                            color="white" if v > 0.6 * top[column] else "black")
            ax.set_xlim(-0.5, n_cols - 0.5)  # every row of panels has cells of one width
            ax.set_xticks(range(len(have)), have, rotation=40, ha="right", fontsize="medium")
            ax.set_title(title, fontsize="medium")
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            ax.spines["bottom"].set_bounds(-0.5, len(have) - 0.5)
        axes[0].set_yticks(range(len(keys)), [" ".join(k) for k in keys], fontsize="medium")
        sub.suptitle(f"{metric}: held-out (fold, group) cells summed over the folds", fontsize="large",
                     fontweight="bold")
    fig.suptitle(wrap(f"Held-out audit verdicts per method and dataset, one row of panels per metric "
                      f"(significant at adjusted p <= {alpha}; colour scale shared down each column; "
                      f"blank: 0; \u2013: not run, or nothing to audit, as for the generic model)", fig),
                 fontsize="large")
    path = out / VIOLATIONS_PNG
    staged.add(path, _saver(fig))
    written["violations"] = path
    # 2. group gains with intervals, headline methods; one x scale per dataset (row)
    if len(groups):
        rat = groups[groups["condition"] == "rationality"]
        tasks = {d: ok[ok["dataset"] == d]["task"].iloc[0] for d in datasets}
        names = {}
        for d in datasets:
            part = rat[(rat["dataset"] == d) & (rat["metric"] == HEADLINE_METRICS[tasks[d]][0])]
            names[d] = list(dict.fromkeys(part["group"]))
        label_width = max([len(g) for n in names.values() for g in n] + [10])
        heights = [max(len(names[d]), 2) * 0.32 + 1.3 for d in datasets]
        fig = Figure(figsize=(3 * 3.6 + 0.085 * label_width + 0.6, sum(heights) + 1.0), layout="constrained")
        subfigs = np.atleast_1d(fig.subfigures(len(datasets), 1, height_ratios=heights))
        for sub, dataset in zip(subfigs, datasets):
            task = tasks[dataset]
            metric = HEADLINE_METRICS[task][0]
            axes = np.atleast_1d(sub.subplots(1, len(HEADLINE[task]), sharex=True, sharey=True))
            order = names[dataset]
            for ax, (label, (model, technique, method)) in zip(axes, HEADLINE[task].items()):
                sel = rat[(rat["dataset"] == dataset) & (rat["model"] == model)
                          & (rat["technique"] == technique) & (rat["method"] == method)
                          & (rat["metric"] == metric)]
                ax.axvline(0, color="black", lw=0.7)
                ax.set_title(label, fontsize="medium")
                ax.set_xlabel(f"gain in {metric}", fontsize="medium")
                ax.tick_params(labelsize="medium")
                ax.grid(axis="x", alpha=0.3)
                if not len(sel):
                    ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
                    continue
                folds = sorted(set(sel["fold"]))
                step = min(0.12, 0.7 / len(folds))
                dy = {f: ((len(folds) - 1) / 2 - k) * step for k, f in enumerate(folds)}  # first on top
                y = np.array([len(order) - 1 - order.index(g) + dy[f]
                              for g, f in zip(sel["group"], sel["fold"])])
                gain = sel["gain"].astype(float).to_numpy()
                lo = gain - sel["ci_low"].astype(float).to_numpy()
                hi = sel["ci_high"].astype(float).to_numpy() - gain
                viol = (sel["p_violation_adj"].astype(float) <= alpha).to_numpy()
                ax.errorbar(gain, y, xerr=np.nan_to_num(np.vstack([lo, hi])), fmt="o", ms=3.5,
                            color="tab:blue", ecolor="tab:blue", alpha=0.6, lw=0.9)
                if viol.any():
                    ax.plot(gain[viol], y[viol], "x", color="tab:red", ms=8, mew=2)
            axes[0].set_ylim(-0.6, len(order) - 0.4)
            axes[0].set_yticks(range(len(order)), order[::-1], fontsize="medium")
            sub.suptitle(f"{dataset} ({metric})", fontsize="large", fontweight="bold")
        handles = [Line2D([], [], color="tab:blue", marker="o", ms=4, lw=0.9,
                          label="one fold: gain over the generic model, with its confidence interval"),
                   Line2D([], [], color="tab:red", marker="x", ls="none", ms=8, mew=2,
                          label=f"violation (adjusted p <= {alpha})")]
        fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize="medium", frameon=False)
        fig.suptitle(wrap("Held-out gain of every group in every fold for the headline methods; "
                          "one x scale per dataset", fig), fontsize="large")
        path = out / GAINS_PNG
        staged.add(path, _saver(fig))
        written["gains"] = path
    return written
