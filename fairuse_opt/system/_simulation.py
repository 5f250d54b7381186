"""Simulation with a known truth: does the certified system keep its guarantee, and how
much of the gain of personalization does it keep?

Each *setting* is a finite population (by default 1,000,000 rows) of standard-normal
features and groups with known true log-odds ``x . w + b + delta_g``; the group effects
``delta_g`` are the setting's.  A replication draws a sample of ``n`` rows uniformly from
the population (labels drawn from the true probabilities), fits each design on it, and
compares what every design serves with the truth on the whole population: the exact
population metric of a model on a set of rows is its *expected* log loss, or expected
error rate (threshold 1/2), given the true probabilities of those rows.

Settings
--------
``S1``: attributes A (2 levels) x B (3 levels), 6 groups, 4,800 rows:

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

``S2``: attributes A (2) x B (3) x C (2), 12 groups with shares from 18% to 2.5%,
3,000 rows; 9 groups with effects of 0.3 to 1.5 log-odds (both signs) and 3 without
(one large, one middling, one small).  ``S0``: the same 12 groups with no group effect
at all (the global null: every personalization can only add noise), 1,000 rows.

Measures, per replication and design (all on the population):

* *harm*: some reporting option, full or partial, is served a model whose population
  metric is worse than the design's generic model's (a partial option's population is
  every row that agrees with what it reports);
* *power*: the share of the truly gaining groups whose served model differs from the
  generic model;
* *gain kept*: the population gain of the served system over its generic model, divided
  by the gain of an *oracle* that picks, per group, the best of the design's own fitted
  pool (the generic model included);
* *envy*: some group would do better in the population under another group's report
  (served that group's model) than under its own.

Served models are evaluated only through ``system.predict_proba(X, report=option)``
and ``system.generic_`` (and the oracle through ``system.candidates_`` and
``system.candidate_attributes_``), so any object with these serves as a design (see
:class:`ServeAsIs`).  Evaluations are memoised exactly: two functions that give the same
probabilities on a probe of a group's rows are taken to be the same function on that
group (the features are continuous, so distinct affine scores cannot agree on the
probe), and the generic model's rows are never evaluated twice.
"""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit

from ..estimators import FairUseClassifier

__all__ = [
    "Setting",
    "SETTINGS",
    "FinitePopulation",
    "expected_metric",
    "pool_spec",
    "ServeAsIs",
    "Design",
    "DESIGNS",
    "evaluate",
    "run_replication",
    "summarise",
]

METRICS = ("log_loss", "error")
_TOL = 1e-12


@dataclass(frozen=True)
class Setting:
    """A population with known group effects.

    Parameters
    ----------
    name : str
    attributes : tuple of str
        Group attribute names.
    groups : tuple of tuple
        The full reports (one level per attribute), one per group.
    shares, effects : tuple of float
        Population share and log-odds effect of each group.
    n : int
        Rows of each replication's sample.
    coef, intercept
        The common part of the true log-odds.
    """

    name: str
    attributes: tuple
    groups: tuple
    shares: tuple
    effects: tuple
    n: int
    coef: tuple = (0.5, -0.4, 0.3, 0.2)
    intercept: float = 0.0

    @property
    def gaining(self) -> list[int]:
        """Indices of the groups with a group effect."""
        return [k for k, e in enumerate(self.effects) if e != 0]

    def options(self) -> list[tuple]:
        """Every reporting option some group can choose, the root excluded: each group's
        report with any non-empty subset of its attributes reported."""
        out = set()
        for g in self.groups:
            for k in range(1, len(g) + 1):
                for keep in combinations(range(len(g)), k):
                    out.add(tuple(v if j in keep else None for j, v in enumerate(g)))
        return sorted(out, key=lambda o: (sum(v is not None for v in o), tuple("" if v is None else v for v in o)))


def _groups12() -> tuple:
    return tuple((f"a{k // 6}", f"b{(k // 2) % 3}", f"c{k % 2}") for k in range(12))


_SHARES12 = (0.18, 0.15, 0.13, 0.11, 0.09, 0.08, 0.07, 0.06, 0.04, 0.035, 0.03, 0.025)
_EFFECTS12 = (0.0, 0.6, -0.4, 1.0, 0.0, -0.8, 0.3, -1.2, 1.5, 0.0, -1.0, 0.5)

