"""The slow paths found by fuzzing, at small sizes: each fit is verified from the outside.

Every fitted model's guarantees are recomputed here from ``predict_proba`` (each group's
mean log loss under its own report, under every other report, and under the generic
model), independently of the certificate.  The sizes and timings of the original reports
are in ``benchmarks/results/slow_paths.md`` (``benchmarks/bench_slow_paths.py``).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

import fairuse_opt.estimators as estimators_module
from fairuse_opt import FairUseClassifier, FairUseInfeasibleError
from fairuse_opt.exceptions import FallbackWarning, SmallGroupWarning
from fairuse_opt.solvers import base as solvers_base
from fairuse_opt.solvers.conic import ConicBackend

TOL = 1e-7


def make(n, d, levels, seed=0, balanced=True, offset_sd=0.7):
    rng = np.random.default_rng(seed)
    G = int(np.prod(levels))
    g = np.arange(n) % G if balanced else rng.integers(0, G, n)
    X = rng.normal(size=(n, d))
    offsets = rng.normal(scale=offset_sd, size=G)
    y = (X @ (rng.normal(size=d) / np.sqrt(d)) + offsets[g] + rng.logistic(size=n) > 0).astype(int)
    cols, rest = [], g.copy()
    for L in levels:
        cols.append(rest % L)
        rest //= L
    return X, y, np.column_stack(cols)


def log_loss(y, p1):
    p1 = np.clip(p1, 1e-300, 1 - 1e-16)
    return -(y * np.log(p1) + (1 - y) * np.log1p(-p1))


def recomputed(model, X, y, groups):
    """``(L[g, r], generic loss of g)`` from predict_proba, groups in ``model.groups_`` order."""
    keys = model.groups_
    rows = [np.all(groups == np.array(k), axis=1) for k in keys]
    L = np.array([[log_loss(y[m], model.predict_proba(X[m], report=r)[:, 1]).mean() for r in keys]
                  for m in rows])
    L0 = np.array([log_loss(y[m], model.generic_.predict_proba(X[m])[:, 1]).mean() for m in rows])
    return L, L0


def assert_fair_use(model, X, y, groups, margins=None, tol=1e-6):
    """Rationality and envy-freeness hold on the training rows, recomputed from outside."""
    c = model.certificate_
    assert c.verified and c.n_violations == 0
    L, L0 = recomputed(model, X, y, groups)
    own = np.diag(L)
    m = np.zeros(len(own)) if margins is None else margins
    assert np.all(own <= L0 - m + tol), (own - (L0 - m)).max()
    assert np.all(own[:, None] <= L + tol), (own[:, None] - L).max()
    # the certificate's own numbers are the same losses
    np.testing.assert_allclose(c.table["own_loss"].to_numpy(), own, atol=1e-9)
    np.testing.assert_allclose(c.table["generic_loss"].to_numpy(), L0, atol=1e-9)


def fit(X, y, groups, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        return FairUseClassifier(**kw).fit(X, y, groups=groups)


def no_conic(monkeypatch):
    """Make any conic solve an error: the path under test must stay native."""
    def refuse(self, *a, **k):
        raise AssertionError("a conic solver was called")
    monkeypatch.setattr(ConicBackend, "solve", refuse)


# ------------------------------------------------------- penalty + envy, many groups
def test_penalised_blocks_with_envy_on_many_small_groups_meet_both_constraints(monkeypatch):
    # the fuzzing case was 150 rows in 30 groups (a MemoryError under 10 GB); here
    # 60 rows in 12 groups of 5, group_reg="penalty": the sequence of restrictions
    X, y, groups = make(60, 3, (3, 4))
    no_conic(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = FairUseClassifier(group_reg="penalty", fair_use="both", min_group_size=0,
                              max_iter=5).fit(X, y, groups=groups)
    assert m.certificate_.route == "ccp"
    assert m.certificate_.solver == "NATIVE"
    assert_fair_use(m, X, y, groups)
    # the objective never rises above the generic model's (every iterate is feasible
    # and each accepted step lowers it)
    assert m.certificate_.objective <= m.certificate_.objective_generic + 1e-12


def test_two_hundred_tiny_groups_are_fitted_natively_and_agree_with_ecos(monkeypatch):
    # 40 groups of 5 rows: single-class groups push their intercepts to the common set's
    # bound, which the native interior-point method handles (it used to go to cvxpy)
    X, y, groups = make(200, 3, (5, 8), seed=1)
    ref = fit(X, y, groups, solver="ECOS")
    with monkeypatch.context() as mp:
        no_conic(mp)
        m = fit(X, y, groups)
    assert m.certificate_.solver == "NATIVE"
    assert m.certificate_.table["at_set_boundary"].any()
    assert_fair_use(m, X, y, groups)
    assert_fair_use(ref, X, y, groups)
    # the same convex program: the same optimum
    assert abs(m.certificate_.objective - ref.certificate_.objective) <= 1e-6
    np.testing.assert_allclose(m.intercept_, ref.intercept_, atol=1e-3)


# ---------------------------------------------------------------- infeasible margins
def test_unreachable_margin_is_reported_without_a_conic_solve(monkeypatch):
    # a margin of 1 nat below the generic loss (~0.6 nats) is out of reach for every
    # group: reported from the groups' floors alone, before any program over all rows
    X, y, groups = make(4000, 4, (2, 2), balanced=False)
    no_conic(monkeypatch)
    with pytest.raises(FairUseInfeasibleError, match="lowest training loss"):
        fit(X, y, groups, margin=1.0)


def test_unreachable_margin_with_generic_fallback_serves_the_generic_model(monkeypatch):
    X, y, groups = make(4000, 4, (2, 2), balanced=False)
    no_conic(monkeypatch)
    with pytest.warns(FallbackWarning):
        m = fit(X, y, groups, margin=1.0, on_infeasible="generic")
    c = m.certificate_
    assert c.route == "generic-fallback" and c.verified
    assert c.table["generic_fallback"].all()
    np.testing.assert_allclose(m.predict_proba(X, groups=groups), m.generic_.predict_proba(X), atol=1e-12)


def test_one_unreachable_margin_whose_generic_model_envies_falls_back_for_all(monkeypatch):
    # only group (0, 0) is asked for 1 nat: it is served the generic model, but then it
    # prefers report (1, 1)'s model, so no partial assignment verifies and every group
    # is given the generic model, with both reasons in the certificate
    X, y, groups = make(4000, 4, (2, 2), balanced=False)
    base = fit(X, y, groups, fair_use=None)
    first = tuple(base.groups_[0])
    no_conic(monkeypatch)
    with pytest.warns(FallbackWarning, match="envy"):
        m = fit(X, y, groups, margin={first: 1.0}, on_infeasible="generic")
    c = m.certificate_
    assert c.verified and c.route == "generic-fallback"
    assert c.table["generic_fallback"].all()
    assert any("lowest training loss" in n for n in c.notes)
    assert any(n.startswith(f"envy: {first}") for n in c.notes)
    # the reason is real: with the generic model, group (0, 0) loses more than under (1, 1)'s
    L, L0 = recomputed(base, X, y, groups)
    assert L0[0] > L[0, 3]
    np.testing.assert_allclose(m.predict_proba(X, groups=groups), m.generic_.predict_proba(X), atol=1e-12)


# ---------------------------------------------------------------- wide data, d > n
def _identity_basis(Zc):
    return np.eye(Zc.shape[1])


@pytest.mark.parametrize("encoding", ["intersectional", "onehot"])
def test_more_features_than_rows_is_the_same_fit_in_the_row_space(monkeypatch, encoding):
    # 40 rows x 120 features (two of them collinear): the weights are fitted in the
    # 39-dimensional row space of the centred data; the identity "basis" (the problem
    # as posed, 120 weights) gives the same served models
    X, y, groups = make(40, 120, (2, 2), seed=2)
    X[:, 1] = 3 * X[:, 0]
    seen = []
    orig = estimators_module.wide_basis

    def spy(Zc):
        V = orig(Zc)
        seen.append(V.shape)
        return V

    kw = dict(l2=0.05, encoding=encoding, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monkeypatch.setattr(estimators_module, "wide_basis", spy)
        m = FairUseClassifier(**kw).fit(X, y, groups=groups)
        monkeypatch.setattr(estimators_module, "wide_basis", _identity_basis)
        ref = FairUseClassifier(**kw).fit(X, y, groups=groups)
    assert seen == [(120, 39)]  # centred: rank n - 1
    assert m.coef_.shape == (4, 120)
    assert_fair_use(m, X, y, groups)
    # the reduced fit is never worse, and for the convex routes it is the same optimum
    assert m.certificate_.objective <= ref.certificate_.objective + 1e-9
    if m.certificate_.route != "ccp":
        np.testing.assert_allclose(m.coef_, ref.coef_, atol=1e-6)
        np.testing.assert_allclose(m.intercept_, ref.intercept_, atol=1e-6)
    # the weights lie in the row space of the centred data (no component that moves no score)
    Xc = X - X.mean(axis=0)
    _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
    residual = m.coef_[0] - Vt.T @ (Vt @ m.coef_[0])
    assert np.max(np.abs(residual)) <= 1e-9 * max(1.0, np.max(np.abs(m.coef_[0])))


def test_wide_data_with_a_binding_margin_takes_the_exact_route():
    X, y, groups = make(40, 120, (2, 2), seed=2)
    base = fit(X, y, groups, l2=0.05, fair_use=None)
    t = base.certificate_.table
    k = int(t["gain"].idxmin())
    key = tuple(t.loc[k, "group"])
    margin = 1.2 * float(t.loc[k, "gain"])
    m = fit(X, y, groups, l2=0.05, margin={key: margin})
    assert m.certificate_.route == "exact"
    assert m.certificate_.table.loc[k, "rationality_active"]
    margins = np.zeros(4)
    margins[k] = margin
    assert_fair_use(m, X, y, groups, margins=margins)


def test_a_reachable_margin_is_checked_by_a_floor_solve_that_stops_once_it_is_reached(monkeypatch):
    """A program that SQP solves and that verifies proves every margin reachable: no
    floor solve.  When SQP does not solve it, the margin check needs only a point of the
    family below the bound: the group's floor solve stops there (status ``reached``), a
    group the unconstrained fit already serves below its bound gets no solve, and an
    unreachable margin still runs to the floor."""
    from fairuse_opt.fairness import routes

    calls = []
    real_newton, real_barrier = routes.native.newton, routes.native.barrier

    def spy(real):
        def run(*args, **kwargs):
            res = real(*args, **kwargs)
            if str(kwargs.get("stage", "")).startswith("floor"):
                calls.append((kwargs["stage"], res.status))
            return res
        return run

    monkeypatch.setattr(routes.native, "newton", spy(real_newton))
    monkeypatch.setattr(routes.native, "barrier", spy(real_barrier))
    X, y, groups = make(400, 3, (2, 2), seed=5)
    base = fit(X, y, groups, l2=0.05, fair_use=None)
    t = base.certificate_.table
    # group 0 can reach 1.2 times its unconstrained gain alone (its floor is ~0.011 below
    # that bound); group 1 asks for half of its gain, which the unconstrained fit gives
    key, other = tuple(t.loc[0, "group"]), tuple(t.loc[1, "group"])
    margin = {key: 1.2 * float(t.loc[0, "gain"]), other: 0.5 * float(t.loc[1, "gain"])}
    margins = np.array([margin.get(tuple(g), 0.0) for g in t["group"]])
    m = fit(X, y, groups, l2=0.05, margin=margin)
    assert_fair_use(m, X, y, groups, margins=margins)
    assert ("NATIVE/sqp", "optimal") in m.certificate_.attempts and calls == []  # SQP: no floor solve
    real_sqp = routes.native.sqp

    def sqp_fails(*args, **kwargs):
        res = real_sqp(*args, **kwargs)
        res.status = "not converged"
        return res

    monkeypatch.setattr(routes.native, "sqp", sqp_fails)
    m = fit(X, y, groups, l2=0.05, margin=margin)
    assert_fair_use(m, X, y, groups, margins=margins)
    assert ("NATIVE/slsqp", "optimal") in m.certificate_.attempts
    assert [s for _, s in calls] == ["reached"]  # one solve: the other group is met by the unconstrained fit
    monkeypatch.setattr(routes.native, "sqp", real_sqp)
    calls.clear()
    with pytest.raises(FairUseInfeasibleError):
        fit(X, y, groups, l2=0.05, margin={key: 5.0})
    assert [s for _, s in calls] == ["optimal"]


# ------------------------------------------------------------------------ progress
def test_progress_reports_iteration_objective_and_violation(monkeypatch, caplog):
    # report every iteration at INFO from the start (the defaults wait 3 s, then every 2 s)
    monkeypatch.setattr(solvers_base, "PROGRESS_AFTER", 0.0)
    monkeypatch.setattr(solvers_base, "PROGRESS_EVERY", 0.0)
    X, y, groups = make(120, 3, (2, 3), seed=3)
    with caplog.at_level(logging.INFO, logger="fairuse_opt"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = FairUseClassifier(encoding="onehot", max_iter=4).fit(X, y, groups=groups)
    assert m.certificate_.route == "ccp"
    records = [r for r in caplog.records if hasattr(r, "progress")]
    assert records and all(r.name.startswith("fairuse_opt") and r.levelno == logging.INFO for r in records)
    stages = {r.progress["stage"] for r in records}
    assert any(s.startswith("unconstrained fit") for s in stages)
    assert any(s.startswith("convex restriction") for s in stages)
    ccp = [r.progress for r in records if r.progress["stage"].startswith("ccp from")]
    assert ccp, stages
    for p in ccp:
        assert np.isfinite(p["objective"]) and p["iteration"] >= 1
        assert 0.0 <= p["violation"] <= TOL  # every accepted iterate is feasible
        assert str(p["iteration"]) in next(r.getMessage() for r in records if r.progress is p)
    # within one start the objective goes down, iteration after iteration
    by_start = {}
    for p in ccp:
        by_start.setdefault(p["stage"], []).append(p)
    for seq in by_start.values():
        assert [p["iteration"] for p in seq] == list(range(1, len(seq) + 1))
        assert all(b["objective"] < a["objective"] for a, b in zip(seq, seq[1:]))
    # the certificate's objective is the best start's last one, or lower (a local polish)
    best = min(seq[-1]["objective"] for seq in by_start.values())
    assert m.certificate_.objective <= best + 1e-12
    assert best in m.certificate_.trace or m.certificate_.objective < best


def test_progress_stays_quiet_at_info_for_a_short_fit(monkeypatch, caplog):
    # with the first INFO record due only after an hour, every progress record is DEBUG
    monkeypatch.setattr(solvers_base, "PROGRESS_AFTER", 3600.0)
    X, y, groups = make(120, 3, (2, 3), seed=3)
    with caplog.at_level(logging.DEBUG, logger="fairuse_opt"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            FairUseClassifier(encoding="onehot", max_iter=2).fit(X, y, groups=groups)
    records = [r for r in caplog.records if hasattr(r, "progress")]
    assert records and all(r.levelno == logging.DEBUG for r in records)


def test_an_explicit_conic_solver_with_many_envy_pairs_is_refused_at_once(monkeypatch):
    """An explicit conic solver on the sequence of restrictions with more than
    MAX_CONIC_PAIRS envy pairs is refused before any fit, naming the native solver; with
    fewer pairs, or without envy-freeness, it runs."""
    from fairuse_opt.exceptions import MSG_CONIC_TOO_LARGE, InputError
    from fairuse_opt.fairness import routes
    from fairuse_opt.solvers import native

    X, y, groups = make(120, 2, (3, 4))  # 12 groups: 132 envy pairs
    assert 12 * 11 > routes.MAX_CONIC_PAIRS >= 8 * 7

    def no_fit(*a, **k):
        raise AssertionError("a fit was started")
    with monkeypatch.context() as m:
        m.setattr(native, "newton", no_fit)
        m.setattr(ConicBackend, "solve", no_fit)
        for kw in (dict(encoding="onehot", solver="ECOS"), dict(group_reg="penalty", solver="clarabel")):
            route = "one-hot route" if "encoding" in kw else "route of penalised group blocks"
            expected = MSG_CONIC_TOO_LARGE.format(solver=kw["solver"], route=route, pairs=132, groups=12,
                                                  limit=routes.MAX_CONIC_PAIRS)
            with pytest.raises(InputError) as err:
                FairUseClassifier(fair_use="both", min_group_size=0, **kw).fit(X, y, groups=groups)
            assert str(err.value) == expected
            assert "solver='auto'" in str(err.value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # no envy-freeness: no sequence of restrictions, the conic solver runs
        rat = FairUseClassifier(encoding="onehot", fair_use="rationality", solver="ECOS", min_group_size=0).fit(
            X, y, groups=groups)
        assert rat.certificate_.verified and rat.certificate_.solver in ("ECOS", "CLARABEL")
        # 8 groups: 56 pairs, under the limit
        X8, y8, g8 = make(120, 2, (2, 4))
        few = FairUseClassifier(encoding="onehot", fair_use="both", solver="ECOS", min_group_size=0).fit(
            X8, y8, groups=g8)
        assert few.certificate_.verified


def test_a_sequence_of_restrictions_too_large_to_finish_is_refused_at_once(monkeypatch):
    """The one-hot or penalised route with envy-freeness beyond MAX_SEQUENCE_PAIRS envy
    pairs or MAX_SEQUENCE_PARAMS parameters is refused before any fit, saying what to
    use instead; the same data on the exact route (or without envy-freeness) is fitted."""
    from fairuse_opt.exceptions import InputError
    from fairuse_opt.fairness import routes
    from fairuse_opt.solvers import native

    X, y, groups = make(170, 2, (2, 17))  # 34 groups: 1,122 envy pairs
    assert 34 * 33 > routes.MAX_SEQUENCE_PAIRS
    Xw, yw, gw = make(150, 700, (2, 2))  # 150 rows x 700 features: at most 150 + 1 + 4 parameters
    Xw2, yw2, gw2 = make(700, 650, (2, 2))  # 650 + 5 > MAX_SEQUENCE_PARAMS

    def no_fit(*a, **k):
        raise AssertionError("a fit was started")
    with monkeypatch.context() as m:
        m.setattr(native, "newton", no_fit)
        with pytest.raises(InputError, match="34 groups give 1,122 envy pairs") as err:
            FairUseClassifier(group_reg="penalty", min_group_size=0).fit(X, y, groups=groups)
        assert "group_reg='set'" in str(err.value) and "fair_use='rationality'" in str(err.value)
        with pytest.raises(InputError, match="655 parameters"):
            FairUseClassifier(encoding="onehot").fit(Xw2, yw2, groups=gw2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = FairUseClassifier(min_group_size=0).fit(X, y, groups=groups)
        assert exact.certificate_.verified
        rat = FairUseClassifier(group_reg="penalty", fair_use="rationality", min_group_size=0).fit(X, y, groups=groups)
        assert rat.certificate_.verified
        # wide data whose row space keeps the parameters under the limit: fitted
        wide = FairUseClassifier(encoding="onehot").fit(Xw, yw, groups=gw)
        assert wide.certificate_.verified
