"""Fair use by construction: guarantees, optimality, failure paths (issue 3)."""

from __future__ import annotations

import itertools
import warnings

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from fairuse_opt import (
    FairUseClassifier,
    FairUseInfeasibleError,
    FairUseRegressor,
    FallbackWarning,
    SmallGroupWarning,
    SolverError,
    VerificationError,
)
from fairuse_opt.fairness import routes as _routes
from fairuse_opt.solvers import conic as _solve

TOL = 1e-7


def loss_matrix_numpy(model, X, y, groups, w, task):
    """L[g, r] recomputed from the fitted coefficients alone (independent of the fit code)."""
    keys = list(groups.itertuples(index=False, name=None))
    G = len(model.groups_)
    L = np.zeros((G, G))
    for g, key in enumerate(model.groups_):
        m = np.array([k == key for k in keys])
        for r in range(G):
            s = X[m] @ model.coef_[r] + model.intercept_[r]
            if task == "classification":
                rl = np.logaddexp(0, s) - y[m] * s
            else:
                rl = (y[m] - s) ** 2
            L[g, r] = np.average(rl, weights=w[m])
    return L


def generic_losses_numpy(model, X, y, groups, w, task):
    keys = list(groups.itertuples(index=False, name=None))
    s0 = X @ model.generic_.coef_[0] + model.generic_.intercept_[0]
    rl = np.logaddexp(0, s0) - y * s0 if task == "classification" else (y - s0) ** 2
    return np.array([np.average(rl[[k == key for k in keys]], weights=w[[k == key for k in keys]])
                     for key in model.groups_])


@st.composite
def problems(draw):
    n = draw(st.integers(40, 400))
    d = draw(st.integers(1, 6))
    G = draw(st.integers(2, 8))
    task = draw(st.sampled_from(["classification", "regression"]))
    encoding = draw(st.sampled_from(["onehot", "intersectional", "decoupled"]))
    group_reg = draw(st.sampled_from(["set", "penalty"]))
    seed = draw(st.integers(0, 2**31 - 1))
    weighted = draw(st.booleans())
    return n, d, G, task, encoding, group_reg, seed, weighted


