"""The ladder assignment (the certified system's default): the graphical procedure against
Holm and the fixed sequence, the paired t-test against scipy, known-answer assignments, the
family-wise level under a global null built to break it, significant envy, partial reports
at the tail, the warning with testability figures, crossfit, and system files with shrunk
models."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fairuse_opt import FairUseClassifier, FairUseSystem, InputError, fit_system, model_io
from fairuse_opt.audit._graphical import (
    TAIL_EPSILON,
    graphical_adjusted_pvalues,
    graphical_rejections,
    holm_graph,
    ladder_graph,
)
from fairuse_opt.audit._metrics import get_metric
from fairuse_opt.audit._paired import min_detectable_gain, paired_t
from fairuse_opt.audit._stats import adjust_pvalues
from fairuse_opt.exceptions import FairUseWarning
from fairuse_opt.system import GENERIC
from fairuse_opt.system._assign import AssignmentProblem
from fairuse_opt.system._blend import ShrunkModel, blend_scores
from fairuse_opt.system._ladder import LadderPlan, assign_ladder
from fairuse_opt.system._options import member_mask, option_order, row_options, sub_options


# ---------------------------------------------------------------- graphical procedure
@pytest.mark.parametrize("seed", range(20))
def test_graph_with_holm_weights_is_holm(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 9))
    p = rng.random(m) ** 3  # many small p-values, so that several steps are taken
    w, G = holm_graph(m)
    np.testing.assert_allclose(graphical_adjusted_pvalues(p, w, G), adjust_pvalues(p, "holm"), rtol=0, atol=1e-12)
    for alpha in (0.01, 0.05, 0.1, 0.3):
        np.testing.assert_array_equal(graphical_rejections(p, w, G, alpha), adjust_pvalues(p, "holm") <= alpha)


@pytest.mark.parametrize("seed", range(20))
def test_a_single_chain_is_the_fixed_sequence(seed):
    """One option, several rungs: weight 1 on the first rung, edges along the chain.
    The fixed sequence rejects rungs in order while p <= alpha; adjusted p is the
    running maximum."""
    rng = np.random.default_rng(100 + seed)
    k = int(rng.integers(1, 6))
    p = rng.random(k) * 0.3
    w, G, nodes = ladder_graph([k], [0])
    assert nodes == [(0, j) for j in range(k)]
    np.testing.assert_allclose(graphical_adjusted_pvalues(p, w, G), np.maximum.accumulate(p), atol=1e-15)
    for alpha in (0.05, 0.1, 0.2):
        want = np.cumprod(p <= alpha).astype(bool)
        np.testing.assert_array_equal(graphical_rejections(p, w, G, alpha), want)


@pytest.mark.parametrize("seed", range(30))
def test_adjusted_pvalues_agree_with_the_stepwise_procedure(seed):
    rng = np.random.default_rng(200 + seed)
    n_opt = int(rng.integers(1, 6))
    rungs = [int(r) for r in rng.integers(1, 4, n_opt)]
    tiers = [int(t) for t in rng.integers(0, 2, n_opt)]
    w, G, nodes = ladder_graph(rungs, tiers)
    assert abs(w.sum() - 1) < 1e-12 and (G.sum(axis=1) <= 1 + 1e-12).all()
    p = rng.random(len(nodes)) ** 4
    adj = graphical_adjusted_pvalues(p, w, G)
    for alpha in (0.01, 0.05, 0.1, 0.25):
        np.testing.assert_array_equal(graphical_rejections(p, w, G, alpha), adj <= alpha)


def test_ladder_graph_hand_computed():
    """Two options of two rungs in tier 0, one option in tier 1: by hand."""
    w, G, nodes = ladder_graph([2, 2, 1], [0, 0, 1], epsilon=0.01)
    assert nodes == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    np.testing.assert_allclose(w, [0.5, 0, 0.5, 0, 0])
    want = np.zeros((5, 5))
    want[0, 1] = want[2, 3] = 1.0
    want[1, 2] = want[3, 0] = 0.99
    want[1, 4] = want[3, 4] = 0.01
    want[4, 0] = want[4, 2] = 0.5
    np.testing.assert_allclose(G, want)
    # option 0 passes both rungs at 0.05 (p 0.04 <= 0.05, then 0.06 <= 0.1 after option 1's
    # first rung ... is not rejected): worked out step by step
    p = np.array([0.04, 0.06, 0.5, 0.5, 0.001])
    rej = graphical_rejections(p, w, G, 0.1)
    # step 1: node 0 (0.04 <= 0.05) rejected, node 1 gets 0.5; step 2: node 1 (0.06 <= 0.05)? no.
    np.testing.assert_array_equal(rej, [True, False, False, False, False])
    p[1] = 0.045
    rej = graphical_rejections(p, w, G, 0.1)
    # node 1 rejected at 0.05, passes 0.99*0.5 to node 2 (now 0.995) and 0.005 to node 4:
    # node 4 has p 0.001 <= 0.1 * 0.005 = 0.0005? no.  Tail waits.
    np.testing.assert_array_equal(rej, [True, True, False, False, False])
    p[4] = 0.0004
    np.testing.assert_array_equal(graphical_rejections(p, w, G, 0.1), [True, True, False, False, True])


def test_ladder_graph_spill_hand_computed():
    """spill = 0.5: a certified weak rung lends half its level to the other options at once."""
    w, G, nodes = ladder_graph([2, 2], [0, 0], spill=0.5)
    want = np.zeros((4, 4))
    want[0, 1] = want[2, 3] = 0.5   # half to the option's next rung
    want[0, 2] = want[2, 0] = 0.5   # half to the other option's first rung
    want[1, 2] = want[3, 0] = 1.0   # a last rung passes everything on
    np.testing.assert_allclose(G, want)
    np.testing.assert_allclose(w, [0.5, 0, 0.5, 0])
    p = np.array([0.04, 0.9, 0.07, 0.9])
    # without spill: node 0 rejected at 0.05, its 0.05 goes to node 1 (0.9: kept); node 2
    # stays at 0.05 < 0.07
    w0, G0, _ = ladder_graph([2, 2], [0, 0])
    np.testing.assert_array_equal(graphical_rejections(p, w0, G0, 0.1), [True, False, False, False])
    # with spill: node 2 gets 0.05 + 0.5 * 0.05 = 0.075 >= 0.07
    np.testing.assert_array_equal(graphical_rejections(p, w, G, 0.1), [True, False, True, False])
    np.testing.assert_allclose(graphical_adjusted_pvalues(p, w, G)[2], 0.07 / 0.75)
    # a single option keeps all its level for its own rungs
    w1, G1, _ = ladder_graph([3], [0], spill=0.5)
    np.testing.assert_allclose(G1, [[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    with pytest.raises(ValueError, match="spill"):
        ladder_graph([2], [0], spill=1.0)


@pytest.mark.parametrize("seed", range(20))
def test_spilled_graph_adjusted_pvalues_agree_with_the_stepwise_procedure(seed):
    rng = np.random.default_rng(900 + seed)
    n_opt = int(rng.integers(1, 6))
    rungs = [int(r) for r in rng.integers(1, 4, n_opt)]
    tiers = [int(t) for t in rng.integers(0, 2, n_opt)]
    w, G, nodes = ladder_graph(rungs, tiers, spill=float(rng.uniform(0, 0.9)))
    assert abs(w.sum() - 1) < 1e-12 and (G.sum(axis=1) <= 1 + 1e-12).all() and (np.diag(G) == 0).all()
    p = rng.random(len(nodes)) ** 4
    adj = graphical_adjusted_pvalues(p, w, G)
    for alpha in (0.01, 0.05, 0.1, 0.25):
        np.testing.assert_array_equal(graphical_rejections(p, w, G, alpha), adj <= alpha)


# ---------------------------------------------------------------- paired tests
@pytest.mark.parametrize("n", [5, 30, 400])
def test_paired_t_matches_scipy(n):
    rng = np.random.default_rng(n)
    d = rng.normal(0.05, 0.3, n)
    got = paired_t(d)
    want = stats.ttest_1samp(d, 0.0, alternative="greater")
    assert got["p"] == pytest.approx(want.pvalue, rel=1e-12)
    assert got["gain"] == pytest.approx(d.mean()) and got["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(n))


def test_paired_t_degenerate_cases():
    assert paired_t(np.zeros(10))["p"] == 1.0
    assert paired_t(np.full(10, 0.2))["p"] == 0.0
    assert paired_t(np.array([0.3]))["p"] == 1.0


def test_min_detectable_gain_has_the_stated_power():
    """Simulated power of the one-sided t-test at the minimum detectable gain is 0.8."""
    rng = np.random.default_rng(0)
    n, sd, level = 40, 0.5, 0.05
    mdg = min_detectable_gain(sd, n, level)
    d = rng.normal(mdg, sd, size=(20000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / np.sqrt(n))
    power = np.mean(stats.t.sf(t, n - 1) <= level)
    assert abs(power - 0.8) < 0.02  # MC sd 0.003; the noncentral t differs slightly from the formula
    assert min_detectable_gain(sd, 1, level) == np.inf


# ---------------------------------------------------------------- blends
def test_blend_is_linear_on_the_logit_scale():
    p0, pc = np.array([0.2, 0.5, 0.9]), np.array([0.6, 0.1, 0.95])
    lo = np.log(p0 / (1 - p0)) * 0.75 + np.log(pc / (1 - pc)) * 0.25
    np.testing.assert_allclose(blend_scores(p0, pc, 0.25, True), 1 / (1 + np.exp(-lo)), rtol=1e-12)
    np.testing.assert_array_equal(blend_scores(p0, pc, 1.0, True), pc)
    np.testing.assert_allclose(blend_scores(p0, pc, 0.5, False), (p0 + pc) / 2)


# ---------------------------------------------------------------- assignment, known answers
def _problem(y, keys, scores_by_fid, names=("A", "B"), classification=True):
    frame = pd.DataFrame(keys, columns=list(names)).astype(object)
    row_keys, row_codes = row_options(frame)
    options = sorted({o for k in row_keys for o in sub_options(k)}, key=option_order)
    options = [o for o in options if any(v is not None for v in o)]
    members = {o: member_mask(o, row_keys, row_codes) for o in options}
    fids = list(scores_by_fid)
    eligible = {o: [f for f in fids if f != GENERIC and f[1] == o] for o in options}
    return AssignmentProblem(names=list(names), y=np.asarray(y, dtype=float), row_keys=row_keys,
                             row_codes=row_codes, options=options, members=members,
                             scores=np.column_stack([scores_by_fid[f] for f in fids]),
                             columns={f: k for k, f in enumerate(fids)}, eligible=eligible,
                             names_of={"c": list(names)}, classification=classification)


def _run(problem, plans, alpha=0.1, envy=True, min_group_size=20, rungs=(0.25, 0.5, 1.0), seed=0):
    gens = [np.random.default_rng(seed + i) for i in range(len(problem.options) + 1)]
    return assign_ladder(problem, metric=get_metric("log_loss", "classification"), alpha=alpha, rungs=rungs,
                         plans=plans, test="auto", n_boot=200, envy=envy, min_group_size=min_group_size,
                         generators={o: gens[1 + i] for i, o in enumerate(problem.options)},
                         split_rng=gens[0])


def _two_groups(n=400, seed=0, shift_true=(2.0, 0.0), shift_cand=(2.0, 0.0)):
    """Groups (a, x) and (b, x); the truth shifts each group's log-odds; the candidate
    shifts by ``shift_cand``; the generic model by nothing."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    base = rng.normal(size=n)
    s_true = base + np.asarray(shift_true)[g]
    y = (rng.random(n) < 1 / (1 + np.exp(-s_true))).astype(float)
    keys = [("a", "x") if k == 0 else ("b", "x") for k in g]
    generic = 1 / (1 + np.exp(-base))
    cand = 1 / (1 + np.exp(-(base + np.asarray(shift_cand)[g])))
    fa, fb = ("c", ("a", "x")), ("c", ("b", "x"))
    return y, keys, {GENERIC: generic, fa: np.where(g == 0, cand, np.nan), fb: np.where(g == 1, cand, np.nan)}, (fa, fb)


