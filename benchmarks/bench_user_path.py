"""The user's path: fair-use fits on the containers users pass, with margins that bind on
several groups and envy-freeness active, against scikit-learn in the same process.

Data (seed 0): ``n`` rows, ``d`` standard normal features, ``G`` intersectional groups
(``log2 G`` attributes with values ``"no"``/``"yes"``), logistic labels whose weights
differ by group (standard deviation ``0.5 / sqrt(d)`` per weight around a common
vector) and whose group offsets are 0 for half of the groups and +-0.6 or +-0.8 for
the others.  The groups with a zero offset gain little from personalisation, so
``margin="se:2"`` (two standard errors of each group's gain) binds on several of them;
their own weights make the margin reachable.

Containers (``--containers``):

* ``dataframe``: the data written to a CSV file and read back by ``pandas.read_csv``;
  ``X`` is the frame of the feature columns, ``groups`` the frame of the attribute
  columns (strings), ``y`` the label column, as a user holds them;
* ``numpy-C`` / ``numpy-F``: ``X`` a C- or Fortran-ordered float64 array, ``groups`` an
  integer array (n, log2 G);
* ``memmap``: ``X`` a read-only ``numpy.load(..., mmap_mode="r")`` of an ``.npy`` file.

Per cell (one child process each, ``--timeout`` seconds): the fit (``FairUseClassifier``
with the cell's encoding, ``group_reg`` and ``margin``, every other parameter at its
default) timed ``--repeat`` times (wall and CPU), the best and the median reported;
scikit-learn's ``LogisticRegression`` (lbfgs, ``C = 1 / (2 l2 n)``: the same L2
penalty) on ``[X, one-hot of the groups]`` (a C-ordered numpy array built before the
clock starts: scikit-learn's best case) timed the same way in the same process; the
ratio of the best times (and of the medians); then one more fit under ``tracemalloc``
for the peak of Python allocations during the fit (numpy arrays included) and the
growth of the process's peak RSS over the first fit, both against the size of ``X``
(``n d`` float64).  BLAS runs on one thread.

Usage (from the repository root; the must-show cells and the other routes)::

    (ulimit -v 8000000; python benchmarks/bench_user_path.py --out benchmarks/results/user_path.md)

``--cells`` picks a named subset (``must-show``, ``routes``, ``onehot``), ``--sizes``
overrides the sizes of every cell.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ALPHA = 1e-3

#: (name, encoding, group_reg, margin, containers, sizes); the must-show cells first
CELLS = {
    "must-show": [("intersectional se:2", "intersectional", "set", "se:2",
                   ("dataframe", "numpy-C", "numpy-F", "memmap"), (100_000, 1_000_000))],
    "routes": [("decoupled se:2", "decoupled", "set", "se:2", ("dataframe",), (10_000, 100_000)),
               ("intersectional penalty", "intersectional", "penalty", 0.0, ("dataframe",), (10_000, 100_000)),
               ("decoupled penalty", "decoupled", "penalty", 0.0, ("dataframe",), (10_000, 100_000))],
    "onehot": [("onehot envy", "onehot", "set", 0.0, ("dataframe",), (10_000, 100_000))],
}


def make(n: int, d: int = 30, G: int = 8, seed: int = 0, spread: float = 0.5):
    """``(X (n, d) C-ordered, y (n,) 0/1, g (n,) group numbers)``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    g = rng.integers(0, G, n)
    base = np.array([0.6, -0.6, 0.0, 0.0, 0.0, 0.0, 0.8, -0.8])
    offsets = np.resize(base, G)
    beta = rng.normal(size=d) / np.sqrt(d)
    dev = rng.normal(size=(G, d)) / np.sqrt(d) * spread
    y = (np.einsum("ij,ij->i", X, beta + dev[g]) + offsets[g] + rng.logistic(size=n) > 0).astype(np.int64)
    return X, y, g


