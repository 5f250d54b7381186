"""Benchmark of training with fair use by construction (issue 3, "Must show": the table).

For each dataset (apnea, nhefs, support2 by default), each configuration
(``onehot``/``intersectional``/``decoupled`` with ``group_reg="set"``, and
``intersectional`` with ``group_reg="penalty"``) and each solver (CLARABEL, ECOS),
fits :class:`fairuse_opt.FairUseClassifier` with ``fair_use=None`` and
``fair_use="both"`` (``l2=1e-3``, library defaults otherwise unless given on the
command line), plus one row per solver with a margin (``intersectional``/``set``,
``margin="se:1"``) so that the rationality constraints bind.  Training loss = mean log
loss on the data the model was fitted on (the whole dataset, or the documented
stratified subsample).

Every fitted model is also re-checked here, independently of the library's own
verification: every group's loss under every report is recomputed from ``coef_`` and
``intercept_`` (raw features), compared with the certificate and checked against the
constraints at tolerance 1e-7.

Writes a markdown file with the exact command line and the machine at the top, one
table of fits and one per-group table per configuration for each dataset.  Progress
goes to stderr.  Run from the repository root::

    python benchmarks/bench_fairuse.py [--data-dir DIR] [--out FILE]
        [--datasets apnea,nhefs,support2] [--subsample support2=1500] [--max-iter N]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from fairuse_opt import FairUseClassifier
from fairuse_opt import datasets as fds

ALPHA = 1e-3
SOLVERS = ("CLARABEL", "ECOS")
CONFIGS = [("onehot", "set"), ("intersectional", "set"), ("decoupled", "set"), ("intersectional", "penalty")]
MARGIN_CONFIG = ("intersectional", "set")
MARGIN = "se:1"
TOL = 1e-7


# ------------------------------------------------------------------------ machine info
def pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_lines() -> list[str]:
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count()
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- machine: {nproc} CPUs available (nproc), {cpu_model()}, {platform.system()} {platform.release()}",
        f"- load average (1/5/15 min) at start: {load} (the machine is shared: wall times include waiting "
        "for a CPU; the CPU-time column does not)",
        f"- python {platform.python_version()}; fairuse_opt {pkg_version('fairuse_opt')} (git {git_commit()}); "
        f"cvxpy {pkg_version('cvxpy')}; clarabel {pkg_version('clarabel')}; ecos {pkg_version('ecos')}; "
        f"scs {pkg_version('scs')}; numpy {pkg_version('numpy')}; scipy {pkg_version('scipy')}; "
        f"scikit-learn {pkg_version('scikit-learn')}",
    ]


def log(msg: str) -> None:
    print(f"[bench_fairuse {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ data
def load(name: str, data_dir: str | None):
    if name == "apnea":
        return fds.load_apnea(data_dir)
    loader = getattr(fds, f"load_{name}")
    return loader()


def stratified_subsample(X, y, groups, n_target: int, seed: int = 0, floor: int = 30):
    """Rows kept per intersectional group: ``round(n_g * n_target / n)``, at least
    ``min(n_g, floor)``; drawn without replacement with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    keys = pd.Series(list(groups.itertuples(index=False, name=None)))
    frac = n_target / len(keys)
    keep = []
    for _, idx in keys.groupby(keys).groups.items():
        idx = np.asarray(idx)
        k = min(len(idx), max(floor, int(round(frac * len(idx)))))
        keep.append(rng.choice(idx, size=k, replace=False))
    keep = np.sort(np.concatenate(keep))
    return (X.iloc[keep].reset_index(drop=True), y.iloc[keep].reset_index(drop=True),
            groups.iloc[keep].reset_index(drop=True))


# ------------------------------------------------------------------ independent check
def independent_check(model, X, y, groups, fair_use, margins) -> dict:
    """Recompute every group's loss under every report from coef_/intercept_."""
    cert = model.certificate_.table
    Xa = X.to_numpy(dtype=float)
    yv = np.asarray(y, dtype=float)
    codes = model.group_index_.codes(groups)
    S = Xa @ model.coef_.T + model.intercept_[None, :]          # score of row i under report r
    R = np.logaddexp(0.0, S) - yv[:, None] * S                   # log loss of row i under report r
    G = len(model.groups_)
    L = np.array([R[codes == g].mean(axis=0) for g in range(G)])  # L[g, r]
    own = np.diag(L)
    s0 = model.generic_.decision_function(X)
    r0 = np.logaddexp(0.0, s0) - yv * s0
    L0 = np.array([r0[codes == g].mean() for g in range(G)])
    dev = max(float(np.max(np.abs(own - cert["own_loss"].to_numpy()))),
              float(np.max(np.abs(L0 - cert["generic_loss"].to_numpy()))))
    viol = 0
    if fair_use:
        viol += int(np.sum(own > L0 - margins + TOL))
        off = L + np.diag(np.full(G, np.inf))
        viol += int(np.sum(own > off.min(axis=1) + TOL))
    return {"check_dev": dev, "check_viol": viol, "own": own, "generic": L0}