def test_a_true_gain_is_served_at_full_strength_and_no_gain_gets_generic():
    y, keys, scores, (fa, fb) = _two_groups()
    # candidate columns must score every row (the function applied to anyone)
    gen = scores[GENERIC]
    scores[fa] = np.where(np.isnan(scores[fa]), 1 / (1 + np.exp(-(np.log(gen / (1 - gen)) + 2.0))), scores[fa])
    scores[fb] = np.where(np.isnan(scores[fb]), gen, scores[fb])
    problem = _problem(y, keys, scores)
    plans = {("a", "x"): LadderPlan(fa, cv_gain=0.1), ("b", "x"): LadderPlan(fb, cv_gain=0.0)}
    res = _run(problem, plans, envy=False)
    assert res.served[("a", "x")] == fa  # strength 1: the function itself
    assert res.served[("b", "x")] == GENERIC  # the candidate equals the generic model there: no gain
    row = res.table.set_index("option").loc["A=a, B=x"]
    assert row["strength"] == 1.0 and row["p_adjusted"] <= 0.1 and row["gain_generic"] > 0.1
    # the adjusted p of the top rung is the graph's; the raw p is the t-test's on that rung
    d_rows = np.flatnonzero(problem.members[("a", "x")])
    L = get_metric("log_loss", "classification").prepare(y[d_rows], np.column_stack(
        [gen[d_rows], scores[fa][d_rows]]))
    assert row["p_value"] == pytest.approx(stats.ttest_1samp(L[:, 0] - L[:, 1], 0, alternative="greater").pvalue)
    assert np.isfinite(row["min_detectable_gain"]) and row["min_detectable_gain"] > 0
    # the partial options (A=a, B=None) ... have no plan here: generic, with a reason
    assert res.served[("a", None)] == GENERIC


