"""Fit time of ``fit_system``'s default candidate pool on every dataset of the study.

For each dataset (``--datasets``; default: the study's, ``benchmarks/configs/default.toml``)
``fit_system(X, y, groups)`` runs with its defaults on all the dataset's rows (it trains
the candidates on 70% of them and assigns on the rest), in a child process of its own
(``--mem-limit`` bytes of address space, ``--timeout`` seconds).  Every candidate's fit
time is read from ``fit_system``'s own log line ("fitted NAME on N rows in S s", logger
``fairuse_opt.system``); the table gives each dataset's slowest fit, the sum of the fits
and the whole ``fit_system`` call (the assignment's bootstrap tests included), and every
candidate's time.  With ``--onehot-fair-use`` the pool includes the fair-use one-hot
models that the default leaves out.

Usage (from the repository root; SUPPORT2, NHEFS, Framingham, Pima and birthwt need the
``datasets`` extra, apnea ``FAIRUSE_DATA_DIR``)::

    FAIRUSE_DATA_DIR=/work/shared/data python benchmarks/bench_system_pool.py --out benchmarks/results/system_pool_timing.md
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

STUDY = ["apnea", "support2", "nhefs", "framingham", "pima", "birthwt", "diabetes"]


def run_dataset(name: str, onehot_fair_use: bool) -> dict:
    """``fit_system`` with its defaults on one dataset; the candidates' fit times."""
    from fairuse_opt.datasets import load
    from fairuse_opt.system import fit_system

    X, y, groups = load(name)
    fits = []

    class Collect(logging.Handler):
        def emit(self, record):
            if record.msg.startswith("fitted %s on %d rows in"):
                cand, rows, secs = record.args
                fits.append({"candidate": cand, "rows": int(rows), "seconds": float(secs)})

    log = logging.getLogger("fairuse_opt")
    log.setLevel(logging.INFO)
    log.addHandler(Collect(level=logging.INFO))
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        system = fit_system(X, y, groups, onehot_fair_use=onehot_fair_use)
    out = {"dataset": name, "rows": int(len(y)), "features": int(X.shape[1]),
           "attributes": list(groups.columns), "seconds": time.perf_counter() - t0,
           "cpu_seconds": time.process_time() - c0, "fits": fits,
           "routes": {k: getattr(getattr(m, "certificate_", None), "route", "") for k, m in
                      getattr(system, "candidates_", {}).items()} if hasattr(system, "candidates_") else {},
           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(STUDY))
    ap.add_argument("--onehot-fair-use", action="store_true")
    ap.add_argument("--mem-limit", type=int, default=6_000_000_000)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--out", default="benchmarks/results/system_pool_timing.md")
    ap.add_argument("--one", help="internal: run one dataset and print JSON")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_dataset(args.one, args.onehot_fair_use)))
        return
    from bench_fairuse import machine_lines

    header = machine_lines()
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    rows = []

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (args.mem_limit, args.mem_limit))

    for name in args.datasets.split(","):
        cmd = [sys.executable, __file__, "--one", name] + (["--onehot-fair-use"] if args.onehot_fair_use else [])
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, preexec_fn=limit)
            found = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            row = json.loads(found[-1]) if found else {
                "dataset": name, "error": f"exit {proc.returncode}: "
                                          + (proc.stderr.strip().splitlines() or [""])[-1][:200]}
        except subprocess.TimeoutExpired:
            row = {"dataset": name, "error": f"timeout after {args.timeout:g} s"}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "fits"}), file=sys.stderr, flush=True)
    lines = ["# Fit time of `fit_system`'s default pool, every dataset of the study", "",
             "Made by (from the repository root):", "", "```", command, "```", "", *header, "",
             "Per dataset: `fit_system(X, y, groups)` with its defaults on all rows (candidates trained on "
             "70%), in its own process; *slowest fit* and *sum of fits*: wall seconds of the candidates' fits "
             "as `fit_system` logs them; *fit_system s*: the whole call (the generic model and the "
             "assignment's tests included); *peak MB*: the process's peak RSS.", "",
             "| dataset | rows | features | candidates | slowest fit s | slowest candidate | sum of fits s | "
             "fit_system s | fit_system CPU s | peak MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['dataset']} | {r['error']} |" + " |" * 8)
            continue
        slow = max(r["fits"], key=lambda f: f["seconds"]) if r["fits"] else {"candidate": "", "seconds": 0.0}
        lines.append(f"| {r['dataset']} | {r['rows']:,} | {r['features']} | {len(r['fits'])} | "
                     f"{slow['seconds']:.2f} | {slow['candidate']} | {sum(f['seconds'] for f in r['fits']):.1f} | "
                     f"{r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_mb']:.0f} |")
    lines += ["", "Every candidate:", "", "| dataset | candidate | training rows | seconds |", "|---|---|---|---|"]
    for r in rows:
        for f in r.get("fits", []):
            lines.append(f"| {r['dataset']} | {f['candidate']} | {f['rows']:,} | {f['seconds']:.2f} |")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
