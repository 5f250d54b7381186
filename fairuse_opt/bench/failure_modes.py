"""The failure-mode suite: one synthetic generator per known way standard practice breaks fair use.

Each generator draws a training sample, an assignment sample and a deployment (test)
sample from a known truth, and names the group that standard practice is expected to
harm.  :func:`run_failure_modes` passes every scenario through the standard models
(one-hot, intersectional and decoupled logistic regression, a random forest with group
indicators), the fair-use models (intersectional and one-hot, rationality and
envy-freeness on the training data) and the certified system, and audits each on the
deployment sample.

=====================  =================================================================
scenario               what breaks
=====================  =================================================================
``additive_xor``       the outcome is an XOR of two attributes (fair-use.md section 7):
                       an additive one-hot encoding cannot express it, and its best fit
                       moves one group across the threshold the wrong way
``small_group``        a small group with many features and no group effect: a decoupled
                       model overfits it (its training loss looks better than the generic
                       model's; held out it is worse)
``mix_shift``          each group mixes two hidden sub-populations; one group's mix shifts
                       between training and deployment, so its personalized intercept,
                       right for the training mix, is wrong at deployment
``logloss_vs_error``   the model is trained (and constrained) on log loss but judged on
                       error: the intercept that calibrates a group's probabilities on
                       average moves half of its patients across 0.5 the wrong way
=====================  =================================================================
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ._cells import measure, training_violations
from ._grid import derive_seed
from ._methods import FitData, Skip, build_model

__all__ = ["Scenario", "SCENARIOS", "make_scenario", "run_failure_modes", "FAILURE_METHODS"]


@dataclass
class Scenario:
    """Samples drawn from a known truth.

    Attributes
    ----------
    name, description : str
    train, assign, test : tuple of (X, y, groups)
        The test sample is the deployment population.
    harmed : str
        Label of the group standard practice is expected to harm (as the audit names it).
    assign_deploy : tuple or None
        An assignment sample from the deployment population (``mix_shift`` only).
    """

    name: str
    description: str
    train: tuple
    assign: tuple
    test: tuple
    harmed: str
    assign_deploy: tuple | None = None
    info: dict = field(default_factory=dict)


def _frame(x: np.ndarray, y: np.ndarray, groups: dict) -> tuple:
    X = pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])])
    return X, pd.Series(y.astype(int), name="y"), pd.DataFrame(groups)


def _additive_xor(rng: np.random.Generator, n: int) -> tuple:
    # cell shares and P(y = 1): the XOR cells are mostly positive; sizes unequal, as in the toy
    cells = [("F", "old", 0.22, 0.08), ("F", "young", 0.26, 0.92),
             ("M", "old", 0.25, 0.92), ("M", "young", 0.27, 0.08)]
    k = rng.choice(4, size=n, p=[c[2] for c in cells])
    x = rng.normal(size=(n, 3))
    p = np.array([c[3] for c in cells])[k]
    logit = np.log(p / (1 - p)) + 0.4 * x[:, 0]
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    return _frame(x, y, {"Sex": [cells[i][0] for i in k], "Age": [cells[i][1] for i in k]})


def _small_group(rng: np.random.Generator, n: int, small_share: float = 0.03) -> tuple:
    d = 25
    beta = np.zeros(d)
    beta[:4] = [1.0, -0.8, 0.6, 0.5]
    g = rng.choice(["large_a", "large_b", "small"], size=n,
                   p=[(1 - small_share) / 2, (1 - small_share) / 2, small_share])
    x = rng.normal(size=(n, d))
    y = rng.random(n) < 1 / (1 + np.exp(-(x @ beta)))
    return _frame(x, y, {"Site": g})


def _mix_shift(rng: np.random.Generator, n: int, shifted_high: float) -> tuple:
    # groups A x B; each row belongs to a hidden sub-population (high risk or low risk)
    a = rng.choice(["a0", "a1"], size=n)
    b = rng.choice(["b0", "b1"], size=n)
    high_share = np.full(n, 0.3)
    high_share[(a == "a1") & (b == "b1")] = shifted_high
    high = rng.random(n) < high_share
    x = rng.normal(size=(n, 3))
    logit = 0.8 * x[:, 0] - 0.5 * x[:, 1] + np.where(high, 1.5, -1.5)
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    return _frame(x, y, {"A": a, "B": b})


def _logloss_vs_error(rng: np.random.Generator, n: int) -> tuple:
    g = rng.choice(["g0", "g1", "g2"], size=n, p=[0.375, 0.375, 0.25])
    z = rng.random(n) < 0.5
    # groups g0, g1: risk 0.3 (z = 0) or 0.7 (z = 1); group g2: 0.42 or 0.99.  A log-loss
    # intercept for g2 is pulled up by its z = 1 rows, pushing its z = 0 rows (truth 0.42)
    # above 0.5: better log loss, worse error
    p = np.where(z, 0.7, 0.3)
    odd = g == "g2"
    p[odd] = np.where(z[odd], 0.99, 0.42)
    y = rng.random(n) < p
    return _frame(np.column_stack([z.astype(float), rng.normal(size=n)]), y, {"Group": g})


def make_scenario(name: str, seed: int = 0, *, n_train: int = 2000, n_assign: int = 1200,
                  n_test: int = 4000) -> Scenario:
    """Draw one scenario (see the module docstring for the four names)."""
    rng = np.random.default_rng(derive_seed("failure-mode", name, seed))
    if name == "additive_xor":
        draw: Callable = lambda n: _additive_xor(rng, n)  # noqa: E731
        return Scenario(name, "XOR of two attributes; additive one-hot encoding cannot express it",
                        draw(n_train), draw(n_assign), draw(n_test), harmed="Sex=F, Age=old")
    if name == "small_group":
        return Scenario(name, "a 3% group, 25 features, no group effect: a decoupled fit overfits it",
                        _small_group(rng, n_train), _small_group(rng, n_assign),
                        _small_group(rng, n_test, small_share=0.2), harmed="Site=small")
    if name == "mix_shift":
        return Scenario(name, "group A=a1, B=b1 is 80% high-risk in training, 20% at deployment",
                        _mix_shift(rng, n_train, 0.8), _mix_shift(rng, n_assign, 0.8),
                        _mix_shift(rng, n_test, 0.2), harmed="A=a1, B=b1",
                        assign_deploy=_mix_shift(rng, n_assign, 0.2))
    if name == "logloss_vs_error":
        return Scenario(name, "trained on log loss, judged on error: calibrating g2 moves half of it across 0.5",
                        _logloss_vs_error(rng, n_train), _logloss_vs_error(rng, n_assign),
                        _logloss_vs_error(rng, n_test), harmed="Group=g2")
    raise KeyError(name)


SCENARIOS = ("additive_xor", "small_group", "mix_shift", "logloss_vs_error")

#: The models of the suite: label -> (model class, technique, method) of the grid.
FAILURE_METHODS = {
    "one-hot logistic": ("logistic", "onehot", "unconstrained"),
    "intersectional logistic": ("logistic", "intersectional", "unconstrained"),
    "decoupled logistic": ("logistic", "decoupled", "unconstrained"),
    "random forest (one-hot)": ("rf", "onehot", "unconstrained"),
    "fair-use (intersectional)": ("logistic", "intersectional", "fairuse"),
    "fair-use (one-hot)": ("logistic", "onehot", "fairuse"),
    "fair-use (decoupled)": ("logistic", "decoupled", "fairuse"),
    "certified system": ("logistic", "pool", "system"),
}


def _settings(n_boot: int, alpha: float) -> dict:
    return {"folds": 1, "assign_size": 0.0, "n_boot": n_boot, "alpha": alpha, "correction": "holm",
            "seed": 0, "margin_se": 1.0, "system_metric": {"classification": "error"},
            "ccp_max_train": 10**9, "ccp_max_iter": 10, "decoupled_max_train": 10**9}


def run_failure_modes(*, seeds=(0, 1, 2), scenarios=SCENARIOS, methods=None, n_boot: int = 1000,
                      alpha: float = 0.10, sizes: dict | None = None,
                      progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Every scenario x seed x model, audited on the deployment sample.

    Returns
    -------
    DataFrame
        One row per (scenario, seed, model, metric): test value, generic value,
        rationality violations and benefits among the groups, the harmed group's gain,
        its interval and verdict inputs, training violations, fit time, status.
    """
    methods = FAILURE_METHODS if methods is None else {k: FAILURE_METHODS[k] for k in methods}
    rows = []
    for name in scenarios:
        for seed in seeds:
            sc = make_scenario(name, seed, **(sizes or {}))
            runs = [(label, key, sc.assign) for label, key in methods.items()]
            if sc.assign_deploy is not None and "certified system" in methods:
                runs.append(("certified system (deployment assignment)", methods["certified system"],
                             sc.assign_deploy))
            for label, (model, technique, method), assign in runs:
                rows += _one(sc, seed, label, model, technique, method, assign, n_boot, alpha)
                if progress is not None:
                    progress(f"{name} seed {seed}: {label} {rows[-1]['status']}")
    return pd.DataFrame(rows)