def test_an_overshooting_candidate_is_served_a_weaker_rung():
    """The truth shifts group a's log-odds by 1; the candidate by 4 (it overfits). The full
    candidate is worse than the generic model; the rung t = 0.25 (shift 1) is the truth."""
    y, keys, scores, (fa, fb) = _two_groups(n=3000, shift_true=(1.0, 0.0), shift_cand=(4.0, 0.0))
    gen = scores[GENERIC]
    scores[fa] = np.where(np.isnan(scores[fa]), gen, scores[fa])
    scores[fb] = np.where(np.isnan(scores[fb]), gen, scores[fb])
    problem = _problem(y, keys, scores)
    res = _run(problem, {("a", "x"): LadderPlan(fa, cv_gain=0.01)}, envy=False)
    assert res.served[("a", "x")] == ("c@0.25", ("a", "x"))
    row = res.table.set_index("option").loc["A=a, B=x"]
    assert row["strength"] == 0.25 and row["served"] == "c[A=a, B=x]@0.25"


def test_too_small_options_are_not_tested_and_pass_no_level():
    y, keys, scores, (fa, fb) = _two_groups(n=60)
    gen = scores[GENERIC]
    for f in (fa, fb):
        scores[f] = np.where(np.isnan(scores[f]), gen, scores[f])
    problem = _problem(y, keys, scores)
    res = _run(problem, {("a", "x"): LadderPlan(fa), ("b", "x"): LadderPlan(fb)}, min_group_size=1000)
    assert all(f == GENERIC for f in res.served.values())
    assert res.table["reason"].str.contains("too small to test").sum() == 2