SETTINGS = {
    "S1": Setting("S1", ("A", "B"),
                  (("a0", "b0"), ("a0", "b1"), ("a0", "b2"), ("a1", "b0"), ("a1", "b1"), ("a1", "b2")),
                  (0.30, 0.25, 0.04, 0.17, 0.17, 0.07), (0.0, 0.0, 0.0, 1.5, -1.5, 2.5), n=4800),
    "S2": Setting("S2", ("A", "B", "C"), _groups12(), _SHARES12, _EFFECTS12, n=3000),
    "S0": Setting("S0", ("A", "B", "C"), _groups12(), _SHARES12, (0.0,) * 12, n=1000),
}


class FinitePopulation:
    """A finite population of a :class:`Setting`: ``size`` rows, sorted by group, with
    their true probabilities.  Group sizes are the shares times ``size`` (rounded)."""

    def __init__(self, setting: Setting, size: int = 1_000_000, seed: int = 12345):
        self.setting = setting
        rng = np.random.default_rng(seed)
        shares = np.asarray(setting.shares, dtype=float)
        counts = np.floor(shares / shares.sum() * size).astype(np.int64)
        counts[np.argmax(counts)] += size - counts.sum()
        self.counts = counts
        self.bounds = np.concatenate([[0], np.cumsum(counts)])
        self.code = np.repeat(np.arange(len(counts)), counts)
        self.X = rng.normal(size=(size, len(setting.coef)))
        score = self.X @ np.asarray(setting.coef) + setting.intercept + np.asarray(setting.effects)[self.code]
        self.p = expit(score)
        self.weights = counts / counts.sum()
        self.options = setting.options()
        self.members = {o: [g for g, key in enumerate(setting.groups)
                            if all(v is None or v == key[j] for j, v in enumerate(o))] for o in self.options}
        self.full = {g: key for g, key in enumerate(setting.groups)}
        self._labels = [np.array([key[j] for key in setting.groups], dtype=object)
                        for j in range(len(setting.attributes))]
        # the true model's metrics per group (the ceiling)
        self.true_metrics = np.array([[expected_metric(self.p[self.rows(g)], self.p[self.rows(g)], m)
                                       for m in METRICS] for g in range(len(counts))])

    def __len__(self) -> int:
        return len(self.p)

    def rows(self, g: int) -> slice:
        return slice(int(self.bounds[g]), int(self.bounds[g + 1]))

    def frame(self, codes: np.ndarray) -> pd.DataFrame:
        """Group attribute frame of rows with these group codes."""
        return pd.DataFrame({a: lab[codes] for a, lab in zip(self.setting.attributes, self._labels)})

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """``(X, y, groups)``: ``n`` rows drawn uniformly with replacement, labels drawn
        from the true probabilities."""
        idx = rng.integers(0, len(self), size=n)
        y = (rng.random(n) < self.p[idx]).astype(np.int64)
        return self.X[idx], y, self.frame(self.code[idx])

    def nbytes(self) -> int:
        return int(self.X.nbytes + self.p.nbytes + self.code.nbytes)


def expected_metric(p_true: np.ndarray, p_model: np.ndarray, metric: str) -> float:
    """Population metric of a model given the true probabilities: expected error rate
    (predict positive when ``p_model > 1/2``) or expected log loss."""
    p_true = np.asarray(p_true, dtype=float)
    p_model = np.asarray(p_model, dtype=float)
    if metric == "error":
        return float(np.mean(np.where(p_model > 0.5, 1.0 - p_true, p_true)))
    if metric != "log_loss":
        raise ValueError(f"metric must be 'log_loss' or 'error', got {metric!r}")
    q = np.clip(p_model, 1e-15, 1 - 1e-15)
    return float(np.mean(-(p_true * np.log(q) + (1 - p_true) * np.log1p(-q))))


# ----------------------------------------------------------------------------- the pool
def pool_spec(attributes: Sequence[str]) -> dict[str, tuple[Any, list[str]]]:
    """The simulation's candidate pool (unfitted): intersectional and one-hot
    unconstrained on all attributes, intersectional on each single attribute, and the
    fair-use intersectional model on all attributes."""
    attrs = list(attributes)
    full = f"[{','.join(attrs)}]"
    pool: dict[str, tuple[Any, list[str]]] = {
        f"intersectional{full}": (FairUseClassifier(encoding="intersectional", fair_use=None), attrs),
        f"onehot{full}": (FairUseClassifier(encoding="onehot", fair_use=None), attrs),
    }
    for a in attrs:
        pool[f"intersectional[{a}]"] = (FairUseClassifier(encoding="intersectional", fair_use=None), [a])
    pool[f"intersectional+fair_use{full}"] = (
        FairUseClassifier(encoding="intersectional", fair_use="both", on_infeasible="generic"), attrs)
    return pool