def attempt_counts(attempts) -> str:
    """'calls: optimal/inaccurate/error' over every solver call of the fit."""
    opt = sum(1 for _, s in attempts if s == "optimal")
    inacc = sum(1 for _, s in attempts if s == "optimal_inaccurate")
    return f"{len(attempts)}: {opt}/{inacc}/{len(attempts) - opt - inacc}"


# ------------------------------------------------------------------------------- fits
def run_fit(X, y, groups, *, encoding, group_reg, fair_use, solver, margin=0.0, max_iter=None) -> dict:
    kw = dict(encoding=encoding, group_reg=group_reg, fair_use=fair_use, l2=ALPHA, solver=solver,
              margin=margin)
    if max_iter is not None:
        kw["max_iter"] = max_iter
    rec = {"encoding": encoding, "group_reg": group_reg, "fair_use": fair_use or "None",
           "margin": margin, "solver_requested": solver, "n": len(y)}
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = FairUseClassifier(**kw).fit(X, y, groups=groups)
        except Exception as exc:  # recorded in the table, never hidden
            text = str(exc).splitlines()[0] if str(exc) else ""
            text = re.sub(r"\[\(.*?\)\]", lambda m: f"[{m.group(0).count('(')} groups]", text)
            rec.update(wall=time.perf_counter() - t0, cpu=time.process_time() - c0,
                       error=f"{type(exc).__name__}: {text[:300]}")
            return rec
    rec.update(wall=time.perf_counter() - t0, cpu=time.process_time() - c0)
    c = model.certificate_
    t = c.table
    margins = t["margin"].to_numpy() if "margin" in t else np.zeros(len(t))
    check = independent_check(model, X, y, groups, c.fair_use, margins)
    warn_names = sorted({w.category.__name__ for w in caught})
    rec.update(
        model=model, route=c.route, solver_used=c.solver, status=c.status, iterations=c.iterations,
        objective=c.objective, objective_unconstrained=c.objective_unconstrained,
        objective_generic=c.objective_generic, gain_kept=c.gain_kept, verified=c.verified,
        cert_seconds=c.seconds, calls=attempt_counts(c.attempts),
        n_active=int(t["rationality_active"].sum()), max_dual=float(np.nanmax(t["dual"])) if t["dual"].notna().any() else float("nan"),
        min_rat_slack=float(t["rationality_slack"].min()), min_envy_slack=float(t["envy_slack"].min()),
        at_boundary=int(t["at_set_boundary"].sum()), notes="; ".join(c.notes),
        warnings=", ".join(warn_names), table=t, **check)
    return rec


def fmt(v, digits=5) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "nan"
        return f"{v:.{digits}f}"
    return str(v)