def test_global_null_built_to_break_the_method_holds_the_level():
    """The generic model is the truth; every candidate moves each group's intercept by
    noise N(0, 0.3^2), so every population gain is negative and any personalization is a
    harm.  Twelve groups of 20 to 120 rows, log loss, the ladder at alpha = 0.1: the share
    of replications with any personalization stays <= alpha + 3 Monte Carlo sd."""
    rng = np.random.default_rng(7)
    sizes = [20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]
    reps, harms = 300, 0
    for r in range(reps):
        keys, g = [], []
        for k, m in enumerate(sizes):
            keys += [(f"g{k}", "x")] * m
            g += [k] * m
        g = np.asarray(g)
        x = rng.normal(size=g.size)
        s = -1.0 + 1.2 * x  # the truth (the generic model), prevalence about 0.3
        y = (rng.random(g.size) < 1 / (1 + np.exp(-s))).astype(float)
        eps = rng.normal(0, 0.3, len(sizes))
        scores = {GENERIC: 1 / (1 + np.exp(-s))}
        for k in range(len(sizes)):
            scores[("c", (f"g{k}", "x"))] = 1 / (1 + np.exp(-(s + eps[k])))
        problem = _problem(y, keys, scores)
        plans = {(f"g{k}", "x"): LadderPlan(("c", (f"g{k}", "x"))) for k in range(len(sizes))}
        res = _run(problem, plans, envy=False, seed=r)
        harms += any(f != GENERIC for f in res.served.values())
    rate, sd = harms / reps, np.sqrt(0.1 * 0.9 / reps)
    assert rate <= 0.1 + 3 * sd, rate


def test_only_significant_envy_removes_a_personalization():
    """Group b is served a model that group a does much better with (a's own candidate is
    weak): a's envy is significant and b loses its personalization.  With a tiny envy the
    point estimate is positive but not significant: nothing is removed."""
    rng = np.random.default_rng(3)
    n = 4000
    g = rng.integers(0, 2, n)
    base = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(base + 1.5)))).astype(float)  # both groups: +1.5
    keys = [("a", "x") if k == 0 else ("b", "x") for k in g]
    lg = lambda t: 1 / (1 + np.exp(-(base + t)))  # noqa: E731
    fa, fb = ("c", ("a", "x")), ("c", ("b", "x"))
    for a_shift, removed in ((0.3, True), (1.49, False)):
        scores = {GENERIC: lg(0.0), fa: lg(a_shift), fb: lg(1.5)}
        problem = _problem(y, keys, scores)
        # group a may claim b's report (same attributes): b's function applied to a's rows is lg(1.5)
        plans = {("a", "x"): LadderPlan(fa), ("b", "x"): LadderPlan(fb)}
        res = _run(problem, plans, envy=True)
        assert _run(problem, plans, envy=False).served[("a", "x")] != GENERIC
        if removed:
            # a envies b's model: b loses it; b (now generic) envies a's model, which
            # beats the generic model for b too: a loses it (envy-freeness cascades)
            assert res.served[("b", "x")] == GENERIC and res.served[("a", "x")] == GENERIC
            assert "significantly better" in res.table.set_index("option").loc["A=b, B=x", "reason"]
            assert len(res.decisions) >= 2
        else:
            assert res.served[("b", "x")] == fb and res.served[("a", "x")] != GENERIC