class ServeAsIs:
    """Stand-in design: one fitted candidate served to every option that reports all its
    attributes, the generic model elsewhere (no test at all)."""

    def __init__(self, candidate: Any, attributes: Sequence[str], names: Sequence[str], generic: Any,
                 name: str = "candidate"):
        self.generic_ = generic
        self.candidates_ = {name: candidate}
        self.candidate_attributes_ = {name: list(attributes)}
        self._pos = [list(names).index(a) for a in attributes]
        self._name = name

    def predict_proba(self, X: Any, *, report: tuple) -> np.ndarray:
        proj = tuple(report[j] for j in self._pos)
        if any(v is None for v in proj):
            return self.generic_.predict_proba(X)
        return self.candidates_[self._name].predict_proba(X, report=proj)


# ----------------------------------------------------------------------------- designs
@dataclass(frozen=True)
class Design:
    """A way of fitting a system: ``fit_system(procedure=...)`` with extra keywords
    (``procedure=None``: the library's default).  Designs of one ``family`` fitted on the
    same sample share their pool (``reuse=``)."""

    label: str
    procedure: str | None
    family: str
    kwargs: tuple = ()


DESIGNS = (Design("split (previous design)", "split", "holdout-0.3"),
           Design("ladder (default)", "ladder", "holdout"),
           Design("ladder, generic of the training part", "ladder", "holdout-0.3", (("generic_rows", "train"),)),
           Design("crossfit", "crossfit", "crossfit"))


def _fit_system_api() -> tuple[Callable, bool]:
    from . import fit_system
    return fit_system, "procedure" in inspect.signature(fit_system).parameters


def fit_design(design: Design, X, y, groups, *, metric: str, pool: dict, random_state: int,
               reuse: Any = None) -> Any:
    """Fit one design.  On a library without ``procedure=`` only the split design exists
    (the previous ``fit_system``), and ``reuse`` is ignored."""
    fit_system, new_api = _fit_system_api()
    kw = dict(design.kwargs)
    if new_api:
        if reuse is not None:
            kw["reuse"] = reuse
        if design.procedure is not None:
            kw["procedure"] = design.procedure
        return fit_system(X, y, groups, metric=metric, candidates=pool, random_state=random_state, **kw)
    if design.procedure not in (None, "split"):
        raise NotImplementedError(f"fit_system has no procedure={design.procedure!r} yet")
    return fit_system(X, y, groups, metric=metric, candidates=pool, random_state=random_state, **kw)


# ----------------------------------------------------------------------------- evaluation
class Scorer:
    """Exact population metrics of functions on the groups of one population, memoised
    by the function's probabilities on a probe of each group's rows."""

    def __init__(self, pop: FinitePopulation, n_probe: int = 256):
        self.pop = pop
        self.n_groups = len(pop.counts)
        probe = [np.arange(pop.bounds[g], pop.bounds[g] + min(n_probe, pop.counts[g])) for g in range(self.n_groups)]
        self.probe_idx = np.concatenate(probe)
        self.probe_bounds = np.concatenate([[0], np.cumsum([len(p) for p in probe])])
        self.cache: dict[tuple, np.ndarray] = {}
        self.n_evaluations = 0

    def probe(self, predict: Callable) -> list[bytes]:
        """Fingerprint of ``predict`` on every group (``predict(X) -> P(y = 1)``)."""
        q = np.asarray(predict(self.pop.X[self.probe_idx]), dtype=float)
        return [np.round(q[self.probe_bounds[g]:self.probe_bounds[g + 1]], 9).tobytes()
                for g in range(self.n_groups)]

    def metrics(self, g: int, fingerprint: bytes, predict: Callable) -> np.ndarray:
        """``[log loss, error]`` of ``predict`` on group ``g``'s population rows."""
        key = (g, fingerprint)
        hit = self.cache.get(key)
        if hit is None:
            rows = self.pop.rows(g)
            q = np.asarray(predict(self.pop.X[rows]), dtype=float)
            hit = np.array([expected_metric(self.pop.p[rows], q, m) for m in METRICS])
            self.cache[key] = hit
            self.n_evaluations += 1
        return hit


def _proba(model: Any, **kw) -> Callable:
    return lambda X: model.predict_proba(X, **kw)[:, 1]


def _oracle(system: Any, scorer: Scorer, pop: FinitePopulation, names: Sequence[str],
            generic_metrics: np.ndarray) -> np.ndarray:
    """Per group and metric, the best population metric over the fitted pool and the
    generic model."""
    best = generic_metrics.copy()
    for name, model in system.candidates_.items():
        pos = [list(names).index(a) for a in system.candidate_attributes_[name]]
        for g, key in pop.full.items():
            proj = tuple(key[j] for j in pos)
            predict = _proba(model, report=proj)
            try:
                fp = scorer.probe(predict)[g]
            except Exception:  # a level the candidate never saw: it cannot serve this group
                continue
            best[g] = np.minimum(best[g], scorer.metrics(g, fp, predict))
    return best


