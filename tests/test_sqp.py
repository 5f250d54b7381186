"""SQP for the rationality program (``native.sqp``), on problems whose answer is known
in advance.

The minimiser ``theta_k`` of ``f + sum_g k_g L_g`` (a weighted unconstrained problem,
solved by Newton's method) is the optimum of ``min f s.t. L_g <= L_g(theta_k)`` for the
groups with ``k_g > 0`` (and any looser bounds for the others), with multipliers
``k_g``: the KKT conditions of a convex program hold there.  Each test builds such a
program, with the start and the loose bounds chosen so that a branch of the method is
taken (a constraint violated at the start but not binding, one met at the start but
binding, the common set's ball, the Hessian blocks or the design matrix).
"""

import numpy as np
import pytest

from fairuse_opt.model.losses import LogisticLoss, SquaredLoss
from fairuse_opt.problem import problem as problem_module
from fairuse_opt.problem.problem import SetSpec
from fairuse_opt.solvers import native

from .test_problem import random_problem

TOL = 1e-7


def share(prob):
    w = np.zeros(prob.G)
    w[prob.active] = prob.Wg[prob.active] / prob.data.total_weight
    return w


def known_optimum(prob, start, kappa: dict):
    """``theta_k`` and its own losses (see the module docstring)."""
    weights = share(prob)
    for g, k in kappa.items():
        weights[g] += k
    res = native.newton(prob, start, weights=weights, sketch=False, gtol=1e-12)
    assert res.status == "optimal"
    return res.solution, prob.own_losses(res.solution)


def bounds_at(own, binding, slack):
    """Bounds met by ``own`` with equality for ``binding`` (up to the 0.1 tol that the
    method tightens them by) and ``slack`` for the others."""
    bound = own + slack
    for g in binding:
        bound[g] = own[g] + 0.1 * TOL
    return bound


def check(prob, res, bound, theta_star, kappa):
    assert res.status == "optimal", res.attempts
    own = prob.own_losses(res.solution)
    act = prob.active
    assert np.all(own[act] <= bound[act] - 0.1 * TOL + 1e-12)
    np.testing.assert_allclose(res.solution, theta_star, atol=1e-6)
    np.testing.assert_allclose(prob.objective(res.solution), prob.objective(theta_star), rtol=1e-10)
    for g in act:
        np.testing.assert_allclose(res.duals[g], kappa.get(g, 0.0), rtol=1e-5, atol=1e-8)
    duals, residual = native.kkt_duals(prob, res.solution, bound, TOL, residual=True)
    assert residual <= 1e-9 and res.kkt_residual <= 1e-10


def worst_group(prob, theta):
    return int(np.nanargmax(prob.own_losses(theta)))


@pytest.mark.parametrize("loss", [LogisticLoss(), SquaredLoss()], ids=["logistic", "squared"])
@pytest.mark.parametrize("encoding", ["intersectional", "decoupled"])
@pytest.mark.parametrize("design", [True, False], ids=["design-matrix", "group-blocks"])
def test_sqp_finds_the_known_optimum_from_the_unconstrained_fit(monkeypatch, loss, encoding, design):
    """From the unconstrained optimum (where the routes start it) to the program whose
    solution is ``theta_k``, with one binding group.  Decoupled blocks with
    group_reg="penalty": coupled through the penalty only."""
    if not design:
        monkeypatch.setattr(problem_module, "DESIGN_CELLS", 0)
    prob, theta, _ = random_problem(21, encoding, "set" if encoding == "intersectional" else "penalty", loss,
                                    n=400)
    assert (prob.design_matrix() is not None) == (design and encoding == "intersectional")
    prob.set_spec = None
    free = native.newton(prob, theta, sketch=False).solution
    g = worst_group(prob, free)
    kappa = {g: 0.8}
    theta_star, own = known_optimum(prob, free, kappa)
    bound = bounds_at(own, [g], slack=0.5 * max(1.0, float(np.nanmax(own))))
    assert prob.own_losses(free)[g] > bound[g] + 1e-4  # the start violates it
    res = native.sqp(prob, free, bound, TOL)
    check(prob, res, bound, theta_star, kappa)


