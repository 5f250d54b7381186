"""The decoupled encoding's per-group solves (``solvers.blocks``) against a conic solver
on each group's own program, and the routes that use them.

Each group's problem ``min L_g(w, b) s.t. ||w - c|| <= R, |b - b0| <= B`` is solved
independently by cvxpy (Clarabel) as the known answer; the tests choose the data and
the set so that a branch is taken (the ball binding for some groups and not others,
groups with fewer rows than features, hundreds of tiny groups solved as one batch, a
group of one class pushed to the interval's bound).
"""

import cvxpy as cp
import numpy as np
import pytest

from fairuse_opt import FairUseClassifier, FairUseInfeasibleError, FairUseRegressor
from fairuse_opt.model.family import Family
from fairuse_opt.model.losses import LogisticLoss, SquaredLoss
from fairuse_opt.problem import Problem, SetSpec, TrainData
from fairuse_opt.solvers import blocks


def decoupled_problem(Z, codes, y, loss, spec, G, w=None):
    n, d = Z.shape
    w = np.ones(n) if w is None else w
    fam = Family("decoupled", "set", d, np.arange(G)[:, None], [G])
    data = TrainData.build(Z, codes, loss.stats(y, w), G, merge=False)
    return Problem(fam, loss, data, alpha=1e-3, scale=np.ones(d), mean=np.zeros(d), set_spec=spec)


def conic_group(prob, g):
    """Group g's own program by cvxpy: ``(mean loss, w, b)``."""
    data, spec = prob.data, prob.set_spec
    rows = data.group_rows[g]
    Z, st = data.Z[rows], data.stats[rows]
    w = cp.Variable(prob.d)
    b = cp.Variable()
    expr = prob.loss.cvx(st, Z @ w + b)
    if isinstance(prob.loss, SquaredLoss):
        expr = expr + prob.loss.constant(st)
    cons = [cp.norm(w - spec.coef_center, 2) <= spec.coef_bound, cp.abs(b - spec.intercept_center) <= spec.intercept_bound]
    program = cp.Problem(cp.Minimize(expr / data.group_weight[g]), cons)
    for solver, opts in (("CLARABEL", dict(tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)),
                         ("ECOS", dict(abstol=1e-9, reltol=1e-9, feastol=1e-9))):
        program.solve(solver=solver, **opts)
        if program.status == "optimal":
            break
    assert program.status == "optimal"
    return float(program.value), w.value, float(b.value)


def own_losses(prob, theta):
    return prob.own_losses(theta)


def check_against_conic(prob, res, atol_theta=1e-4):
    assert res.status == "optimal", res.notes
    own = prob.own_losses(res.solution)
    Ws, bs = prob.effective(res.solution)
    for g in prob.active:
        value, w, b = conic_group(prob, g)
        # the per-group optimum: as low as the conic solver's (which stops at ~1e-8)
        assert own[g] <= value + 1e-8
        assert own[g] >= value - 1e-7
        np.testing.assert_allclose(Ws[g], w, atol=atol_theta)
        np.testing.assert_allclose(bs[g], b, atol=atol_theta)
        # inside the set
        assert np.linalg.norm(Ws[g] - prob.set_spec.coef_center) <= prob.set_spec.coef_bound * (1 + 1e-12)
        assert abs(bs[g] - prob.set_spec.intercept_center) <= prob.set_spec.intercept_bound * (1 + 1e-12)


def random_rows(seed, n, d, G, effect):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, d))
    codes = np.sort(rng.integers(0, G, n))
    W = rng.normal(size=(G, d)) * effect[:, None]
    y = (rng.random(n) < 1 / (1 + np.exp(-(np.einsum("ij,ij->i", Z, W[codes]) + 0.3)))).astype(float)
    return Z, codes, y


@pytest.mark.parametrize("loss", [LogisticLoss(), SquaredLoss()])
def test_groups_inside_and_on_the_ball_match_the_conic_solution(loss):
    G, d = 4, 3
    # weak effects for two groups (their minimum inside the ball), strong for two (outside)
    Z, codes, y = random_rows(0, 800, d, G, effect=np.array([0.05, 0.1, 3.0, 4.0]))
    if isinstance(loss, SquaredLoss):
        y = Z[:, 0] * np.array([0.05, 0.1, 3.0, 4.0])[codes] + np.random.default_rng(1).normal(size=len(y))
    spec = SetSpec(0.0, 5.0, np.zeros(d), 1.0)
    prob = decoupled_problem(Z, codes, y, loss, spec, G)
    assert blocks.separable(prob)
    res = blocks.solve(prob, np.zeros(prob.p))
    at = spec.at_boundary(prob.family, *prob.effective(res.solution))
    assert at.any() and not at.all()  # both branches: Newton inside, the secular method on the ball
    assert "(Newton): 2" in res.notes[0] and "on the ball: 2" in res.notes[0]
    assert "by the barrier method: 0" in res.notes[0]
    check_against_conic(prob, res)


