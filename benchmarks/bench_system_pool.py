"""Fit time of the default candidate pool of ``fit_system`` (one fit of each model).

On apnea (70% of the rows, as ``fit_system`` trains) every model of the pool is timed,
including the fair-use one-hot models the default pool leaves out.  On support2 (70% of
its 9,063 rows) the models on all three attributes are timed (each encoding, with and
without fair use); the fair-use one-hot fit runs under the memory limit the benchmark
is started with and is reported as failed if it runs out.

Usage::

    (ulimit -v 6000000; FAIRUSE_DATA_DIR=/work/shared/data python benchmarks/bench_system_pool.py)
"""

from __future__ import annotations

import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from fairuse_opt.datasets import load
from fairuse_opt.system import default_candidates


def time_pool(name: str, *, all_subsets: bool) -> list[dict]:
    X, y, groups = load(name)
    rng = np.random.default_rng(0)
    rows = np.sort(rng.permutation(len(y))[: int(0.7 * len(y))])
    X, y, groups = X.iloc[rows], np.asarray(y)[rows], groups.iloc[rows]
    pool = default_candidates(list(groups.columns), onehot_fair_use=True)
    out = []
    for cname, (est, attrs) in pool.items():
        if not all_subsets and len(attrs) < groups.shape[1]:
            continue
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X, y, groups=groups[attrs])
            status = est.certificate_.route
        except MemoryError:
            status = "MemoryError (under the run's memory limit)"
        out.append({"dataset": name, "rows": len(y), "candidate": cname,
                    "seconds": round(time.perf_counter() - started, 2), "status": status})
        print(out[-1], flush=True)
    return out


def main() -> None:
    started = time.perf_counter()
    rows = time_pool("apnea", all_subsets=True) + time_pool("support2", all_subsets=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = ["# Fit time of the default pool (`benchmarks/bench_system_pool.py`)", "",
             "Command: `(ulimit -v 6000000; FAIRUSE_DATA_DIR=/work/shared/data python "
             "benchmarks/bench_system_pool.py)`", "",
             f"Elapsed {(time.perf_counter() - started) / 60:.1f} min on the shared 2-core machine "
             f"(other sessions running: compare the models of one run, not absolute times); peak memory "
             f"(max RSS) {peak:.0f} MB.", "", "| dataset | rows | candidate | seconds | route / status |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['rows']} | {r['candidate']} | {r['seconds']} | {r['status']} |")
    for name in ("apnea", "support2"):
        part = [r for r in rows if r["dataset"] == name]
        slow = sum(r["seconds"] for r in part if r["candidate"].startswith("onehot+fair_use"))
        rest = sum(r["seconds"] for r in part if not r["candidate"].startswith("onehot+fair_use"))
        lines.append("")
        lines.append(f"{name}: fair-use one-hot models {slow:.1f} s in all, the rest of the timed pool {rest:.1f} s.")
    Path("benchmarks/results/system_pool_timing.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
