"""Scale benchmark: fit time against the number of rows, native Newton vs conic solvers.

Random logistic data, ``d = 20`` features, 4 intersectional groups (2 attributes), the
default estimator (intersectional, ``group_reg="set"``, fair use "both").  For each ``n``:

* ``auto``: the default ``solver="auto"`` (Newton in numpy for the unconstrained
  problems, conic solvers only when a constraint binds);
* ``ECOS``: ``solver="ECOS"`` (every problem through cvxpy), the baseline, run up to
  ``--cvxpy-max-n`` rows;
* ``sklearn``: ``LogisticRegression`` on ``[X, one-hot of groups]`` (one unconstrained
  fit, not the same problem: a reference for what a plain fit costs).

A second series asks the group with the smallest gain for more than that gain (1.2, 1.05
or 1.01 times, the first reachable), so that its rationality constraint binds and the exact
route runs (natively with ``auto``).  Ratios are taken within this run.

Usage (from the repository root)::

    python benchmarks/bench_scale.py --out benchmarks/results/scale.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from fairuse_opt import FairUseClassifier, FairUseInfeasibleError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fairuse import machine_lines  # noqa: E402  (one place for machine info)


def make(n: int, d: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    g = rng.integers(0, 4, n)
    y = (X @ rng.normal(size=d) * 0.5 + 0.5 * (g - 1.5) + rng.logistic(size=n) > 0).astype(int)
    groups = np.column_stack([g % 2, g // 2])
    return X, y, groups


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def fit(X, y, groups, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FairUseClassifier(**kw).fit(X, y, groups=groups)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,20000,100000,1000000")
    ap.add_argument("--cvxpy-max-n", type=int, default=20000)
    ap.add_argument("--margin-max-n", type=int, default=100000)
    ap.add_argument("--out", default="benchmarks/results/scale.md")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        X, y, groups = make(n)
        auto, t_auto = timed(lambda: fit(X, y, groups))
        onehot = np.column_stack([X, np.eye(4)[groups[:, 0] + 2 * groups[:, 1]]])
        _, t_sk = timed(lambda: LogisticRegression(C=1 / (2e-3 * n), max_iter=1000).fit(onehot, y))
        t_ecos, dev = float("nan"), float("nan")
        if n <= args.cvxpy_max_n:
            ecos, t_ecos = timed(lambda: fit(X, y, groups, solver="ECOS"))
            dev = float(np.max(np.abs(ecos.coef_ - auto.coef_)))
        c = auto.certificate_
        rows.append(("both, margin 0", n, t_auto, c.route, c.solver, c.verified, t_ecos, dev, t_sk))
        print(f"n={n}: auto {t_auto:.2f} s ({c.route}, {c.solver}), ECOS {t_ecos:.2f} s, sklearn {t_sk:.2f} s",
              file=sys.stderr, flush=True)
        if n <= args.margin_max_n:
            # make one rationality constraint bind: the group with the smallest gain is
            # asked for more than the unconstrained fit gives it (the first factor that
            # the model family can reach)
            t = auto.certificate_.table
            k = int(t["gain"].idxmin())
            for factor in (1.2, 1.05, 1.01):
                margin = {tuple(t.loc[k, "group"]): factor * float(t.loc[k, "gain"])}
                try:
                    m, t_m = timed(lambda: fit(X, y, groups, margin=margin))
                    break
                except FairUseInfeasibleError:
                    continue
            else:
                continue
            cm = m.certificate_
            t_me, dev_m = float("nan"), float("nan")
            if n <= args.cvxpy_max_n:
                me, t_me = timed(lambda: fit(X, y, groups, margin=margin, solver="ECOS"))
                dev_m = float(np.max(np.abs(me.coef_ - m.coef_)))
            rows.append((f"both, binding margin ({factor:g} x gain)", n, t_m, cm.route, cm.solver, cm.verified, t_me, dev_m,
                         float("nan")))
            print(f"n={n} margin: auto {t_m:.2f} s ({cm.route}, {cm.solver})", file=sys.stderr, flush=True)
    lines = ["# Scale benchmark", "", "Made by (from the repository root):", "", "```",
             "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]), "```", "",
             *machine_lines(), "",
             "Random logistic data, 20 features, 4 groups; `FairUseClassifier()` defaults "
             "(intersectional, group_reg='set', fair use both, alpha=1e-3). *auto*: `solver='auto'` "
             "(Newton in numpy for unconstrained problems, conic solvers when a constraint binds); "
             "*ECOS*: `solver='ECOS'` (everything through cvxpy); *sklearn*: one "
             "`LogisticRegression` on [X, one-hot of groups], a reference only. Each time is one "
             "wall-clock fit including the generic model. *max coef diff*: largest difference "
             "between the auto and ECOS coefficients. *one binding margin*: the group with the "
             "smallest unconstrained gain is asked for a multiple of that gain (the first of 1.2, 1.05, "
             "1.01 it can reach), so its rationality constraint binds (exact route).", "",
             "| series | n | auto s | route | solver used | verified | ECOS s | ECOS / auto | max coef diff | sklearn s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for series, n, t, route, solver, ver, te, dev, tsk in rows:
        ratio = f"{te / t:.1f}" if np.isfinite(te) else ""
        lines.append(f"| {series} | {n:,} | {t:.2f} | {route} | {solver} | {ver} | "
                     f"{'' if not np.isfinite(te) else f'{te:.2f}'} | {ratio} | "
                     f"{'' if not np.isfinite(dev) else f'{dev:.1e}'} | "
                     f"{'' if not np.isfinite(tsk) else f'{tsk:.2f}'} |")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
