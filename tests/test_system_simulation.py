"""The certified system against a known truth (small version of
``benchmarks/bench_system_sim.py``; engine in :mod:`fairuse_opt.system._simulation`).

The engine's measures are checked against answers known in advance (hand-computed
metrics, the true model, a planted envy, a planted harm, a brute-force evaluation), then
the default design is run under the global null and in the strong-effect setting."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from fairuse_opt.estimators import FairUseClassifier
from fairuse_opt.system._simulation import (
    DESIGNS,
    SETTINGS,
    Design,
    FinitePopulation,
    Scorer,
    ServeAsIs,
    evaluate,
    expected_metric,
    fit_design,
    pool_spec,
    run_replication,
)

ALPHA = 0.10
POP = 60_000
DEFAULT = Design("default", None, "holdout")


@pytest.fixture(scope="module")
def s1():
    return FinitePopulation(SETTINGS["S1"], POP, seed=1)


@pytest.fixture(scope="module")
def s0():
    return FinitePopulation(SETTINGS["S0"], POP, seed=2)


def _generic(pop, n=3000, seed=0):
    X, y, _ = pop.sample(n, np.random.default_rng(seed))
    return FairUseClassifier(encoding="none").fit(X, y)


class _Truth:
    """Serves each full report the true model of its group, the generic model to partial
    reports; ``envy_plant=(g, h)`` serves report ``g`` the generic model and report ``h``
    the true model of ``g``."""

    def __init__(self, pop, generic, envy_plant=None):
        self.pop, self.generic_, self.plant = pop, generic, envy_plant
        self.candidates_, self.candidate_attributes_ = {}, {}
        self.index = {key: g for g, key in pop.full.items()}

    def predict_proba(self, X, *, report):
        st = self.pop.setting
        g = self.index.get(tuple(report))
        if g is None or (self.plant and g == self.plant[0]):
            return self.generic_.predict_proba(X)
        if self.plant and g == self.plant[1]:
            g = self.plant[0]
        p = expit(X @ np.asarray(st.coef) + st.intercept + st.effects[g])
        return np.column_stack([1 - p, p])


def test_expected_metrics_by_hand():
    p, q = np.array([0.2, 0.9]), np.array([0.6, 0.3])
    assert expected_metric(p, q, "error") == pytest.approx((0.8 + 0.9) / 2)
    ll = (-(0.2 * math.log(0.6) + 0.8 * math.log(0.4)) - (0.9 * math.log(0.3) + 0.1 * math.log(0.7))) / 2
    assert expected_metric(p, q, "log_loss") == pytest.approx(ll)
    with pytest.raises(ValueError):
        expected_metric(p, q, "auc")


def test_population_has_its_shares_and_effects(s1):
    st = s1.setting
    np.testing.assert_allclose(s1.counts / len(s1), st.shares, atol=1e-4)
    # the empirical log-odds shift of each group matches its effect (features are N(0, 1))
    for g, effect in enumerate(st.effects):
        rows = s1.rows(g)
        shift = np.log(s1.p[rows] / (1 - s1.p[rows])) - s1.X[rows] @ np.asarray(st.coef)
        np.testing.assert_allclose(shift, effect, atol=1e-9)
    assert len(s1.options) == 6 + 2 + 3  # full groups, A alone, B alone


@pytest.mark.parametrize("metric", ["log_loss", "error"])
def test_the_true_model_harms_no_one_keeps_the_true_gain_and_is_envy_free(s1, metric):
    res = evaluate(_Truth(s1, _generic(s1)), Scorer(s1), metric=metric)
    assert not res["harm"] and res["n_harmed"] == 0
    assert res["gain"] == pytest.approx(res["gain_true"], abs=1e-12) and res["gain"] > 0
    assert res["excess"] == pytest.approx(0.0, abs=1e-12)
    assert res["n_gaining_personalized"] == 3
    assert res["envy"] == 0.0


def test_planted_envy_is_caught_and_measured(s1):
    generic = _generic(s1)
    res = evaluate(_Truth(s1, generic, envy_plant=(5, 3)), Scorer(s1), metric="log_loss")
    assert res["envy"] == 1.0 and res["n_envious"] == 1  # only group 5; the others have their truth
    assert res["n_gaining_personalized"] == 2  # group 5 is served the generic model
    # group 5 would gain exactly generic - truth under report 3 (the truth is the best it can get)
    rows = s1.rows(5)
    gap = (expected_metric(s1.p[rows], generic.predict_proba(s1.X[rows])[:, 1], "log_loss")
           - s1.true_metrics[5, 0])
    assert res["envy_gap"] == pytest.approx(s1.weights[5] * gap, rel=1e-9)


def test_memoised_evaluation_equals_brute_force(s1):
    X, y, groups = s1.sample(2400, np.random.default_rng(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        system = fit_design(DEFAULT, X, y, groups, metric="log_loss", pool=pool_spec(s1.setting.attributes),
                            random_state=0)
    res = evaluate(system, Scorer(s1), metric="log_loss")
    assert res["n_personalized"] > 0  # the cache is exercised on personalized models
    gen = system.generic_.predict_proba(s1.X)[:, 1]
    n_harmed, gain = 0, 0.0
    for o in s1.options:
        m = np.isin(s1.code, s1.members[o])
        served = expected_metric(s1.p[m], system.predict_proba(s1.X[m], report=o)[:, 1], "log_loss")
        base = expected_metric(s1.p[m], gen[m], "log_loss")
        n_harmed += served > base + 1e-12
        if None not in o:
            gain += m.mean() * (base - served)
    assert res["n_harmed"] == n_harmed
    assert res["gain"] == pytest.approx(gain, rel=1e-9, abs=1e-12)


def test_global_null_default_design_within_alpha_and_planted_harm_caught(s0):
    """S0: no group effect.  The default design's family-wise harm is at most alpha; an
    uncertified intersectional model served as-is (a planted harm) is caught nearly
    always."""
    n_rep = 12
    rows = []
    for rep in range(n_rep):
        rows += run_replication(s0, rep, designs=[DEFAULT], stand_in_envy=False)
    for metric in ("log_loss", "error"):
        ours = [r for r in rows if r["design"] == "default" and r["metric"] == metric]
        planted = [r for r in rows if "uncertified" in r["design"] and r["metric"] == metric]
        harmed = sum(r["harm"] for r in ours)
        # Binomial(12, <= 0.10): more than 5 harmed has probability below 0.001
        assert harmed <= int(stats.binom.ppf(0.999, n_rep, ALPHA)), (metric, harmed)
        assert sum(r["harm"] for r in planted) >= n_rep - 1, metric
        assert all(r["gain"] <= 1e-12 for r in planted)  # under the null no one gains


def test_default_design_personalizes_strong_effects(s1):
    rows = []
    for rep in range(3):
        rows += run_replication(s1, rep, designs=[DEFAULT], metrics=["log_loss"], uncertified=False)
    assert sum(r["n_gaining_personalized"] for r in rows) >= 0.6 * sum(r["n_gaining"] for r in rows)
    assert np.mean([r["gain"] for r in rows]) >= 0.5 * np.mean([r["gain_oracle"] for r in rows])


def test_every_design_runs_in_one_replication_sharing_pools_within_families(s0):
    """All designs of the benchmark in one replication: designs of one family share the
    split, so the second of a family reuses the first's pool (a family with two splits
    would be refused by ``reuse=``)."""
    rows = run_replication(s0, 0, designs=DESIGNS, metrics=["log_loss"], uncertified=False, envy=False)
    assert [r["design"] for r in rows] == [d.label for d in DESIGNS]
    seen: set = set()
    for d, r in zip(DESIGNS, rows):
        assert r["reused"] == (d.family in seen), d.label
        seen.add(d.family)
