"""A solver backend added in one file (issue 25): defined here, registered, used by name.

:class:`LBFGSStub` wraps ``scipy.optimize.minimize`` (L-BFGS-B) on the problem's numpy
objective and gradient, declares that it solves the unconstrained task only and needs
the problem in numpy, and registers itself; nothing in the library is told about it.
Through ``solver="stub-lbfgs"`` it fits the generic model and the personalized model (the
routes send it their tasks), and the coefficients equal scikit-learn's
``LogisticRegression`` (``C = 1 / (2 l2 n)``: our objective is the mean log loss plus
``l2 ||w||^2``).  A fit that would ask it for a task it does not declare, or whose
problem lacks what it needs, is refused before the backend is asked anything.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

from fairuse_opt import FairUseClassifier
from fairuse_opt.exceptions import MSG_BACKEND_NEEDS, MSG_BACKEND_TASK, InputError
from fairuse_opt.solvers.base import Backend, Result, Task, register_backend, registered_backend

ALPHA = 1e-2


@register_backend
class LBFGSStub(Backend):
    """L-BFGS-B on the unconstrained task (the common set ignored: the base class
    refuses a solution on its boundary)."""

    name = "stub-lbfgs"
    tasks = frozenset({"unconstrained"})
    needs = frozenset({"numpy"})
    calls: list = []  # (task kind, number of parameters) of every run

    def run(self, task):
        prob = self.problem
        type(self).calls.append((task.kind, prob.p))
        res = minimize(prob.value_grad, np.zeros(prob.p), jac=True, method="L-BFGS-B",
                       options={"gtol": 1e-11, "ftol": 1e-15, "maxiter": 10_000, "maxcor": 30})
        # L-BFGS-B may stop in its line search at a tight ftol with the gradient already tiny
        ok = res.success or np.max(np.abs(res.jac)) < 1e-8
        return Result(status="optimal" if ok else f"failed: {res.message}", solution=res.x,
                      objective=float(res.fun), iterations=int(res.nit))


@pytest.fixture(autouse=True)
def _clear_calls():
    LBFGSStub.calls.clear()


def data(seed=0, n=300):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * [1.0, 3.0, 0.5] + [0.0, 2.0, -1.0]
    g = np.concatenate([np.arange(4), rng.integers(0, 4, n - 4)])
    logit = 0.8 * X[:, 0] - 0.3 * X[:, 1] + 1.2 * X[:, 2] + np.array([-0.5, 0.2, 0.0, 0.6])[g]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y, g


def sk_logistic(Z, y):
    m = LogisticRegression(C=1.0 / (2 * ALPHA * len(y)), tol=1e-12, max_iter=10_000, solver="newton-cholesky")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit(Z, y)


def test_the_registry_resolves_the_name_case_insensitively():
    assert registered_backend("stub-lbfgs") is LBFGSStub
    assert registered_backend("STUB-LBFGS") is LBFGSStub
    assert registered_backend("ECOS") is None  # built-ins are not in the registry of added backends


def test_stub_backend_fits_the_generic_model_like_sklearn():
    X, y, _ = data()
    m = FairUseClassifier(encoding="none", fair_use=None, l2=ALPHA, solver="stub-lbfgs").fit(X, y)
    ref = sk_logistic(X, y)
    np.testing.assert_allclose(m.coef_[0], ref.coef_[0], rtol=1e-5, atol=1e-7)
    assert m.intercept_[0] == pytest.approx(ref.intercept_[0], abs=1e-6)
    # the stub solved both fits (generic, then personalized through the unconstrained route)
    assert m.certificate_.solver == "stub-lbfgs"
    assert m.generic_.certificate_.solver == "stub-lbfgs"
    assert [k for k, _ in LBFGSStub.calls] == ["unconstrained", "unconstrained"]


def test_stub_backend_runs_the_unconstrained_route_of_a_personalized_model():
    """Intersectional group offsets penalised like the weights (``group_reg="penalty"``):
    scikit-learn's logistic regression on ``[X, group indicators]``."""
    X, y, g = data(seed=1)
    groups = pd.DataFrame({"g": g})
    m = FairUseClassifier(encoding="intersectional", group_reg="penalty", fair_use=None, l2=ALPHA,
                          solver="stub-lbfgs").fit(X, y, groups=groups)
    Z = np.column_stack([X, (g[:, None] == np.arange(4)[None, :]).astype(float)])
    ref = sk_logistic(Z, y)
    np.testing.assert_allclose(m.coef_[0], ref.coef_[0][:3], rtol=1e-5, atol=1e-7)
    order = [m.groups_.index((k,)) for k in range(4)]  # group code k -> row of coef_
    np.testing.assert_allclose(m.intercept_[order], ref.intercept_[0] + ref.coef_[0][3:], atol=1e-6)
    assert m.certificate_.solver == "stub-lbfgs" and m.certificate_.route == "unconstrained"
    assert [k for k, _ in LBFGSStub.calls] == ["unconstrained", "unconstrained"]
    assert LBFGSStub.calls[1][1] > LBFGSStub.calls[0][1]  # the personalized problem has more parameters


