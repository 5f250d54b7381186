"""Benchmark for choosing the default conic solver: Clarabel vs ECOS (and SCS where quick).

Fits :class:`fairuse_opt.FairUseClassifier` (``l2=1e-3``, ``encoding="intersectional"``)
with ``solver=`` each of CLARABEL, ECOS (and SCS on the small problems) in two
configurations:

* ``unconstrained``: ``group_reg="penalty"``, ``fair_use=None``.  Its scikit-learn
  equivalent is ``LogisticRegression(C=1/(2*l2*n), solver="newton-cholesky",
  tol=1e-12)`` on ``[X, one-hot of the intersectional group]`` (see
  ``tests/test_equivalence.py``): the coefficients are compared with it.
* ``fair use``: ``group_reg="set"``, ``fair_use="both"``, ``margin="se:1"`` so that the
  rationality constraints bind (route "exact": the unconstrained fit, then one convex
  program with the rationality constraints).

Data: random data with n in {1000, 5000, 20000}, d = 20, 4 groups (two binary
attributes, unequal sizes), and the apnea data.  Reported per dataset, configuration and
solver: wall time of the whole ``fit`` (generic model included; median of ``--repeats``),
CPU time, objective difference to the best objective found (scikit-learn's included for
the unconstrained configuration), maximum coefficient difference to scikit-learn, the
solver actually used and every solver call's status.

Run from the repository root::

    python benchmarks/bench_solvers.py [--data-dir DIR] [--out FILE] [--sizes 1000,5000,20000]
        [--repeats 3] [--scs-max-n 2000]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
import warnings
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from fairuse_opt import FairUseClassifier
from fairuse_opt import datasets as fds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fairuse import machine_lines  # noqa: E402

ALPHA = 1e-3
CONFIGS = {
    "unconstrained": dict(encoding="intersectional", group_reg="penalty", fair_use=None),
    "fair use": dict(encoding="intersectional", group_reg="set", fair_use="both", margin="se:1"),
}
SCS_TIME_CAP = 60.0  # seconds: SCS's remaining repeats are skipped after a slower first fit


def log(msg: str) -> None:
    print(f"[bench_solvers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_random(n: int, d: int = 20, seed: int = 0):
    """Two binary attributes (4 groups of sizes about 40/30/20/10 %), d standard normal
    features, logistic outcome with group-specific intercepts (one group close to the
    overall rate, so that its rationality constraint can bind with a margin)."""
    rng = np.random.default_rng(seed)
    g = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    groups = pd.DataFrame({"a": np.where(g % 2 == 0, "p", "q"), "b": np.where(g < 2, "lo", "hi")})
    X = rng.normal(size=(n, d))
    beta = rng.normal(scale=0.5, size=d)
    offset = np.array([0.0, 0.6, -0.5, 0.1])[g]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(X @ beta + offset)))).astype(int)
    return pd.DataFrame(X, columns=[f"x{j}" for j in range(d)]), pd.Series(y, name="y"), groups


def sklearn_reference(X, y, groups):
    """scikit-learn fit of the penalty configuration; returns (W, B, objective, seconds)."""
    Xa = X.to_numpy(float)
    keys = list(groups.itertuples(index=False, name=None))
    order = {k: i for i, k in enumerate(sorted(set(keys), key=lambda t: tuple(map(str, t))))}
    codes = np.array([order[k] for k in keys])
    G, d, n = len(order), Xa.shape[1], len(y)
    Z = np.column_stack([Xa, np.eye(G)[codes]])
    t0 = time.perf_counter()
    m = LogisticRegression(C=1.0 / (2 * ALPHA * n), solver="newton-cholesky", tol=1e-12, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(Z, np.asarray(y))
    secs = time.perf_counter() - t0
    coef, b = m.coef_.ravel(), float(m.intercept_[0])
    s = Z @ coef + b
    yv = np.asarray(y, float)
    obj = float(np.mean(np.logaddexp(0.0, s) - yv * s) + ALPHA * np.sum(coef ** 2))
    W = np.tile(coef[:d], (G, 1))
    B = b + coef[d:]
    # rows in the library's group order (sorted keys); map through the same sort as the library
    return W, B, obj, secs, [k for k, _ in sorted(order.items(), key=lambda kv: kv[1])]


def fit_once(X, y, groups, cfg: dict, solver: str):
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            m = FairUseClassifier(l2=ALPHA, solver=solver, **cfg).fit(X, y, groups=groups)
        except Exception as exc:
            return None, time.perf_counter() - t0, time.process_time() - c0, f"{type(exc).__name__}: {exc}"[:200], []
    return m, time.perf_counter() - t0, time.process_time() - c0, None, sorted({w.category.__name__ for w in caught})


def status_counts(models) -> Counter:
    """Counter of (solver, status) over every solver call (generic model included)."""
    c = Counter()
    for m in models:
        for label, st in list(m.generic_.certificate_.attempts) + list(m.certificate_.attempts):
            name = label.split("/")[0]
            kind = st if st in ("optimal", "optimal_inaccurate") else ("error" if st.startswith("error") else st)
            c[(name, kind)] += 1
    return c


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("FAIRUSE_DATA_DIR"),
                        help="folder holding apnea.csv (default: $FAIRUSE_DATA_DIR)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "solvers.md"))
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scs-max-n", type=int, default=2000, help="run SCS only on datasets up to this n")
    args = parser.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    header_machine = machine_lines()
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()

    data = [(f"random n={n}", *make_random(n)) for n in map(int, args.sizes.split(","))]
    data.append(("apnea (n=1922, d=26, 6 groups)", *fds.load_apnea(args.data_dir)))

    rows, statuses, notes = [], Counter(), []
    for name, X, y, groups in data:
        n = len(y)
        ref = sklearn_reference(X, y, groups)
        log(f"{name}: scikit-learn reference objective {ref[2]:.9f} ({ref[3]:.2f} s)")
        for cname, cfg in CONFIGS.items():
            solvers = ["CLARABEL", "ECOS"] + (["SCS"] if n <= args.scs_max_n else [])
            results = {}
            for solver in solvers:
                walls, cpus, models, errors, warns = [], [], [], [], set()
                for rep in range(args.repeats):
                    m, wall, cpu, err, w = fit_once(X, y, groups, cfg, solver)
                    walls.append(wall)
                    cpus.append(cpu)
                    warns.update(w)
                    if err:
                        errors.append(err)
                    else:
                        models.append(m)
                    log(f"{name} {cname} {solver} rep {rep + 1}: {wall:.2f} s"
                        + (f" ERROR {err}" if err else f", used {m.certificate_.solver} ({m.certificate_.status}), "
                           f"route {m.certificate_.route}, obj {m.certificate_.objective:.10f}"))
                    if solver == "SCS" and wall > SCS_TIME_CAP:
                        notes.append(f"{name}, {cname}: SCS took {wall:.0f} s on its first fit; its other "
                                     "repeats were skipped")
                        break
                results[solver] = (walls, cpus, models, errors, warns)
                statuses.update(status_counts(models))
            objs = [m.certificate_.objective for r in results.values() for m in r[2]]
            best = min(objs + ([ref[2]] if cname == "unconstrained" else []))
            for solver, (walls, cpus, models, errors, warns) in results.items():
                row = {"data": name, "config": cname, "solver": solver, "fits": len(walls),
                       "wall": statistics.median(walls), "wall_min": min(walls), "wall_max": max(walls),
                       "cpu": statistics.median(cpus), "errors": len(errors), "warnings": ", ".join(sorted(warns))}
                if models:
                    row["used"] = ", ".join(f"{k} x{v}" for k, v in Counter(m.certificate_.solver for m in models).items())
                    row["status"] = ", ".join(f"{k} x{v}" for k, v in Counter(m.certificate_.status for m in models).items())
                    row["route"] = ", ".join(sorted({m.certificate_.route for m in models}))
                    row["obj_diff"] = max(m.certificate_.objective - best for m in models)
                    row["verified"] = all(m.certificate_.verified for m in models)
                    row["active"] = max(int(m.certificate_.table["rationality_active"].sum()) for m in models)
                    calls = status_counts(models)
                    row["calls"] = ", ".join(f"{s} {k}: {v}" for (s, k), v in sorted(calls.items()))
                    if cname == "unconstrained":
                        W, B, _, _, keys = ref
                        diffs = []
                        for m in models:
                            perm = [keys.index(tuple(k)) for k in m.groups_]
                            diffs.append(max(float(np.max(np.abs(m.coef_ - W[perm]))),
                                             float(np.max(np.abs(m.intercept_ - B[perm])))))
                        row["coef_diff"] = max(diffs)
                if errors:
                    row["error_text"] = errors[0]
                rows.append(row)
            if cname == "unconstrained":
                rows.append({"data": name, "config": cname, "solver": "scikit-learn newton-cholesky (reference)",
                             "fits": 1, "wall": ref[3], "wall_min": ref[3], "wall_max": ref[3], "cpu": float("nan"),
                             "used": "-", "status": "-", "route": "-", "obj_diff": ref[2] - best, "verified": "-",
                             "coef_diff": 0.0, "calls": "-", "errors": 0, "warnings": "", "active": "-"})

    total = time.perf_counter() - t_start
    load_end = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    head = ["| data | configuration | solver asked | fits | wall s median (min-max) | CPU s median | solver used | "
            "status | route | objective - best | max coef diff to scikit-learn | verified | active | solver calls "
            "(generic model included) | warnings |"]
    head.append("|" + "---|" * (head[0].count("|") - 1))
    table = []
    for r in rows:
        od = r.get("obj_diff")
        cd = r.get("coef_diff")
        table.append(
            f"| {r['data']} | {r['config']} | {r['solver']} | {r['fits']} | {r['wall']:.3f} ({r['wall_min']:.3f}-"
            f"{r['wall_max']:.3f}) | {r['cpu']:.3f} | {r.get('used', 'ERROR')} | {r.get('status', r.get('error_text', ''))} | "
            f"{r.get('route', '')} | {'' if od is None else f'{od:.1e}'} | {'' if cd is None else f'{cd:.1e}'} | "
            f"{r.get('verified', '')} | {r.get('active', '')} | {r.get('calls', '')} | {r['warnings']} |")
    total_calls = [f"| {s} | {statuses[(s, 'optimal')]} | {statuses[(s, 'optimal_inaccurate')]} | "
                   f"{sum(v for (t, k), v in statuses.items() if t == s and k not in ('optimal', 'optimal_inaccurate'))} |"
                   for s in sorted({s for s, _ in statuses})]
    text = [
        "# Solver benchmark: Clarabel vs ECOS (vs SCS)",
        "",
        "Made by (from the repository root):",
        "",
        "```",
        command,
        "```",
        "",
        f"- run: {started:%Y-%m-%d %H:%M} UTC, {total / 60:.1f} min in total; load average at the end: {load_end}",
        *header_machine,
        f"- estimator: `FairUseClassifier(l2={ALPHA}, encoding='intersectional', solver=...)`; "
        "*unconstrained* = `group_reg='penalty', fair_use=None`; *fair use* = `group_reg='set', "
        "fair_use='both', margin='se:1'` (route exact); every other parameter at its default.",
        "- random data: n rows, d = 20 standard normal features, 4 groups (two binary attributes, "
        "sizes about 40/30/20/10 %), logistic outcome with group intercepts; `numpy.random.default_rng(0)`.",
        f"- wall s: the whole `fit` (generic model, unconstrained fit, and the constrained program for fair use), "
        f"median of {args.repeats} fits (min-max in brackets); CPU s: process CPU time, median.",
        "- objective - best: `certificate_.objective` minus the lowest objective found for that dataset and "
        "configuration by any solver (and by scikit-learn for the unconstrained configuration, whose "
        "objective is computed here as mean log loss + l2 * ||coef||^2 over the feature and group-indicator "
        "coefficients); the worst of the repeats.",
        "- max coef diff: largest absolute difference between the effective per-group coefficients and "
        "intercepts (`coef_`, `intercept_`) and those of scikit-learn's `LogisticRegression(C=1/(2*l2*n), "
        "solver='newton-cholesky', tol=1e-12)` on `[X, one-hot of the intersectional group]`; the worst repeat.",
        "- solver used: `certificate_.solver` (with `solver=X` the library tries X first and falls back to the "
        "others). Solver calls: every call of the fits of that row, generic model included, per solver and status "
        "(each solver is tried at tight tolerances, then at its default tolerances, and each form, epigraph "
        "then direct, before the next solver).",
        "",
        "## Results",
        "",
        *head, *table,
        "",
        "## Solver calls by status, all fits above",
        "",
        "| solver | optimal | optimal_inaccurate | failed (error / other) |",
        "|---|---|---|---|",
        *total_calls,
        "",
        *(["Notes: " + "; ".join(notes), ""] if notes else []),
        "## Conclusion",
        "",
        "CONCLUSION_PLACEHOLDER",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(text))
    log(f"wrote {args.out} ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
