"""Simulation with a known truth: does the system keep its guarantee, and how often do
uncertified models harm a group?

A population of two group attributes ``A`` (2 levels) and ``B`` (3 levels) and four
standard-normal features.  The true log-odds are ``x . w + b + delta_g``; the group
effects ``delta_g`` are

=========  =======  ======  =========================================
group      share    delta   role
=========  =======  ======  =========================================
(a0, b0)   0.30     0       no group effect
(a0, b1)   0.25     0       no group effect
(a0, b2)   0.04     0       no group effect, small
(a1, b0)   0.17     +1.5    truly gains
(a1, b1)   0.17     -1.5    truly gains
(a1, b2)   0.07     +2.5    truly gains, small
=========  =======  ======  =========================================

The effects of the two large gaining groups cancel, so the generic model (fitted on
everyone without the attributes) is close to the true model of the groups without an
effect: personalization can only add estimation noise for them.  The population metric
of a model on an option is its *expected* error (or log loss) given the features,
computed from the true probabilities on a large independent sample of the population.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..estimators import FairUseClassifier
from ._assign import GENERIC
from ._options import member_mask, row_options
from ._system import FairUseSystem, _call

__all__ = ["Population", "DEFAULT_POPULATION", "simulate_replication", "run_simulation"]


@dataclass(frozen=True)
class Population:
    """A population with known group effects (see the module docstring)."""

    groups: tuple = (("a0", "b0"), ("a0", "b1"), ("a0", "b2"), ("a1", "b0"), ("a1", "b1"), ("a1", "b2"))
    shares: tuple = (0.30, 0.25, 0.04, 0.17, 0.17, 0.07)
    effects: tuple = (0.0, 0.0, 0.0, 1.5, -1.5, 2.5)
    coef: tuple = (0.5, -0.4, 0.3, 0.2)
    intercept: float = 0.0

    @property
    def gaining(self) -> list[tuple]:
        """Groups with a group effect."""
        return [g for g, e in zip(self.groups, self.effects) if e != 0]

    def sample(self, n: int, rng: np.random.Generator):
        """``(X, y, groups, p_true)`` of ``n`` rows."""
        g = rng.choice(len(self.groups), size=n, p=np.asarray(self.shares) / sum(self.shares))
        X = rng.normal(size=(n, len(self.coef)))
        s = X @ np.asarray(self.coef) + self.intercept + np.asarray(self.effects)[g]
        p = 1.0 / (1.0 + np.exp(-s))
        y = (rng.random(n) < p).astype(int)
        groups = pd.DataFrame([self.groups[k] for k in g], columns=["A", "B"])
        return X, y, groups, p


DEFAULT_POPULATION = Population()


def expected_metric(p_true: np.ndarray, p_model: np.ndarray, metric: str) -> float:
    """Population metric of a model given the true probabilities: expected error rate
    (threshold 1/2) or expected log loss."""
    if metric == "error":
        return float(np.mean(np.where(p_model > 0.5, 1.0 - p_true, p_true)))
    q = np.clip(p_model, 1e-15, 1 - 1e-15)
    return float(np.mean(-(p_true * np.log(q) + (1 - p_true) * np.log1p(-q))))


def _candidates(X, y, groups, pool: str) -> dict:
    attrs = {"int[A,B]": ("intersectional", ["A", "B"]), "onehot[A,B]": ("onehot", ["A", "B"]),
             "int[A]": ("intersectional", ["A"]), "int[B]": ("intersectional", ["B"])}
    if pool == "small":
        attrs = {k: attrs[k] for k in ("int[A,B]", "onehot[A,B]", "int[A]")}
    out = {}
    for name, (enc, cols) in attrs.items():
        out[name] = FairUseClassifier(encoding=enc, fair_use=None).fit(X, y, groups=groups[cols])
    return out


def simulate_replication(seed: int, *, population: Population = DEFAULT_POPULATION, envy: bool = True,
                         n_train: int = 2800, n_assign: int = 2000, n_pop: int = 200_000,
                         metric: str = "error", alpha: float = 0.10, n_boot: int = 1000,
                         test: str = "bootstrap", pool: str = "full",
                         pop_sample=None) -> dict:
    """One replication: train, assign, and compare every served model with the truth.

    Returns
    -------
    dict
        ``harm_system`` (some option served a model worse than the generic one in the
        population), ``harm_<candidate>`` (the same for each candidate served as-is to
        every full group), ``n_gaining_personalized`` and ``n_gaining``, and per-option
        details in ``options``.
    """
    rng = np.random.default_rng(seed)
    X_tr, y_tr, g_tr, _ = population.sample(n_train, rng)
    X_as, y_as, g_as, _ = population.sample(n_assign, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generic = FairUseClassifier(encoding="none").fit(X_tr, y_tr)
        cands = _candidates(X_tr, y_tr, g_tr, pool)
    system = FairUseSystem(cands, generic, metric=metric, alpha=alpha, n_boot=n_boot, test=test, envy=envy,
                           random_state=seed).fit(X_as, y_as, groups=g_as)
    X_pop, _, g_pop, p_pop = pop_sample if pop_sample is not None else population.sample(n_pop, rng)
    keys, codes = row_options(g_pop)
    p_generic = generic.predict_proba(X_pop)[:, 1]
    out = {"seed": seed, "options": []}
    harm = False
    for o, fid in system.served_.items():
        if fid == GENERIC:
            continue
        m = member_mask(o, keys, codes)
        model = system.candidates_[fid[0]]
        p_served = _call(model, "predict_proba", X_pop[m], fid, system.candidate_attributes_)
        d = expected_metric(p_pop[m], p_served, metric) - expected_metric(p_pop[m], p_generic[m], metric)
        out["options"].append({"option": o, "served": fid, "population_gain": -d})
        harm |= d > 0
    out["harm_system"] = bool(harm)
    full = [k for k in keys]
    for name, model in cands.items():
        if len(system.candidate_attributes_[name]) < 2:
            continue
        h = False
        for k in full:
            m = codes == keys.index(k)
            p = model.predict_proba(X_pop[m], report=k)[:, 1]
            h |= expected_metric(p_pop[m], p, metric) > expected_metric(p_pop[m], p_generic[m], metric)
        out[f"harm_{name}"] = bool(h)
    served_full = {o: f for o, f in system.served_.items() if None not in o}
    out["n_gaining"] = len(population.gaining)
    out["n_gaining_personalized"] = sum(served_full.get(g, GENERIC) != GENERIC for g in population.gaining)
    out["n_personalized"] = sum(f != GENERIC for f in system.served_.values())
    return out


def run_simulation(n_rep: int, *, seed: int = 0, **kwargs) -> tuple[pd.DataFrame, dict]:
    """``n_rep`` replications (seeds ``seed, seed + 1, ...``): a row per replication and
    a summary (harm rates, power)."""
    population = kwargs.pop("population", DEFAULT_POPULATION)
    rng = np.random.default_rng(10_000 + seed)
    pop_sample = population.sample(kwargs.pop("n_pop", 200_000), rng)
    started = time.perf_counter()
    rows = []
    for r in range(n_rep):
        res = simulate_replication(seed + r, population=population, pop_sample=pop_sample, **kwargs)
        res.pop("options")
        rows.append(res)
    table = pd.DataFrame(rows)
    summary = {"n_rep": n_rep,
               "fwer_system": float(table["harm_system"].mean()),
               **{c: float(table[c].mean()) for c in table.columns if c.startswith("harm_") and c != "harm_system"},
               "power": float(table["n_gaining_personalized"].sum() / table["n_gaining"].sum()),
               "mean_options_personalized": float(table["n_personalized"].mean()),
               "seconds": round(time.perf_counter() - started, 1)}
    return table, summary
