"""The problem object: numpy values and gradients against cvxpy and finite differences.

One :class:`~fairuse_opt.problem.Problem` is consumed by both the native and the conic
backends; here its numpy methods (objective, gradient, Hessian, the group-loss matrix
and its Jacobian) are checked against the cvxpy program compiled from the same object
and against central finite differences, on random problems of every family.
"""

from __future__ import annotations

import numpy as np
import pytest

from fairuse_opt.model import Family, LogisticLoss, SquaredLoss
from fairuse_opt.problem import Problem, SetSpec, TrainData

ENCODINGS = [("none", "set"), ("onehot", "set"), ("intersectional", "set"), ("intersectional", "penalty"),
             ("decoupled", "set"), ("decoupled", "penalty")]


def random_problem(seed, encoding, group_reg, loss, n=120, d=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d) + rng.normal(size=d)
    a, b = rng.integers(0, 2, n), rng.integers(0, 3, n)
    keys = sorted(set(zip(a, b)))
    codes = np.array([keys.index(k) for k in zip(a, b)])
    G = len(keys)
    if encoding == "none":
        codes, G = np.zeros(n, dtype=np.int64), 1
    y = (rng.random(n) < 0.4).astype(float) if isinstance(loss, LogisticLoss) else rng.normal(size=n) * 2
    w = rng.uniform(0.2, 2.0, n)
    mean = np.average(X, axis=0, weights=w)
    scale = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w))
    Z = (X - mean) / scale
    lc = np.array([[k[0], k[1]] for k in keys]) if encoding != "none" else np.zeros((1, 0), dtype=np.int64)
    fam = Family(encoding, group_reg, d, lc, [2, 3] if encoding != "none" else [], shift=mean / scale)
    data = TrainData.build(Z, codes, loss.stats(y, w), G, merge=False)
    spec = SetSpec(0.1, 5.0, np.zeros(d), 3.0)
    prob = Problem(fam, loss, data, alpha=0.05, scale=scale, mean=mean, set_spec=spec)
    theta = rng.normal(scale=0.5, size=fam.n_params)
    return prob, theta, (X, codes, y, w)


def brute_loss_matrix(prob, theta, raw, loss):
    """L[g, r] from the raw rows and the effective models, row by row."""
    X, codes, y, w = raw
    Ws, bs = prob.effective(theta)
    G = prob.G
    Z = (X - prob.mean) / prob.scale
    L = np.zeros((G, G))
    for g in range(G):
        m = codes == g
        for r in range(G):
            L[g, r] = np.average(loss.row_loss(y[m], Z[m] @ Ws[r] + bs[r]), weights=w[m])
    return L


def fd_grad(f, theta, h=1e-6):
    out = np.zeros_like(theta)
    for k in range(len(theta)):
        e = np.zeros_like(theta)
        e[k] = h
        out[k] = (f(theta + e) - f(theta - e)) / (2 * h)
    return out


