"""Benchmark of :func:`fairuse_opt.audit.audit` (not a test: no timing thresholds).

Audits a personalized logistic regression (scikit-learn, intersectional group
indicators, via :class:`~fairuse_opt.audit.SklearnGroupModel`) on n = 100,000 held-out
rows in 8 intersectional groups (3 binary attributes), with 4 metrics (error, AUC, ECE,
log loss) and 1,000 stratified bootstrap resamples, and writes the wall times to
``benchmarks/results/audit_benchmark.md`` (and ``.json``).

A group intercept shifts every score of a group alike, so under the logistic model all
reports rank a group's rows the same way and the audit computes their AUC once.  The
second scenario removes that shortcut: a fixed scoring rule whose every report adds its
own noise, so each of the 9 score columns of a group ranks the rows differently.

Run from the repository root::

    python benchmarks/bench_audit.py [--n 100000] [--n-boot 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import sklearn
from sklearn.linear_model import LogisticRegression

from fairuse_opt.audit import SklearnGroupModel, audit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fairuse import cpu_model  # noqa: E402  (one place for machine info)

METRICS = ["error", "auc", "ece", "log_loss"]


def make_data(n: int, seed: int):
    """Three binary attributes (8 groups of unequal size), 10 features, logistic target."""
    rng = np.random.default_rng(seed)
    groups = pd.DataFrame({
        "sex": rng.choice(["F", "M"], n, p=[0.55, 0.45]),
        "age": rng.choice(["<50", ">=50"], n, p=[0.6, 0.4]),
        "smoker": rng.choice(["no", "yes"], n, p=[0.75, 0.25]),
    })
    X = rng.normal(size=(n, 10))
    logit = (X @ np.linspace(-1, 1, 10) + 0.4 * (groups["sex"] == "F")
             - 0.6 * (groups["age"] == ">=50") + 0.8 * (groups["smoker"] == "yes")
             - 0.5 * ((groups["sex"] == "F") & (groups["smoker"] == "yes")))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit.to_numpy()))).astype(int)
    return X, y, groups


class ReportNoiseModel:
    """Fixed rule: report r scores ``sigmoid(s + 0.5 * e_r)``, a different ranking per report."""

    def __init__(self, base: np.ndarray, keys: list[tuple], names: list[str], seed: int = 1):
        rng = np.random.default_rng(seed)
        self.base = base
        self.groups_, self.group_names_ = keys, names
        self.noise = {k: rng.normal(size=base.size) for k in keys}
        self.generic_ = _Fixed(1.0 / (1.0 + np.exp(-(base + 0.5 * rng.normal(size=base.size)))))

    def predict_proba(self, X, *, groups=None, report=None):
        if report is not None:
            z = self.base + 0.5 * self.noise[tuple(report)]
        else:
            keys = list(groups.itertuples(index=False, name=None))
            z = self.base + 0.5 * np.array([self.noise[k][i] for i, k in enumerate(keys)])
        p = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1 - p, p])


class _Fixed:
    def __init__(self, p):
        self.p = p

    def predict_proba(self, X):
        return np.column_stack([1 - self.p, self.p])


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="held-out rows")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--repeats", type=int, default=3, help="timed audit runs")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "audit_benchmark"),
                        help="output path without extension")
    args = parser.parse_args(argv)

    X, y, groups = make_data(2 * args.n, seed=0)
    train, test = slice(0, args.n), slice(args.n, 2 * args.n)
    t0 = time.perf_counter()
    model = SklearnGroupModel(LogisticRegression(max_iter=1000), encoding="intersectional")
    model.fit(X[train], y[train], groups=groups[train])
    fit_s = time.perf_counter() - t0
    X_test, y_test = X[test], y[test]
    g_test = groups[test].reset_index(drop=True)

    def timed(model):
        times, report = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            report = audit(model, X_test, y_test, groups=g_test, metrics=METRICS,
                           n_boot=args.n_boot, random_state=0)
            times.append(time.perf_counter() - t0)
        return times, report

    load_before = os.getloadavg()
    times, report = timed(model)
    # the scoring part alone: the model and generic model on every report
    t0 = time.perf_counter()
    model.generic_.predict_proba(X_test)
    model.predict_proba(X_test, groups=g_test)
    for key in model.groups_:
        model.predict_proba(X_test, report=key)
    scoring_s = time.perf_counter() - t0
    rule = ReportNoiseModel(X_test @ np.linspace(-1, 1, 10), list(model.groups_), list(model.group_names_))
    times_rule, _ = timed(rule)
    load_after = os.getloadavg()

    command = "python benchmarks/bench_audit.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {
        "command": command.strip(),
        "n_rows": args.n, "n_groups": int(g_test.drop_duplicates().shape[0]),
        "metrics": METRICS, "n_boot": args.n_boot,
        "audit_seconds": [round(t, 3) for t in times],
        "audit_seconds_median": round(float(np.median(times)), 3),
        "model_scoring_seconds": round(scoring_s, 3),
        "distinct_rankings_audit_seconds": [round(t, 3) for t in times_rule],
        "distinct_rankings_audit_seconds_median": round(float(np.median(times_rule)), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "load_average_before_after": [round(v, 2) for v in load_before + load_after],
        "model_fit_seconds": round(fit_s, 3),
        "nproc": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu_model(), "python": platform.python_version(),
        "numpy": np.__version__, "scipy": scipy.__version__, "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "table_rows": len(report.table),
        "summary": report.verdict_counts().reset_index().to_dict(orient="records"),
    }
    write(result, report, Path(args.out))
    print(json.dumps({k: result[k] for k in ("audit_seconds", "audit_seconds_median",
                                              "distinct_rankings_audit_seconds",
                                              "model_scoring_seconds", "peak_rss_mb",
                                              "load_average_before_after", "nproc")}))
    return result


def write(result: dict, report, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Audit benchmark", "",
        f"Command (from the repository root): `{result['command']}`", "",
        f"Audit of a personalized logistic regression (SklearnGroupModel, intersectional) on "
        f"{result['n_rows']:,} held-out rows, {result['n_groups']} intersectional groups, "
        f"metrics {', '.join(result['metrics'])}, {result['n_boot']:,} stratified bootstrap "
        f"resamples, Holm correction.", "",
        "| measure | seconds |", "|---|---|",
        f"| audit wall time, median of {len(result['audit_seconds'])} runs | "
        f"{result['audit_seconds_median']} |",
        f"| audit wall time, each run | {', '.join(map(str, result['audit_seconds']))} |",
        f"| of which: scoring the models (generic, own, 8 reports) | {result['model_scoring_seconds']} |",
        f"| audit of a rule whose 9 score columns rank each group differently (no AUC "
        f"sharing), median | {result['distinct_rankings_audit_seconds_median']} |",
        f"| the same, each run | {', '.join(map(str, result['distinct_rankings_audit_seconds']))} |",
        f"| model fit (not part of the audit) | {result['model_fit_seconds']} |", "",
        f"Peak resident memory of the whole script: {result['peak_rss_mb']} MB.  Load average "
        f"(1, 5, 15 min) before and after the timed runs: "
        f"{', '.join(map(str, result['load_average_before_after']))}.", "",
        f"Machine: {result['cpu']}; nproc = {result['nproc']} "
        f"(usable: {result['sched_affinity']}); Python {result['python']}; numpy "
        f"{result['numpy']}, scipy {result['scipy']}, pandas {result['pandas']}, "
        f"scikit-learn {result['scikit-learn']}.  The machine is shared, so other jobs may "
        f"have run at the same time.", "",
        "Goal: under 10 s on 2 cores.", "",
        "## Verdict counts of the benchmark audit", "",
    ]
    summary = report.verdict_counts().reset_index()
    lines.append("| " + " | ".join(summary.columns) + " |")
    lines.append("|" + "---|" * len(summary.columns))
    for row in summary.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