def _one(sc: Scenario, seed: int, label: str, model: str, technique: str, method: str,
         assign: tuple, n_boot: int, alpha: float) -> list[dict]:
    base = {"scenario": sc.name, "seed": seed, "model": label, "harmed_group": sc.harmed}
    data = FitData(*sc.train, *assign, "classification",
                   derive_seed("failure-mode", sc.name, seed, label), _settings(n_boot, alpha))
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        try:
            fitted = build_model(model, technique, method, data)
        except Skip as exc:
            return [{**base, "status": exc.status, "reason": str(exc)}]
        fit_seconds = time.perf_counter() - t0
        out = measure(fitted.model, fitted.generic, *sc.test, task="classification", n_boot=n_boot,
                      alpha=alpha, correction="holm", random_state=derive_seed(sc.name, seed, "audit"))
        train = training_violations(fitted.model, fitted.generic, fitted.X_train, fitted.y_train,
                                    fitted.g_train, "classification")
    groups = pd.DataFrame(out["groups"])
    rows = []
    for m in out["metrics"]:
        if m["metric"] not in ("error", "log_loss"):
            continue
        h = groups[(groups["condition"] == "rationality") & (groups["metric"] == m["metric"])
                   & (groups["group"] == sc.harmed)]
        h = h.iloc[0] if len(h) else {}
        rows.append({**base, "status": "ok", "reason": "", "metric": m["metric"], "value": m["value"],
                     "generic_value": m["generic_value"],
                     "violations": m["rationality_violations"], "benefits": m["rationality_benefits"],
                     "groups_judged": m["rationality_judged"],
                     "harmed_gain": h.get("gain"), "harmed_ci_low": h.get("ci_low"),
                     "harmed_ci_high": h.get("ci_high"),
                     "harmed_violation": _significant(h.get("p_violation_adj"), alpha),
                     "train_violations": train["rationality"] + train["envy"],
                     "fit_seconds": fit_seconds})
    return rows