@pytest.mark.parametrize("loss", [LogisticLoss(), SquaredLoss()], ids=["logistic", "squared"])
@pytest.mark.parametrize("encoding,group_reg", ENCODINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_methods_agree_with_cvxpy_and_finite_differences(loss, encoding, group_reg, seed):
    prob, theta, raw = random_problem(seed, encoding, group_reg, loss)
    # objective and gradient against cvxpy, compiled from the same problem
    prog = prob.to_cvxpy(form="direct")
    prog.theta.value = theta
    val, grad = prob.value_grad(theta)
    assert val == pytest.approx(float(prog.objective.value), rel=1e-10)
    cvx_grad = np.asarray(prog.objective.grad[prog.theta].todense()).ravel()
    np.testing.assert_allclose(grad, cvx_grad, rtol=1e-8, atol=1e-10)
    # ... and against finite differences
    np.testing.assert_allclose(grad, fd_grad(prob.objective, theta), rtol=1e-5, atol=1e-7)
    # the Hessian against finite differences of the gradient
    H = prob.hessian(theta)
    Hfd = np.column_stack([fd_grad(lambda t: prob.value_grad(t)[1][k], theta) for k in range(prob.p)]).T
    np.testing.assert_allclose(H, Hfd, rtol=1e-4, atol=1e-6)
    # the group-loss matrix against a row-by-row recomputation and cvxpy
    L, E = prob.loss_matrix(theta, jacobian=True)
    np.testing.assert_allclose(L, brute_loss_matrix(prob, theta, raw, loss), rtol=1e-10)
    pairs = [(g, r) for g in range(prob.G) for r in range(prob.G)]
    J = prob.pair_gradients(E, pairs).toarray()
    for k, (g, r) in enumerate(pairs[:: max(1, len(pairs) // 7)]):
        kk = pairs.index((g, r))
        expr = prog.group_loss_expr(g, r)
        assert L[g, r] == pytest.approx(float(expr.value), rel=1e-10)
        np.testing.assert_allclose(J[kk], np.asarray(expr.grad[prog.theta].todense()).ravel(),
                                   rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(J[kk], fd_grad(lambda t: prob.loss_matrix(t)[g, r], theta),
                                   rtol=1e-5, atol=1e-7)
    # own losses: the diagonal, with the diagonal's gradients
    own, og = prob.own_losses(theta, grad=True)
    np.testing.assert_allclose(own, np.diag(L), rtol=1e-12)
    np.testing.assert_allclose(og, J[[pairs.index((g, g)) for g in range(prob.G)]], rtol=1e-10, atol=1e-13)


def test_merged_rows_give_the_same_problem():
    loss = LogisticLoss()
    rng = np.random.default_rng(3)
    n = 400
    Z = rng.integers(0, 3, size=(n, 2)).astype(float)
    codes = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.5).astype(float)
    w = np.ones(n)
    w[::7] = 0.0  # zero-weight rows carry no loss
    fam = Family("intersectional", "set", 2, np.array([[0], [1]]), [2])
    kw = dict(alpha=0.01, scale=np.ones(2), mean=np.zeros(2))
    a = Problem(fam, loss, TrainData.build(Z, codes, loss.stats(y, w), 2, merge=True), **kw)
    b = Problem(fam, loss, TrainData.build(Z, codes, loss.stats(y, w), 2, merge=False), **kw)
    assert a.data.n_distinct <= 18 < b.data.n_distinct
    theta = rng.normal(size=fam.n_params)
    np.testing.assert_allclose(a.value_grad(theta)[1], b.value_grad(theta)[1], rtol=1e-12)
    np.testing.assert_allclose(a.loss_matrix(theta), b.loss_matrix(theta), rtol=1e-12)
    np.testing.assert_allclose(a.hessian(theta), b.hessian(theta), rtol=1e-12)


class _Recorder:
    """A progress sink that wants every record and keeps the objectives reported."""

    def __init__(self):
        self.values = []

    def wanted(self):
        return True

    def __call__(self, stage, iteration, objective, violation):
        self.values.append(objective)


@pytest.mark.parametrize("precondition", [True, False])
def test_slsqp_reports_and_guards_the_iterate_it_is_at(precondition):
    """With or without the Hessian preconditioning, the progress records and the
    ``abort_above`` guard see the objective at the iterate in ``theta`` (a descent from
    a feasible start: the objective reported last is the solution's, and a guard just
    above the start's objective never fires)."""
    from fairuse_opt.solvers import native

    prob, theta, _ = random_problem(3, "intersectional", "penalty", LogisticLoss())
    prob.set_spec = None
    bound = prob.own_losses(theta) + 0.05  # loose rationality bounds, feasible at the start
    rec = _Recorder()
    res = native.slsqp(prob, theta, bound, [], 1e-7, progress=rec, precondition=precondition)
    assert res.status == "optimal" and res.iterations >= 3
    assert prob.objective(res.solution) < prob.objective(theta) - 1e-3
    np.testing.assert_allclose(rec.values[-1], prob.objective(res.solution), rtol=1e-12)
    assert max(rec.values) <= prob.objective(theta) + 1e-12
    guarded = native.slsqp(prob, theta, bound, [], 1e-7, precondition=precondition,
                           abort_above=prob.objective(theta) + 1e-9)
    assert guarded.status == "optimal", guarded.attempts
    np.testing.assert_allclose(guarded.solution, res.solution, atol=1e-8)


def test_thinned_data_keeps_every_group_and_its_rows_statistics():
    """Evenly spaced rows within each group; a group smaller than ``min_per_group`` is
    kept whole; the statistics travel with their rows."""
    rng = np.random.default_rng(5)
    sizes = [2000, 37, 600]
    codes = np.repeat(np.arange(3), sizes)
    Z = rng.normal(size=(codes.size, 2))
    stats = np.column_stack([rng.uniform(0.5, 2, codes.size), rng.random(codes.size)])
    data = TrainData.build(Z, codes, stats, 4, merge=False)  # group 3 has no rows
    sub = data.thinned(264, min_per_group=100)  # 2637 rows: stride 10
    got = [sub.group_size(g) for g in range(4)]
    assert got == [200, 37, 100, 0]  # stride 10: 2000 -> 200, 37 whole, 600 -> max(60, 100)
    for g in range(3):
        rows = data.Z[data.group_rows[g]]
        kept = sub.Z[sub.group_rows[g]]
        idx = [int(np.flatnonzero((rows == z).all(axis=1))[0]) for z in kept]
        assert idx == sorted(idx) and len(set(idx)) == len(idx)
        gaps = np.diff(idx)
        assert gaps.size == 0 or gaps.max() - gaps.min() <= 1  # evenly spaced
        np.testing.assert_array_equal(sub.stats[sub.group_rows[g]], data.stats[data.group_rows[g]][idx])
        np.testing.assert_allclose(sub.group_weight[g], sub.stats[sub.group_rows[g], 0].sum())
    assert sub.total_weight == pytest.approx(sub.stats[:, 0].sum())


def _counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def wrapped(*args, **kwargs):
        calls.append(args[0].data.n_distinct)  # the rows of the problem it was asked for
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return calls


def test_newton_from_a_subsample_fit_reaches_the_plain_optimum(monkeypatch):
    """Started from its solution on a subsample, Newton's method ends where it ends from
    the start given, in no more steps on every row."""
    from fairuse_opt.solvers import native

    prob, _, _ = random_problem(7, "intersectional", "penalty", LogisticLoss(), n=3000)
    prob.set_spec = None
    start = np.zeros(prob.p)
    plain_h = _counting(monkeypatch, native, "_weighted_hessian")
    plain = native.newton(prob, start, gtol=1e-10, sketch=False)
    plain_h = list(plain_h)  # the counter below wraps this one
    monkeypatch.setattr(native, "SKETCH_ROWS", 300)  # 3000 distinct rows > 4 * 300
    fast_h = _counting(monkeypatch, native, "_weighted_hessian")
    fast = native.newton(prob, start, gtol=1e-10)
    assert plain.status == fast.status == "optimal"
    assert fast.notes == ["started from a subsample fit"] and plain.notes == []
    np.testing.assert_allclose(fast.solution, plain.solution, atol=1e-9)
    assert np.max(np.abs(prob.value_grad(fast.solution)[1])) <= 1e-10
    full = prob.data.n_distinct
    assert set(plain_h) == {full} and fast_h.count(full) <= len(plain_h)
    assert min(fast_h) < full  # the subsample fit had Hessians of its own
    # the subsample is no start when it does not lower the objective: from the optimum
    again = native.newton(prob, plain.solution, gtol=1e-10)
    assert again.notes == [] and again.iterations == 0


@pytest.mark.parametrize("method", ["newton", "barrier"])
def test_stop_below_ends_at_the_first_iterate_that_reaches_the_value(method):
    """``stop_below`` above the minimum: the solver stops early at a point that reaches
    it (inside the set, for the interior-point method); below the minimum: the ordinary
    optimum, as without it."""
    from fairuse_opt.solvers import native

    prob, _, _ = random_problem(4, "intersectional", "set", LogisticLoss(), n=400)
    if method == "newton":
        prob.set_spec = None
        run = lambda **kw: native.newton(prob, np.zeros(prob.p), sketch=False, **kw)  # noqa: E731
    else:
        run = lambda **kw: native.barrier(prob, np.zeros(prob.p), bound=None, pairs=[], lin_grad=None,  # noqa: E731
                                          lin_const=None, rho=1.0, **kw)
    full = run()
    assert full.status == "optimal"
    start = prob.objective(np.zeros(prob.p))
    target = full.objective + 0.2 * (start - full.objective)
    early = run(stop_below=target)
    assert early.status == "reached" and early.iterations < full.iterations
    assert full.objective < prob.objective(early.solution) <= target
    if method == "barrier":
        assert np.all(prob.set_spec.constraints(prob.family, early.solution)[0] > 0)  # strictly inside
    below = run(stop_below=full.objective - 1e-3)
    assert below.status == "optimal"
    np.testing.assert_allclose(below.solution, full.solution, atol=1e-8)


@pytest.mark.parametrize("loss", [LogisticLoss(), SquaredLoss()], ids=["logistic", "squared"])
@pytest.mark.parametrize("encoding,group_reg", ENCODINGS)
@pytest.mark.parametrize("n", [120, 400])  # 400 rows in 6 groups: the per-group loop, not the small-groups path
def test_design_matrix_and_per_group_blocks_agree(monkeypatch, loss, encoding, group_reg, n):
    """The two ways the numpy methods compute: with the design matrix (small data, shared
    weights) and by blocks a group at a time (large data, or decoupled weights)."""
    import fairuse_opt.problem.problem as problem_module

    prob, theta, raw = random_problem(11, encoding, group_reg, loss, n=n)
    if encoding == "decoupled":
        assert prob.design_matrix() is None
    else:
        assert prob.design_matrix() is not None and prob.design_matrix().shape == (prob.data.n_distinct, prob.p)
    weights = np.random.default_rng(2).uniform(0.1, 2.0, prob.G)
    fast = dict(vg=prob.value_grad(theta), own=prob.own_losses(theta, grad=True), H=prob.hessian(theta),
                Hw=prob.weighted_hessian(theta, weights))
    monkeypatch.setattr(problem_module, "DESIGN_CELLS", 0)
    blocks, _, _ = random_problem(11, encoding, group_reg, loss, n=n)
    assert blocks.design_matrix() is None
    np.testing.assert_allclose(fast["vg"][0], blocks.value_grad(theta)[0], rtol=1e-13)
    np.testing.assert_allclose(fast["vg"][1], blocks.value_grad(theta)[1], rtol=1e-11, atol=1e-14)
    own, og = blocks.own_losses(theta, grad=True)
    np.testing.assert_allclose(fast["own"][0], own, rtol=1e-13)
    np.testing.assert_allclose(fast["own"][1], og, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(fast["own"][0], np.diag(brute_loss_matrix(prob, theta, raw, loss)), rtol=1e-12)
    np.testing.assert_allclose(fast["H"], blocks.hessian(theta), rtol=1e-11, atol=1e-14)
    ref = blocks.combine_hessians(blocks.effective_hessians(theta), weights)
    np.testing.assert_allclose(fast["Hw"], ref, rtol=1e-11, atol=1e-14)



@pytest.mark.parametrize("at_optimum", [True, False])
def test_slsqp_ends_a_run_that_stalls_only_at_a_kkt_point(monkeypatch, at_optimum):
    """scipy's SLSQP can keep iterating after it has converged (seen: to its iteration
    limit on benchmark cells of 10,000 x 100 and 10^6 x 30 rows).  A stand-in for scipy
    that reports the same iterate forever: at the program's optimum (KKT to 1e-9) the run
    ends after ``STALL_ITERATIONS`` unchanged iterations and is optimal; at a feasible
    point that is not optimal it is left to scipy (its iteration limit here)."""
    import scipy.optimize

    from fairuse_opt.solvers import native

    prob, theta, _ = random_problem(3, "intersectional", "penalty", LogisticLoss())
    prob.set_spec = None
    free = native.newton(prob, theta, sketch=False).solution
    own = prob.own_losses(free)
    bound = own + 0.05
    bound[int(np.argmax(own))] = own.max() - 0.01  # one rationality constraint binds
    ref = native.barrier(prob, free, bound=bound, pairs=[], lin_grad=None, lin_const=None, rho=1e4, tol=1e-12)
    assert ref.status == "optimal"
    real = native.slsqp(prob, ref.solution, bound, [], 1e-7)
    assert real.status == "optimal"
    point = real.solution
    if not at_optimum:  # a step down the binding group's own loss: feasible, not optimal
        g = int(np.argmax(own))
        step = prob.own_losses(point, grad=True)[1][g]
        point = point - 0.05 * step / np.linalg.norm(step)
        assert np.all(prob.own_losses(point) < bound)
    calls = []

    class Out:
        success, nit, fun = False, 0, 0.0

    def fake_minimize(fun, x0, jac, method, constraints, options, callback):
        out = Out()
        out.x = point.copy()
        for it in range(options["maxiter"]):
            calls.append(it)
            try:
                callback(out.x)
            except StopIteration:
                break
            out.nit = it + 1
        out.fun = prob.objective(out.x)
        return out

    monkeypatch.setattr(scipy.optimize, "minimize", fake_minimize)
    res = native.slsqp(prob, point, bound, [], 1e-7, max_iter=40, precondition=False)
    if at_optimum:
        assert res.status == "optimal" and len(calls) == native.STALL_ITERATIONS + 1
        assert res.notes == [native.STALLED_NOTE]
        duals, residual = native.kkt_duals(prob, res.solution, bound, 1e-7, residual=True)
        assert res.kkt_residual == residual <= 1e-9 and res.duals == duals  # handed on, not recomputed
        assert res.duals[int(np.argmax(own))] > 0  # the binding constraint's multiplier
    else:
        assert res.status == "not converged" and len(calls) == 40 and res.notes == []


def test_newton_chord_steps_keep_the_optimum_with_fewer_hessians(monkeypatch):
    """Once a full Newton step has cut the gradient 100-fold, the next steps reuse that
    Hessian: the same optimum (gradient below gtol) as with a fresh Hessian at every
    step, with fewer Hessians."""
    from fairuse_opt.solvers import native

    prob, _, _ = random_problem(7, "intersectional", "penalty", LogisticLoss(), n=3000)
    prob.set_spec = None
    start = np.zeros(prob.p)
    monkeypatch.setattr(native, "CHORD_RATIO", 0.0)  # never a chord step
    fresh_h = _counting(monkeypatch, native, "_weighted_hessian")
    fresh = native.newton(prob, start, gtol=1e-12, sketch=False)
    fresh_h = list(fresh_h)
    monkeypatch.setattr(native, "CHORD_RATIO", 1e-2)
    chord_h = _counting(monkeypatch, native, "_weighted_hessian")
    chord = native.newton(prob, start, gtol=1e-12, sketch=False)
    assert fresh.status == chord.status == "optimal"
    assert np.max(np.abs(prob.value_grad(chord.solution)[1])) <= 1e-12
    np.testing.assert_allclose(chord.solution, fresh.solution, atol=1e-10)
    assert len(chord_h) < len(fresh_h)


def test_logistic_lipschitz_constant_bounds_its_derivative():
    """``LogisticLoss.lipschitz`` bounds ``|d row_loss / d s|`` for scores up to +-40 and
    targets anywhere in [0, 1] (finite differences of ``row_loss``)."""
    loss = LogisticLoss()
    rng = np.random.default_rng(3)
    s = rng.uniform(-40, 40, 2000)
    y = np.concatenate([rng.integers(0, 2, 1000).astype(float), rng.random(1000)])
    h = 1e-6
    slope = np.abs(loss.row_loss(y, s + h) - loss.row_loss(y, s - h)) / (2 * h)
    assert np.max(slope) <= loss.lipschitz + 1e-6
    assert np.max(slope) > 0.99 * loss.lipschitz  # and is attained (not a loose constant)


@pytest.mark.parametrize("loss", [LogisticLoss(), SquaredLoss()], ids=["logistic", "squared"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-weights", "own-weights"])
def test_served_losses_bound_their_rounding(loss, shared):
    """The certificate's ``E`` bounds the difference between the served losses computed
    in float64 and in extended precision, on features with offsets 10^6 times their
    spread (where the scores' rounding is visible), through the Lipschitz constant
    (logistic) or the derivatives at each row (squared error)."""
    from fairuse_opt.fairness.certify import Served, served_losses

    assert np.finfo(np.longdouble).eps < 1e-18  # the reference needs extended precision
    rng = np.random.default_rng(4)
    n, d, G = 3000, 3, 4
    X = 1e6 + rng.normal(size=(n, d))
    codes = rng.integers(0, G, n)
    y = (rng.random(n) < 0.4).astype(float) if isinstance(loss, LogisticLoss) else rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n)
    coef = rng.normal(size=(G, d))
    if shared:
        coef[:] = coef[0]
    intercept = -1e6 * coef.sum(axis=1) + rng.normal(size=G)  # scores of order 1
    served = Served(X=X, codes=codes, y=y, w=w, loss=loss, n_groups=G, feature_names=[f"x{j}" for j in range(d)])
    L, E = served_losses(served, coef, intercept)
    Xl, cl, il, yl, wl = (np.asarray(a, dtype=np.longdouble) for a in (X, coef, intercept, y, w))
    ref = np.zeros((G, G), dtype=np.longdouble)
    for r in range(G):
        s = Xl @ cl[r] + il[r]
        if isinstance(loss, LogisticLoss):
            rl = np.maximum(s, 0) + np.log1p(np.exp(-np.abs(s))) - yl * s
        else:
            rl = (yl - s) ** 2
        for g in range(G):
            m = codes == g
            ref[g, r] = np.sum(wl[m] * rl[m]) / np.sum(wl[m])
    gap = np.abs(L - ref.astype(np.float64))
    assert np.max(gap) > 1e-12  # the rounding is visible
    assert np.all(gap <= E + 1e-13 * np.abs(L))
    assert np.max(E) < 1e-6  # and the bound is not vacuous


def test_recent_hessians_are_reused_only_near_the_point_they_were_taken(monkeypatch):
    """Blocks taken at ``theta`` serve a point within ``rel`` of it (the same objects, and
    the point they belong to), not one farther away (computed afresh there); a thinned
    problem does not inherit them, nor the last objective value."""
    from fairuse_opt.problem import problem as problem_module

    monkeypatch.setattr(problem_module, "DESIGN_CELLS", 0)
    prob, theta, _ = random_problem(5, "intersectional", "set", LogisticLoss(), n=3000)
    blocks = prob.effective_hessians(theta)
    near = theta + 1e-3 * max(1.0, np.max(np.abs(theta)))
    got, at = prob.recent_hessians(near, rel=1e-2)
    assert got is blocks and np.array_equal(at, theta)
    far = theta + 0.1 * max(1.0, np.max(np.abs(theta)))
    got, at = prob.recent_hessians(far, rel=1e-2)
    assert got is not blocks and np.array_equal(at, far)
    for a, b in zip(got, prob.effective_hessians(far)):
        np.testing.assert_array_equal(a, b)
    value = prob.objective(theta)
    assert prob.objective(theta.copy()) == value
    assert prob.objective(far) == prob.value_grad(far, grad=False)[0] != value
    sub = prob.thinned(300)
    assert sub.objective(far) == sub.value_grad(far, grad=False)[0]
    assert sub.recent_hessians(far)[0] is not prob.recent_hessians(far)[0]


def test_newton_steps_first_with_the_subsample_hessian(monkeypatch):
    """After a subsample start, the first steps on every row reuse the subsample's last
    Hessian while each cuts the gradient 10-fold: the same optimum with fewer Hessians
    on every row than when those steps are refused."""
    from fairuse_opt.solvers import native

    prob, _, _ = random_problem(7, "intersectional", "penalty", LogisticLoss(), n=20000)
    prob.set_spec = None
    start = np.zeros(prob.p)
    monkeypatch.setattr(native, "SKETCH_ROWS", 2000)
    full = prob.data.n_distinct
    monkeypatch.setattr(native, "SKETCH_CHORD_CUT", 0.0)  # no step is ever kept
    refused_h = _counting(monkeypatch, native, "_weighted_hessian")
    refused = native.newton(prob, start, gtol=1e-11)
    refused_h = list(refused_h)
    monkeypatch.setattr(native, "SKETCH_CHORD_CUT", 0.1)
    kept_h = _counting(monkeypatch, native, "_weighted_hessian")
    kept = native.newton(prob, start, gtol=1e-11)
    assert refused.status == kept.status == "optimal"
    assert kept.notes == ["started from a subsample fit"]
    assert np.max(np.abs(prob.value_grad(kept.solution)[1])) <= 1e-11
    np.testing.assert_allclose(kept.solution, refused.solution, atol=1e-9)
    assert kept_h.count(full) < refused_h.count(full)


def test_logistic_value_grad_is_value_and_grad():
    """``LogisticLoss.value_grad`` (one exponential for both) equals ``value`` and
    ``grad`` to the last bits, at scores from -745 to 745 and merged-row statistics."""
    loss = LogisticLoss()
    rng = np.random.default_rng(5)
    s = np.concatenate([rng.normal(scale=3, size=500), [-745.0, -40.0, -1e-300, 0.0, 1e-300, 40.0, 745.0]])
    W = rng.uniform(0.5, 3.0, s.size)
    stats = np.column_stack([W, W * rng.random(s.size)])
    v, g = loss.value_grad(stats, s)
    np.testing.assert_allclose(v, loss.value(stats, s), rtol=4e-16, atol=1e-300)
    np.testing.assert_allclose(g, loss.grad(stats, s), rtol=4e-16, atol=4e-16)


@pytest.mark.parametrize("encoding,group_reg", [("intersectional", "set"), ("decoupled", "penalty")])
def test_passes_by_row_blocks_agree_with_whole_groups(monkeypatch, encoding, group_reg):
    """Objective, gradient, own losses and the loss matrix computed a block of rows at a
    time (groups of ~1,500 rows, blocks of 1,024) equal the same quantities on whole
    groups and the row-by-row loss matrix."""
    import fairuse_opt.problem.problem as problem_module

    loss = LogisticLoss()
    monkeypatch.setattr(problem_module, "DESIGN_CELLS", 0)  # no design matrix: the group passes
    prob, theta, raw = random_problem(7, encoding, group_reg, loss, n=9000)
    assert min(prob.data.group_size(g) for g in prob.active) > 1024
    monkeypatch.setattr(problem_module, "BLOCK_CELLS", 1)
    assert len(prob._blocks(prob.active[0])) == 2
    blocked = (prob.value_grad(theta), prob.own_losses(theta, grad=True), prob.loss_matrix(theta, jacobian=True))
    monkeypatch.setattr(problem_module, "BLOCK_CELLS", 1 << 40)
    assert len(prob._blocks(prob.active[0])) == 1
    whole = (prob.value_grad(theta), prob.own_losses(theta, grad=True), prob.loss_matrix(theta, jacobian=True))
    (v1, g1), (o1, og1), (L1, E1) = blocked
    (v2, g2), (o2, og2), (L2, E2) = whole
    assert v1 == pytest.approx(v2, rel=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(o1, o2, rtol=1e-14)
    np.testing.assert_allclose(og1, og2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(L1, L2, rtol=1e-14)
    np.testing.assert_allclose(E1, E2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(L1, brute_loss_matrix(prob, theta, raw, loss), rtol=1e-12)
    np.testing.assert_allclose(o1, np.diag(L1), rtol=1e-14)
    np.testing.assert_allclose(g1, fd_grad(prob.objective, theta), rtol=1e-5, atol=1e-7)


def test_the_last_pass_is_reused_at_the_same_point_only(monkeypatch):
    """The group losses and gradients of the last pass over the rows serve the next call
    at the same point (the unconstrained fit's optimum, where the feasibility check and
    SQP start) without a pass, equal to a fresh problem's; another point, or a gradient
    after a pass without one, is a new pass."""
    import fairuse_opt.problem.problem as problem_module

    monkeypatch.setattr(problem_module, "DESIGN_CELLS", 0)  # the group passes
    loss = LogisticLoss()
    prob, theta, _ = random_problem(3, "intersectional", "penalty", loss, n=600)
    fresh, _, _ = random_problem(3, "intersectional", "penalty", LogisticLoss(), n=600)
    calls = []
    for name in ("value", "value_grad"):
        orig = getattr(loss, name)
        monkeypatch.setattr(loss, name, lambda st, s, _o=orig, _n=name: calls.append(_n) or _o(st, s))
    val, grad = prob.value_grad(theta)
    n_pass = len(calls)
    vals, grads = prob.own_losses(theta, grad=True)
    assert len(calls) == n_pass  # no pass
    ref_vals, ref_grads = fresh.own_losses(theta, grad=True)
    np.testing.assert_array_equal(vals, ref_vals)
    np.testing.assert_array_equal(grads, ref_grads)
    assert prob.objective(theta) == val and len(calls) == n_pass
    other = theta + 1e-3
    prob.own_losses(other)
    assert len(calls) > n_pass  # another point: a pass
    n_pass = len(calls)
    _, g_other = prob.own_losses(other, grad=True)  # the last pass had no gradient
    assert len(calls) > n_pass
    np.testing.assert_array_equal(g_other, fresh.own_losses(other, grad=True)[1])


def test_a_shared_pass_gives_the_personalised_objective_at_the_generic_model(monkeypatch):
    """The personalised problem at the embedded generic model reuses the generic fit's
    last pass (same rows, same served models): its objective without a pass, equal to
    the one computed afresh; at any other point it makes its own pass."""
    import fairuse_opt.problem.problem as problem_module

    monkeypatch.setattr(problem_module, "DESIGN_CELLS", 0)
    loss = LogisticLoss()
    prob, _, _ = random_problem(4, "intersectional", "set", loss, n=600)
    prob.set_spec = None
    gfam = Family("none", "set", prob.d, prob.family.level_codes, prob.family.n_levels, shift=prob.family.shift)
    gprob = Problem(gfam, loss, prob.data, alpha=prob.alpha, scale=prob.scale, mean=prob.mean)
    theta0 = np.array([0.3, -0.2, 0.1, -0.4])
    gprob.value_grad(theta0)
    embedded = prob.family.embed_generic(theta0[:-1], float(theta0[-1]))
    fresh = prob.objective(embedded)  # a pass of its own
    prob._last_objective = None
    prob.share_passes(gprob)
    calls = []
    orig = loss.value
    monkeypatch.setattr(loss, "value", lambda st, s: calls.append(1) or orig(st, s))
    assert prob.objective(embedded) == fresh and calls == []
    prob.objective(embedded + 1e-3)
    assert calls  # elsewhere: a pass


@pytest.mark.parametrize("encoding,group_reg", [("onehot", "set"), ("intersectional", "penalty")])
def test_interior_point_with_lagged_hessian_blocks_reaches_the_same_optimum(monkeypatch, encoding, group_reg):
    """The interior-point method keeps the groups' Hessian blocks while the iterate stays
    within ``BARRIER_HESSIAN_LAG`` of where they were taken: fewer Hessians than
    iterations, and the optimum (objective, solution, multipliers) of the method with a
    fresh Hessian at every iteration, on a restriction with a binding rationality
    constraint and envy constraints linearised at the start."""
    from fairuse_opt.solvers import native

    prob, theta, _ = random_problem(5, encoding, group_reg, LogisticLoss(), n=400)
    prob.set_spec = None
    free = native.newton(prob, theta, sketch=False).solution
    own = prob.own_losses(free)
    bound = own + 0.05
    bound[int(np.argmax(own))] = own.max() - 0.01
    pairs = [(g, r) for g in prob.active for r in prob.active if g != r][:6]
    L, E = prob.loss_matrix(free, jacobian=True)
    lin_grad = prob.pair_gradients(E, pairs).toarray()
    lin_const = np.array([L[g, r] for g, r in pairs]) - lin_grad @ free

    def run():
        calls = _counting(monkeypatch, prob.__class__, "effective_hessians")
        res = native.barrier(prob, free, bound=bound, pairs=pairs, lin_grad=lin_grad, lin_const=lin_const,
                             rho=10.0, tol=1e-10)
        monkeypatch.undo()
        return res, len(calls)

    lagged, n_lagged = run()
    monkeypatch.setattr(native, "BARRIER_HESSIAN_LAG", 0.0)
    fresh, n_fresh = run()
    assert (lagged.status, fresh.status) == ("optimal", "optimal"), (lagged.iterations, fresh.iterations)
    assert n_fresh >= fresh.iterations - 1 and n_lagged < n_fresh
    assert lagged.objective == pytest.approx(fresh.objective, rel=1e-10)
    np.testing.assert_allclose(lagged.solution, fresh.solution, atol=1e-6)
    g = int(np.argmax(own))
    assert lagged.duals[g] == pytest.approx(fresh.duals[g], rel=1e-4, abs=1e-8) and lagged.duals[g] > 0


@pytest.mark.parametrize("encoding,group_reg", ENCODINGS)
def test_mapped_hessians_recombine_as_combine_hessians(encoding, group_reg):
    """``tensordot(w, mapped_hessians(blocks))`` equals ``combine_hessians(blocks, w)`` for
    any non-negative weights, and with the groups' shares of the weight the loss's
    Hessian (:meth:`weighted_hessian`, by the design matrix where it is kept)."""
    prob, theta, _ = random_problem(2, encoding, group_reg, LogisticLoss())
    blocks = prob.effective_hessians(theta)
    T = prob.mapped_hessians(blocks)
    rng = np.random.default_rng(0)
    for w in (rng.random(prob.G), np.eye(prob.G)[0], prob.Wg / prob.data.total_weight):
        np.testing.assert_allclose(np.tensordot(w, T, axes=1), prob.combine_hessians(blocks, w), rtol=1e-13,
                                   atol=1e-15)
    w = prob.Wg / prob.data.total_weight
    np.testing.assert_allclose(np.tensordot(w, T, axes=1), prob.weighted_hessian(theta, w), rtol=1e-10, atol=1e-13)
    assert prob.mapped_hessians(blocks, max_cells=prob.G * prob.p ** 2 - 1) is None


def test_a_polish_without_progress_is_stopped_after_its_patience():
    """SLSQP with ``patience`` from a feasible point: from the program's optimum (where
    constraints tightened further only let it go up) it stops after ``patience``
    iterations, not converged, where it would otherwise take more to end above its start;
    from a feasible point above the optimum it goes below the start and runs to its own
    end, optimal, at the optimum."""
    from fairuse_opt.solvers import native

    prob, theta, _ = random_problem(2, "intersectional", "penalty", LogisticLoss(), n=300)
    prob.set_spec = None
    free = native.newton(prob, theta, sketch=False).solution
    own = prob.own_losses(free)
    bound = own + 0.05
    bound[int(np.argmax(own))] = own.max() - 0.01  # one rationality constraint binds
    pairs = [(g, r) for g in prob.active for r in prob.active if g != r][:4]
    ref = native.slsqp(prob, free, bound, pairs, 1e-7)
    assert ref.status == "optimal"
    opt = ref.solution
    # tightened by 1e-4 instead of 1e-8: the optimum is now just outside, every iterate above it
    plain = native.slsqp(prob, opt, bound, pairs, 1e-3)
    assert plain.status == "optimal" and plain.iterations > 3 and plain.objective > ref.objective
    stuck = native.slsqp(prob, opt, bound, pairs, 1e-3, patience=3)
    assert stuck.status == "not converged" and stuck.iterations == 3
    assert native.NO_PROGRESS_NOTE in stuck.notes
    # from the optimum pulled halfway to zero (feasible, above the optimum)
    start = 0.5 * opt
    assert np.all(prob.own_losses(start)[prob.active] < bound[prob.active])
    assert prob.objective(start) > ref.objective + 1e-3
    moving = native.slsqp(prob, start, bound, pairs, 1e-7, patience=3)
    assert moving.status == "optimal" and moving.objective == pytest.approx(ref.objective, rel=1e-8)


def test_interior_point_on_many_small_groups_takes_the_hessian_afresh_by_the_design(monkeypatch):
    """With 50 rows or fewer a group and the design matrix kept, each iteration's Hessian
    is one product by the design matrix (no blocks), at the optimum of the lagged path."""
    from fairuse_opt.solvers import native

    prob, theta, _ = random_problem(5, "intersectional", "penalty", LogisticLoss(), n=120)
    prob.set_spec = None
    assert prob.data.n_distinct <= 50 * prob.G and prob.design_matrix() is not None
    free = native.newton(prob, theta, sketch=False).solution
    own = prob.own_losses(free)
    bound = own + 0.05
    bound[int(np.argmax(own))] = own.max() - 0.01
    blocks = _counting(monkeypatch, prob.__class__, "effective_hessians")
    products = _counting(monkeypatch, prob.__class__, "weighted_hessian")
    res = native.barrier(prob, free, bound=bound, pairs=[], lin_grad=None, lin_const=None, rho=10.0, tol=1e-10)
    assert res.status == "optimal"
    assert blocks == [] and len(products) >= res.iterations - 1
    monkeypatch.undo()
    monkeypatch.setattr(native, "Problem", type("NotAProblem", (), {}))  # the blocks path instead
    lagged = native.barrier(prob, free, bound=bound, pairs=[], lin_grad=None, lin_const=None, rho=10.0, tol=1e-10)
    assert lagged.status == "optimal" and lagged.objective == pytest.approx(res.objective, rel=1e-10)
