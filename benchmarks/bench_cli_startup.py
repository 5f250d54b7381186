"""Time ``fairuse --help`` (interpreter start, imports, parser) in fresh processes.

::

    python benchmarks/bench_cli_startup.py [--repeat 15] [--baseline PATH_OF_ANOTHER_CHECKOUT]

Each run is a new ``python`` process (started in a temporary folder, so that the
checkout named by ``PYTHONPATH`` is the one imported; the script checks it) running the command line's ``main(["--help"])`` with
``PYTHONPATH`` set to this checkout (and, with ``--baseline``, to the other checkout, in
alternation, so both see the same machine load).  Prints the median and the range of the
wall time and the peak resident memory of the process, and which heavy modules were
imported.  Bytecode caches are warmed by one run of each first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = ("import sys; from fairuse_opt.cli import main; rc = main(['--help']); "
        "sys.stderr.write('HEAVY ' + ','.join(m for m in ('numpy', 'pandas', 'scipy', 'sklearn', 'cvxpy') "
        "if m in sys.modules) + '\\n'); import fairuse_opt; sys.stderr.write('FILE ' + fairuse_opt.__file__ + '\\n')")


def run_once(tree: Path) -> tuple[float, float, str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CODE], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    err = proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: exit {proc.returncode}: {err}")
    heavy = next((ln.split(" ", 1)[1] for ln in err.splitlines() if ln.startswith("HEAVY")), "?")
    where = next((ln.split(" ", 1)[1] for ln in err.splitlines() if ln.startswith("FILE")), "?")
    if not Path(where).resolve().is_relative_to(tree):
        raise SystemExit(f"imported fairuse_opt from {where}, not from {tree}")
    return seconds, usage.ru_maxrss / 1024.0, heavy or "(none)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to compare with")
    args = parser.parse_args()
    trees = {"this checkout": REPO}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    for tree in trees.values():
        run_once(tree)  # warm the bytecode cache
    results: dict[str, list] = {name: [] for name in trees}
    for _ in range(args.repeat):
        for name, tree in trees.items():
            results[name].append(run_once(tree))
    print(f"{args.repeat} runs each, python {sys.version.split()[0]}")
    print("| code | median s | min s | max s | peak RSS MB (median) | heavy modules imported |")
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        secs = [r[0] for r in rows]
        rss = [r[1] for r in rows]
        print(f"| {name} | {statistics.median(secs):.3f} | {min(secs):.3f} | {max(secs):.3f} | "
              f"{statistics.median(rss):.0f} | {rows[0][2]} |")
    if len(results) == 2:
        a = statistics.median(r[0] for r in results["this checkout"])
        b = statistics.median(r[0] for r in results["baseline"])
        print(f"\nratio baseline / this checkout (medians): {b / a:.1f}x")


if __name__ == "__main__":
    main()