def test_partial_reports_wait_for_the_fully_reported_groups():
    """(a, x) is fully reported and certified; the partial option (a, None) with a large
    gain gets level only after every full option is done.  With a second full option that
    cannot be certified, the partial option is not served."""
    y, keys, scores, (fa, fb) = _two_groups(n=2000, shift_true=(2.0, 0.0), shift_cand=(2.0, 0.0))
    gen = scores[GENERIC]
    fa_all = np.where(np.isnan(scores[fa]), gen, scores[fa])
    scores[fa], scores[fb] = fa_all, gen.copy()
    partial = ("c", ("a", None))
    scores[partial] = fa_all
    problem = _problem(y, keys, scores)
    problem.eligible[("a", None)] = [partial]
    only_a = {("a", "x"): LadderPlan(fa), ("a", None): LadderPlan(partial)}
    res = _run(problem, only_a, envy=False)
    assert res.served[("a", "x")] == fa and res.served[("a", None)] == partial
    with_b = {**only_a, ("b", "x"): LadderPlan(fb)}  # b's candidate is the generic model: never certified
    res = _run(problem, with_b, envy=False)
    assert res.served[("a", "x")] == fa
    # b's weight never moves, so the partial option holds only the epsilon share of a's last
    # rung (0.5 * TAIL_EPSILON): its adjusted p-value is its raw p-value over that share
    row = res.table.set_index("option").loc["A=a, B=(not reported)"]
    assert row["p_adjusted"] == pytest.approx(row["p_value"] / (0.5 * TAIL_EPSILON), rel=1e-9)
    p_a = res.table.set_index("option").loc["A=a, B=x", "p_value"]
    res_only = _run(problem, only_a, envy=False)
    assert res_only.table.set_index("option").loc["A=a, B=(not reported)", "p_adjusted"] <= max(
        p_a, row["p_value"]) + 1e-300


# ---------------------------------------------------------------- fit_system end to end
def _population(n, seed, effects):
    rng = np.random.default_rng(seed)
    A = rng.choice(["a0", "a1"], n)
    B = rng.choice(["b0", "b1", "b2"], n, p=[0.4, 0.4, 0.2])
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["x1", "x2", "x3"])
    eff = np.array([effects.get((a, b), 0.0) for a, b in zip(A, B)])
    s = X.x1 - 0.5 * X.x2 + eff
    y = (rng.random(n) < 1 / (1 + np.exp(-s))).astype(int)
    return X, y, pd.DataFrame({"A": A, "B": B}).astype(object)


POOL = {"int[A,B]": (FairUseClassifier(encoding="intersectional", fair_use=None), ["A", "B"]),
        "int[A]": (FairUseClassifier(encoding="intersectional", fair_use=None), ["A"])}


def test_fit_system_ladder_personalizes_strong_effects_and_round_trips(tmp_path):
    X, y, G = _population(3000, 0, {("a1", "b0"): 2.0, ("a1", "b1"): -2.0, ("a0", "b2"): 1.0})
    system = fit_system(X, y, G, candidates=POOL, random_state=0)
    assert system.procedure_ == "ladder" and system.metric_ == "log_loss"
    served = {o: f for o, f in system.served_.items() if f != GENERIC}
    assert ("a1", "b0") in served and ("a1", "b1") in served
    table = system.assignment_.set_index("option")
    assert table.loc["A=a1, B=b0", "n_test"] == table.loc["A=a1, B=b0", "n"]  # the whole sample tests
    assert table.loc["A=a1, B=b0", "cv_gain"] > 0
    # served predictions equal the candidate (or its blend) with the option's report
    Xt, _, Gt = _population(500, 9, {})
    for o, fid in served.items():
        m = system.candidates_[fid[0]]
        p = system.predict_proba(Xt, report=o)[:, 1]
        np.testing.assert_allclose(p, m.predict_proba(Xt, report=fid[1])[:, 1], rtol=1e-12)
    # a file round trip predicts alike, shrunk models included
    path = tmp_path / "s.json"
    system.to_json(path)
    loaded = model_io.loads(path)
    Gt = Gt.copy()
    Gt.iloc[:30, 1] = None
    np.testing.assert_allclose(loaded.predict_proba(Xt, groups=Gt), system.predict_proba(Xt, groups=Gt), atol=1e-12)
    assert json.loads(path.read_text())["system"]["procedure"] == "ladder"


