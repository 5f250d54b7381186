"""Fit time of ``fit_system``'s default procedure and candidate pool on every dataset of the study.

For each dataset (``--datasets``; default: the study's, ``bench_system.DATASETS``, loaded
as ``bench_system`` loads them) ``fit_system(X, y, groups)`` runs with its defaults on
all the dataset's rows: the ladder procedure trains the default pool on half of them,
cross-validates the whole pool on that part (3 folds), fits the generic model on all rows
and assigns on the other half.  Each
call runs in a child process of its own (``--mem-limit`` bytes of address space,
``--timeout`` seconds), ``--repeats`` times, the datasets interleaved so that a change
in the machine's load touches all of them alike.  Per call: wall and CPU seconds of the
``fit_system`` call, the child's peak RSS, and what ``fit_system`` logs (logger
``fairuse_opt.system``, the lines ``verbose=True`` prints): every candidate's fit ("fitted
NAME on N rows in S s"), every fold of the cross-validation, the assignment.  A progress
line the benchmark cannot parse is reported, never dropped.

Yardstick, in the same child: one scikit-learn ``LogisticRegression`` (lbfgs, the
library's default L2 penalty ``C = 1 / (2 alpha n)``, alpha = 1e-3) on the features plus
one indicator per attribute level, all rows (classification datasets only).

``--baseline DIR`` also runs every call with ``PYTHONPATH=DIR`` (another version of the
package, e.g. ``git worktree add /tmp/before <commit>``), interleaved with the current
code, for a before/after ratio measured in the same run.

Usage (from the repository root; SUPPORT2, NHEFS, Framingham, WHAS500, FLCHAIN and
COMPAS need the ``datasets`` extra, apnea ``FAIRUSE_DATA_DIR``)::

    FAIRUSE_DATA_DIR=/work/shared/data python benchmarks/bench_system_pool.py \\
        --out benchmarks/results/system_pool_timing.md [--repeats 3] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: The progress lines of fit_system (fairuse_opt/system/_fit.py, _select.py) this
#: benchmark reads; a line matching none of them is reported as unparsed.
LINES = {
    "generic": re.compile(r"^fitted the generic model on (?P<rows>\d+) rows in (?P<s>[\d.]+)s$"),
    "candidate": re.compile(r"^fitted (?P<name>.+) on (?P<rows>\d+) rows in (?P<s>[\d.]+)s$"),
    "fold": re.compile(r"^fold (?P<k>\d+) of (?P<folds>\d+): generic and (?P<n>\d+) candidate\(s\) "
                       r"fitted and scored in (?P<s>[\d.]+)s$"),
    "cv": re.compile(r"^cross-validation of the pool on the training part \((?P<folds>\d+) folds\) "
                     r"in (?P<s>[\d.]+)s$"),
    "assignment": re.compile(r"^assignment on (?P<rows>\d+) rows in (?P<s>[\d.]+)s: "),
    "split": re.compile(r"^split: (?P<train>\d+) training rows, (?P<assign>\d+) assignment rows$"),
}


def parse_line(line: str) -> tuple[str, dict] | None:
    """``(kind, fields)`` of a progress line of ``fit_system``, ``None`` if unknown."""
    for kind in ("generic", "candidate", "fold", "cv", "assignment", "split"):
        m = LINES[kind].match(line)
        if m:
            return kind, m.groupdict()
    return None


def sklearn_yardstick(X, y, groups) -> float | None:
    """Seconds of one scikit-learn LogisticRegression fit on the features plus one
    indicator per attribute level (all rows); ``None`` for a regression target."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y)
    if np.unique(y).size != 2:
        return None
    dummies = pd.get_dummies(groups.astype("string").fillna("(missing)"), dtype=float)
    Z = np.column_stack([np.asarray(X, dtype=float), dummies.to_numpy()])
    Z = (Z - Z.mean(axis=0)) / np.where(Z.std(axis=0) > 0, Z.std(axis=0), 1.0)
    started = time.perf_counter()
    LogisticRegression(C=1.0 / (2 * 1e-3 * len(y)), max_iter=5000).fit(Z, y)
    return time.perf_counter() - started