def test_groups_with_fewer_rows_than_features_are_solved_in_their_rows_space():
    G, d = 3, 12
    Z, codes, y = random_rows(2, 21, d, G, effect=np.full(G, 2.0))
    spec = SetSpec(0.1, 5.0, np.random.default_rng(3).normal(size=d) * 0.1, 1.5)
    prob = decoupled_problem(Z, codes, y, LogisticLoss(), spec, G)
    assert all(prob.data.group_size(g) < d for g in range(G))
    res = blocks.solve(prob, np.zeros(prob.p))
    assert "in their rows' space: 3" in res.notes[0]
    own = prob.own_losses(res.solution)
    Ws, _ = prob.effective(res.solution)
    for g in range(G):
        value, _, _ = conic_group(prob, g)
        assert value - 1e-7 <= own[g] <= value + 1e-8
        # the minimum-norm solution: w - c has no component outside the rows' space
        Zg = prob.data.Z[prob.data.group_rows[g]]
        P = np.linalg.pinv(Zg) @ Zg
        dw = Ws[g] - spec.coef_center
        np.testing.assert_allclose(dw - P @ dw, 0.0, atol=1e-9)


def test_hundreds_of_tiny_groups_in_one_batch():
    G, d = 120, 2
    rng = np.random.default_rng(4)
    codes = np.repeat(np.arange(G), 4)
    Z = rng.normal(size=(len(codes), d))
    y = (rng.random(len(codes)) < 0.5).astype(float)
    spec = SetSpec(-0.2, 3.0, np.array([0.3, -0.1]), 0.8)
    prob = decoupled_problem(Z, codes, y, LogisticLoss(), spec, G)
    res = blocks.solve(prob, np.zeros(prob.p))
    assert res.status == "optimal"
    own = prob.own_losses(res.solution)
    for g in range(0, G, 7):  # every seventh group against its own conic program
        value, _, _ = conic_group(prob, g)
        assert value - 1e-7 <= own[g] <= value + 1e-8


def test_a_group_of_one_class_goes_to_the_intervals_bound():
    G, d = 2, 2
    Z, codes, y = random_rows(5, 200, d, G, effect=np.array([1.0, 1.0]))
    y[codes == 1] = 1.0  # group 1: every label 1, its loss falls as b grows
    spec = SetSpec(0.5, 2.0, np.zeros(d), 1.0)
    prob = decoupled_problem(Z, codes, y, LogisticLoss(), spec, G)
    res = blocks.solve(prob, np.zeros(prob.p))
    _, bs = prob.effective(res.solution)
    np.testing.assert_allclose(bs[1], 0.5 + 2.0, rtol=1e-8)
    # the interval binds: not the ball's case, so the barrier method solves that group
    assert "by the barrier method: 1" in res.notes[0]
    check_against_conic(prob, res, atol_theta=1e-3)


def data_frame(seed=0, n=600, d=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * [1.0, 2.0, 0.5, 1.0] + [0.0, 1.0, -2.0, 0.0]
    a, b = rng.integers(0, 2, n), rng.integers(0, 3, n)
    W = rng.normal(size=(6, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-np.einsum("ij,ij->i", X, W[a * 3 + b])))).astype(int)
    return X, y, np.column_stack([a, b])


def test_the_decoupled_fit_needs_no_conic_solver_and_matches_one(monkeypatch):
    from fairuse_opt.solvers import conic

    X, y, groups = data_frame()
    ref = FairUseClassifier(encoding="decoupled", fair_use="both", solver="ECOS").fit(X, y, groups=groups)

    def refuse(*a, **k):
        raise AssertionError("a conic solver was called")
    monkeypatch.setattr(conic.ConicBackend, "solve", refuse)
    est = FairUseClassifier(encoding="decoupled", fair_use="both").fit(X, y, groups=groups)
    cert = est.certificate_
    assert cert.verified and cert.route == "unconstrained-feasible"
    assert cert.attempts == [("NATIVE/per-group", "optimal")]
    assert cert.table["at_set_boundary"].any()
    assert cert.objective <= ref.certificate_.objective + 1e-9
    np.testing.assert_allclose(cert.objective, ref.certificate_.objective, rtol=1e-7)


