"""The slow paths found by fuzzing, each measured in its own child process.

Every case runs as ``python bench_slow_paths.py --case NAME`` in a child process with
an address-space limit (``--mem-limit``, the equivalent of ``ulimit -v``) and a wall
clock timeout (``--timeout``); the parent records the wall time, the child's CPU time
and its peak resident memory (``ru_maxrss`` of the child), and what the fit returned.

Cases (random data, seed 0; the sizes of the fuzzing reports):

* ``penalty-envy``: ``group_reg="penalty"`` with envy-freeness, 150 rows in 30
  intersectional groups (5 x 6 levels) - was a MemoryError under 10 GB;
* ``many-groups``: 200 groups of 5 rows (10 x 20 levels), the default estimator - was
  more than 600 s;
* ``infeasible-margin`` / ``infeasible-margin-generic``: 200,000 rows, 4 groups, a margin
  of 1 nat per group, which no model reaches: ``FairUseInfeasibleError``, or the generic
  model with ``on_infeasible="generic"`` - was 590 s;
* ``wide``: 200 rows x 10,000 features, 4 groups - was more than 600 s and 5 GB;
* ``support2-onehot``: not a fuzzing case but a target of the same issue: the one-hot
  fair-use fit (``encoding="onehot"``, fair use both) on all 9,063 rows of SUPPORT2's 48
  numeric columns (``fairuse_opt.datasets.load_support2``, 12 groups), target 2 s and
  200 MB beyond the data; its certificate's lower bound and gap are reported.

The slow paths of issue 22 (fuzzing reports; each must finish in seconds or refuse at
once with a clear error, allocating at most O(n d + G d^2)):

* ``decoupled-many-groups``: ``encoding="decoupled"``, 400 groups of 5 rows, 3 features -
  was 74 s;
* ``decoupled-wide``: ``encoding="decoupled"``, 1,426 rows x 1,436 features, 16 groups -
  was a MemoryError (one dense 22,992 x 22,992 Hessian);
* ``onehot-wide`` / ``intersectional-wide``: 1,500 rows x 1,510 features, 4 groups, one-hot
  and intersectional - were killed at 193 s / 33 s;
* ``penalty-many-groups``: ``group_reg="penalty"``, 1,400 rows in 200 groups, 5 features -
  was killed at 295 s;
* ``conic-onehot`` / ``conic-penalty``: an explicit conic solver on the one-hot route
  (``solver="ECOS"``, 332 rows x 20 features, 32 groups) and on the penalised route
  (``solver="CLARABEL"``, 68 rows x 1 feature, 26 groups) - were a MemoryError at 7 GB
  and 127 s.

Usage (from the repository root)::

    python benchmarks/bench_slow_paths.py --out benchmarks/results/slow_paths.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
import tracemalloc
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

CASES = ["penalty-envy", "many-groups", "infeasible-margin", "infeasible-margin-generic", "wide", "support2-onehot",
         "decoupled-many-groups", "decoupled-wide", "onehot-wide", "intersectional-wide", "penalty-many-groups",
         "conic-onehot", "conic-penalty"]


def make(n: int, d: int, levels: tuple[int, ...], seed: int = 0, balanced: bool = False):
    """Random logistic data with intersectional groups of the given attribute levels."""
    rng = np.random.default_rng(seed)
    G = int(np.prod(levels))
    g = np.arange(n) % G if balanced else rng.integers(0, G, n)
    X = rng.normal(size=(n, d))
    offsets = rng.normal(scale=0.7, size=G)
    y = (X @ (rng.normal(size=d) / np.sqrt(d)) + offsets[g] + rng.logistic(size=n) > 0).astype(int)
    cols, rest = [], g.copy()
    for L in levels:
        cols.append(rest % L)
        rest //= L
    return X, y, np.column_stack(cols)


def case_setup(name: str):
    """``(X, y, groups, estimator keyword arguments, description)`` of one case."""
    if name == "penalty-envy":
        X, y, groups = make(150, 5, (5, 6), balanced=True)
        return X, y, groups, dict(group_reg="penalty", fair_use="both", min_group_size=0), \
            "150 rows, 5 features, 30 groups, group_reg='penalty', fair_use='both'"
    if name == "many-groups":
        X, y, groups = make(1000, 5, (10, 20), balanced=True)
        return X, y, groups, dict(fair_use="both", min_group_size=0), \
            "1,000 rows = 200 groups of 5 rows, 5 features, defaults (intersectional, set, both)"
    if name.startswith("infeasible-margin"):
        X, y, groups = make(200_000, 10, (2, 2))
        kw = dict(fair_use="both", margin=1.0)
        desc = "200,000 rows, 10 features, 4 groups, margin=1.0 (unreachable)"
        if name.endswith("generic"):
            kw["on_infeasible"] = "generic"
            desc += ", on_infeasible='generic'"
        return X, y, groups, kw, desc
    if name == "support2-onehot":
        from fairuse_opt.datasets import load_support2

        X, y, groups = load_support2()
        return X, y, groups, dict(encoding="onehot", fair_use="both"), \
            "SUPPORT2, all 9,063 rows, 48 numeric columns, 12 groups, encoding='onehot', fair_use='both'"
    if name == "wide":
        X, y, groups = make(200, 10_000, (2, 2))
        return X, y, groups, dict(fair_use="both"), "200 rows x 10,000 features, 4 groups, defaults"
    if name == "decoupled-many-groups":
        X, y, groups = make(2000, 3, (20, 20), balanced=True)
        return X, y, groups, dict(encoding="decoupled", fair_use="both", min_group_size=0), \
            "2,000 rows = 400 groups of 5 rows, 3 features, encoding='decoupled', fair_use='both'"
    if name == "decoupled-wide":
        X, y, groups = make(1426, 1436, (4, 4))
        return X, y, groups, dict(encoding="decoupled", fair_use="both", min_group_size=0), \
            "1,426 rows x 1,436 features, 16 groups, encoding='decoupled', fair_use='both'"
    if name in ("onehot-wide", "intersectional-wide"):
        X, y, groups = make(1500, 1510, (2, 2))
        enc = name.split("-")[0]
        return X, y, groups, dict(encoding=enc, fair_use="both"), \
            f"1,500 rows x 1,510 features, 4 groups, encoding='{enc}', fair_use='both'"
    if name == "penalty-many-groups":
        X, y, groups = make(1400, 5, (10, 20), balanced=True)
        return X, y, groups, dict(group_reg="penalty", fair_use="both", min_group_size=0), \
            "1,400 rows in 200 groups, 5 features, group_reg='penalty', fair_use='both'"
    if name == "conic-onehot":
        X, y, groups = make(332, 20, (2, 2, 2, 2, 2))
        return X, y, groups, dict(encoding="onehot", fair_use="both", solver="ECOS", min_group_size=0), \
            "332 rows x 20 features, 32 groups, encoding='onehot', fair_use='both', solver='ECOS'"
    if name == "conic-penalty":
        X, y, groups = make(68, 1, (2, 13))
        return X, y, groups, dict(group_reg="penalty", fair_use="both", solver="CLARABEL", min_group_size=0), \
            "68 rows x 1 feature, 26 groups, group_reg='penalty', fair_use='both', solver='CLARABEL'"
    raise SystemExit(f"unknown case {name!r}; one of {CASES}")


def run_case(name: str) -> dict:
    """Fit one case in this process; the outcome as a dict (printed as JSON)."""
    from fairuse_opt import FairUseClassifier, FairUseInfeasibleError
    from fairuse_opt.exceptions import InputError, SolverError

    import logging

    X, y, groups, kw, desc = case_setup(name)
    n, d = np.shape(X)
    G = len({tuple(r) for r in np.asarray(groups).reshape(n, -1).tolist()})
    out = {"case": name, "setup": desc, "data_mb": float(np.asarray(X).nbytes) / 2 ** 20,
           "scale_mb": 8.0 * (n * d + G * (d + 1) ** 2) / 2 ** 20}
    # count the progress records a long fit sends at INFO (logger fairuse_opt)
    progress = []

    class Collect(logging.Handler):
        def emit(self, record):
            if hasattr(record, "progress"):
                progress.append(record.getMessage())

    log = logging.getLogger("fairuse_opt")
    log.setLevel(logging.INFO)
    log.addHandler(Collect(level=logging.INFO))
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = FairUseClassifier(**kw).fit(X, y, groups=groups)
        c = m.certificate_
        out.update(outcome="fitted", route=c.route, solver=c.solver, verified=bool(c.verified),
                   violations=int(c.n_violations),
                   warnings=sorted({type(w.message).__name__ for w in caught}),
                   fallback_groups=int(c.table["generic_fallback"].sum()) if len(c.table) else 0)
        out.update(objective=c.objective, lower_bound=c.objective_lower_bound, gap=c.optimality_gap,
                   gain_kept=c.gain_kept)
    except FairUseInfeasibleError as exc:
        out.update(outcome="FairUseInfeasibleError", message=str(exc)[:200])
    except (InputError, SolverError) as exc:  # a refusal: reported with its message
        out.update(outcome=type(exc).__name__, message=str(exc)[:300])
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - c0
    n_progress = len(progress)
    # the memory allocated beyond the data: the same fit again under tracemalloc (which
    # slows numpy's many small allocations, so the timed fit above runs without it; its
    # time is recorded too); skipped after a fit of more than a minute
    if out["seconds"] <= 60:
        t1 = time.perf_counter()
        tracemalloc.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                FairUseClassifier(**kw).fit(X, y, groups=groups)
        except (FairUseInfeasibleError, InputError, SolverError):
            pass
        out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        out["traced_seconds"] = time.perf_counter() - t1
    del progress[n_progress:]
    out["progress_records"] = len(progress)
    out["last_progress"] = progress[-1] if progress else ""
    return out


def run_child(name: str, mem_limit: int, timeout: float) -> dict:
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))

    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True, text=True,
                              timeout=timeout, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        return {"case": name, "outcome": f"timeout after {timeout:g} s", "wall": time.perf_counter() - t0}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"case": name, "outcome": f"crashed (exit {proc.returncode}): {tail[:200]}", "wall": wall,
                "peak_mb": after.ru_maxrss / 1024}
    res = json.loads(lines[-1])
    res["wall"] = wall
    res["child_cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    # ru_maxrss of RUSAGE_CHILDREN is the largest of any child so far: run the cases in
    # increasing memory or read it per case from the child itself
    res["peak_mb"] = res.get("peak_mb_self", after.ru_maxrss / 1024)
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", help="run one case in this process and print its outcome as JSON")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--mem-limit", type=int, default=8_000_000 * 1024, help="bytes of address space per case")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--out", default="benchmarks/results/slow_paths.md")
    ap.add_argument("--profile", action="store_true",
                    help="with --case: run the fit under cProfile and print the functions by cumulative time")
    args = ap.parse_args(argv)
    if args.case and args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile(timer=time.process_time)
        res = prof.runcall(run_case, args.case)
        print(json.dumps(res))
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
        return
    if args.case:
        res = run_case(args.case)
        res["peak_mb_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return
    from bench_fairuse import machine_lines

    header = machine_lines()
    rows = []
    for name in args.cases.split(","):
        res = run_child(name, args.mem_limit, args.timeout)
        rows.append(res)
        print(f"{name}: {res.get('outcome')} in {res.get('wall', float('nan')):.1f} s "
              f"(peak {res.get('peak_mb', float('nan')):.0f} MB)", file=sys.stderr, flush=True)
    cmd = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    lines = ["# Slow paths found by fuzzing", "", "Made by (from the repository root):", "", "```", cmd, "```", "",
             f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", *header,
             f"- each case in its own child process, address space limited to {args.mem_limit / 1e9:.1f} GB "
             f"(as `ulimit -v`), timeout {args.timeout:g} s", "",
             "*wall*: the child process's wall time (start-up, data generation and fit); *fit s* and "
             "*fit CPU s*: the fit alone, measured in the child; *peak MB*: the child's peak resident memory "
             "(`ru_maxrss`, interpreter and data included); *fit alloc MB*: peak of the memory allocated "
             "during a second run of the same fit under tracemalloc (skipped after a fit of more "
             "than 60 s), i.e. beyond the data, and *traced s* that run's time; *data MB*: size of X; "
             "*n d + G d^2 MB*: 8 (n d + G (d+1)^2) bytes, the scale the allocation must stay within.", "",
             "| case | setup | outcome | route | verified | wall s | fit s | fit CPU s | peak MB | "
             "fit alloc MB | traced s | data MB | n d + G d^2 MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fit_s = f"{r['seconds']:.2f}" if "seconds" in r else ""
        cpu_s = f"{r['cpu_seconds']:.2f}" if "cpu_seconds" in r else ""
        peak = f"{r['peak_mb']:.0f}" if "peak_mb" in r else ""
        outcome = r.get("outcome", "")
        if r.get("warnings"):
            outcome += " (warnings: " + ", ".join(r["warnings"]) + ")"
        alloc = f"{r['traced_peak_mb']:.0f}" if "traced_peak_mb" in r else ""
        traced = f"{r['traced_seconds']:.2f}" if "traced_seconds" in r else ""
        data = f"{r['data_mb']:.1f}" if "data_mb" in r else ""
        lines.append(f"| {r['case']} | {r.get('setup', '')} | {outcome} | {r.get('route', '')} | "
                     f"{r.get('verified', '')} | {r.get('wall', float('nan')):.1f} | {fit_s} | {cpu_s} | {peak} | "
                     f"{alloc} | {traced} | {data} | {r['scale_mb']:.1f} |" if "scale_mb" in r else
                     f"{alloc} | {traced} | {data} | |")
    refused = [r for r in rows if r.get("message")]
    if refused:
        lines += ["", "Messages of the cases that raised:", "", "| case | message |", "|---|---|"]
        for r in refused:
            lines.append(f"| {r['case']} | {r['message'].replace('|', '/')} |")
    logged = [r for r in rows if r.get("progress_records")]
    if logged:
        lines += ["", "Progress through `logging` (logger `fairuse_opt`, INFO after 3 s of a fit, then every "
                  "2 s): records sent by each case and the last one:", "",
                  "| case | INFO progress records | last record |", "|---|---|---|"]
        for r in logged:
            lines.append(f"| {r['case']} | {r['progress_records']} | `{r['last_progress']}` |")
    certs = [r for r in rows if r.get("lower_bound") is not None or r.get("gap") is not None]
    if certs:
        lines += ["", "Certificates of the fitted cases (objective, proven lower bound on the objective of "
                  "every model meeting the constraints, gap = objective - lower bound, share of the gain "
                  "of personalization kept):", "",
                  "| case | objective | lower bound | gap | gain kept |", "|---|---|---|---|---|"]
        for r in certs:
            lb = "" if r.get("lower_bound") is None else f"{r['lower_bound']:.7f}"
            gap = "" if r.get("gap") is None else f"{r['gap']:.2e}"
            lines.append(f"| {r['case']} | {r['objective']:.7f} | {lb} | {gap} | {r['gain_kept']:.2f} |")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    # the machine is shared: one BLAS thread per case (inherited by the children)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