def containers(kind: str, X, y, g, G: int, tmp: Path):
    """``(X, y, groups)`` as the container ``kind`` holds them."""
    A = int(round(np.log2(G)))
    bits = np.column_stack([(g >> a) & 1 for a in range(A)])
    if kind == "dataframe":
        import pandas as pd

        df = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
        for a in range(A):
            df[f"a{a}"] = np.array(["no", "yes"])[bits[:, a]]
        df["y"] = y
        path = tmp / "data.csv"
        df.to_csv(path, index=False)
        del df
        df = pd.read_csv(path)
        feats = [c for c in df.columns if c.startswith("x")]
        return df[feats], df["y"], df[[f"a{a}" for a in range(A)]]
    if kind == "numpy-C":
        return np.ascontiguousarray(X), y, bits
    if kind == "numpy-F":
        return np.asfortranarray(X), y, bits
    if kind == "memmap":
        path = tmp / "X.npy"
        np.save(path, X)
        return np.load(path, mmap_mode="r"), y, bits
    raise ValueError(kind)


def timed(fn, repeat: int, budget_s: float):
    """Wall and CPU seconds of ``repeat`` runs (fewer once their total passes ``budget_s``)."""
    walls, cpus, out = [], [], None
    for _ in range(max(1, repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        if sum(walls) > budget_s and len(walls) >= 2:
            break
    return out, walls, cpus


def run_cell(label, encoding, group_reg, margin, kind, n, d, G, repeat, budget_s):
    from sklearn.linear_model import LogisticRegression

    from fairuse_opt import FairUseClassifier

    X0, y0, g = make(n, d, G)
    row = {"cell": label, "container": kind, "n": n, "d": d, "G": G, "encoding": encoding,
           "group_reg": group_reg, "margin": margin, "data_mb": X0.nbytes / 2 ** 20}
    with tempfile.TemporaryDirectory() as tmpdir:
        X, y, groups = containers(kind, X0, y0, g, G, Path(tmpdir))

        def fit():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return FairUseClassifier(l2=ALPHA, encoding=encoding, group_reg=group_reg,
                                         margin=margin).fit(X, y, groups=groups)

        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        m, walls, cpus = timed(fit, repeat, budget_s)
        row["rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        c = m.certificate_
        row.update(route=c.route, verified=bool(c.verified),
                   rat_active=int(c.table["rationality_active"].sum()),
                   envy_active=int((c.table["envy_slack"] <= 1e-6).sum()),
                   fit_best=min(walls), fit_median=statistics.median(walls), fit_cpu_best=min(cpus),
                   fit_runs=len(walls))
        tracemalloc.start()
        fit()
        row["trace_mb"] = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        del X, groups, m
    onehot = np.zeros((n, G))
    onehot[np.arange(n), g] = 1.0
    Xs = np.hstack([X0, onehot])
    del onehot
    sk = LogisticRegression(C=1.0 / (2 * ALPHA * n), max_iter=1000)
    _, walls, cpus = timed(lambda: sk.fit(Xs, y0), repeat, budget_s)
    row.update(sk_best=min(walls), sk_median=statistics.median(walls), sk_cpu_best=min(cpus), sk_runs=len(walls))
    row["ratio_best"] = row["fit_best"] / row["sk_best"]
    row["ratio_median"] = row["fit_median"] / row["sk_median"]
    row["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def write(rows, path, command, header, repeat):
    def f(x, fmt="{:.3f}"):
        return "" if x is None or (isinstance(x, float) and not np.isfinite(x)) else fmt.format(x)

    lines = ["# The user's path: containers, binding margins, active envy", "", "Made by (from the repository root):",
             "", "```", command, "```", "", *header, "",
             f"Each fit timed up to {repeat} times (fewer once a cell's runs pass the time budget); *best* and "
             "*median* wall seconds; *sklearn*: `LogisticRegression` (lbfgs, same L2 penalty) on [X, group "
             "one-hot] (C-ordered numpy), same process; *ratio*: fit / sklearn (best / best and median / median); "
             "*trace MB*: tracemalloc peak of one fit (allocations during the fit, numpy arrays included), "
             "*/ data*: that peak over the size of X (n d float64); *RSS MB*: growth of the process's peak RSS "
             "over the first fit; *rat / envy active*: groups whose rationality binds / whose envy slack is "
             "<= 1e-6.", "",
             "*CPU ratio*: the same for the CPU times of the best runs (the machine is shared: wall times "
             "include waiting for a CPU).", "",
             "| cell | container | n | route | verified | rat / envy active | fit best s | fit median s | "
             "sklearn best s | sklearn median s | ratio best | ratio median | CPU ratio | trace MB | / data | "
             "RSS MB | runs |",
             "|" + "---|" * 17]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['cell']} | {r['container']} | {r['n']:,} | {r['error']} |" + " |" * 13)
            continue
        lines.append(
            f"| {r['cell']} | {r['container']} | {r['n']:,} | {r['route']} | {r['verified']} | "
            f"{r['rat_active']} / {r['envy_active']} | {f(r['fit_best'])} | {f(r['fit_median'])} | "
            f"{f(r['sk_best'])} | {f(r['sk_median'])} | {f(r['ratio_best'], '{:.2f}')} | "
            f"{f(r['ratio_median'], '{:.2f}')} | {f(r['fit_cpu_best'] / r['sk_cpu_best'], '{:.2f}')} | "
            f"{f(r['trace_mb'], '{:.0f}')} | "
            f"{f(r['trace_mb'] / r['data_mb'], '{:.2f}')} | {f(r['rss_growth_mb'], '{:.0f}')} | "
            f"{r['fit_runs']} / {r['sk_runs']} |")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="must-show,routes,onehot")
    ap.add_argument("--containers", default=None, help="restrict to these containers (comma-separated)")
    ap.add_argument("--sizes", default=None, help="override every cell's sizes (comma-separated)")
    ap.add_argument("--features", type=int, default=30)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of repeated runs per fit before stopping")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per cell (child process)")
    ap.add_argument("--out", default="benchmarks/results/user_path.md")
    ap.add_argument("--json", default=None, help="also append the rows as JSON lines here")
    ap.add_argument("--one", help="internal: run one cell (JSON) and print its row")
    ap.add_argument("--from-json", default=None, help="write the table from these JSON-lines files (comma-separated)")
    args = ap.parse_args(argv)
    if args.one:
        from threadpoolctl import threadpool_limits

        spec = json.loads(args.one)
        with threadpool_limits(1):
            try:
                row = run_cell(**spec)
            except Exception as exc:  # noqa: BLE001 - reported in the table
                row = {k: spec[k] for k in ("n",)} | {"cell": spec["label"], "container": spec["kind"],
                                                       "error": f"{type(exc).__name__}: {str(exc)[:100]}"}
        print(json.dumps(row))
        return
    from bench_fairuse import machine_lines

    header = machine_lines()
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    if args.from_json:
        rows = [json.loads(ln) for f in args.from_json.split(",") for ln in Path(f).read_text().splitlines() if ln]
        write(rows, args.out, command, header, args.repeat)
        return
    wanted = set(args.containers.split(",")) if args.containers else None
    rows = []
    for group in args.cells.split(","):
        for label, enc, reg, margin, kinds, sizes in CELLS[group]:
            sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else sizes
            for n in sizes:
                for kind in kinds:
                    if wanted is not None and kind not in wanted:
                        continue
                    spec = dict(label=label, encoding=enc, group_reg=reg, margin=margin, kind=kind, n=n,
                                d=args.features, G=args.groups, repeat=args.repeat, budget_s=args.budget)
                    cmd = [sys.executable, __file__, "--one", json.dumps(spec)]
                    try:
                        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                        found = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                        row = json.loads(found[-1]) if found else {
                            "cell": label, "container": kind, "n": n,
                            "error": f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or [""])[-1][:100]}
                    except subprocess.TimeoutExpired:
                        row = {"cell": label, "container": kind, "n": n, "error": f"timeout after {args.timeout:g} s"}
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    if args.json:
                        with open(args.json, "a", encoding="utf-8") as fh:
                            fh.write(json.dumps(row) + "\n")
                    write(rows, args.out, command, header, args.repeat)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