def test_shrunk_models_round_trip_through_the_file(tmp_path):
    """A system serving a shrunk candidate: the file holds the blended coefficients."""
    X, y, G = _population(4000, 1, {("a1", "b0"): 3.0})
    cand = FairUseClassifier(encoding="intersectional", fair_use=None).fit(X, y, groups=G)
    generic = FairUseClassifier(encoding="none").fit(X, y)
    shrunk = ShrunkModel(cand, generic, 0.25)
    Xt, _, Gt = _population(300, 2, {})
    want = 1 / (1 + np.exp(-(0.75 * generic.decision_function(Xt)
                             + 0.25 * cand.decision_function(Xt, report=("a1", "b0")))))
    np.testing.assert_allclose(shrunk.predict_proba(Xt, report=("a1", "b0"))[:, 1], want, rtol=1e-10)
    plans = {o: LadderPlan(("int", o)) for o in [("a1", "b0")]}
    Xa, ya, Ga = _population(6000, 3, {("a1", "b0"): 0.75})  # the candidate overshoots 4-fold
    system = FairUseSystem({"int": cand}, generic, plans=plans, rungs=(0.25, 1.0)).fit(Xa, ya, groups=Ga)
    assert system.served_[("a1", "b0")] == ("int@0.25", ("a1", "b0"))  # the branch this test is about
    assert isinstance(system.candidates_["int@0.25"], ShrunkModel)
    loaded = model_io.loads(system.to_json())
    np.testing.assert_allclose(loaded.predict_proba(Xt, groups=Gt), system.predict_proba(Xt, groups=Gt), atol=1e-12)
    assert model_io.dumps(loaded) == system.to_json()


def test_reference_shrinkage_known_answer_and_file(tmp_path):
    """With a reference, a candidate at strength t is the generic model plus t times its
    departure from the reference (log-odds), t = 1 included; the file holds that model."""
    X, y, G = _population(4000, 1, {("a1", "b0"): 3.0})
    cand = FairUseClassifier(encoding="intersectional", fair_use=None).fit(X.iloc[:2000], y[:2000],
                                                                           groups=G.iloc[:2000])
    reference = FairUseClassifier(encoding="none").fit(X.iloc[:2000], y[:2000])
    generic = FairUseClassifier(encoding="none").fit(X, y)
    Xt, _, Gt = _population(300, 2, {})
    key = ("a1", "b0")
    for t in (0.25, 1.0):
        want = 1 / (1 + np.exp(-(generic.decision_function(Xt) + t * (
            cand.decision_function(Xt, report=key) - reference.decision_function(Xt)))))
        got = ShrunkModel(cand, generic, t, reference=reference).predict_proba(Xt, report=key)[:, 1]
        np.testing.assert_allclose(got, want, rtol=1e-10)
    assert not np.allclose(want, cand.predict_proba(Xt, report=key)[:, 1])  # t = 1 is not the candidate
    plans = {key: LadderPlan(("int", key))}
    Xa, ya, Ga = X.iloc[2000:].reset_index(drop=True), y[2000:], G.iloc[2000:].reset_index(drop=True)
    system = FairUseSystem({"int": cand}, generic, plans=plans, reference=reference).fit(Xa, ya, groups=Ga)
    assert system.served_[key] == ("int@1", key)  # a strong effect climbs to t = 1, served with the reference
    served = system.candidates_["int@1"]
    assert isinstance(served, ShrunkModel) and served.reference is reference
    np.testing.assert_allclose(system.predict_proba(Xt, report=key)[:, 1],
                               served.predict_proba(Xt, report=key)[:, 1], rtol=1e-12)
    loaded = model_io.loads(system.to_json())
    np.testing.assert_allclose(loaded.predict_proba(Xt, groups=Gt), system.predict_proba(Xt, groups=Gt), atol=1e-12)
    # the test compares with the generic model: its gain column is the blend's gain over it
    table = system.assignment_.set_index("option")
    rows = (Ga["A"] == "a1").to_numpy() & (Ga["B"] == "b0").to_numpy()
    lo = lambda p: -np.mean(ya[rows] * np.log(p) + (1 - ya[rows]) * np.log1p(-p))  # noqa: E731
    gain = lo(generic.predict_proba(Xa[rows])[:, 1]) - lo(served.predict_proba(Xa[rows], report=key)[:, 1])
    assert table.loc["A=a1, B=b0", "gain_generic"] == pytest.approx(gain, rel=1e-9)
    with pytest.raises(InputError, match="reference"):
        FairUseSystem({"int": cand}, generic, procedure="split", reference=reference).fit(Xa, ya, groups=Ga)


