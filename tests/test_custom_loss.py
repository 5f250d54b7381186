"""A new loss is one object: Poisson regression, defined here alone (issue 9).

:class:`PoissonLoss` implements the public interface of
:class:`fairuse_opt.model.losses.Loss` (value, gradient, curvature, inverse link, start
value, target range, cvxpy atom) and :class:`FairUsePoissonRegressor` returns it from
``_get_loss()``; nothing in the library is told about it.  The fits are checked against
independent ones: scikit-learn's ``PoissonRegressor`` for the generic model (its penalty
``alpha_sk / 2 ||w||^2`` on the mean half-deviance is ours with ``alpha_sk = 2 l2``),
and scipy's SLSQP on a hand-written objective for the personalized models, with and
without the fair-use constraints.  The native and the cvxpy paths must agree.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import PoissonRegressor

from fairuse_opt import FairUseRegressor
from fairuse_opt.exceptions import InputError
from fairuse_opt.model.losses import Loss


class PoissonLoss(Loss):
    """Poisson deviance (up to a constant) of a log-rate ``s``: ``exp(s) - y s``."""

    name = "poisson"
    n_stats = 2  # W, Wy
    target_range = (0.0, np.inf)
    prediction_range = (0.0, np.inf)

    def row_loss(self, y, s):
        return np.exp(s) - y * s

    def value(self, stats, s):
        return stats[:, 0] * np.exp(s) - stats[:, 1] * s

    def grad(self, stats, s):
        return stats[:, 0] * np.exp(s) - stats[:, 1]

    def curvature(self, stats, s):
        return stats[:, 0] * np.exp(s)

    def cvx(self, stats, s):
        return stats[:, 0] @ cp.exp(s) - stats[:, 1] @ s

    def inverse_link(self, s):
        return np.exp(s)

    def link(self, pred):
        return np.log(np.maximum(pred, 1e-300))

    def start(self, y, w):
        return float(np.log(max(np.average(y, weights=w), 1e-12)))


class FairUsePoissonRegressor(FairUseRegressor):
    """The regressor with the Poisson loss: the one method a new model overrides."""

    def _get_loss(self):
        return PoissonLoss()


ALPHA = 1e-2


def poisson_data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) * [1.0, 2.0] + [0.5, -1.0]
    g = np.concatenate([np.arange(4), rng.integers(0, 4, n - 4)])
    groups = pd.DataFrame({"a": g % 2, "b": g // 2})
    rate = np.exp(0.4 * X[:, 0] - 0.15 * X[:, 1] + np.array([-0.6, 0.3, 0.0, 0.7])[g])
    y = rng.poisson(rate).astype(float)
    return X, y, groups, g


def hand_objective(X, y, g, w=None):
    """Mean Poisson loss + ALPHA ||coef||^2 of shared weights and one intercept per group,
    params ``[coef (d), intercepts (G)]`` (raw scale), written from the definition."""
    w = np.ones(len(y)) if w is None else w
    d = X.shape[1]

    def f(p):
        s = X @ p[:d] + p[d:][g]
        return float(np.average(np.exp(s) - y * s, weights=w) + ALPHA * p[:d] @ p[:d])

    def grad(p):
        s = X @ p[:d] + p[d:][g]
        r = w * (np.exp(s) - y) / w.sum()
        return np.concatenate([X.T @ r + 2 * ALPHA * p[:d], np.bincount(g, weights=r, minlength=4)])

    def group_loss(p, k):
        m = g == k
        s = X[m] @ p[:d] + p[d + k]
        return float(np.average(np.exp(s) - y[m] * s, weights=w[m]))

    return f, grad, group_loss


def test_poisson_loss_pieces_are_consistent():
    """Gradient and curvature of the object against finite differences; the cvxpy atom
    against its numpy value; the link against the inverse link."""
    loss = PoissonLoss()
    rng = np.random.default_rng(1)
    y, w = rng.poisson(2.0, 50).astype(float), rng.uniform(0.5, 2, 50)
    s = rng.normal(size=50)
    st = loss.stats(y, w)
    h = 1e-6
    np.testing.assert_allclose(loss.grad(st, s), (loss.value(st, s + h) - loss.value(st, s - h)) / (2 * h),
                               rtol=1e-6)
    np.testing.assert_allclose(loss.curvature(st, s), (loss.grad(st, s + h) - loss.grad(st, s - h)) / (2 * h),
                               rtol=1e-6)
    sv = cp.Variable(50)
    sv.value = s
    assert float(loss.cvx(st, sv).value) == pytest.approx(loss.value(st, s).sum() - loss.constant(st), rel=1e-12)
    np.testing.assert_allclose(loss.link(loss.inverse_link(s)), s, rtol=1e-12)
    # the start is the best constant score: the gradient of the summed loss vanishes there
    assert loss.grad(st, np.full(50, loss.start(y, w))).sum() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("solver", ["native", "ECOS", "CLARABEL"])
def test_generic_poisson_model_matches_sklearn(solver):
    X, y, _, _ = poisson_data()
    m = FairUsePoissonRegressor(encoding="none", fair_use=None, l2=ALPHA, solver=solver).fit(X, y)
    ref = PoissonRegressor(alpha=2 * ALPHA, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(m.coef_[0], ref.coef_, rtol=1e-5, atol=1e-7)
    assert m.intercept_[0] == pytest.approx(ref.intercept_, abs=1e-6)
    np.testing.assert_allclose(m.predict(X), ref.predict(X), rtol=1e-5)
    assert m.certificate_.solver == ("NATIVE" if solver == "native" else solver)


@pytest.mark.parametrize("solver", ["native", "ECOS"])
def test_personalized_poisson_fit_matches_an_independent_fit(solver):
    """Intersectional intercepts (in the common set, not binding here) and shared
    weights, unconstrained: the hand objective minimised by scipy."""
    X, y, groups, g = poisson_data()
    sw = np.random.default_rng(5).uniform(0.5, 2.0, len(y))
    m = FairUsePoissonRegressor(encoding="intersectional", fair_use=None, l2=ALPHA, solver=solver).fit(
        X, y, groups=groups, sample_weight=sw)
    assert not m.certificate_.table["at_set_boundary"].any()
    f, grad, _ = hand_objective(X, y, g, sw)
    keys = [tuple(k) for k in m.groups_]
    order = [keys.index((k % 2, k // 2)) for k in range(4)]  # group code k -> row of coef_
    ref = minimize(f, np.zeros(6), jac=grad, method="BFGS", options={"gtol": 1e-11, "maxiter": 10_000})
    np.testing.assert_allclose(m.coef_[0], ref.x[:2], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.intercept_[order], ref.x[2:], atol=1e-6)
    # the certificate's objective is the hand objective (same loss, same raw-scale penalty)
    p = np.concatenate([m.coef_[0], m.intercept_[order]])
    assert f(p) == pytest.approx(ref.fun, rel=1e-9)
    assert m.certificate_.objective == pytest.approx(f(p), rel=1e-9)


def test_poisson_fair_use_matches_an_independent_constrained_fit():
    """Rationality with a margin that binds, exact route: the library's fit (native and
    cvxpy) against scipy's SLSQP on the hand objective with the hand constraints
    ``L_g(own) <= L_g(generic) - margin`` (generic: scikit-learn's fit)."""
    X, y, groups, g = poisson_data()
    # group (0, 0) gains 0.377 unconstrained and can reach 0.407 alone: asking 0.385 binds;
    # group (1, 0) gains nothing (its rationality binds at margin 0)
    margins = {(0, 0): 0.385, (0, 1): 0.0, (1, 0): 0.0, (1, 1): 0.0}
    margin = np.array([margins[(k % 2, k // 2)] for k in range(4)])
    fits = {s: FairUsePoissonRegressor(encoding="intersectional", fair_use="both", l2=ALPHA, margin=margins,
                                       solver=s).fit(X, y, groups=groups) for s in ("native", "ECOS")}
    gen = PoissonRegressor(alpha=2 * ALPHA, tol=1e-12, max_iter=10_000).fit(X, y)
    s0 = X @ gen.coef_ + gen.intercept_
    L0 = np.array([np.mean(np.exp(s0[g == k]) - y[g == k] * s0[g == k]) for k in range(4)])
    f, grad, group_loss = hand_objective(X, y, g)
    cons = [{"type": "ineq", "fun": (lambda p, k=k: L0[k] - margin[k] - group_loss(p, k))} for k in range(4)]
    start = np.concatenate([gen.coef_, np.full(4, gen.intercept_)])
    ref = minimize(f, start, jac=grad, method="SLSQP", constraints=cons,
                   options={"ftol": 1e-15, "maxiter": 1000})
    assert ref.success
    binding = [k for k in range(4) if L0[k] - margin[k] - group_loss(ref.x, k) < 1e-8]
    assert binding == [0, 1], "the margin must bind for the test to mean something"
    for solver, m in fits.items():
        cert = m.certificate_
        assert cert.route == "exact" and cert.verified, (solver, cert.route, cert.failures)
        keys = [tuple(k) for k in m.groups_]
        order = [keys.index((k % 2, k // 2)) for k in range(4)]
        p = np.concatenate([m.coef_[0], m.intercept_[order]])
        assert f(p) == pytest.approx(ref.fun, rel=1e-6), solver
        np.testing.assert_allclose(p, ref.x, atol=2e-4)
        # every constraint recomputed from the served predictions (report=) and the generic model
        # L[k, r]: mean loss of group k's rows (code k = attributes (k % 2, k // 2)) reporting r
        L = np.array([[np.mean(PoissonLoss().row_loss(y[g == k], np.log(m.predict(X[g == k],
                                                                                  report=(r % 2, r // 2)))))
                       for r in range(4)] for k in range(4)])
        pred0 = m.generic_.predict(X)
        L0_lib = np.array([np.mean(pred0[g == k] - y[g == k] * np.log(pred0[g == k])) for k in range(4)])
        np.testing.assert_allclose(L0_lib, L0, rtol=1e-6)
        assert np.all(np.diag(L) <= L0 - margin + 1e-7)
        assert L[0, 0] == pytest.approx(L0[0] - 0.385, abs=1e-6)  # group (0, 0): the margin is met, no more
        assert all(L[k, k] <= L[k, r] + 1e-7 for k in range(4) for r in range(4))
        assert set(np.flatnonzero(cert.table["rationality_active"].to_numpy())) == {order[k] for k in binding}


def test_poisson_target_range_is_checked():
    X, y, groups, _ = poisson_data()
    y = y.copy()
    y[3] = -1.0
    with pytest.raises(InputError, match="outside"):
        FairUsePoissonRegressor(encoding="intersectional").fit(X, y, groups=groups)


def test_model_file_refuses_a_loss_it_cannot_represent():
    """The model file stores logistic and squared-error models: a Poisson model written
    as a ``FairUseRegressor`` would be read back predicting ``s`` instead of ``exp(s)``
    (it did, silently).  A subclass keeping its base class's loss is still written."""
    X, y, groups, _ = poisson_data()
    m = FairUsePoissonRegressor(encoding="intersectional", fair_use=None, l2=ALPHA).fit(X, y, groups=groups)
    with pytest.raises(InputError, match="fits the 'poisson' loss, which a model file cannot represent"):
        m.to_json()

    class Renamed(FairUseRegressor):
        pass

    r = Renamed(encoding="intersectional", fair_use=None, l2=ALPHA).fit(X, y, groups=groups)
    back = FairUseRegressor.from_json(r.to_json())
    np.testing.assert_allclose(back.predict(X, groups=groups), r.predict(X, groups=groups), rtol=1e-12)
