"""The one-hot route's restrictions by sequential quadratic models
(``fairuse_opt.solvers.onehot``) against the interior-point method they replace.

Answers known in advance: the model program (a quadratic program with penalised slacks)
against Clarabel at tight tolerances; every restriction of a one-hot fit against
``native.barrier`` on the same restriction (same convex problem: same minimum); whole
fits against the route with the interior-point method (``ONEHOT_MODELS = False``), on
data where envy-freeness binds and where rationality binds.
"""

import warnings

import numpy as np
import pytest

from fairuse_opt import FairUseClassifier
from fairuse_opt.fairness import routes
from fairuse_opt.solvers import native, onehot


def _data(n, seed, additive=True, d=5):
    """Three binary attributes (8 groups); group offsets additive in the attributes plus
    interactions (``additive``) or the benchmark's non-additive offsets; a slope that
    differs with the third attribute."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    A = rng.integers(0, 2, size=(n, 3))
    if additive:
        off = 0.8 * A[:, 0] - 0.6 * A[:, 1] + 0.5 * A[:, 0] * A[:, 2] - 0.7 * A[:, 1] * A[:, 2]
    else:
        off = np.array([0.6, -0.6, 0.0, 0.0, 0.0, 0.0, 0.8, -0.8])[A[:, 0] + 2 * A[:, 1] + 4 * A[:, 2]]
    beta = rng.normal(size=d) / np.sqrt(d)
    slope = ((A[:, 2] - 0.5)[:, None] * X).sum(1) * 0.8 / np.sqrt(d)
    y = (X @ beta + slope + off + rng.logistic(size=n) > 0).astype(int)
    return X, y, A


def _bench_data(n, d, seed):
    """benchmarks/bench_user_path.py's data (8 groups, offsets 0 for half of them and
    +-0.6, +-0.8 for the others), the groups as three binary attributes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    g = rng.integers(0, 8, n)
    offsets = np.array([0.6, -0.6, 0.0, 0.0, 0.0, 0.0, 0.8, -0.8])
    beta = rng.normal(size=d) / np.sqrt(d)
    dev = rng.normal(size=(8, d)) / np.sqrt(d) * 0.5
    y = (np.einsum("ij,ij->i", X, beta + dev[g]) + offsets[g] + rng.logistic(size=n) > 0).astype(np.int64)
    return X, y, np.column_stack([(g >> a) & 1 for a in range(3)])


def _fit(X, y, A, models, monkeypatch, **kw):
    monkeypatch.setattr(routes, "ONEHOT_MODELS", models)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FairUseClassifier(l2=1e-3, encoding="onehot", **kw).fit(X, y, groups=A)


@pytest.mark.parametrize("rho", [1.0, 100.0, 1e4])
def test_penalty_qp_matches_clarabel(rho):
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(int(rho))
    p, K = 12, 20
    M = rng.normal(size=(p, p))
    H = M @ M.T / p + 0.01 * np.eye(p)
    J = rng.normal(size=(K, p)) * 0.1
    h = rng.normal(size=K) * 0.01
    g = rng.normal(size=p) * 0.1
    d, z, ok = onehot.penalty_qp(H, g, J, h, rho)
    assert ok
    dv, sv = cp.Variable(p), cp.Variable(K)
    rows = h + J @ dv <= sv
    prog = cp.Problem(cp.Minimize(0.5 * cp.quad_form(dv, H, assume_PSD=True) + g @ dv + rho * cp.sum(sv)),
                      [rows, sv >= 0])
    prog.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    mine = 0.5 * d @ H @ d + g @ d + rho * np.maximum(h + J @ d, 0.0).sum()
    assert mine == pytest.approx(prog.value, abs=1e-9 * max(1.0, rho))
    np.testing.assert_allclose(d, dv.value, atol=1e-6)
    np.testing.assert_allclose(z, rows.dual_value, atol=1e-5 * max(1.0, rho))
    # rows bind at the optimum (positive multipliers); with a small penalty some stay
    # violated (their slacks paid for)
    assert (z > 1e-6).any()
    if rho == 1.0:
        assert (np.maximum(h + J @ d, 0.0) > 1e-8).any()


def test_every_restriction_matches_the_interior_point_method(monkeypatch):
    """Each restriction of a one-hot fit, solved both ways: the same minimum of the same
    convex function (the interior-point method stops at a relative duality gap of
    1e-10 here)."""
    seen = []
    orig = onehot.restriction

    def both(prob, theta, **kw):
        res = orig(prob, theta, **kw)
        ref = native.barrier(prob, theta, bound=kw["bound"], pairs=kw["pairs"], lin_grad=kw["lin_grad"],
                             lin_const=kw["lin_const"], rho=kw["rho"], tol=1e-12, max_iter=200)
        seen.append((res, ref, kw["rho"]))
        return res

    monkeypatch.setattr(onehot, "restriction", both)
    X, y, A = _data(1500, 0)
    m = _fit(X, y, A, True, monkeypatch)
    assert m.certificate_.verified and m.certificate_.route == "ccp"
    assert len(seen) >= 3
    for res, ref, rho in seen:
        assert res.status == "optimal"
        # F at each solution (res.objective and ref.objective are both F's value there,
        # the barrier's with its slacks a hair above the violations)
        assert res.objective <= ref.objective + 1e-8 * max(1.0, abs(ref.objective))
        if ref.status == "optimal":
            assert res.objective == pytest.approx(ref.objective, rel=1e-7)
            np.testing.assert_allclose(res.solution, ref.solution, atol=1e-3)