def test_fit_system_generic_rows():
    """Default: the generic model served is trained on all rows, the reference on the
    training part (half the rows); generic_rows='train' is the earlier design (0.3)."""
    X, y, G = _population(1500, 6, {("a1", "b0"): 2.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FairUseWarning)
        system = fit_system(X, y, G, candidates=POOL, random_state=0)
        old = fit_system(X, y, G, candidates=POOL, random_state=0, generic_rows="train")
    full = FairUseClassifier(encoding="none").fit(X, y)
    np.testing.assert_allclose(system.generic_.coef_, full.coef_, rtol=1e-9, atol=1e-12)
    train = system.train_index_
    assert system.assign_index_.size == 750 and old.assign_index_.size == 450
    part = FairUseClassifier(encoding="none").fit(X.iloc[train], y[train])
    np.testing.assert_allclose(system.reference.coef_, part.coef_, rtol=1e-9, atol=1e-12)
    assert old.reference is None
    old_part = FairUseClassifier(encoding="none").fit(X.iloc[old.train_index_], y[old.train_index_])
    np.testing.assert_allclose(old.generic_.coef_, old_part.coef_, rtol=1e-9, atol=1e-12)
    with pytest.raises(InputError, match="generic_rows"):
        fit_system(X, y, G, candidates=POOL, generic_rows="some")


def test_nothing_certifiable_warns_with_testability_figures():
    X, y, G = _population(600, 4, {})
    with pytest.warns(FairUseWarning, match=r"smallest gain a test could certify with 80% power is [0-9.e-]+ to"):
        system = fit_system(X, y, G, candidates=POOL, random_state=0)
    assert all(f == GENERIC for f in system.served_.values())
    assert system.assignment_["min_detectable_gain"].notna().any()


def test_crossfit_serves_refitted_models_and_keeps_out_of_fold_evidence():
    X, y, G = _population(2500, 5, {("a1", "b0"): 2.0, ("a1", "b1"): -2.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FairUseWarning)
        system = fit_system(X, y, G, candidates=POOL, procedure="crossfit", n_folds=4, random_state=0)
    assert system.procedure_ == system.procedure == "crossfit" and system.assign_index_.size == 0
    loaded = model_io.loads(system.to_json())
    assert loaded.procedure == "crossfit"
    Xt, _, Gt = _population(300, 13, {})
    np.testing.assert_allclose(loaded.predict_proba(Xt, groups=Gt), system.predict_proba(Xt, groups=Gt), atol=1e-12)
    with pytest.raises(InputError, match="fit_system"):
        FairUseSystem(system.candidates_, system.generic_, procedure="crossfit").fit(X, y, groups=G)
    assert sorted(np.unique(system.folds_)) == [0, 1, 2, 3]
    served = {o: f for o, f in system.served_.items() if f != GENERIC}
    assert ("a1", "b0") in served and ("a1", "b1") in served
    # the served models are refitted on all rows
    refit = FairUseClassifier(encoding="intersectional", fair_use=None).fit(X, y, groups=G)
    base = system.candidates_["int[A,B]"]
    np.testing.assert_allclose(base.coef_, refit.coef_, atol=1e-8)
    # reuse: same pool and folds, another metric, no refit
    again = fit_system(X, y, G, candidates=POOL, procedure="crossfit", n_folds=4, random_state=0,
                       metric="brier", reuse=system)
    assert again.candidates_["int[A,B]"] is base and again.metric_ == "brier"


def test_bad_ladder_settings_are_refused():
    from fairuse_opt import InputError

    X, y, G = _population(300, 6, {})
    with pytest.raises(InputError, match="rungs"):
        fit_system(X, y, G, candidates=POOL, rungs=(0.0, 1.0))
    with pytest.raises(InputError, match="procedure"):
        fit_system(X, y, G, candidates=POOL, procedure="bogus")
    with pytest.raises(InputError, match="no envy step"):
        fit_system(X, y, G, candidates=POOL, procedure="crossfit", envy=True)
    with pytest.raises(InputError, match="reuse"):
        fit_system(X, y, G, candidates=POOL, reuse=FairUseClassifier())


def test_unseen_and_partial_reports_are_served_by_the_nearest_seen_option():
    """A combination never seen in the assignment part is served its nearest seen parent's
    model; a partial report is served its own option's model (here: the generic model, as
    the partial options wait at the tail)."""
    X, y, G = _population(3000, 8, {("a1", "b0"): 2.0, ("a1", "b1"): -2.0})
    keep = ~((G.A == "a0") & (G.B == "b2")).to_numpy()  # (a0, b2) never reported
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FairUseWarning)
        system = fit_system(X[keep].reset_index(drop=True), y[keep], G[keep].reset_index(drop=True),
                            candidates=POOL, random_state=0)
    assert ("a0", "b2") not in system.served_
    by = system._serving_option(("a0", "b2"))
    assert by in system.served_ and None in by
    Xt, _, _ = _population(200, 9, {})
    np.testing.assert_array_equal(system.predict_proba(Xt, report=("a0", "b2")),
                                  system.predict_proba(Xt, report=by))
    frame = system.serving(pd.DataFrame({"A": ["a0", "a1", None], "B": ["b2", "b0", "b1"]}).astype(object))
    assert list(frame["served_by"])[1] == "A=a1, B=b0" and system.served_[("a1", "b0")] != GENERIC


def test_the_audit_of_a_system_says_which_groups_get_the_generic_model():
    from fairuse_opt import audit

    X, y, G = _population(3000, 10, {("a1", "b0"): 2.0, ("a1", "b1"): -2.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FairUseWarning)
        system = fit_system(X, y, G, candidates=POOL, random_state=0)
    Xt, yt, Gt = _population(1500, 11, {("a1", "b0"): 2.0, ("a1", "b1"): -2.0})
    report = audit(system, Xt, yt, groups=Gt, metrics=["log_loss"], n_boot=100)
    generic_groups = [k for k in sorted(set(map(tuple, Gt.to_numpy()))) if
                      system.served_[system._serving_option(k)] == GENERIC]
    assert 0 < len(generic_groups) < 6
    text = str(report.summary())
    assert f"the system serves {len(generic_groups)} of 6 groups the generic model" in " ".join(text.split())


def test_cli_fit_system_runs_the_ladder_and_crossfit(tmp_path, capsys):
    from fairuse_opt.cli import main

    X, y, G = _population(1500, 12, {("a1", "b0"): 2.5, ("a1", "b1"): -2.5})
    frame = pd.concat([X, G], axis=1).assign(y=y)
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    for procedure in ("ladder", "crossfit"):
        out = tmp_path / f"{procedure}.json"
        args = ["fit", "--system", "--data", str(data), "--target", "y", "--groups", "A,B", "--out", str(out),
                "--quiet"] + (["--procedure", procedure] if procedure != "ladder" else [])
        assert main(args) == 0
        text = capsys.readouterr().out
        doc = json.loads(out.read_text(encoding="utf-8"))
        assert doc["system"]["procedure"] == procedure and doc["system"]["metric"] == "log_loss"
        assert "certifiable gain >=" in text and "A=a1, B=b0" in text
        loaded = model_io.loads(out)
        assert loaded.served_[("a1", "b0")] != GENERIC  # a strong effect is certified either way
    assert main(["fit", "--system", "--data", str(data), "--target", "y", "--groups", "A,B", "--out",
                 str(tmp_path / "x.json"), "--procedure", "crossfit", "--no-envy", "--quiet"]) == 2


@pytest.mark.parametrize("procedure", ["ladder", "crossfit"])
def test_text_labels_give_the_system_of_their_0_1_coding(procedure):
    """Fuzz case 278 (issue 24): fit_system with labels 'no'/'yes' crashed in the choice of
    plans (the labels were read as numbers); now it is the system of the 0/1 labels."""
    X, y, G = _population(1500, 8, {("a1", "b0"): 2.0})
    text = np.where(y == 1, "yes", "no")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FairUseWarning)
        num = fit_system(X, y, G, candidates=POOL, procedure=procedure, random_state=0)
        txt = fit_system(X, text, G, candidates=POOL, procedure=procedure, random_state=0)
    assert any(f != GENERIC for f in num.served_.values())  # the comparison covers a personalized option
    assert txt.served_ == num.served_
    np.testing.assert_allclose(txt.predict_proba(X.iloc[:200], groups=G.iloc[:200]),
                               num.predict_proba(X.iloc[:200], groups=G.iloc[:200]), rtol=1e-10)
    assert list(txt.classes_) == ["no", "yes"]


def test_fit_system_assign_rows_is_the_split_it_names():
    """assign_rows= gives the assignment part: the split fit_system made, passed back,
    reproduces its system; bad positions are refused."""
    X, y, G = _population(1500, 10, {("a1", "b0"): 2.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FairUseWarning)
        first = fit_system(X, y, G, candidates=POOL, random_state=0)
        again = fit_system(X, y, G, candidates=POOL, random_state=0, assign_rows=first.assign_index_)
    np.testing.assert_array_equal(again.assign_index_, first.assign_index_)
    np.testing.assert_array_equal(again.train_index_, first.train_index_)
    assert again.served_ == first.served_ and any(f != GENERIC for f in first.served_.values())
    np.testing.assert_allclose(again.predict_proba(X.iloc[:100], groups=G.iloc[:100]),
                               first.predict_proba(X.iloc[:100], groups=G.iloc[:100]), rtol=1e-12)
    for bad, match in [(np.array([0, 0, 1]), "distinct"), (np.array([-1, 2]), "distinct"),
                       (np.arange(1500), "no row to train"), (np.array([0.5, 1.0]), "integer"),
                       (np.array([], dtype=int), "non-empty")]:
        with pytest.raises(InputError, match=match):
            fit_system(X, y, G, candidates=POOL, assign_rows=bad)
    with pytest.raises(InputError, match="not both"):
        fit_system(X, y, G, candidates=POOL, assign_rows=first.assign_index_, assign_size=0.3)
