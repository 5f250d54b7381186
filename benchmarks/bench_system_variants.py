"""Variants of the ladder on real data, held out: which settings keep the most gain.

For each dataset, the 5 folds of ``bench_system.py`` (same strata and seed).  In each fold,
on the fold's training rows: the generic and the unconstrained intersectional model
(trained on all of them), then ``fit_system(procedure="ladder", ...)`` with each variant
(keyword settings), assigned on the log loss.  On the test fold: the log-loss gain of each
over the generic model; *kept* = mean gain / the intersectional model's mean gain.
Variants that share a split (same ``assign_size`` and ``generic_rows``) share their pool
through ``reuse=``.

Usage::

    FAIRUSE_DATA_DIR=/work/shared/data python benchmarks/bench_system_variants.py \\
        --datasets apnea pima --variants "generic_rows='train'" "assign_size=0.3" "" \\
        --out benchmarks/results/system_variants.md
"""

from __future__ import annotations

import argparse
import ast
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_system import ENCODINGS, LOAD_KW, _losses, fold_splits  # noqa: E402

from fairuse_opt import FairUseClassifier, fit_system  # noqa: E402
from fairuse_opt.datasets import load  # noqa: E402


def parse_variant(text: str) -> dict:
    """``"assign_size=0.3, rungs=(0.1, 0.25, 0.5, 1.0)"`` -> keyword dict ("" is the default)."""
    if not text.strip():
        return {}
    call = ast.parse(f"f({text})", mode="eval").body
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}


def run(name: str, variants: list[str], log) -> list[dict]:
    X, y, g = load(name, **LOAD_KW.get(name, {}))
    y = np.asarray(y)
    rows = []
    for fold, (r, t) in enumerate(fold_splits(y, g)):
        Xr, yr, gr = X.iloc[r].reset_index(drop=True), y[r], g.iloc[r].reset_index(drop=True)
        Xt, yt, gt = X.iloc[t].reset_index(drop=True), y[t], g.iloc[t].reset_index(drop=True)
        generic = FairUseClassifier(encoding="none").fit(Xr, yr)
        base = _losses(generic.predict_proba(Xt)[:, 1], yt)["log_loss"]
        inter = FairUseClassifier(encoding="intersectional", fair_use=None).fit(Xr, yr, groups=gr)
        rows.append({"dataset": name, "fold": fold + 1, "variant": "intersectional (all rows)",
                     "gain": base - _losses(inter.predict_proba(Xt, groups=gt)[:, 1], yt)["log_loss"]})
        pools: dict = {}
        for v in variants:
            kw = parse_variant(v)
            share = (kw.get("assign_size"), kw.get("generic_rows", "all"))
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                system = fit_system(Xr, yr, gr, random_state=fold, reuse=pools.get(share),
                                    encodings=ENCODINGS.get(name, ("onehot", "intersectional", "decoupled")), **kw)
            pools[share] = system
            p = system.predict_proba(Xt, groups=gt)[:, 1]
            rows.append({"dataset": name, "fold": fold + 1, "variant": v or "default",
                         "gain": base - _losses(p, yt)["log_loss"], "fit_s": time.perf_counter() - started,
                         "personalized": int((system.assignment_["served"].iloc[1:] != "generic").sum())})
        log(f"{name} fold {fold + 1}: " + ", ".join(f"{r['variant']} {1000 * r['gain']:+.2f}"
                                                    for r in rows if r["fold"] == fold + 1))
    return rows


def report(df: pd.DataFrame, command: str, meta: str) -> str:
    ref = df[df["variant"] == "intersectional (all rows)"].groupby("dataset")["gain"].mean()
    agg = df.groupby(["variant", "dataset"], sort=False)["gain"].mean().unstack("dataset")
    kept = agg.div(ref, axis=1)
    lines = ["# Variants of the ladder on real data (`benchmarks/bench_system_variants.py`)", "",
             f"Command: `{command}`", "", meta, "", __doc__.split("\n\n")[1].strip(), "",
             "Kept (log loss) per dataset, and their mean (the issue's measure); the intersectional "
             "model's mean gain x 1000 in the header.", "",
             "| variant | " + " | ".join(f"{d} ({1000 * ref[d]:+.1f})" for d in kept.columns) + " | mean |",
             "|---|" + "---|" * (len(kept.columns) + 1)]
    for v, row in kept.iterrows():
        if v == "intersectional (all rows)":
            continue
        lines.append(f"| {v} | " + " | ".join(f"{x:.2f}" for x in row) + f" | {row.mean():.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--variants", nargs="+", required=True,
                        help='keyword settings of fit_system, e.g. "assign_size=0.3" ("" = the defaults)')
    parser.add_argument("--out", default="benchmarks/results/system_variants.md")
    args = parser.parse_args(argv)
    for v in args.variants:
        parse_variant(v)  # fail early on a typo

    def log(msg):
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    started = time.perf_counter()
    rows = []
    for name in args.datasets:
        rows += run(name, args.variants, log)
    df = pd.DataFrame(rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    quoted = " ".join(f'"{v}"' for v in args.variants)
    command = (f"FAIRUSE_DATA_DIR=/work/shared/data python benchmarks/bench_system_variants.py --datasets "
               f"{' '.join(args.datasets)} --variants {quoted}")
    meta = (f"Library commit `{commit}`; {(time.perf_counter() - started) / 60:.1f} min on the shared 2-core "
            f"machine; peak memory (max RSS) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB.")
    out = Path(args.out)
    out.write_text(report(df, command, meta))
    df.to_csv(out.with_suffix(".csv"), index=False)
    print(out.read_text())


if __name__ == "__main__":
    main()