CASES = [  # (rows, seed, additive offsets, fair_use, margin): see test_same_fit_as_interior_point
    (2000, 0, True, ("rationality", "envy_freeness"), 0.0),
    (2000, 1, True, ("rationality", "envy_freeness"), 0.0),
    (2000, 1, False, ("rationality", "envy_freeness"), 0.0),
    (2000, 0, True, ("envy_freeness",), 0.0),
    (3000, 2, True, ("rationality", "envy_freeness"), 0.0),
    (4000, 0, False, ("rationality", "envy_freeness"), 0.0),
]


@pytest.mark.parametrize("n, seed, additive, fair_use, margin", CASES)
def test_same_fit_as_interior_point(n, seed, additive, fair_use, margin, monkeypatch):
    X, y, A = _data(n, seed, additive)
    ref = _fit(X, y, A, False, monkeypatch, fair_use=fair_use, margin=margin)
    new = _fit(X, y, A, True, monkeypatch, fair_use=fair_use, margin=margin)
    c0, c1 = ref.certificate_, new.certificate_
    assert c1.route == c0.route == "ccp"
    assert c1.verified and c0.verified
    assert any(a.startswith("NATIVE/sqp-restriction") for a, _ in c1.attempts)
    assert not any(a.startswith("NATIVE/sqp-restriction") for a, _ in c0.attempts)
    np.testing.assert_allclose(new.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(new.intercept_, ref.intercept_, atol=1e-6)
    assert c1.objective == pytest.approx(c0.objective, abs=1e-9)
    # the constraints the answer binds on are the same
    np.testing.assert_array_equal(c1.table["rationality_active"], c0.table["rationality_active"])


def test_cases_bind_envy_and_rationality(monkeypatch):
    """The cases above include answers better than the generic model with envy-freeness
    binding, and with rationality binding on some groups but not all."""
    envy_bind = rat_some = False
    for n, seed, additive, fair_use, margin in CASES:
        X, y, A = _data(n, seed, additive)
        c = _fit(X, y, A, True, monkeypatch, fair_use=fair_use, margin=margin).certificate_
        better = c.objective < c.objective_generic - 1e-4
        envy_bind |= better and bool((c.table["envy_slack"] <= 1e-6).any())
        k = int(c.table["rationality_active"].sum())
        rat_some |= better and 0 < k < len(c.table)
    assert envy_bind and rat_some


@pytest.mark.parametrize("n, d, seed", [(2000, 30, 1), (4000, 5, 1)])
def test_tied_polish_skipped_only_where_it_cannot_gain(n, d, seed, monkeypatch):
    """Where the best point is the generic model (every group pooled on it: the
    benchmark's data), the polish with the pooled groups tied is skipped: the generic
    model minimises the objective over every model that serves all groups alike.  The fit
    is the one the polish gives, and the interior-point route's."""
    X, y, A = _bench_data(n, d, seed)
    answers = []
    orig = routes._subspace_minimum
    monkeypatch.setattr(routes, "_subspace_minimum", lambda *a: answers.append(orig(*a)) or answers[-1])
    skipped = _fit(X, y, A, True, monkeypatch)
    assert answers == [True]
    c = skipped.certificate_
    assert c.verified and c.objective == pytest.approx(c.objective_generic, abs=1e-12)
    monkeypatch.setattr(routes, "_subspace_minimum", lambda *a: False)
    polished = _fit(X, y, A, True, monkeypatch)
    np.testing.assert_allclose(skipped.coef_, polished.coef_, atol=1e-9)
    np.testing.assert_allclose(skipped.intercept_, polished.intercept_, atol=1e-9)
    assert polished.certificate_.objective == pytest.approx(c.objective, abs=1e-12)
    reference = _fit(X, y, A, False, monkeypatch)
    np.testing.assert_allclose(skipped.coef_, reference.coef_, atol=1e-6)
    np.testing.assert_allclose(skipped.intercept_, reference.intercept_, atol=1e-6)


def test_subspace_minimum_refuses_a_point_that_is_not_one(monkeypatch):
    """The unconstrained fit minimises the objective over the whole space (no equalities)
    and a point moved off it does not; with every group tied, the generic model is the
    minimum and the unconstrained fit (different offsets per group) is not."""
    X, y, A = _data(2000, 1)
    got = {}
    orig = routes.RestrictionSequence.run

    def run(self, setup, fair_use, bound, tol, max_iter, theta_u, theta_generic, *a):
        got.update(prob=setup.problem, theta_u=theta_u, theta_generic=theta_generic)
        return orig(self, setup, fair_use, bound, tol, max_iter, theta_u, theta_generic, *a)

    monkeypatch.setattr(routes.RestrictionSequence, "run", run)
    _fit(X, y, A, True, monkeypatch)
    prob, theta_u, theta_g = got["prob"], got["theta_u"], got["theta_generic"]
    none = np.zeros((0, prob.p))
    assert routes._subspace_minimum(prob, theta_u, none)
    assert not routes._subspace_minimum(prob, theta_u + 0.01, none)
    all_tied = routes._tie_equalities(prob, [(0, r) for r in range(1, prob.G)])
    assert routes._subspace_minimum(prob, theta_g, all_tied)
    assert not routes._subspace_minimum(prob, theta_u, all_tied)


def test_restriction_without_rows_is_left_to_the_interior_point_method():
    from types import SimpleNamespace

    prob = SimpleNamespace(G=2, p=3, active=[0, 1])
    res = onehot.restriction(prob, np.zeros(3), bound=None, pairs=[], lin_grad=None, lin_const=None, rho=1.0)
    assert res.status == "failed" and not res.ok