def test_an_unreachable_margin_on_the_decoupled_route_needs_no_floor_solve(monkeypatch):
    from fairuse_opt.fairness import routes

    X, y, groups = data_frame(1)
    base = FairUseClassifier(encoding="decoupled", fair_use="both").fit(X, y, groups=groups)
    t = base.certificate_.table
    k = int(t["gain"].idxmax())
    key = tuple(t.loc[k, "group"])

    def no_floor(*a, **kw):
        raise AssertionError("a floor was solved")
    monkeypatch.setattr(routes, "_floor", no_floor)
    # the unconstrained fit gives each group its lowest loss: a margin above its gain is
    # out of reach, one below it is met by that fit
    with pytest.raises(FairUseInfeasibleError, match=str(key[0])):
        FairUseClassifier(encoding="decoupled", margin={key: float(t.loc[k, "gain"]) + 1e-4}).fit(
            X, y, groups=groups)
    met = FairUseClassifier(encoding="decoupled", margin={key: 0.9 * float(t.loc[k, "gain"])}).fit(
        X, y, groups=groups)
    assert met.certificate_.verified and met.certificate_.route == "unconstrained-feasible"
    fb = FairUseClassifier(encoding="decoupled", margin={key: float(t.loc[k, "gain"]) + 1e-4},
                           on_infeasible="generic")
    with pytest.warns(Warning):
        fb.fit(X, y, groups=groups)
    # the group is served the generic model (and with it, if it then envies another
    # group's model, every group: the fallback's own rule)
    assert fb.certificate_.verified and bool(fb.certificate_.table.loc[k, "generic_fallback"])


def test_the_decoupled_regressor_matches_its_conic_fit():
    rng = np.random.default_rng(6)
    X, _, groups = data_frame(2, n=300)
    y = X @ [1.0, -0.5, 0.3, 0.0] + groups[:, 0] * X[:, 0] + rng.normal(size=len(X))
    est = FairUseRegressor(encoding="decoupled", fair_use="both").fit(X, y, groups=groups)
    ref = FairUseRegressor(encoding="decoupled", fair_use="both", solver="CLARABEL").fit(X, y, groups=groups)
    assert est.certificate_.attempts == [("NATIVE/per-group", "optimal")]
    np.testing.assert_allclose(est.certificate_.objective, ref.certificate_.objective, rtol=1e-7)
    np.testing.assert_allclose(est.coef_, ref.coef_, atol=1e-3)


def _barrier_reference(batch, gap=1e-11):
    X, state = blocks._barrier(batch, batch.centres(), np.ones(batch.Gb, dtype=bool), gap)
    assert (state == 1).all()
    return X, batch.evaluate(X, False)[0]


@pytest.mark.parametrize("loss", [LogisticLoss(), SquaredLoss()])
def test_the_secular_method_on_the_ball_meets_the_barrier_methods_gap(loss):
    """Groups whose minimum lies outside the ball (one with two identical features: a
    singular Hessian): every one certified, inside the set, its loss within the gap of
    the barrier method's (which stops at a duality gap of 2 / t <= 1e-11)."""
    G, d = 5, 4
    Z, codes, y = random_rows(7, 1500, d, G, effect=np.array([2.0, 3.0, 4.0, 2.5, 3.5]))
    Z[codes == 2, 3] = Z[codes == 2, 2]  # group 2: features 2 and 3 identical
    if isinstance(loss, SquaredLoss):
        y = Z @ np.array([1.0, -2.0, 1.5, 0.5]) * (1 + codes) + np.random.default_rng(8).normal(size=len(y))
    spec = SetSpec(0.0, 5.0, np.zeros(d), 1.0)
    prob = decoupled_problem(Z, codes, y, loss, spec, G)
    res = blocks.solve(prob, np.zeros(prob.p))
    assert f"on the ball: {G}" in res.notes[0] and "by the barrier method: 0" in res.notes[0]
    check_against_conic(prob, res)
    local = np.arange(G)
    batch = blocks._Batch(prob.data.Z, prob.data.stats, local[prob.data.codes], prob.Wg, np.zeros((G, d)), spec,
                          prob.loss)
    _, f_barrier = _barrier_reference(batch)
    Ws, bs = prob.effective(res.solution)
    f_ball = batch.evaluate(np.column_stack([Ws, bs]), False)[0]
    assert np.all(f_ball <= f_barrier + 1e-11 * np.maximum(1, np.abs(f_barrier)))
    assert np.all(f_ball >= f_barrier - 1e-11 * np.maximum(1, np.abs(f_barrier)))


