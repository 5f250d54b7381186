"""Benchmark of :func:`fairuse_opt.audit.audit` (not a test: no timing thresholds).

Audits a personalized logistic regression (scikit-learn, intersectional group
indicators, via :class:`~fairuse_opt.audit.SklearnGroupModel`) on n = 100,000 held-out
rows in 8 intersectional groups (3 binary attributes), with 4 metrics (error, AUC, ECE,
log loss) and 1,000 bootstrap resamples drawn within each group, and writes the wall times to
``benchmarks/results/audit_benchmark.md`` (and ``.json``).

A group intercept shifts every score of a group alike, so under the logistic model all
reports rank a group's rows the same way and the audit computes their AUC once.  The
second scenario removes that shortcut: a fixed scoring rule whose every report adds its
own noise, so each of the 9 score columns of a group ranks the rows differently.

Run from the repository root::

    python benchmarks/bench_audit.py [--n 100000] [--n-boot 1000] [--repeats 3]

``--calibration`` runs the calibration study instead (issue 21): the rate at which the
audit claims a false "benefit" under nulls whose gain differs by label, before (bootstrap
within (group, label) cells) and after (within the group), with a paired t-test and the
exact McNemar test as references, at 50 / 200 / 800 rows, with Clopper-Pearson
intervals; written to ``benchmarks/results/audit_calibration.md`` (and ``.json``)::

    python benchmarks/bench_audit.py --calibration [--runs 400] [--n-boot 1000]
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
import scipy.stats
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
    parser.add_argument("--out", default=None, help="output path without extension")
    parser.add_argument("--calibration", action="store_true",
                        help="run the calibration study instead of the timing benchmark")
    parser.add_argument("--runs", type=int, default=400, help="replications (calibration)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 800],
                        help="rows of the audited group (calibration)")
    args = parser.parse_args(argv)
    if args.calibration:
        out = args.out or str(Path(__file__).parent / "results" / "audit_calibration")
        return run_calibration(args, Path(out), argv)
    args.out = args.out or str(Path(__file__).parent / "results" / "audit_benchmark")

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
        f"metrics {', '.join(result['metrics'])}, {result['n_boot']:,} bootstrap "
        f"resamples (drawn within each group), Holm correction.", "",
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


# ------------------------------------------------------------------ calibration (issue 21)
ALPHA = 0.10
#: The nulls: (name, description, true-logit spread, how the personalized model is off).
#: "planted": the generic model is the truth, the personalized intercept is off by
#: eps ~ N(0, 0.3^2) drawn anew per run, so the population gain is negative (a benefit is
#: false).  "split": the true logit is symmetric about 0, the generic model shifts it by
#: -0.3 and the personalized by +0.3, so the population gain is exactly 0 for every
#: metric (a benefit or a violation is false), while positives gain and negatives lose.
NULLS = (
    ("planted", "generic = truth, intercept off by eps ~ N(0, 0.3^2); true logit mu + 0.5 z", 0.5),
    ("planted", "generic = truth, intercept off by eps ~ N(0, 0.3^2); true logit mu + 1.5 z", 1.5),
    ("split", "generic shifts the true logit 0.5 z by -0.3, the personalized model by +0.3 "
              "(population gain exactly 0)", 0.5),
)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _calibration_sample(kind: str, sd: float, n: int, seed: int):
    """y, personalized and generic probabilities of one group of ``n`` rows."""
    rng = np.random.default_rng([seed, n, int(sd * 10), kind == "split"])
    if kind == "planted":
        s = rng.choice([-1.0, -0.3, 0.3, 1.0]) + sd * rng.normal(size=n)
        y = (rng.random(n) < _sigmoid(s)).astype(int)
        return y, _sigmoid(s + 0.3 * rng.normal()), _sigmoid(s)
    s = sd * rng.normal(size=n)
    y = (rng.random(n) < _sigmoid(s)).astype(int)
    return y, _sigmoid(s + 0.3), _sigmoid(s - 0.3)


def _row_loss(metric: str, y, p):
    if metric == "log_loss":
        return -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return ((p > 0.5) != (y == 1)).astype(float)


def _label_strata_pvalues(y, d, seed: int, n_boot: int) -> tuple[float, float]:
    """The audit's test before: rows sorted by label, resampled within each label cell,
    from the stream the audit gives a group (so for one group this is the old audit)."""
    from fairuse_opt.audit._stats import bootstrap_summary, resample_counts, spawn_generators

    rng = spawn_generators(seed, 1)[0][0]
    order = np.argsort(y, kind="stable")
    n_pos = int(y.sum())
    gains = np.empty(n_boot)
    for start, counts in resample_counts(rng, [c for c in (y.size - n_pos, n_pos) if c > 0], n_boot):
        gains[start:start + len(counts)] = counts @ d[order] / counts.sum(axis=1)
    summ = bootstrap_summary(gains[:, None], 0.95)
    return float(summ["p_benefit"][0]), float(summ["p_violation"][0])


def _clopper_pearson(k: int, n: int) -> tuple[float, float]:
    ci = scipy.stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def run_calibration(args, out: Path, argv) -> dict:
    """False-benefit (and, for the exact null, false-violation) rates, before and after."""
    from fairuse_opt.audit import audit_predictions

    started = time.perf_counter()
    counts: dict[tuple, list[int]] = {}
    for kind, _, sd in NULLS:
        for n in args.sizes:
            for run in range(args.runs):
                y, own, generic = _calibration_sample(kind, sd, n, run)
                groups = np.zeros(n, dtype=int)
                after = audit_predictions(y, groups=groups, scores=own, generic_scores=generic,
                                          metrics=["log_loss", "error"], n_boot=args.n_boot,
                                          alpha=ALPHA, correction=None, random_state=run,
                                          min_group_size=1).table.set_index("metric")
                exact = audit_predictions(y, groups=groups, scores=own, generic_scores=generic,
                                          metrics=["error"], n_boot=1, alpha=ALPHA,
                                          correction=None, test="exact", random_state=run,
                                          min_group_size=1).table.set_index("metric")
                for metric in ("log_loss", "error"):
                    d = _row_loss(metric, y, generic) - _row_loss(metric, y, own)  # gain per row
                    p = {"after: bootstrap within the group (audit)":
                         (after.loc[metric, "p_benefit"], after.loc[metric, "p_violation"]),
                         "before: bootstrap within (group, label) cells":
                         _label_strata_pvalues(y, d, run, args.n_boot)}
                    if np.ptp(d) > 0:
                        p["paired t-test on per-row gains"] = (
                            float(scipy.stats.ttest_1samp(d, 0.0, alternative="greater").pvalue),
                            float(scipy.stats.ttest_1samp(d, 0.0, alternative="less").pvalue))
                    else:  # every row gains the same: nothing to test
                        p["paired t-test on per-row gains"] = (1.0, 1.0)
                    if metric == "error":
                        p["exact McNemar (audit, test='exact')"] = (
                            exact.loc[metric, "p_benefit"], exact.loc[metric, "p_violation"])
                    for method, (p_benefit, p_violation) in p.items():
                        # a "cannot change" row (no test) is no rejection
                        key = (kind, sd, n, metric, method)
                        c = counts.setdefault(key, [0, 0, 0])
                        c[0] += bool(p_benefit <= ALPHA)
                        c[1] += bool(p_violation <= ALPHA)
                        c[2] += 1
            print(f"{kind} sd={sd} n={n}: done ({time.perf_counter() - started:.0f} s)", flush=True)
    rows = []
    for (kind, sd, n, metric, method), (benefit, violation, runs) in counts.items():
        rows.append({"null": kind, "sd": sd, "n": n, "metric": metric, "method": method,
                     "runs": runs, "false_benefit": benefit / runs,
                     "false_benefit_ci": _clopper_pearson(benefit, runs),
                     "violation": violation / runs,
                     "violation_ci": _clopper_pearson(violation, runs)})
    command = "python benchmarks/bench_audit.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": command.strip(), "alpha": ALPHA, "runs": args.runs,
              "n_boot": args.n_boot, "sizes": args.sizes, "rows": rows,
              "seconds": round(time.perf_counter() - started, 1),
              "peak_rss_mb": round(peak_rss_mb(), 1), "cpu": cpu_model(),
              "python": platform.python_version(), "numpy": np.__version__,
              "scipy": scipy.__version__, "pandas": pd.__version__}
    _write_calibration(result, out)
    return result


def _write_calibration(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    frame = pd.DataFrame(result["rows"])
    sizes = result["sizes"]

    def cell(rate, ci):
        return f"{rate:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"

    lines = [
        "# Audit calibration: nulls whose gain differs by label", "",
        f"Command (from the repository root): `{result['command']}`", "",
        f"One group per run, {result['runs']} runs per cell, {result['n_boot']:,} bootstrap "
        f"resamples, one-sided tests at alpha {result['alpha']}, no correction.  Each cell: "
        "the rejection rate and its 95% Clopper-Pearson interval.  A valid test has a false "
        "rate at most alpha (up to Monte Carlo error); where the population gain is negative "
        "(planted), below it.", "",
        "* **planted**: the generic model is the truth; the personalized model's intercept is "
        "off by eps ~ N(0, 0.3^2), drawn anew per run, so the population gain is negative and "
        "a \"benefit\" is false.  True logit mu + sd z, mu drawn from {-1, -0.3, 0.3, 1}.",
        "* **split**: true logit 0.5 z; the generic model shifts it by -0.3, the personalized "
        "model by +0.3; by symmetry the population gain is exactly 0 for every metric, while "
        "positives gain and negatives lose: a benefit and a violation are both false.", "",
        "*before*: the audit's bootstrap until this change, within (group, label) cells (it "
        "holds the group's label mix fixed); *after*: the audit now (`audit_predictions`), "
        "within the group; the paired t-test on per-row gains and the exact McNemar test "
        "(error rate, `test=\"exact\"`) for reference.", "",
    ]
    for (kind, sd), part in frame.groupby(["null", "sd"], sort=False):
        columns = [("false_benefit", "false benefit")]
        if kind == "split":
            columns.append(("violation", "false violation"))
        for col, label in columns:
            lines += [f"## {kind}, true-logit spread {sd}: {label} rate", "",
                      "| metric | method | " + " | ".join(f"{n} rows" for n in sizes) + " |",
                      "|---|---|" + "---|" * len(sizes)]
            for (metric, method), rows in part.groupby(["metric", "method"], sort=False):
                by_n = rows.set_index("n")
                lines.append(f"| {metric} | {method} | " + " | ".join(
                    cell(by_n.loc[n, col], by_n.loc[n, col + "_ci"]) for n in sizes) + " |")
            lines.append("")
    lines += [f"Wall time {result['seconds']} s; peak resident memory {result['peak_rss_mb']} MB. "
              f"Machine: {result['cpu']}; Python {result['python']}, numpy {result['numpy']}, "
              f"scipy {result['scipy']}, pandas {result['pandas']}."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