def run_dataset(name: str, load_kw: dict) -> dict:
    """``fit_system`` with its defaults on one dataset: times, memory, progress lines."""
    from fairuse_opt.datasets import load
    from fairuse_opt.system import fit_system

    X, y, groups = load(name, **load_kw)
    events: list[dict] = []
    unparsed: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            line = record.getMessage()
            parsed = parse_line(line)
            if parsed is None:
                unparsed.append(line)
            else:
                events.append({"kind": parsed[0], **parsed[1]})

    log = logging.getLogger("fairuse_opt.system")
    log.setLevel(logging.INFO)
    log.addHandler(Collect(level=logging.INFO))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yard = sklearn_yardstick(X, y, groups)
        t0, c0 = time.perf_counter(), time.process_time()
        system = fit_system(X, y, groups)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    fitted = system.pool_["fitted"]
    # what the system decided: the model served to every option, and per option of the
    # assignment table its candidate, served function and strength (compared across codes)
    table = system.assignment_
    cols = [c for c in ("option", "candidate", "served", "strength") if c in table.columns]
    decided = json.dumps({"served": sorted((str(k), str(v)) for k, v in system.served_.items()),
                          "table": table[cols].astype(str).values.tolist()})
    fits = [{"candidate": e["name"], "rows": int(e["rows"]), "seconds": float(e["s"]),
             "route": getattr(getattr(fitted.get(e["name"]), "certificate_", None), "route", "")}
            for e in events if e["kind"] == "candidate"]
    return {"dataset": name, "rows": int(len(y)), "features": int(X.shape[1]), "attributes": list(groups.columns),
            "wall": wall, "cpu": cpu, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "sklearn": yard, "fits": fits,
            "generic": sum(float(e["s"]) for e in events if e["kind"] == "generic"),
            "folds": [float(e["s"]) for e in events if e["kind"] == "fold"],
            "cv": sum(float(e["s"]) for e in events if e["kind"] == "cv"),
            "assignment": sum(float(e["s"]) for e in events if e["kind"] == "assignment"),
            "decisions": hashlib.sha256(decided.encode()).hexdigest()[:16],
            "unparsed": unparsed}


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def _best(values):
    values = [v for v in values if v is not None]
    return min(values) if values else float("nan")