def test_sqp_lets_go_of_a_constraint_the_start_violates_but_the_optimum_does_not():
    """From all weights zero, groups with a slack of 1e-3 at the optimum are violated; the
    subproblems release them (multiplier 0 at the end)."""
    prob, theta, _ = random_problem(22, "intersectional", "set", LogisticLoss(), n=400)
    prob.set_spec = None
    free = native.newton(prob, theta, sketch=False).solution
    g = worst_group(prob, free)
    kappa = {g: 0.5}
    theta_star, own = known_optimum(prob, free, kappa)
    bound = bounds_at(own, [g], slack=1e-3)
    start = np.zeros(prob.p)
    violated = [h for h in prob.active if h != g and prob.own_losses(start)[h] > bound[h]]
    assert violated
    res = native.sqp(prob, start, bound, TOL)
    check(prob, res, bound, theta_star, kappa)
    assert all(res.duals[h] == 0.0 for h in violated)


def test_sqp_takes_up_a_constraint_the_start_meets_but_the_optimum_needs():
    """A second group whose loss rises when the first group's bound is enforced (the
    groups share weights), bounded just above its loss at the start: met at the start,
    binding at the optimum."""
    prob, theta, _ = random_problem(23, "intersectional", "set", LogisticLoss(), n=400)
    prob.set_spec = None
    free = native.newton(prob, theta, sketch=False).solution
    own_u = prob.own_losses(free)
    g = worst_group(prob, free)
    _, own_1 = known_optimum(prob, free, {g: 0.8})
    rise = own_1 - own_u
    rise[g] = -np.inf
    h = int(np.nanargmax(rise))
    kappa = {g: 0.8, h: 0.05}
    theta_star, own = known_optimum(prob, free, kappa)
    bound = bounds_at(own, [g, h], slack=0.5)
    assert own_u[h] < bound[h] - 1e-5  # met at the start
    assert own_u[g] > bound[g] + 1e-4  # violated at the start
    res = native.sqp(prob, free, bound, TOL)
    check(prob, res, bound, theta_star, kappa)


def test_sqp_keeps_the_common_sets_ball_when_it_binds():
    """Decoupled blocks with a small common-set ball, from the optimum without the set
    (outside the ball): the ball constraints bind, their curvature enters the
    Lagrangian's Hessian, and the answer is the interior-point method's."""
    prob, theta, _ = random_problem(24, "decoupled", "set", LogisticLoss(), n=400)
    prob.set_spec = None
    outside = native.newton(prob, theta, sketch=False).solution
    bound = prob.own_losses(outside) + 0.05  # rationality loose
    prob.set_spec = SetSpec(0.1, 5.0, np.zeros(prob.d), 0.25)
    n_box = 2 * len(prob.family.block_intercept)
    assert np.min(prob.set_spec.constraints(prob.family, outside)[0][n_box:]) < 0  # outside the ball
    res = native.sqp(prob, outside, bound, TOL)
    assert res.status == "optimal"
    sv, _ = prob.set_spec.constraints(prob.family, res.solution)
    assert np.min(np.abs(sv[n_box:])) <= 1e-10 and np.all(sv >= -1e-12)  # on the ball, inside the set
    inside = prob.set_spec.project_inside(prob.family, np.zeros(prob.p), 1e-3)
    ref = native.barrier(prob, inside, bound=bound - 0.1 * TOL, pairs=[], lin_grad=None, lin_const=None,
                         rho=1e4, tol=1e-12)
    assert ref.status == "optimal"
    np.testing.assert_allclose(prob.objective(res.solution), prob.objective(ref.solution), rtol=1e-8)
    assert prob.objective(res.solution) <= prob.objective(ref.solution) + 1e-10
    assert res.kkt_residual <= 1e-10


def test_sqp_reports_not_converged_when_out_of_iterations():
    prob, theta, _ = random_problem(21, "intersectional", "set", LogisticLoss(), n=400)
    prob.set_spec = None
    free = native.newton(prob, theta, sketch=False).solution
    g = worst_group(prob, free)
    _, own = known_optimum(prob, free, {g: 0.8})
    res = native.sqp(prob, free, bounds_at(own, [g], 0.5), TOL, max_iter=1)
    assert res.status == "not converged" and res.duals is None and res.kkt_residual is None


def test_sqp_gives_up_quickly_on_an_infeasible_program():
    """A bound below the lowest loss the group can reach (its own loss plus the penalty
    minimised): no subproblem or step makes progress and the method stops within a few
    iterations, not converged."""
    prob, theta, _ = random_problem(21, "intersectional", "set", LogisticLoss(), n=400)
    prob.set_spec = None
    free = native.newton(prob, theta, sketch=False).solution
    g = worst_group(prob, free)
    alone = np.zeros(prob.G)
    alone[g] = 1.0
    floor = prob.own_losses(native.newton(prob, free, weights=alone, sketch=False).solution)[g]
    bound = prob.own_losses(free) + 0.5
    bound[g] = floor - 0.05
    slack = native.barrier(prob, free, bound=bound, pairs=[], lin_grad=None, lin_const=None, rho=1e4, tol=1e-10)
    assert slack.status == "optimal" and prob.own_losses(slack.solution)[g] > bound[g] + 1e-3  # infeasible
    res = native.sqp(prob, free, bound, TOL)
    assert res.status == "not converged" and res.iterations < 30