def fits_table(recs: list[dict]) -> list[str]:
    head = ("| encoding / group_reg | fair_use | margin | solver asked | solver used | status | route | "
            "iterations | objective | unconstrained obj. | generic obj. | gain kept | verified | "
            "independent check: max dev / violations | active / max dual | wall s | CPU s | "
            "solver calls: total: optimal/inaccurate/failed | warnings |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in recs:
        cfg = f"{r['encoding']} / {r['group_reg']}"
        if "error" in r:
            lines.append(f"| {cfg} | {r['fair_use']} | {r['margin']} | {r['solver_requested']} | | "
                         f"ERROR: {r['error']} | | | | | | | | | | {r['wall']:.2f} | {r['cpu']:.2f} | | |")
            continue
        lines.append(
            f"| {cfg} | {r['fair_use']} | {r['margin']} | {r['solver_requested']} | {r['solver_used']} | "
            f"{r['status']} | {r['route']} | {r['iterations']} | {fmt(r['objective'], 7)} | "
            f"{fmt(r['objective_unconstrained'], 7)} | {fmt(r['objective_generic'], 7)} | "
            f"{fmt(r['gain_kept'], 4)} | {r['verified']} | {r['check_dev']:.1e} / {r['check_viol']} | "
            f"{r['n_active']} / {fmt(r['max_dual'], 4)} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['calls']} | "
            f"{r['warnings']} |")
    return lines


def group_table(none_recs: dict, fair_recs: dict) -> list[str]:
    """Per group: generic, unconstrained and constrained loss for each solver."""
    base = next((r for r in list(none_recs.values()) + list(fair_recs.values()) if "error" not in r), None)
    if base is None:
        return ["(every fit of this configuration failed)"]
    t = base["table"]
    cols = ["group", "n", "generic"]
    for s in SOLVERS:
        cols += [f"unconstrained {s}", f"fair use {s}"]
    for s in SOLVERS:
        cols += [f"rationality slack {s}", f"envy slack {s}", f"active {s}", f"dual {s}"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for g in range(len(t)):
        row = [", ".join(map(str, t["group"][g])), str(int(t["n"][g])), fmt(float(t["generic_loss"][g]))]
        for s in SOLVERS:
            for recs in (none_recs, fair_recs):
                r = recs.get(s)
                row.append(fmt(float(r["table"]["own_loss"][g])) if r and "error" not in r else "error")
        for s in SOLVERS:
            r = fair_recs.get(s)
            if r and "error" not in r:
                tt = r["table"]
                row += [f"{tt['rationality_slack'][g]:.2e}", f"{tt['envy_slack'][g]:.2e}",
                        "yes" if tt["rationality_active"][g] else "", fmt(float(tt["dual"][g]), 4)]
            else:
                row += ["error"] * 4
        lines.append("| " + " | ".join(row) + " |")
    gens = [r["generic"] for r in list(none_recs.values()) + list(fair_recs.values()) if "error" not in r]
    spread = max(float(np.max(np.abs(a - gens[0]))) for a in gens) if gens else float("nan")
    lines.append("")
    lines.append(f"Generic column: from the {base['solver_requested']} fit; the generic losses of all fits of "
                 f"this configuration differ by at most {spread:.1e}.")
    return lines


# ------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("FAIRUSE_DATA_DIR"),
                        help="folder holding apnea.csv (default: $FAIRUSE_DATA_DIR)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "fairuse_training.md"))
    parser.add_argument("--datasets", default="apnea,nhefs,support2")
    parser.add_argument("--subsample", action="append", default=[], metavar="NAME=N",
                        help="fit NAME on a stratified subsample of about N rows (seed 0); repeatable")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="max_iter of the estimator (iterations of each ccp start); default: the library's")
    parser.add_argument("--no-full-check", action="store_true",
                        help="for a subsampled dataset, do not also fit intersectional/set with CLARABEL on all rows")
    args = parser.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    subsample = {k: int(v) for k, v in (s.split("=", 1) for s in args.subsample)}
    header_machine = machine_lines()
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    est_defaults = FairUseClassifier().get_params()

    out: list[str] = []
    for name in args.datasets.split(","):
        X, y, groups = load(name, args.data_dir)
        n_full = len(y)
        sub_note = "all rows"
        Xf, yf, gf = X, y, groups
        if name in subsample:
            X, y, groups = stratified_subsample(X, y, groups, subsample[name])
            sub_note = (f"**stratified subsample of {len(y)} of {n_full} rows** (about {subsample[name]}: "
                        f"round(n_g * {subsample[name]}/{n_full}) rows per group, at least min(n_g, 30), "
                        "numpy default_rng(0)), because the full data makes each fit take minutes")
        n_groups = groups.drop_duplicates().shape[0]
        log(f"{name}: n={len(y)} ({sub_note.replace('*', '')[:40]}), d={X.shape[1]}, {n_groups} groups")
        recs, per_cfg = [], []
        for k, (encoding, group_reg) in enumerate(CONFIGS + [MARGIN_CONFIG]):
            is_margin = k == len(CONFIGS)
            none_recs, fair_recs = {}, {}
            for solver in SOLVERS:
                for fair_use in ([None, "both"] if not is_margin else ["both"]):
                    margin = MARGIN if is_margin else 0.0
                    r = run_fit(X, y, groups, encoding=encoding, group_reg=group_reg, fair_use=fair_use,
                                solver=solver, margin=margin, max_iter=args.max_iter)
                    recs.append(r)
                    (fair_recs if fair_use else none_recs)[solver] = r
                    log(f"{name} {encoding}/{group_reg} fair_use={fair_use} margin={margin} {solver}: "
                        + (f"ERROR {r['error']}" if "error" in r else
                           f"route {r['route']}, used {r['solver_used']} ({r['status']}), {r['iterations']} it, "
                           f"obj {r['objective']:.7f}, verified {r['verified']}, check viol {r['check_viol']}, "
                           f"calls {r['calls']}") + f", {r['wall']:.1f} s")
            if is_margin:  # the unconstrained fits are those of the same configuration above
                prev = next(p for p in per_cfg if p[0] == MARGIN_CONFIG and not p[3])
                none_recs = prev[1]
            per_cfg.append(((encoding, group_reg), none_recs, fair_recs, is_margin))
        full_recs = []
        if name in subsample and not args.no_full_check:
            for fair_use in (None, "both"):
                r = run_fit(Xf, yf, gf, encoding="intersectional", group_reg="set", fair_use=fair_use,
                            solver="CLARABEL", max_iter=args.max_iter)
                full_recs.append(r)
                log(f"{name} FULL n={n_full} intersectional/set fair_use={fair_use} CLARABEL: "
                    + (f"ERROR {r['error']}" if "error" in r else
                       f"route {r['route']}, obj {r['objective']:.7f}, verified {r['verified']}") +
                    f", {r['wall']:.1f} s")

        out += [f"## {name}", "",
                f"n = {len(y)} ({sub_note}), {X.shape[1]} features, {n_groups} intersectional groups "
                f"({', '.join(map(str, groups.columns))}). Training loss = mean log loss on these rows; "
                "no train/test split.", "", "### Fits", ""]
        out += fits_table(recs)
        out += [""]
        for (encoding, group_reg), none_recs, fair_recs, is_margin in per_cfg:
            title = f"{encoding} / {group_reg}" + (f", fair_use='both' with margin='{MARGIN}'" if is_margin else "")
            out += [f"### Per-group training loss: {title}", ""]
            if is_margin:
                out += [f"'unconstrained' = the fair_use=None fit of {encoding} / {group_reg}; 'fair use' = "
                        f"the fit with margin {MARGIN} (rationality_slack = generic - margin - own).", ""]
            out += group_table(none_recs, fair_recs)
            out += [""]
        if full_recs:
            out += [f"### {name} on all {n_full} rows (timing check; intersectional / set, CLARABEL only)", ""]
            out += fits_table(full_recs)
            out += [""]

    total = time.perf_counter() - t_start
    load_end = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    changed = {k: v for k, v in {"max_iter": args.max_iter}.items() if v is not None}
    head = [
        "# Fair-use training benchmark (issue 3)",
        "",
        "Made by (from the repository root):",
        "",
        "```",
        command,
        "```",
        "",
        f"- run: {started:%Y-%m-%d %H:%M} UTC, {total / 60:.1f} min in total; load average at the end: {load_end}",
        *header_machine,
        f"- estimator: `FairUseClassifier(l2={ALPHA}, encoding=..., group_reg=..., fair_use=..., "
        f"solver=...)`, every other parameter at its default "
        f"({'except ' + ', '.join(f'{k}={v} (default {est_defaults[k]})' for k, v in changed.items()) if changed else 'no exceptions'}; "
        f"defaults: intercept_bound={est_defaults['intercept_bound']!r}, coef_bound={est_defaults['coef_bound']!r}, "
        f"tol={est_defaults['tol']}, max_iter={est_defaults['max_iter']}, formulation={est_defaults['formulation']!r}).",
        "- training data: each model is fitted on the whole dataset (or the stated subsample); every loss below "
        "is a training loss (mean log loss of the group's rows), no split.",
        "",
        "Columns. *solver asked*: the `solver=` parameter; *solver used*: `certificate_.solver`, the solver "
        "whose solution was returned (the library falls back to the other solver when the asked one fails "
        "or is inaccurate; for route ccp it is the solver of the last accepted step of the best start). "
        "*status*: `certificate_.status`. *iterations*: `certificate_.iterations` (1 for one convex program; "
        "accepted steps of the best start for ccp). *gain kept*: `certificate_.gain_kept`, (generic objective "
        "- objective) / (generic objective - unconstrained objective). *verified*: `certificate_.verified`. "
        "*independent check*: this script's own recomputation of every group's loss under every report "
        "from `coef_`/`intercept_`: largest deviation from the certificate's own and generic losses, and "
        "the number of rationality/envy constraints it finds violated at tolerance 1e-7 (0 expected; "
        "not checked for fair_use=None). *active / max dual*: rationality constraints active, largest dual "
        "value. *wall s*: the whole `fit` (generic model, unconstrained fit and, for fair use, the "
        "constrained route); *CPU s*: process CPU time of the same. *solver calls*: every solver call "
        "recorded in `certificate_.attempts` (the generic model's calls are not included), as total: "
        "optimal / optimal_inaccurate / failed (error or infeasible).",
        "",
        "Routes: `unconstrained` (fair_use=None), `unconstrained-feasible` (the unconstrained fit already "
        "meets every constraint, so it is the global optimum), `exact` (one convex program, section 3a), "
        "`ccp` (sequence of convex restrictions, section 3b), `generic-fallback`.",
        "",
    ]
    text = "\n".join(head + out) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    log(f"wrote {args.out} ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