def summary_lines(runs: list[dict], trees: list[str]) -> list[str]:
    """The tables of the results file from every child's JSON."""
    out = []
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    cur = [r for r in runs if r["tree"] == "current" and "error" not in r]
    errors = [r for r in runs if "error" in r]
    header = ("| dataset | rows | features | candidates | fit_system wall s best / median | CPU s best / median | "
              "peak MB | cross-validation s | slowest candidate (median s) | sum of candidate fits s | "
              "scikit-learn fit s | fit_system / scikit-learn |")
    out += [header, "|" + "---|" * 12]
    for d in datasets:
        rs = [r for r in cur if r["dataset"] == d]
        if not rs:
            why = "; ".join(r["error"] for r in errors if r["dataset"] == d and r["tree"] == "current")
            out.append(f"| {d} | {why} |" + " |" * 10)
            continue
        r0 = rs[0]
        per = {}
        for r in rs:
            for f in r["fits"]:
                per.setdefault(f["candidate"], []).append(f["seconds"])
        slow = max(per, key=lambda k: _median(per[k])) if per else ""
        sk = _best([r["sklearn"] for r in rs])
        ratio = _best([r["wall"] for r in rs]) / sk if sk == sk and sk else float("nan")
        out.append(f"| {d} | {r0['rows']:,} | {r0['features']} | {len(r0['fits'])} | "
                   f"{_best([r['wall'] for r in rs]):.2f} / {_median([r['wall'] for r in rs]):.2f} | "
                   f"{_best([r['cpu'] for r in rs]):.2f} / {_median([r['cpu'] for r in rs]):.2f} | "
                   f"{max(r['peak_mb'] for r in rs):.0f} | {_median([r['cv'] for r in rs]):.2f} | "
                   f"{slow} ({_median(per.get(slow, [])):.2f}) | "
                   f"{_median([sum(f['seconds'] for f in r['fits']) for r in rs]):.2f} | "
                   + (f"{sk:.3f} | {ratio:.0f}x |" if sk == sk else "(regression) | |"))
    if "baseline" in trees:
        out += ["", "Before and after, measured in the same run (the baseline: `--baseline`, see the header); "
                "*after / before*: ratio of the median CPU seconds; *same decisions*: every run of both codes "
                "served the same model to every option and chose the same candidate, served function and "
                "strength for every row of the assignment table.", "",
                "| dataset | before: wall s best / median | before: CPU s best / median | after: wall s best / median "
                "| after: CPU s best / median | after / before (CPU) | same decisions |", "|" + "---|" * 7]
        for d in datasets:
            a = [r for r in cur if r["dataset"] == d]
            b = [r for r in runs if r["tree"] == "baseline" and r["dataset"] == d and "error" not in r]
            if not a or not b:
                out.append(f"| {d} | " + ("(failed)" if not b else "") + " | | | | | |")
                continue
            same = len({r.get("decisions") for r in a + b}) == 1
            out.append(f"| {d} | {_best([r['wall'] for r in b]):.2f} / {_median([r['wall'] for r in b]):.2f} | "
                       f"{_best([r['cpu'] for r in b]):.2f} / {_median([r['cpu'] for r in b]):.2f} | "
                       f"{_best([r['wall'] for r in a]):.2f} / {_median([r['wall'] for r in a]):.2f} | "
                       f"{_best([r['cpu'] for r in a]):.2f} / {_median([r['cpu'] for r in a]):.2f} | "
                       f"{_median([r['cpu'] for r in a]) / _median([r['cpu'] for r in b]):.2f} | "
                       f"{'yes' if same else 'NO'} |")
    unparsed = sorted({u for r in cur for u in r.get("unparsed", [])})
    out += ["", f"Progress lines the benchmark could not parse: {len(unparsed)}"]
    out += [f"- `{u}`" for u in unparsed[:20]]
    out += ["", "Every candidate (current code): median seconds over the runs, as `fit_system` logs them; the "
            "route of its certificate (pool fit on the training part).", "",
            "| dataset | candidate | training rows | median s | route |", "|---|---|---|---|---|"]
    for d in datasets:
        rs = [r for r in cur if r["dataset"] == d]
        if not rs:
            continue
        for f in rs[0]["fits"]:
            secs = [g["seconds"] for r in rs for g in r["fits"] if g["candidate"] == f["candidate"]]
            out.append(f"| {d} | {f['candidate']} | {f['rows']:,} | {_median(secs):.2f} | {f['route']} |")
    out += ["", "Every run:", "", "| dataset | code | run | wall s | CPU s | peak MB | cross-validation folds s | "
            "assignment s |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if "error" in r:
            out.append(f"| {r['dataset']} | {r['tree']} | {r['run']} | {r['error']} | | | | |")
        else:
            out.append(f"| {r['dataset']} | {r['tree']} | {r['run']} | {r['wall']:.2f} | {r['cpu']:.2f} | "
                       f"{r['peak_mb']:.0f} | {', '.join(f'{s:.1f}' for s in r['folds'])} | "
                       f"{r['assignment']:.2f} |")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=None, help="comma-separated (default: the study's)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", default=None, help="a directory holding another version of fairuse_opt")
    ap.add_argument("--baseline-label", default="", help="what the baseline is (e.g. its git commit)")
    ap.add_argument("--mem-limit", type=int, default=6_000_000_000)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--out", default="benchmarks/results/system_pool_timing.md")
    ap.add_argument("--one", help="internal: run one dataset and print JSON")
    ap.add_argument("--load-kw", default="{}", help="internal: the loader's keywords (JSON)")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_dataset(args.one, json.loads(args.load_kw))))
        return
    from bench_fairuse import git_commit, machine_lines
    from bench_system import DATASETS, LOAD_KW

    datasets = args.datasets.split(",") if args.datasets else list(DATASETS)
    header = machine_lines()
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in ("FAIRUSE_DATA_DIR", "PYTHONPATH") if os.environ.get(k))
    command = ((env + " ") if env else "") + "python " + " ".join(
        shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    trees = {"current": os.environ.get("PYTHONPATH", "")}
    if args.baseline:
        trees["baseline"] = str(Path(args.baseline).resolve())

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (args.mem_limit, args.mem_limit))

    runs = []
    for run in range(args.repeats):
        for name in datasets:
            for tree, path in trees.items():
                env = dict(os.environ, PYTHONPATH=path, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
                cmd = [sys.executable, __file__, "--one", name, "--load-kw", json.dumps(LOAD_KW.get(name, {}))]
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                                          preexec_fn=limit, env=env)
                    found = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                    row = json.loads(found[-1]) if found else {
                        "dataset": name, "error": f"exit {proc.returncode}: "
                                                  + (proc.stderr.strip().splitlines() or [""])[-1][:200]}
                except subprocess.TimeoutExpired:
                    row = {"dataset": name, "error": f"timeout after {args.timeout:g} s"}
                row.update(tree=tree, run=run + 1)
                if "error" not in row and not row["fits"]:
                    row["error"] = "no candidate's progress line parsed (have fit_system's lines changed?)"
                runs.append(row)
                print(json.dumps({k: v for k, v in row.items() if k not in ("fits", "unparsed")}),
                      file=sys.stderr, flush=True)
    end_load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = ["# Fit time of `fit_system`'s default procedure and pool, every dataset of the study", "",
             "Made by (from the repository root):", "", "```", command, "```", "", *header,
             f"- load average (1/5/15 min) at the end: {end_load}",
             f"- current code: git {git_commit()}, run as `PYTHONPATH={trees['current'] or '(unset)'}`"
             + (f"; baseline: `PYTHONPATH={trees['baseline']}`"
                + (f" ({args.baseline_label})" if args.baseline_label else "") if "baseline" in trees else ""),
             f"- {args.repeats} run(s) per dataset and code, each in its own process, the datasets interleaved",
             "",
             "Per dataset: `fit_system(X, y, groups)` with its defaults on all rows (ladder: the pool trained on "
             "half of them, a 3-fold cross-validation of the pool on that half, the generic model on all rows, the "
             "assignment on the other half); *wall* and "
             "*CPU*: the whole call; *peak MB*: the child process's peak RSS (the data and the libraries "
             "included); *cross-validation*, *slowest candidate*, *sum of candidate fits*: from `fit_system`'s "
             "progress lines (medians over the runs); *scikit-learn fit*: one `LogisticRegression` (lbfgs, "
             "the same L2 penalty) on the features plus attribute indicators, all rows, best of the runs; "
             "*fit_system / scikit-learn*: best wall over best yardstick.", "",
             *summary_lines(runs, list(trees))]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