def test_stub_backend_is_refused_up_front_on_a_task_it_does_not_declare():
    X, y, g = data()
    est = FairUseClassifier(encoding="intersectional", fair_use="rationality", solver="stub-lbfgs")
    prefix = MSG_BACKEND_TASK.split("{")[0]
    with pytest.raises(InputError, match=prefix) as info:
        est.fit(X, y, groups=pd.DataFrame({"g": g}))
    msg = str(info.value)
    assert "'stub-lbfgs'" in msg and "'rationality'" in msg and "declares only ['unconstrained']" in msg
    assert LBFGSStub.calls == []  # refused before the backend was asked anything


def test_stub_backend_is_refused_on_a_problem_without_what_it_needs():
    """A constraint hook's terms are cvxpy expressions: the problem is not all numpy."""
    X, y, g = data()
    est = FairUseClassifier(encoding="intersectional", fair_use=None, solver="stub-lbfgs",
                            constraint_hook=lambda theta, problem: [])
    with pytest.raises(InputError, match=MSG_BACKEND_NEEDS.split("{")[0]) as info:
        est.fit(X, y, groups=pd.DataFrame({"g": g}))
    assert "needs ['numpy']" in str(info.value)
    # the personalized problem (the one with the hook) was never handed to the backend
    assert [k for k, _ in LBFGSStub.calls] == ["unconstrained"]


def test_a_task_not_declared_is_refused_at_solve_time_too():
    X, y, _ = data()
    m = FairUseClassifier(encoding="none", fair_use=None, solver="stub-lbfgs").fit(X, y)
    assert m.certificate_.solver == "stub-lbfgs"
    backend = LBFGSStub(problem=None)
    with pytest.raises(InputError, match="declares only"):
        backend.solve(Task("rationality"))


@pytest.mark.parametrize("changes, reason", [
    ({"name": "ECOS"}, "built-in"),
    ({"name": "native"}, "built-in"),
    ({"name": ""}, "non-empty"),
    ({"tasks": frozenset({"everything"})}, "must be some of"),
    ({"needs": frozenset({"gpu"})}, "must be some of"),
])
def test_registration_refuses_bad_declarations(changes, reason):
    bad = type("Bad", (LBFGSStub,), {"name": "stub-bad", **changes})
    with pytest.raises(InputError, match=reason):
        register_backend(bad)


def test_registration_refuses_a_second_class_under_a_taken_name():
    other = type("Other", (Backend,), {"name": "STUB-lbfgs", "tasks": frozenset({"unconstrained"})})
    with pytest.raises(InputError, match="another registered backend"):
        register_backend(other)
    with pytest.raises(InputError, match="not a subclass"):
        register_backend(type("NotABackend", (), {"name": "x"}))