def evaluate(system: Any, scorer: Scorer, *, metric: str, envy: bool = True, oracle: bool = True) -> dict:
    """Everything a system serves, against the truth (see the module docstring).

    Returns
    -------
    dict
        ``harm`` (some option), ``harm_full`` (some full group), ``n_harmed`` options,
        ``n_personalized`` options, ``n_gaining_personalized``, ``gain`` (population gain
        of the served system over its generic model, full reports), ``gain_oracle``,
        ``gain_true`` (of the true model), ``excess`` (served minus true model's
        metric), ``envy`` (some group envies another's report), ``n_envious`` groups,
        ``envy_gap`` (the population-weighted mean, over groups, of how much better a group
        would do under the best other report: 0 for a group without envy), ``n_unserved``
        options the system could not serve.
    """
    pop, setting = scorer.pop, scorer.pop.setting
    k = METRICS.index(metric)
    names = list(setting.attributes)
    gen_predict = _proba(system.generic_)
    gen_fp = scorer.probe(gen_predict)
    gen = np.array([scorer.metrics(g, gen_fp[g], gen_predict) for g in range(scorer.n_groups)])
    own = gen.copy()
    personalized_group = np.zeros(scorer.n_groups, dtype=bool)
    by_report: dict[int, tuple[list[bytes], Callable]] = {}
    n_harmed = n_personalized = n_unserved = 0
    harm_full = False
    for o in pop.options:
        predict = _proba(system, report=o)
        try:
            fp = scorer.probe(predict)
        except Exception:  # e.g. a level the system never saw
            n_unserved += 1
            continue
        members = pop.members[o]
        w = pop.counts[members] / pop.counts[members].sum()
        served = np.array([scorer.metrics(g, fp[g], predict) if fp[g] != gen_fp[g] else gen[g] for g in members])
        if any(fp[g] != gen_fp[g] for g in members):
            n_personalized += 1
        harmed = float(w @ served[:, k]) > float(w @ gen[members, k]) + _TOL
        n_harmed += harmed
        if None not in o:
            (g,) = members
            own[g] = served[0]
            personalized_group[g] = fp[g] != gen_fp[g]
            harm_full |= harmed
            by_report[g] = (fp, predict)
    w_all = pop.weights
    out = {"harm": n_harmed > 0, "harm_full": bool(harm_full), "n_harmed": int(n_harmed),
           "n_personalized": int(n_personalized), "n_unserved": int(n_unserved),
           "n_gaining_personalized": int(personalized_group[setting.gaining].sum()),
           "n_gaining": len(setting.gaining),
           "gain": float(w_all @ (gen[:, k] - own[:, k])),
           "gain_true": float(w_all @ (gen[:, k] - pop.true_metrics[:, k])),
           "excess": float(w_all @ (own[:, k] - pop.true_metrics[:, k]))}
    if oracle:
        best = _oracle(system, scorer, pop, names, gen)
        out["gain_oracle"] = float(w_all @ (gen[:, k] - best[:, k]))
    if envy:
        gap = np.zeros(scorer.n_groups)
        for g in by_report:
            for h, (fp, predict) in by_report.items():
                if h == g:
                    continue
                m = gen[g] if fp[g] == gen_fp[g] else scorer.metrics(g, fp[g], predict)
                gap[g] = max(gap[g], own[g, k] - m[k])
        n_envious = int((gap > _TOL).sum())
        out["envy"] = float(n_envious > 0)
        out["n_envious"] = n_envious
        out["envy_gap"] = float(w_all @ np.where(gap > _TOL, gap, 0.0))
    else:
        out["envy"] = out["n_envious"] = out["envy_gap"] = np.nan
    return out


