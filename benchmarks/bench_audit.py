"""Benchmark of :func:`fairuse_opt.audit.audit` (not a test: no timing thresholds).

Audits a personalized logistic regression (scikit-learn, intersectional group
indicators, via :class:`~fairuse_opt.audit.SklearnGroupModel`) on n = 100,000 held-out
rows in 8 intersectional groups (3 binary attributes), with 4 metrics (error, AUC, ECE,
log loss) and 1,000 stratified bootstrap resamples, and writes the wall times to
``benchmarks/results/audit_benchmark.md`` (and ``.json``).

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


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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

    times, report = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        report = audit(model, X_test, y_test, groups=g_test, metrics=METRICS,
                       n_boot=args.n_boot, random_state=0)
        times.append(time.perf_counter() - t0)
    # the scoring part alone: the model and generic model on every report
    t0 = time.perf_counter()
    model.generic_.predict_proba(X_test)
    model.predict_proba(X_test, groups=g_test)
    for key in model.groups_:
        model.predict_proba(X_test, report=key)
    scoring_s = time.perf_counter() - t0

    command = "python benchmarks/bench_audit.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {
        "command": command.strip(),
        "n_rows": args.n, "n_groups": int(g_test.drop_duplicates().shape[0]),
        "metrics": METRICS, "n_boot": args.n_boot,
        "audit_seconds": [round(t, 3) for t in times],
        "audit_seconds_median": round(float(np.median(times)), 3),
        "model_scoring_seconds": round(scoring_s, 3),
        "model_fit_seconds": round(fit_s, 3),
        "nproc": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu_model(), "python": platform.python_version(),
        "numpy": np.__version__, "scipy": scipy.__version__, "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "table_rows": len(report.table),
        "summary": report.summary().reset_index().to_dict(orient="records"),
    }
    write(result, report, Path(args.out))
    print(json.dumps({k: result[k] for k in ("audit_seconds", "audit_seconds_median",
                                              "model_scoring_seconds", "nproc")}))
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
        f"| model fit (not part of the audit) | {result['model_fit_seconds']} |", "",
        f"Machine: {result['cpu']}; nproc = {result['nproc']} "
        f"(usable: {result['sched_affinity']}); Python {result['python']}; numpy "
        f"{result['numpy']}, scipy {result['scipy']}, pandas {result['pandas']}, "
        f"scikit-learn {result['scikit-learn']}.  The machine is shared, so other jobs may "
        f"have run at the same time.", "",
        "Goal: under 10 s on 2 cores.", "",
        "## Verdict counts of the benchmark audit", "",
    ]
    summary = report.summary().reset_index()
    lines.append("| " + " | ".join(summary.columns) + " |")
    lines.append("|" + "---|" * len(summary.columns))
    for row in summary.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