def test_the_secular_method_leaves_an_inside_minimum_and_a_binding_interval_alone():
    """From points where Newton's method left the set although the minimum is inside, and
    for a group whose interval binds: not certified by the method on the ball (state 0),
    so that the barrier method solves them."""
    G, d = 2, 2
    Z, codes, y = random_rows(9, 400, d, G, effect=np.array([0.3, 1.0]))
    y[codes == 1] = 1.0  # group 1: one class, its intercept pushed to the interval's bound
    spec = SetSpec(0.0, 2.0, np.zeros(d), 5.0)  # a ball that does not bind group 0
    prob = decoupled_problem(Z, codes, y, LogisticLoss(), spec, G)
    batch = blocks._Batch(prob.data.Z, prob.data.stats, np.arange(G)[prob.data.codes], prob.Wg, np.zeros((G, d)),
                          spec, prob.loss)
    start = batch.centres()
    start[0, :-1] = [0.5, 0.5]  # group 0 from a point inside, its minimum inside too
    _, state = blocks._on_ball(batch, start, 1e-11)
    assert (state == 0).all()
    res = blocks.solve(prob, np.zeros(prob.p))
    assert res.status == "optimal" and "by the barrier method: 1" in res.notes[0]
    check_against_conic(prob, res, atol_theta=1e-3)


@pytest.mark.parametrize("loss", [LogisticLoss(), SquaredLoss()])
def test_losses_gradients_and_hessians_by_group_equal_the_rowwise_sums(loss):
    """The two ways of evaluating a batch (a BLAS product per long group; per-row terms
    summed by runs) give the same losses, gradients and Hessians, with rows to ignore
    (code Gb) between two groups."""
    rng = np.random.default_rng(11)
    d, sizes = 5, [700, 40, 600]  # the middle group's rows are ignored (code Gb)
    codes = np.repeat([0, 2, 1], sizes)
    Z = rng.normal(size=(len(codes), d))
    y = (rng.random(len(codes)) < 0.4).astype(float) if isinstance(loss, LogisticLoss) else rng.normal(size=len(codes))
    stats = loss.stats(y, np.ones(len(codes)))
    spec = SetSpec(0.1, 3.0, np.zeros(d), 2.0)
    W = np.array([700.0, 600.0])
    batch = blocks._Batch(Z, stats, codes, W, np.zeros((2, d)), spec, loss)
    assert batch.long and batch.runs == [(0, 700), (740, 1340)]
    X = rng.normal(size=(2, d + 1)) * 0.3
    by_group = batch.evaluate(X, True)
    batch.long, batch.outer = False, True
    rowwise = batch.evaluate(X, True)
    for a, b in zip(by_group, rowwise):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # against sums written out
    for j, rows in enumerate([slice(0, 700), slice(740, 1340)]):
        s = Z[rows] @ X[j, :-1] + X[j, -1]
        Z1 = np.column_stack([Z[rows], np.ones(rows.stop - rows.start)])
        np.testing.assert_allclose(by_group[0][j], loss.value(stats[rows], s).sum() / W[j], rtol=1e-12)
        np.testing.assert_allclose(by_group[1][j], Z1.T @ loss.grad(stats[rows], s) / W[j], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(by_group[2][j], Z1.T @ (Z1 * loss.curvature(stats[rows], s)[:, None]) / W[j],
                                   rtol=1e-10, atol=1e-14)


def test_long_groups_beside_groups_with_fewer_rows_than_features():
    G, d = 3, 8
    rng = np.random.default_rng(12)
    codes = np.repeat(np.arange(G), [600, 5, 700])
    Z = rng.normal(size=(len(codes), d))
    W = rng.normal(size=(G, d)) * 2
    y = (rng.random(len(codes)) < 1 / (1 + np.exp(-np.einsum("ij,ij->i", Z, W[codes])))).astype(float)
    spec = SetSpec(0.0, 4.0, np.zeros(d), 1.0)
    prob = decoupled_problem(Z, codes, y, LogisticLoss(), spec, G)
    res = blocks.solve(prob, np.zeros(prob.p))
    assert "in their rows' space: 1" in res.notes[0]
    check_against_conic(prob, res, atol_theta=1e-3)
