"""The native backend against the cvxpy path, on every route of a fit (issue 9).

Each case below is a small seeded random problem built to take one route of
:mod:`fairuse_opt.fairness.routes` (the route is asserted, so a change that sends a case
elsewhere fails here).  Every case is fitted three times: with ``solver="native"`` (numpy
only) and with ``solver="ECOS"`` and ``solver="CLARABEL"`` (every subproblem through the
cvxpy compilation, :mod:`fairuse_opt.problem.cvx`).  The three must agree on the
objective within 1e-6 (relative), and every requested constraint must hold to 1e-7 when
recomputed from the *served predictions* alone (``predict_proba`` / ``predict`` with
``report=``: each group's mean loss under every report, against the generic model's).

:func:`test_every_route_and_setting_is_exercised` fails when a route, an encoding, a
``group_reg``, a ``fair_use`` choice or a binding margin is missing from the cases.

The same comparison runs on real data: apnea (read from ``FAIRUSE_DATA_DIR``; a missing
file fails, never skips) and two data sets bundled with scikit-learn (diabetes, whose
``sex`` column and an age split make the groups, and a subsample of breast cancer).  The
``datasets`` extra (support2, nhefs) is not part of the ``test`` extra, so it is not used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from fairuse_opt import (
    FairUseClassifier,
    FairUseInfeasibleError,
    FairUseRegressor,
    FairUseWarning,
    FallbackWarning,
)
from fairuse_opt.exceptions import MSG_INFEASIBLE_MARGIN
from fairuse_opt.fairness import routes as _routes

CHECK_TOL = 1e-7
OBJ_RTOL = 1e-6
PATHS = ("native", "ECOS", "CLARABEL")
#: Every route a certificate can name after a fit of a personalized model.
ALL_ROUTES = {"unconstrained", "unconstrained-feasible", "exact", "convex", "ccp", "generic-fallback"}


@dataclass(frozen=True)
class Case:
    name: str
    task: str
    encoding: str
    group_reg: str
    fair_use: object
    route: str  # the route the case is built to take
    margin: object = 0.0
    on_infeasible: str = "raise"
    binding: bool = False  # some rationality constraint binds at the solution
    weighted: bool = False
    seed: int = 0
    n: int = 200
    d: int = 2
    kw: dict = field(default_factory=dict)


def random_problem(case: Case):
    """Four intersectional groups from two binary attributes, with group effects."""
    rng = np.random.default_rng(case.seed)
    n, d, G = case.n, case.d, 4
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, d) + rng.normal(size=d)
    g = np.concatenate([np.arange(G), rng.integers(0, G, n - G)])
    groups = pd.DataFrame({"a": g % 2, "b": g // 2})
    s = (X @ rng.normal(size=d) + rng.normal(scale=1.5, size=G)[g]
         + np.einsum("ij,ij->i", X, rng.normal(scale=0.8, size=(G, d))[g]))
    if case.task == "classification":
        y = (s + rng.logistic(size=n) > 0).astype(float)
    else:
        y = s + rng.normal(size=n)
    w = rng.uniform(0.3, 3.0, n) if case.weighted else None
    return X, y, groups, w


CASES = [
    # no guarantee asked
    Case("none-cls-intersectional", "classification", "intersectional", "set", None, "unconstrained"),
    Case("none-reg-onehot-penalty", "regression", "onehot", "penalty", None, "unconstrained", weighted=True),
    # the unconstrained fit already meets every constraint
    Case("feasible-cls-intersectional", "classification", "intersectional", "set", "both",
         "unconstrained-feasible"),
    Case("feasible-reg-decoupled", "regression", "decoupled", "set", "both", "unconstrained-feasible",
         weighted=True),
    # one exact convex program (group_reg="set", intersectional or decoupled)
    Case("exact-cls-intersectional-margin", "classification", "intersectional", "set", "both", "exact",
         margin=0.1, binding=True),
    Case("exact-reg-intersectional", "regression", "intersectional", "set", "rationality", "exact",
         margin=0.5, binding=True, weighted=True),
    # (decoupled blocks in the set are not penalised and share nothing: the unconstrained
    # fit gives each group its floor, so the exact program of the decoupled encoding either
    # is not needed or is infeasible: see test_decoupled_margin_beyond_the_floor_...)
    # rationality only, convex
    Case("convex-cls-onehot", "classification", "onehot", "set", "rationality", "convex",
         margin=0.07, binding=True),
    Case("convex-reg-intersectional-penalty", "regression", "intersectional", "penalty", "rationality",
         "convex", margin=0.55, binding=True),
    Case("convex-cls-decoupled-penalty", "classification", "decoupled", "penalty", "rationality", "convex",
         margin=0.12, binding=True, weighted=True),
    # the sequence of convex restrictions
    Case("ccp-cls-onehot-envy", "classification", "onehot", "set", "envy_freeness", "ccp"),
    Case("ccp-cls-onehot-penalty-margin", "classification", "onehot", "penalty", "both", "ccp",
         margin=0.07, binding=True),
    # two groups pool on one model here (both envy constraints between them bind): the
    # restrictions crawl along the pooled manifold and stopped at different points (native
    # 0.37974305, ECOS 0.37974245) until the polish tied the pooled groups (0.37973627)
    Case("ccp-cls-intersectional-penalty", "classification", "intersectional", "penalty", "both", "ccp",
         weighted=True),
    Case("ccp-reg-onehot", "regression", "onehot", "set", "both", "ccp", margin=0.4,
         binding=True),
    Case("ccp-reg-intersectional-penalty-margin", "regression", "intersectional", "penalty", "both", "ccp",
         margin=0.55, binding=True),
    Case("ccp-cls-decoupled-penalty", "classification", "decoupled", "penalty", "both", "ccp",
         margin=0.12, binding=True),
    # margins no model can meet for one group: that group gets the generic model
    Case("fallback-cls-intersectional", "classification", "intersectional", "set", "rationality",
         "generic-fallback", margin={(0, 0): 5.0}, on_infeasible="generic"),
    Case("fallback-reg-onehot", "regression", "onehot", "set", "rationality", "generic-fallback",
         margin={(1, 1): 50.0}, on_infeasible="generic", weighted=True),
]


def _estimator(task, **kw):
    Est = FairUseClassifier if task == "classification" else FairUseRegressor
    return Est(**kw)


def _fit(task, X, y, groups, w, path, **kw):
    est = _estimator(task, solver=path, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        warnings.simplefilter("ignore", FairUseWarning)
        return est.fit(X, y, groups=groups, sample_weight=w)


def row_losses(task, y, pred):
    """Per-row losses of served predictions, computed here (not by the library)."""
    if task == "classification":
        return -(y * np.log(pred[:, 1]) + (1 - y) * np.log(pred[:, 0]))
    return (y - pred) ** 2


def check_constraints_from_predictions(model, task, X, y, groups, w, fair_use):
    """Every requested constraint, recomputed from predictions with ``report=``.

    Returns ``(L, L0, margins)``: ``L[g, r]`` group g's weighted mean loss when its rows
    report r, ``L0[g]`` the generic model's, and the certificate's margins.
    """
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    keys = list(groups.itertuples(index=False, name=None))
    G = len(model.groups_)
    members = [np.array([k == key for k in keys]) for key in model.groups_]
    predict = (lambda est, **kw: est.predict_proba(X, **kw)) if task == "classification" else \
        (lambda est, **kw: est.predict(X, **kw))
    L = np.empty((G, G))
    for r, key in enumerate(model.groups_):
        rl = row_losses(task, y, predict(model, report=key))
        for g in range(G):
            L[g, r] = np.average(rl[members[g]], weights=w[members[g]])
    rl0 = row_losses(task, y, predict(model.generic_))
    L0 = np.array([np.average(rl0[m], weights=w[m]) for m in members])
    margins = model.certificate_.table["margin"].to_numpy(dtype=float)
    own = np.diag(L)
    fu = model.certificate_.fair_use
    assert set(fu) == set(fair_use)
    if "rationality" in fu:
        worst = np.max(own - (L0 - margins))
        assert worst <= CHECK_TOL, f"rationality violated by {worst:.3g}"
    if "envy_freeness" in fu:
        envy = max(own[g] - L[g, r] for g in range(G) for r in range(G) if r != g)
        assert envy <= CHECK_TOL, f"envy of {envy:.3g}"
    return L, L0, margins


def _fair_use_tuple(fu):
    if fu is None:
        return ()
    return ("rationality", "envy_freeness") if fu == "both" else (fu,)


@pytest.fixture(scope="module")
def fitted():
    """Every case fitted by every path, once: ``{case name: {path: model}}``."""
    out = {}
    for case in CASES:
        X, y, groups, w = random_problem(case)
        kw = dict(encoding=case.encoding, group_reg=case.group_reg, fair_use=case.fair_use,
                  margin=case.margin, on_infeasible=case.on_infeasible, l2=1e-2, **case.kw)
        out[case.name] = {path: _fit(case.task, X, y, groups, w, path, **kw) for path in PATHS}
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_native_and_cvxpy_paths_agree(case, fitted):
    X, y, groups, w = random_problem(case)
    models = fitted[case.name]
    ref = models["native"].certificate_
    for path, model in models.items():
        cert = model.certificate_
        assert cert.route == case.route, f"{path} took route {cert.route}, expected {case.route}"
        assert cert.verified, (path, cert.failures)
        assert cert.objective == pytest.approx(ref.objective, rel=OBJ_RTOL), (path, cert.objective, ref.objective)
        L, L0, margins = check_constraints_from_predictions(model, case.task, X, y, groups, w,
                                                            _fair_use_tuple(case.fair_use))
        if case.binding:
            slack = L0 - margins - np.diag(L)
            assert slack.min() <= 1e-6, f"{path}: no rationality constraint binds (slacks {slack})"
        if case.route == "generic-fallback":
            fb = cert.table["generic_fallback"].to_numpy()
            assert fb.sum() == 1, "the one group whose margin is out of reach gets the generic model"
            gcoef, gint = model.generic_.coef_[0], model.generic_.intercept_[0]
            for g in np.flatnonzero(fb):
                np.testing.assert_array_equal(model.coef_[g], gcoef)
                assert model.intercept_[g] == gint
    # the paths serve the same losses, not only the same objective
    Ls = [check_constraints_from_predictions(m, case.task, X, y, groups, w, _fair_use_tuple(case.fair_use))[0]
          for m in models.values()]
    for L in Ls[1:]:
        np.testing.assert_allclose(np.diag(L), np.diag(Ls[0]), rtol=1e-4, atol=1e-5)


def test_native_path_uses_no_conic_solver(fitted):
    """``solver="native"`` solves in numpy: no attempt of a conic solver is recorded."""
    for case in CASES:
        cert = fitted[case.name]["native"].certificate_
        conic = [a for a, _ in cert.attempts if not str(a).upper().startswith("NATIVE")]
        assert not conic, (case.name, conic)
    # and the cvxpy paths do use their solver
    for case in CASES:
        for path in ("ECOS", "CLARABEL"):
            cert = fitted[case.name][path].certificate_
            if case.fair_use is not None and case.route not in ("unconstrained-feasible",):
                assert any(str(a).startswith(path) for a, _ in cert.attempts), (case.name, path, cert.attempts)


def test_every_route_and_setting_is_exercised(fitted):
    seen = {m.certificate_.route for models in fitted.values() for m in models.values()}
    assert seen == ALL_ROUTES, f"routes not exercised: {ALL_ROUTES - seen}"
    # the route objects of the library name no route outside ALL_ROUTES
    names = {_routes.Unconstrained.name, _routes.RationalityProgram(True).name,
             _routes.RationalityProgram(False).name, _routes.RestrictionSequence.name}
    assert names <= ALL_ROUTES
    by_route = {}
    for case in CASES:
        by_route.setdefault(case.route, []).append(case)
    # every encoding, group_reg and fair_use choice appears among the constrained fits
    constrained = [c for c in CASES if c.fair_use is not None]
    assert {c.encoding for c in constrained} == {"onehot", "intersectional", "decoupled"}
    assert {c.group_reg for c in constrained} == {"set", "penalty"}
    assert {c.fair_use for c in constrained} == {"rationality", "envy_freeness", "both"}
    # the exact route with both encodings it serves; the sequence with both group_reg
    assert {c.encoding for c in by_route["exact"]} == {"intersectional"}
    assert {c.task for c in by_route["exact"]} == {"classification", "regression"}
    assert {c.group_reg for c in by_route["ccp"]} == {"set", "penalty"}
    assert {c.task for c in CASES} == {"classification", "regression"}
    # binding margins: a positive margin binds on the exact, convex and sequence routes
    for route in ("exact", "convex", "ccp"):
        assert any(c.binding and c.margin for c in by_route[route]), route


@pytest.mark.parametrize("task,margin,bad", [("classification", 0.1, [(1, 1)]),
                                             ("regression", 1.3, [(0, 0), (1, 1)])])
def test_decoupled_margin_beyond_the_floor_is_named_alike_by_every_path(task, margin, bad):
    """Decoupled blocks in the common set: each group's unconstrained block is its floor
    (the lowest loss it can reach), so a margin above ``generic - floor`` is infeasible
    for exactly those groups.  The native path used to miss them (its interior-point
    method crawled along the ball and stopped unconverged) and blamed every group."""
    case = Case("x", task, "decoupled", "set", "rationality", "exact", margin=margin,
                seed=1 if task == "classification" else 2)
    X, y, groups, w = random_problem(case)
    free = _fit(task, X, y, groups, w, "native", encoding="decoupled", fair_use=None, l2=1e-2)
    L0 = free.generic_.predict_proba(X) if task == "classification" else free.generic_.predict(X)
    rl0 = row_losses(task, y, L0)
    keys = list(groups.itertuples(index=False, name=None))
    expected = []
    for g, key in enumerate(free.groups_):
        m = np.array([k == key for k in keys])
        own = np.mean(row_losses(task, y[m], (free.predict_proba if task == "classification" else free.predict)(
            X[m], report=key)))
        if np.mean(rl0[m]) - own < margin:
            expected.append(key)
    assert expected == bad  # the groups whose unconstrained gain is below the margin
    for path in PATHS:
        with pytest.raises(FairUseInfeasibleError) as info:
            _fit(task, X, y, groups, w, path, encoding="decoupled", fair_use="rationality", margin=margin,
                 l2=1e-2)
        assert str(info.value) == MSG_INFEASIBLE_MARGIN.format(
            groups=bad, reason="the required margin exceeds the lowest training loss the model family can "
                               "reach for them"), (path, str(info.value))


# ------------------------------------------------------------------ real data
def _diabetes():
    df = load_diabetes(as_frame=True).frame
    g = pd.DataFrame({"sex": (df["sex"] > 0).astype(int), "old": (df["age"] > df["age"].median()).astype(int)})
    return df.drop(columns=["target", "sex", "age"]).to_numpy(float), df["target"].to_numpy(float), g


def _real_cases(apnea):
    X, y, groups = apnea
    cases = [("apnea", "classification", X.to_numpy(float), y.to_numpy(float), groups.reset_index(drop=True))]
    Xd, yd, g = _diabetes()
    cases.append(("diabetes", "regression", Xd, yd, g))  # the raw target: losses ~3,000
    bc = load_breast_cancer(as_frame=True)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(bc.frame), 300, replace=False))
    fr = bc.frame.iloc[idx].reset_index(drop=True)
    gb = pd.DataFrame({"big": (fr["mean area"] > fr["mean area"].median()).astype(int),
                       "smooth": (fr["mean smoothness"] > fr["mean smoothness"].median()).astype(int)})
    Xb = fr[["mean texture", "mean concavity", "worst symmetry"]].to_numpy(float)
    cases.append(("breast_cancer", "classification", Xb, fr["target"].to_numpy(float), gb))
    return cases


REAL_SETTINGS = [
    ("intersectional", "set", "both", "se:1"),
    ("onehot", "set", "both", 0.0),
    ("intersectional", "penalty", "both", 0.0),
    ("decoupled", "penalty", "rationality", 0.0),
]


def _agree_on(name, task, X, y, groups, encoding, group_reg, fair_use, margin):
    kw = dict(encoding=encoding, group_reg=group_reg, fair_use=fair_use, margin=margin, l2=1e-3)
    models = {path: _fit(task, X, y, groups, None, path, **kw) for path in ("native", "ECOS")}
    ref = models["native"].certificate_
    for path, model in models.items():
        cert = model.certificate_
        assert cert.verified, (name, path, cert.failures)
        assert cert.route == ref.route, (name, path, cert.route, ref.route)
        assert cert.objective == pytest.approx(ref.objective, rel=OBJ_RTOL), (name, path)
        check_constraints_from_predictions(model, task, X, y, groups, None, _fair_use_tuple(fair_use))
    return ref.route


def test_native_and_cvxpy_agree_on_real_data(apnea):
    routes_seen = set()
    for name, task, X, y, groups in _real_cases(apnea):
        for setting in REAL_SETTINGS:
            routes_seen.add(_agree_on(name, task, X, y, groups, *setting))
    assert {"exact", "ccp", "convex", "unconstrained-feasible"} <= routes_seen, routes_seen


def test_conic_path_solves_the_raw_regression_target():
    """Diabetes' raw target (in the hundreds; losses ~3,000).  Before the conic programs
    were compiled for targets of order one (``Problem.rescaled``), ECOS and Clarabel
    stopped at optimal_inaccurate with rationality violated by 1-100 loss units and the
    fit fell to the sequence of restrictions: 4649.8 against 4128.4 native (decoupled,
    penalty, rationality)."""
    X, y, groups = _diabetes()
    for setting in [("intersectional", "set", "both", 0.0), ("decoupled", "penalty", "rationality", 0.0)]:
        kw = dict(encoding=setting[0], group_reg=setting[1], fair_use=setting[2], margin=setting[3], l2=1e-3)
        for path in ("ECOS", "CLARABEL"):
            cert = _fit("regression", X, y, groups, None, path, **kw).certificate_
            assert cert.route == ("exact" if setting[0] == "intersectional" else "convex"), (path, cert.route)
            assert cert.solver == path and cert.verified


def test_rescaled_problem_is_the_same_problem():
    """``Problem.rescaled``: theta = c theta', every loss c^2 times, the set scaled."""
    prob, theta = build_problem(dict(n=40, d=2, levels=(2, 2), loss="squared", encoding="decoupled",
                                     group_reg="set", alpha=0.03, weighted=True, discrete=False, seed=4))
    prob.data.stats[:, 1:] *= [30.0, 900.0]  # targets 30 times larger
    scaled, c = prob.rescaled()
    assert c == pytest.approx(np.sqrt(prob.data.stats[:, 2].sum() / prob.data.stats[:, 0].sum()))
    assert scaled.objective(theta / c) * c ** 2 == pytest.approx(prob.objective(theta), rel=1e-12)
    np.testing.assert_allclose(scaled.loss_matrix(theta / c) * c ** 2, prob.loss_matrix(theta), rtol=1e-12)
    inside = prob.set_spec.constraints(prob.family, theta)[0] >= 0
    np.testing.assert_array_equal(scaled.set_spec.constraints(scaled.family, theta / c)[0] >= 0, inside)
    assert LogisticLoss().target_scale(prob.data.stats) == 1.0