def _significant(p, alpha: float) -> bool:
    """A corrected p-value at or below alpha (no p-value: the group was served the generic
    model, nothing to test)."""
    return p is not None and bool(np.isfinite(p)) and bool(p <= alpha)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and model, over seeds: test error, log loss, violations (error, log
    loss), how often the named group was harmed significantly, its mean gain in error."""
    ok = frame[frame["status"] == "ok"]
    out = []
    for (sc, label), part in ok.groupby(["scenario", "model"], sort=False):
        e = part[part["metric"] == "error"]
        ll = part[part["metric"] == "log_loss"]
        n = len(e)
        out.append({"scenario": sc, "model": label, "seeds": n,
                    "test error": e["value"].mean(), "generic error": e["generic_value"].mean(),
                    "violations (error)": f"{int(e['violations'].sum())}/{int(e['groups_judged'].sum())}",
                    "violations (log loss)": f"{int(ll['violations'].sum())}/{int(ll['groups_judged'].sum())}",
                    "named group harmed (error)": f"{int(e['harmed_violation'].sum())}/{n}",
                    "named group gain (error)": e["harmed_gain"].astype(float).mean(),
                    "train violations": int(e["train_violations"].sum())})
    missing = frame[frame["status"] != "ok"].drop_duplicates(["scenario", "model"])
    for _, r in missing.iterrows():
        out.append({"scenario": r["scenario"], "model": r["model"], "seeds": 0,
                    "test error": np.nan, "note": f"{r['status']}: {r['reason']}"})
    return pd.DataFrame(out)


def write_failure_modes(out: str | Path, command: str, **kw) -> Path:
    """Run the suite and write ``failure_modes.csv`` and ``failure_modes.md`` to ``out``."""
    from ._summary import markdown, stamp
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    frame = run_failure_modes(**kw)
    seconds = time.perf_counter() - started
    frame.to_csv(out / "failure_modes.csv", index=False)
    meta = stamp(command)
    table = summarise(frame)
    lines = ["# Failure-mode suite", "", f"Command: `{command}`", "",
             f"fairuse_opt {meta['fairuse_opt']}, {meta['date']}, {meta['cpus']} CPUs (load average "
             f"{meta['load_average']}; shared machine), wall time {seconds:.0f} s, peak RSS "
             f"{meta['peak_rss_mb']} MB.", "",
             "Each scenario draws training, assignment and deployment samples from a known truth "
             "(`fairuse_opt/bench/failure_modes.py`); every model is audited on the deployment "
             "sample (paired stratified bootstrap, 1,000 resamples, one-sided tests at alpha 0.10, "
             "Holm across groups). Violations: (seed, group) cells whose metric is significantly "
             "worse than the generic model's. *Named group*: the group the scenario is built to "
             "harm.", ""]
    for sc in dict.fromkeys(frame["scenario"]):
        desc = make_scenario.__doc__ and ""
        part = table[table["scenario"] == sc].drop(columns=["scenario"])
        lines += [f"## {sc}", "", markdown(part), ""]
    (out / "failure_modes.md").write_text("\n".join(lines))
    return out / "failure_modes.md"


def main(argv=None) -> int:
    """``python -m fairuse_opt.bench.failure_modes --out DIR [--seeds 0,1,2]``."""
    import argparse
    import shlex
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m fairuse_opt.bench.failure_modes")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args(argv)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    path = write_failure_modes(args.out, " ".join(["python -m fairuse_opt.bench.failure_modes",
                                                   *map(shlex.quote, argv)]),
                               seeds=seeds, n_boot=args.n_boot,
                               progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