def test_the_exact_route_solves_by_sqp_and_falls_back_to_slsqp(monkeypatch):
    """On the exact route the program is solved by SQP (recorded in the certificate's
    attempts); when SQP does not converge, SLSQP solves it to the same model."""
    from fairuse_opt.fairness import routes

    from .test_core_agreement import CASES, _fit, random_problem as agreement_problem

    case = next(c for c in CASES if c.name == "exact-cls-intersectional-margin")
    X, y, groups, w = agreement_problem(case)
    kw = dict(encoding=case.encoding, group_reg=case.group_reg, fair_use=case.fair_use, margin=case.margin,
              on_infeasible=case.on_infeasible, l2=1e-2, **case.kw)
    by_sqp = _fit(case.task, X, y, groups, w, "native", **kw)
    cert = by_sqp.certificate_
    assert cert.route == "exact" and cert.verified
    assert ("NATIVE/sqp", "optimal") in cert.attempts
    assert not any(a == "NATIVE/slsqp" for a, _ in cert.attempts)
    assert cert.table["rationality_active"].any()  # the margin binds

    def fails(*args, **kwargs):
        return native.Result(backend=native.NATIVE, status="not converged",
                             attempts=[("NATIVE/sqp", "not converged")])

    monkeypatch.setattr(routes.native, "sqp", fails)
    by_slsqp = _fit(case.task, X, y, groups, w, "native", **kw)
    cert2 = by_slsqp.certificate_
    assert cert2.route == "exact" and cert2.verified
    assert ("NATIVE/sqp", "not converged") in cert2.attempts and ("NATIVE/slsqp", "optimal") in cert2.attempts
    np.testing.assert_allclose(cert2.objective, cert.objective, rtol=1e-9)
    np.testing.assert_allclose(by_slsqp.coef_, by_sqp.coef_, atol=1e-5)


def test_a_refused_certificate_runs_the_routes_again_with_the_loss_matrix_checked(monkeypatch):
    """The exact route leaves envy-freeness (which its optimum has by the block-optimality
    theorem) to the certificate; when the certificate refuses such a solution, the routes
    run again (the unconstrained fit kept) with SQP's solution checked on the whole loss
    matrix first, and the certificate of that run is the one kept."""
    import dataclasses
    import inspect

    from fairuse_opt.fairness import routes
    from fairuse_opt.problem.problem import Problem

    from .test_core_agreement import CASES, _fit, random_problem as agreement_problem

    case = next(c for c in CASES if c.name == "exact-cls-intersectional-margin")
    X, y, groups, w = agreement_problem(case)
    kw = dict(encoding=case.encoding, group_reg=case.group_reg, fair_use=case.fair_use, margin=case.margin,
              on_infeasible=case.on_infeasible, l2=1e-2, **case.kw)
    plain = _fit(case.task, X, y, groups, w, "native", **kw)
    real_cert, real_lm, real_unc = routes.build_certificate, Problem.loss_matrix, routes.Unconstrained.run
    calls = {"cert": 0, "by_sqp_matrix": 0, "unconstrained": 0}

    def cert(**kwargs):
        calls["cert"] += 1
        out = real_cert(**kwargs)
        return dataclasses.replace(out, verified=False, failures=["refused"]) if calls["cert"] == 1 else out

    def loss_matrix(self, theta, jacobian=False):
        if inspect.stack()[1].function == "by_sqp":
            calls["by_sqp_matrix"] += 1
        return real_lm(self, theta, jacobian)

    def unconstrained(self, setup, start):
        calls["unconstrained"] += 1
        return real_unc(self, setup, start)

    monkeypatch.setattr(routes, "build_certificate", cert)
    monkeypatch.setattr(Problem, "loss_matrix", loss_matrix)
    monkeypatch.setattr(routes.Unconstrained, "run", unconstrained)
    again = _fit(case.task, X, y, groups, w, "native", **kw)
    assert calls == {"cert": 2, "by_sqp_matrix": 1, "unconstrained": 1}
    assert again.certificate_.verified and again.certificate_.route == "exact"
    np.testing.assert_allclose(again.coef_, plain.coef_, atol=1e-12)