def run_replication(pop: FinitePopulation, rep: int, *, designs: Sequence[Design] = DESIGNS,
                    metrics: Sequence[str] = METRICS, seed: int = 0, uncertified: bool = True,
                    envy: bool = True, stand_in_envy: bool = True, n_probe: int = 256,
                    fit: Callable = fit_design, extra: Sequence[tuple[str, Callable]] = ()) -> list[dict]:
    """One replication of a setting: draw a sample, fit every design with every metric
    (pools shared within a design family through ``reuse=``), evaluate.

    ``extra``: ``(label, make)`` pairs; ``make(systems, X, y, groups)`` returns a stand-in
    design (any object :func:`evaluate` accepts) evaluated on every metric.
    ``uncertified``: add the stand-in "intersectional model trained on the whole sample,
    served as-is"; ``stand_in_envy=False`` skips the (costly) envy evaluation of stand-ins.

    Returns
    -------
    list of dict
        One row per (design, metric): the keys of :func:`evaluate`, plus ``setting``,
        ``rep``, ``design``, ``metric``, ``fit_s`` and ``reused`` (the pool came from an
        earlier fit of the same family).
    """
    rep_started, cpu_started = time.perf_counter(), time.process_time()
    setting = pop.setting
    rng = np.random.default_rng([seed, rep, sum(map(ord, setting.name))])
    X, y, groups = pop.sample(setting.n, rng)
    pool = pool_spec(setting.attributes)
    scorer = Scorer(pop, n_probe)
    base: dict[str, Any] = {}
    systems: dict[tuple[str, str], Any] = {}
    rows = []
    for design in designs:
        for metric in metrics:
            started = time.perf_counter()
            reuse = base.get(design.family)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                system = fit(design, X, y, groups, metric=metric, pool=pool, random_state=rep, reuse=reuse)
            fit_s = time.perf_counter() - started
            base[design.family] = system  # the latest: it carries the most (pool, then out-of-fold scores)
            systems[(design.label, metric)] = system
            row = evaluate(system, scorer, metric=metric, envy=envy)
            rows.append({"setting": setting.name, "rep": rep, "design": design.label, "metric": metric,
                         "fit_s": fit_s, "reused": reuse is not None, **row})
    stand_ins = list(extra)
    if uncertified:
        stand_ins.append(("intersectional as-is (uncertified)", _as_is(setting)))
    for label, make in stand_ins:
        model = make(systems, X, y, groups)
        for metric in metrics:
            row = evaluate(model, scorer, metric=metric, envy=envy and stand_in_envy)
            rows.append({"setting": setting.name, "rep": rep, "design": label, "metric": metric,
                         "fit_s": np.nan, "reused": True, **row})
    rep_s, cpu_s = time.perf_counter() - rep_started, time.process_time() - cpu_started
    for row in rows:
        row["n_evaluations"] = scorer.n_evaluations
        row["rep_s"], row["rep_cpu_s"] = rep_s, cpu_s
    return rows


def _as_is(setting: Setting) -> Callable:
    """The intersectional model on all attributes, trained on the whole sample, served to
    everyone (what a user could fit instead of a certified system)."""
    name = f"intersectional[{','.join(setting.attributes)}]"

    def make(systems, X, y, groups):
        est, attrs = pool_spec(setting.attributes)[name]
        generic = FairUseClassifier(encoding="none").fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = est.fit(X, y, groups=groups[attrs])
        return ServeAsIs(model, attrs, setting.attributes, generic, name=name)
    return make


# ----------------------------------------------------------------------------- summary
def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, design, metric): replications, harm count and its
    Clopper-Pearson 95% interval, harm among full groups, power, gain kept (ratio of the
    mean gain to the mean oracle gain, and oracle / true model), envy, options
    personalized, fit time."""
    from scipy import stats

    out = []
    for (setting, design, metric), part in table.groupby(["setting", "design", "metric"], sort=False):
        n = len(part)
        k = int(part["harm"].sum())
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
        gaining = part["n_gaining"].sum()
        out.append({
            "setting": setting, "design": design, "metric": metric, "n_rep": n,
            "harm": k, "harm_rate": k / n, "harm_low": ci.low, "harm_high": ci.high,
            "harm_full": int(part["harm_full"].sum()),
            "power": float(part["n_gaining_personalized"].sum() / gaining) if gaining else np.nan,
            # no gain to keep under the global null
            "kept": float(part["gain"].mean() / part["gain_oracle"].mean()) if gaining else np.nan,
            "oracle_vs_true": float(part["gain_oracle"].mean() / part["gain_true"].mean()) if gaining else np.nan,
            "gain": float(part["gain"].mean()), "gain_oracle": float(part["gain_oracle"].mean()),
            "excess": float(part["excess"].mean()),
            "envy": float(pd.to_numeric(part["envy"]).mean()),
            "n_envious": float(pd.to_numeric(part["n_envious"]).mean()),
            "envy_gap": float(pd.to_numeric(part["envy_gap"]).mean()) if "envy_gap" in part else np.nan,
            "n_personalized": float(part["n_personalized"].mean()),
            "n_unserved": int(part["n_unserved"].sum()),
            "fit_s": float(part["fit_s"].mean()),
        })
    return pd.DataFrame(out)