def random_problem(n, d, G, task, seed, weighted):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    g = np.concatenate([np.arange(G), rng.integers(0, G, n - G)])  # every group present
    # two attributes, so one-hot offsets are shared between groups
    groups = pd.DataFrame({"a": g % 2, "b": g // 2})
    beta = rng.normal(size=d)
    effect = rng.normal(scale=1.5, size=G)
    slopes = rng.normal(scale=0.8, size=(G, d))
    s = X @ beta + effect[g] + np.einsum("ij,ij->i", X, slopes[g])
    if task == "classification":
        y = (s + rng.logistic(size=n) > 0).astype(float)
        if y.min() == y.max():
            y[0] = 1 - y[0]
    else:
        y = s + rng.normal(size=n)
    w = rng.uniform(0.2, 3.0, size=n) if weighted else np.ones(n)
    return X, y, groups, w


def check_certificate(n, d, G, task, encoding, group_reg, seed, weighted):
    """Fit one random problem and check its certificate independently; returns the route.

    Every branch below is taken by a deterministic test (``test_branch_*``), so none of
    them can be skipped unnoticed."""
    X, y, groups, w = random_problem(n, d, G, task, seed, weighted)
    Est = FairUseClassifier if task == "classification" else FairUseRegressor
    kw = dict(encoding=encoding, group_reg=group_reg, l2=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        fair = Est(**kw).fit(X, y, groups=groups, sample_weight=w)
        free = Est(fair_use=None, **kw).fit(X, y, groups=groups, sample_weight=w)
    cert = fair.certificate_
    assert cert.verified, cert.failures
    # recomputed independently from the served coefficients
    L = loss_matrix_numpy(fair, X, y, groups, w, task)
    L0 = generic_losses_numpy(fair, X, y, groups, w, task)
    own = np.diag(L)
    assert np.all(own <= L0 + TOL)
    assert np.all(own[:, None] <= L + TOL)
    np.testing.assert_allclose(own, cert.table["own_loss"], rtol=1e-9, atol=1e-12)
    # never worse than the generic model written in the family (a feasible point)
    assert cert.objective <= cert.objective_generic + 1e-9
    assert cert.objective >= free.certificate_.objective - 1e-7
    # the unconstrained fit, when it is feasible, is the answer
    Lf = loss_matrix_numpy(free, X, y, groups, w, task)
    if np.all(np.diag(Lf) <= L0 + TOL) and np.all(np.diag(Lf)[:, None] <= Lf + TOL):
        assert cert.route == "unconstrained-feasible"
        np.testing.assert_allclose(fair.coef_, free.coef_, atol=1e-9)
        np.testing.assert_allclose(fair.intercept_, free.intercept_, atol=1e-9)
    else:
        assert cert.route != "unconstrained-feasible"
    if cert.route == "exact":  # one convex program with the rationality constraints only
        assert group_reg == "set" and encoding in ("intersectional", "decoupled")
        assert cert.iterations == 1
        # its multipliers: non-negative, zero where the constraint is slack (complementary
        # slackness), positive somewhere (the unconstrained fit was not feasible)
        t = cert.table
        dual, slack = t["dual"].to_numpy(), t["rationality_slack"].to_numpy()
        assert np.all(dual >= -1e-8), dual
        assert np.all(np.abs(dual * slack) <= 1e-6), (dual, slack)
        assert dual.max() > 0 and t["rationality_active"].any()
        # a global optimum: no worse than a conic solver's answer to the same program
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SmallGroupWarning)
            conic = Est(solver="ECOS", **kw).fit(X, y, groups=groups, sample_weight=w).certificate_
        assert conic.route == "exact" and conic.verified
        assert cert.objective <= conic.objective + 1e-7
    return cert.route


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_property_certificate_verifies(problem):
    check_certificate(*problem)


@pytest.mark.parametrize("task,seed", [("classification", 0), ("regression", 4)])
def test_branch_unconstrained_feasible_is_the_free_fit(task, seed):
    """Input whose unconstrained fit meets every constraint (checked in numpy inside)."""
    assert check_certificate(150, 2, 4, task, "intersectional", "set", seed, False) == "unconstrained-feasible"


@pytest.mark.parametrize("task,seed", [("classification", 2), ("regression", 3)])
def test_branch_exact_route_is_a_global_optimum(task, seed):
    """Input whose unconstrained fit violates rationality: the exact program, with duals."""
    assert check_certificate(150, 2, 4, task, "intersectional", "set", seed, False) == "exact"


def test_exact_route_binds_and_reports_duals(apnea):
    """With a margin the rationality constraints bind: one program, duals > 0."""
    X, y, groups = apnea
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        m = FairUseClassifier(margin="se:1").fit(X, y, groups=groups)
    c = m.certificate_
    assert c.route == "exact" and c.verified  # (the free fit gains less than 1 s.e. for some group)
    active = c.table["rationality_active"]
    assert active.any() and not active.all()
    assert (c.table.loc[active, "dual"] > 0).all()
    assert (c.table.loc[~active, "dual"].abs() < 1e-5).all()
    assert c.iterations == 1


def test_native_exact_route_matches_the_conic_solvers(apnea):
    """The exact program solved natively (SLSQP + KKT duals) and by ECOS / Clarabel."""
    X, y, groups = apnea
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        for solver in ("auto", "ECOS", "CLARABEL"):
            fits[solver] = FairUseClassifier(margin="se:1", solver=solver).fit(X, y, groups=groups).certificate_
    assert fits["auto"].solver == "NATIVE" and fits["auto"].route == "exact"
    for solver in ("ECOS", "CLARABEL"):
        c = fits[solver]
        assert c.route == "exact" and c.solver == solver
        assert abs(fits["auto"].objective - c.objective) <= 1e-8
        np.testing.assert_allclose(fits["auto"].table["dual"], c.table["dual"], atol=1e-4)
    assert (fits["auto"].table["dual"] > 0).sum() >= 1


def test_margin_is_honoured(apnea):
    X, y, groups = apnea
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        m = FairUseClassifier(margin=0.01).fit(X, y, groups=groups)
    t = m.certificate_.table
    assert (t["gain"] >= 0.01 - TOL).all()


# ------------------------------------------------------------ brute-force optimality
def tiny_onehot_problem(seed):
    rng = np.random.default_rng(seed)
    n = 80
    x = rng.integers(0, 3, n).astype(float)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    xor = (a ^ b) * 2.0 - 1.0
    s = 0.6 * (x - 1) + 1.2 * xor * rng.choice([-1, 1]) + rng.normal(scale=0.3) * a
    y = (s + rng.logistic(size=n) > 0).astype(float)
    return x[:, None], y, pd.DataFrame({"a": a, "b": b})


def brute_force_onehot(x, y, groups, alpha, L0, generic):
    """Global optimum of the constrained one-hot problem by grid search + local polish.

    Parameters (w, c, u, v): group (i, j) intercept c + u*i + v*j; the penalty of the
    minimum-norm one-hot representation is alpha * (w^2 + u^2/2 + v^2/2).
    """
    keys = [(i, j) for i in (0, 1) for j in (0, 1)]
    cells = []  # (group index, x value, count, positives)
    for gi, (i, j) in enumerate(keys):
        m = (groups["a"].to_numpy() == i) & (groups["b"].to_numpy() == j)
        for xv in np.unique(x[m, 0]):
            mm = m & (x[:, 0] == xv)
            cells.append((gi, xv, mm.sum(), y[mm].sum()))
    cells = np.array(cells)
    n_g = np.array([cells[cells[:, 0] == g, 2].sum() for g in range(4)])
    I = np.array([k[0] for k in keys], float)
    J = np.array([k[1] for k in keys], float)

    def losses(P):  # P: (M, 4) -> L (M, 4 groups, 4 reports), objective (M,)
        w, c, u, v = P.T
        ints = c[:, None] + u[:, None] * I + v[:, None] * J  # (M, 4 reports)
        L = np.zeros((P.shape[0], 4, 4))
        for gi, xv, cnt, pos in cells:
            s = w[:, None] * xv + ints
            L[:, int(gi), :] += cnt * np.logaddexp(0, s) - pos * s
        L /= n_g[None, :, None]
        own = L[:, np.arange(4), np.arange(4)]
        obj = (own * n_g).sum(axis=1) / n_g.sum() + alpha * (w ** 2 + u ** 2 / 2 + v ** 2 / 2)
        return L, obj

    def violation(P):
        L, _ = losses(P)
        own = L[:, np.arange(4), np.arange(4)]
        rat = np.max(own - L0[None, :], axis=1)
        env = np.max(own[:, :, None] - L, axis=(1, 2))
        return np.maximum(rat, env)

    grid = np.linspace(-4, 4, 33)
    g0 = np.array([[generic[0], generic[1], 0.0, 0.0]])  # the generic model: always feasible
    best = (g0[0], losses(g0)[1][0])
    for w in np.linspace(-3, 3, 25):
        P = np.array([(w, c, u, v) for c, u, v in itertools.product(grid, grid, grid)])
        _, obj = losses(P)
        ok = violation(P) <= 1e-12
        if ok.any():
            k = np.argmin(np.where(ok, obj, np.inf))
            if best is None or obj[k] < best[1]:
                best = (P[k], obj[k])
    start = best[0]
    cons = [{"type": "ineq", "fun": lambda p: -violation(p[None, :])[0]}]
    res = minimize(lambda p: losses(p[None, :])[1][0], start, method="SLSQP", constraints=cons,
                   options={"ftol": 1e-12, "maxiter": 500})
    cand = res.x if violation(res.x[None, :])[0] <= 1e-12 else start
    return min(losses(cand[None, :])[1][0], best[1])


def test_ccp_reaches_brute_force_optimum_on_tiny_onehot_problems():
    alpha = 0.01
    hits, cases = 0, 0
    for seed in range(12):
        x, y, groups = tiny_onehot_problem(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SmallGroupWarning)
            m = FairUseClassifier(encoding="onehot", l2=alpha, merge_rows=True).fit(x, y, groups=groups)
        c = m.certificate_
        assert c.verified, (seed, c.failures)  # feasible in every case
        # generic losses from scikit-learn, independently
        lr = LogisticRegression(C=1 / (2 * alpha * len(y)), tol=1e-12, solver="newton-cholesky").fit(x, y)
        p0 = lr.predict_proba(x)[:, 1]
        L0 = np.array([log_loss(y[(groups.a == i) & (groups.b == j)], p0[(groups.a == i) & (groups.b == j)],
                                labels=[0, 1]) for i in (0, 1) for j in (0, 1)])
        np.testing.assert_allclose(L0, c.table["generic_loss"], atol=1e-6)
        opt = brute_force_onehot(x, y, groups, alpha, L0, (lr.coef_[0, 0], lr.intercept_[0]))
        cases += 1
        assert c.objective >= opt - 1e-4  # nothing feasible beats the global optimum
        hits += c.objective <= opt + 1e-4
    assert hits >= 0.9 * cases, (hits, cases)


def test_toy_constrained_onehot_protects_female_old(toy):
    X, y, groups = toy
    key = ("female", "old")
    mask = (groups["sex"] == "female").to_numpy() & (groups["age"] == "old").to_numpy()
    free = FairUseClassifier(encoding="onehot", fair_use=None, l2=1e-6).fit(X, y, groups=groups)
    fair = FairUseClassifier(encoding="onehot", l2=1e-6).fit(X, y, groups=groups)
    p0 = fair.generic_.predict_proba(X)[mask, 1]
    generic_ll = log_loss(y[mask], p0, labels=[0, 1])
    free_ll = log_loss(y[mask], free.predict_proba(X, groups=groups)[mask, 1], labels=[0, 1])
    fair_ll = log_loss(y[mask], fair.predict_proba(X, groups=groups)[mask, 1], labels=[0, 1])
    assert free_ll > generic_ll + 0.05
    assert fair_ll <= generic_ll + TOL
    assert fair.certificate_.verified and fair.certificate_.route == "ccp"
    assert key in fair.groups_


# ------------------------------------------------------------------- failure paths
def small_data(seed=0, n=200):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    g = rng.integers(0, 3, n)
    y = (X[:, 0] + 0.7 * (g - 1) + rng.logistic(size=n) > 0).astype(int)
    return X, y, pd.Series(g, name="g")


def test_infeasible_margin_raises_and_names_groups():
    X, y, g = small_data()
    with pytest.raises(FairUseInfeasibleError, match=r"cannot be met for group\(s\) \[\(0,\), \(1,\), \(2,\)\]"):
        FairUseClassifier(margin=5.0).fit(X, y, groups=g)


def test_infeasible_margin_for_one_group_falls_back_for_that_group():
    X, y, g = small_data()
    margin = {0: 0.0, 1: 5.0, 2: 0.0}
    with pytest.warns(FallbackWarning, match=r"group\(s\) \[\(1,\)\] were given the generic model"):
        m = FairUseClassifier(margin=margin, on_infeasible="generic").fit(X, y, groups=g)
    k = m.groups_.index((1,))
    np.testing.assert_allclose(m.coef_[k], m.generic_.coef_[0], atol=1e-12)
    np.testing.assert_allclose(m.intercept_[k], m.generic_.intercept_[0], atol=1e-12)
    t = m.certificate_.table
    assert t["generic_fallback"].tolist() == [False, True, False]
    assert not np.allclose(m.coef_[0], m.generic_.coef_[0])  # the others stay personalized
    assert m.certificate_.verified


def test_fallback_group_that_would_envy_gives_everyone_the_generic_model():
    """Group 0 served the generic model would prefer group 1's report: no partial fallback."""
    X, y, g = small_data()
    with pytest.warns(FallbackWarning, match=r"\[\(0,\), \(1,\), \(2,\)\] were given the generic model.*envy"):
        m = FairUseClassifier(margin={0: 5.0}, on_infeasible="generic").fit(X, y, groups=g)
    assert m.certificate_.route == "generic-fallback" and m.certificate_.verified
    for k in range(3):
        np.testing.assert_allclose(m.coef_[k], m.generic_.coef_[0], atol=1e-12)


def test_failed_solvers_raise_solver_error(monkeypatch):
    X, y, g = small_data()
    monkeypatch.setattr(_solve, "_attempt", lambda problem, name, opts: "error: SolverError: mocked")
    with pytest.raises(SolverError, match="ECOS.*mocked.*CLARABEL.*mocked"):
        FairUseClassifier(solver="ECOS").fit(X, y, groups=g)


def test_inaccurate_solver_is_retried_with_another(monkeypatch):
    X, y, g = small_data()
    real = _solve._attempt

    def flaky(problem, name, opts):
        status = real(problem, name, opts)
        return "optimal_inaccurate" if name == "ECOS" else status

    monkeypatch.setattr(_solve, "_attempt", flaky)
    m = FairUseClassifier(fair_use=None, solver="ECOS").fit(X, y, groups=g)
    assert m.certificate_.solver == "CLARABEL"
    assert ("ECOS", "optimal_inaccurate") in [(s.split("/")[0], st) for s, st in m.certificate_.attempts]


def test_native_newton_serves_unconstrained_fits_and_conic_solvers_the_rest():
    X, y, g = small_data()
    m = FairUseClassifier(fair_use=None).fit(X, y, groups=g)
    assert m.certificate_.solver == "NATIVE" and m.generic_.certificate_.solver == "NATIVE"
    c = FairUseClassifier(fair_use=None, solver="ECOS").fit(X, y, groups=g)
    np.testing.assert_allclose(m.coef_, c.coef_, atol=1e-6)
    np.testing.assert_allclose(m.intercept_, c.intercept_, atol=1e-6)
    assert m.certificate_.objective <= c.certificate_.objective + 1e-12
    # a single-class group pushes its intercept to the common interval: Newton's point is
    # outside it, and the interior-point method with the set as constraint takes over; it
    # agrees with the conic solver
    y2 = y.copy()
    y2[g.to_numpy() == 0] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        b = FairUseClassifier(fair_use=None).fit(X, y2, groups=g)
        bc = FairUseClassifier(fair_use=None, solver="ECOS").fit(X, y2, groups=g)
    assert b.certificate_.solver == "NATIVE"
    assert ("NATIVE/interior-point", "optimal") in b.certificate_.attempts
    assert bc.certificate_.solver in ("ECOS", "CLARABEL")
    assert b.certificate_.table["at_set_boundary"].iloc[0]
    assert bc.certificate_.table["at_set_boundary"].iloc[0]
    np.testing.assert_allclose(b.coef_, bc.coef_, atol=1e-5)
    np.testing.assert_allclose(b.intercept_, bc.intercept_, atol=1e-5)
    assert b.certificate_.objective <= bc.certificate_.objective + 1e-9


def test_verification_failure_raises_or_falls_back(monkeypatch):
    X, y, g = small_data(seed=3)
    # a model that needs the constrained route (one-hot, envy), then a verification that always fails
    monkeypatch.setattr(_routes, "feasible", lambda L, bound, fair_use, tol: False)
    with pytest.raises(VerificationError, match="failed verification"):
        FairUseClassifier(encoding="onehot").fit(X, y, groups=g)
    with pytest.warns(FallbackWarning):
        m = FairUseClassifier(encoding="onehot", on_infeasible="generic").fit(X, y, groups=g)
    assert m.certificate_.route == "generic-fallback"
    for k in range(len(m.groups_)):
        np.testing.assert_allclose(m.coef_[k], m.generic_.coef_[0], atol=1e-12)


def test_generic_passed_in_is_used_for_rationality():
    X, y, g = small_data()
    lr = LogisticRegression(C=0.01).fit(X, y)  # a weak generic model
    m = FairUseClassifier(generic=lr).fit(X, y, groups=g)
    p = lr.predict_proba(X)[:, 1]
    expected = [log_loss(y[g == k], p[g == k], labels=[0, 1]) for k in range(3)]
    np.testing.assert_allclose(m.certificate_.table["generic_loss"], expected, rtol=1e-9)
    assert m.certificate_.verified


# ------------------------------------------------------------------------ the hook
def test_hook_nonnegative_coefficients_keeps_guarantee(apnea):
    X, y, groups = apnea

    def monotone(v):
        return [v.shared_coef >= 0]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        m = FairUseClassifier(constraint_hook=monotone, margin=0.005).fit(X, y, groups=groups)
    assert (m.coef_ >= -1e-8).all()
    assert m.certificate_.verified


def test_hook_penalty_sparsity():
    X, y, g = small_data()
    Xw = np.column_stack([X, np.random.default_rng(1).normal(size=(len(X), 4))])

    def lasso(v):
        return 0.2 * cp.norm1(v.shared_coef)

    m = FairUseClassifier(constraint_hook=lasso).fit(Xw, y, groups=g)
    free = FairUseClassifier().fit(Xw, y, groups=g)
    assert (np.abs(free.coef_[0, 2:]) > 1e-3).all()
    assert (np.abs(m.coef_[0, 2:]) < 1e-6).sum() >= 2
    assert np.abs(m.coef_[0, 2:]).sum() < 0.5 * np.abs(free.coef_[0, 2:]).sum()
    assert m.certificate_.verified