# ------------------------------------------- the problem's numpy methods vs its cvxpy program
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fairuse_opt.model import Family, LogisticLoss, SquaredLoss  # noqa: E402
from fairuse_opt.problem import Problem, SetSpec, TrainData  # noqa: E402


def _fd(f, theta, h=1e-6):
    out = np.zeros_like(theta)
    for k in range(len(theta)):
        e = np.zeros_like(theta)
        e[k] = h
        out[k] = (f(theta + e) - f(theta - e)) / (2 * h)
    return out


@st.composite
def problem_specs(draw):
    return dict(n=draw(st.integers(8, 60)), d=draw(st.integers(0, 3)), levels=draw(st.sampled_from([(2,), (2, 2), (3, 2)])),
                loss=draw(st.sampled_from(["logistic", "squared"])),
                encoding=draw(st.sampled_from(["onehot", "intersectional", "decoupled"])),
                group_reg=draw(st.sampled_from(["set", "penalty"])), alpha=draw(st.sampled_from([1e-4, 0.03])),
                weighted=draw(st.booleans()), discrete=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))


def build_problem(spec):
    rng = np.random.default_rng(spec["seed"])
    n, d, levels = spec["n"], spec["d"], spec["levels"]
    X = rng.integers(0, 3, size=(n, d)).astype(float) if spec["discrete"] else rng.normal(size=(n, d)) * 2 + 1
    attrs = np.column_stack([rng.integers(0, k, n) for k in levels])
    attrs[: np.prod(levels)] = np.array(np.unravel_index(np.arange(np.prod(levels)), levels)).T  # all present
    keys = sorted(set(map(tuple, attrs)))
    codes = np.array([keys.index(tuple(a)) for a in attrs])
    loss = LogisticLoss() if spec["loss"] == "logistic" else SquaredLoss()
    y = (rng.random(n) < 0.5).astype(float) if spec["loss"] == "logistic" else rng.normal(size=n) * 3
    y[:2] = [0.0, 1.0]  # both classes (alpha > 0: a minimum exists; alpha = 0 is tested in test_edge_cases)
    w = rng.uniform(0.2, 3.0, n) if spec["weighted"] else np.ones(n)
    mean = np.average(X, axis=0, weights=w) if d else np.zeros(0)
    sd = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w)) if d else np.zeros(0)
    scale = np.where(sd > 1e-12, sd, 1.0)
    Z = (X - mean) / scale
    fam = Family(spec["encoding"], spec["group_reg"], d, np.array(keys), list(levels), shift=mean / scale)
    data = TrainData.build(Z, codes, loss.stats(y, w), len(keys), merge=spec["discrete"])
    spec_set = SetSpec(0.2, 4.0, np.zeros(d), 2.0)
    prob = Problem(fam, loss, data, alpha=spec["alpha"], scale=scale, mean=mean, set_spec=spec_set)
    theta = rng.normal(scale=0.4, size=fam.n_params)
    return prob, theta


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(problem_specs())
def test_problem_numpy_methods_agree_with_cvxpy_and_finite_differences(spec):
    """Objective, gradient, own losses, the loss matrix and its Jacobian (numpy) against
    the cvxpy program compiled from the same Problem (both forms, with the rationality
    and envy constraints) and against central finite differences."""
    prob, theta = build_problem(spec)
    G = prob.G
    pairs = [(g, r) for g in range(G) for r in range(G) if g != r]
    val, grad = prob.value_grad(theta)
    own, own_grad = prob.own_losses(theta, grad=True)
    L, E = prob.loss_matrix(theta, jacobian=True)
    J = prob.pair_gradients(E, pairs).toarray()
    for form in ("direct", "epigraph"):
        prog = prob.to_cvxpy(form=form, rationality=True, envy_pairs=pairs)
        prog.theta.value = theta
        if form == "epigraph":  # the epigraph variables at their tight value
            u = [v for v in prog.problem.variables() if v.name() == "group_loss"][0]
            u.value = np.array([float(s.value) if s is not None else 0.0 for s in prog.direct_sums])
        assert val == pytest.approx(float(prog.objective.value), rel=1e-10, abs=1e-12)
        for g in prob.active:
            assert own[g] == pytest.approx(float(prog.group_loss[g].value), rel=1e-10, abs=1e-12)
    prog = prob.to_cvxpy(form="direct")
    prog.theta.value = theta
    np.testing.assert_allclose(grad, np.asarray(prog.objective.grad[prog.theta].todense()).ravel(),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(grad, _fd(prob.objective, theta), rtol=1e-5, atol=1e-7)
    H = prob.hessian(theta)
    np.testing.assert_allclose(H, np.array([_fd(lambda t: prob.value_grad(t)[1][k], theta) for k in range(prob.p)]),
                               rtol=1e-4, atol=1e-6)
    for k, (g, r) in enumerate(pairs):
        expr = prog.group_loss_expr(g, r)
        assert L[g, r] == pytest.approx(float(expr.value), rel=1e-10, abs=1e-12)
        np.testing.assert_allclose(J[k], np.asarray(expr.grad[prog.theta].todense()).ravel(), rtol=1e-8, atol=1e-10)
        if k % 3 == 0:
            np.testing.assert_allclose(J[k], _fd(lambda t: prob.loss_matrix(t)[g, r], theta), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(own, np.diag(L), rtol=1e-12)
    for g in prob.active:
        np.testing.assert_allclose(own_grad[g], _fd(lambda t: prob.own_losses(t)[g], theta), rtol=1e-5, atol=1e-7)
