"""Edge cases of the fitting core, each against an answer known in advance (issue 9).

Separable and nearly separable groups, duplicated rows (the same fit as weights 2),
zero-weight rows (the same fit as dropping them), a single feature, no feature, constant
features, one row in a group.  References: scikit-learn, scipy on objectives written
here from their definition, or values computed by hand; where no answer exists (a loss
with no minimum) a clear :mod:`fairuse_opt.exceptions` error.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression, Ridge

from fairuse_opt import FairUseClassifier, FairUseInfeasibleError, FairUseRegressor, SmallGroupWarning
from fairuse_opt.exceptions import MSG_EMPTY_WEIGHT_GROUP, MSG_SEPARABLE, InputError

ALPHA = 1e-2


def _fit(est, X, y, groups=None, w=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        return est.fit(X, y, groups=groups, sample_weight=w)


def reference_intersectional_set(X, y, codes, alpha, task, w=None, bound=5.0):
    """The ``intersectional`` / ``group_reg="set"`` fit written from its definition and
    minimised by scipy (L-BFGS-B with the common interval as bounds)::

        min  mean_w loss(y, z . v + b_g) + alpha ||v / sd||^2,   |b_g - c| <= bound

    on ``z = (x - mean) / sd`` (weighted), ``c`` the standardised intercept of the
    generic model fitted by scikit-learn, ``bound`` 5 log-odds (classifier) or 5 sd of y.
    Returns raw-scale ``(coef (d,), intercepts (G,))``.
    """
    n, d = X.shape
    w = np.ones(n) if w is None else w
    G = int(codes.max()) + 1
    mean = np.average(X, axis=0, weights=w)
    sd = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w))
    sd = np.where(sd > 1e-12, sd, 1.0)
    Z = (X - mean) / sd
    if task == "classification":
        gen = LogisticRegression(C=1 / (2 * alpha * w.sum()), tol=1e-12, max_iter=10_000).fit(X, y, sample_weight=w)
        unit = 1.0
    else:
        gen = Ridge(alpha=alpha * w.sum(), tol=1e-12).fit(X, y, sample_weight=w)
        unit = float(np.sqrt(np.average((y - np.average(y, weights=w)) ** 2, weights=w)))
    c = float(np.ravel(gen.intercept_)[0] + np.ravel(gen.coef_) @ mean)

    def f(p):
        s = Z @ p[:d] + p[d:][codes]
        if task == "classification":
            rl, dl = np.logaddexp(0, s) - y * s, expit(s) - y
        else:
            rl, dl = (y - s) ** 2, 2 * (s - y)
        r = w * dl / w.sum()
        val = float(np.average(rl, weights=w) + alpha * np.sum((p[:d] / sd) ** 2))
        return val, np.concatenate([Z.T @ r + 2 * alpha * p[:d] / sd ** 2, np.bincount(codes, weights=r, minlength=G)])

    b = bound * unit
    x0 = np.concatenate([np.zeros(d), np.full(G, c)])
    res = minimize(f, x0, jac=True, method="L-BFGS-B", bounds=[(None, None)] * d + [(c - b, c + b)] * G,
                   options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 20_000})
    coef = res.x[:d] / sd
    return coef, res.x[d:] - coef @ mean, res.x[d:], c, b


def _codes(model, groups):
    keys = list(groups.itertuples(index=False, name=None))
    return np.array([model.groups_.index(k) for k in keys])


def base_data(seed=0, n=240, d=2, G=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * [1.0, 2.5][:d] + [0.3, -1.0][:d]
    g = np.concatenate([np.arange(G), rng.integers(0, G, n - G)])
    y = (X @ np.array([0.8, -0.4][:d]) + 0.6 * (g - 1) + rng.logistic(size=n) > 0).astype(float)
    return X, y, pd.DataFrame({"g": g})


# ------------------------------------------------------------------ separable
def test_separable_without_penalty_has_no_minimum_and_says_so():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    y = (X[:, 0] - 0.3 * X[:, 1] > 0).astype(int)
    for solver in ("native", "ECOS"):
        with pytest.raises(InputError, match=re.escape(MSG_SEPARABLE.format(what="generic model"))):
            FairUseClassifier(encoding="none", l2=0.0, solver=solver).fit(X, y)
    # with a penalty the minimum exists: scikit-learn's
    m = FairUseClassifier(encoding="none", l2=ALPHA).fit(X, y)
    ref = LogisticRegression(C=1 / (2 * ALPHA * 100), tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(m.coef_[0], ref.coef_[0], rtol=1e-6)


@pytest.mark.parametrize("encoding,group_reg", [("intersectional", "penalty"), ("onehot", "set"),
                                                ("decoupled", "penalty")])
def test_separable_group_without_penalty_has_no_minimum(encoding, group_reg):
    """Group 0 is all positive: its unpenalised offset would run to infinity."""
    X, y, groups = base_data()
    y = np.where(groups["g"] == 0, 1.0, y)
    with pytest.raises(InputError, match=re.escape(MSG_SEPARABLE.format(what="personalized model"))):
        _fit(FairUseClassifier(encoding=encoding, group_reg=group_reg, l2=0.0, fair_use=None), X, y, groups)


@pytest.mark.parametrize("alpha", [0.0, ALPHA])
@pytest.mark.parametrize("flip", [0, 1], ids=["separable", "nearly-separable"])
def test_separable_group_in_the_common_set(alpha, flip):
    """Group 0 all positive (or all but one): held by the common interval.  Separable,
    its intercept sits exactly on the interval's upper end; nearly separable, wherever
    the bounded reference puts it.  The rest of the fit matches the reference."""
    X, y, groups = base_data(seed=1)
    g = groups["g"].to_numpy()
    y = np.where(g == 0, 1.0, y)
    if flip:
        y[np.flatnonzero(g == 0)[0]] = 0.0
    m = _fit(FairUseClassifier(encoding="intersectional", l2=alpha, fair_use=None), X, y, groups)
    if alpha == 0.0:
        # sklearn's LogisticRegression has no exactly-unpenalised mode: compare at a tiny C
        alpha_ref = 1e-9
    else:
        alpha_ref = alpha
    codes = _codes(m, groups)
    coef, intercepts, b_std, c, b = reference_intersectional_set(X, y, codes, alpha_ref, "classification")
    np.testing.assert_allclose(m.coef_[0], coef, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.intercept_, intercepts, atol=1e-4)
    at_b = m.certificate_.table["at_set_boundary"].to_numpy()
    g0 = m.groups_.index((0,))
    if not flip:
        # hand-known: the loss of an all-positive group decreases in its intercept
        assert b_std[g0] == pytest.approx(c + b, abs=1e-9)
        own_std = m.intercept_[g0] + m.coef_[g0] @ np.average(X, axis=0)
        gen_std = m.generic_.intercept_[0] + m.generic_.coef_[0] @ np.average(X, axis=0)
        assert own_std == pytest.approx(gen_std + 5.0, abs=1e-6)
        assert at_b[g0]
    assert not at_b[[k for k in range(len(at_b)) if k != g0]].any()


def test_separable_group_with_fair_use_verifies():
    X, y, groups = base_data(seed=2)
    y = np.where(groups["g"] == 0, 1.0, y)
    for solver in ("native", "ECOS"):
        m = _fit(FairUseClassifier(encoding="intersectional", l2=ALPHA, fair_use="both", margin=0.02,
                                   solver=solver), X, y, groups)
        assert m.certificate_.verified and m.certificate_.route in ("exact", "unconstrained-feasible")


# ---------------------------------------------------------- rows and weights
def _compare(m1, m2, atol=1e-8, obj_rtol=1e-10):
    np.testing.assert_allclose(m1.coef_, m2.coef_, atol=atol)
    np.testing.assert_allclose(m1.intercept_, m2.intercept_, atol=atol)
    assert m1.certificate_.objective == pytest.approx(m2.certificate_.objective, rel=obj_rtol)
    assert m1.certificate_.route == m2.certificate_.route
    t1, t2 = m1.certificate_.table, m2.certificate_.table
    np.testing.assert_allclose(t1["own_loss"], t2["own_loss"], atol=atol)
    np.testing.assert_allclose(t1["generic_loss"], t2["generic_loss"], atol=atol)


#: (task, encoding, group_reg, fair_use, margin, route): the margins bind (checked)
SETTINGS = [("classification", "intersectional", "set", "both", 0.002, "exact"),
            ("classification", "onehot", "set", "both", 0.002, "ccp"),
            ("regression", "onehot", "set", "both", 0.0055, "ccp"),
            ("regression", "decoupled", "penalty", "rationality", 0.0, "unconstrained-feasible")]


def _data(task, seed=3):
    X, y, groups = base_data(seed=seed)
    if task == "regression":
        rng = np.random.default_rng(seed)
        y = X @ [1.0, -0.5] + groups["g"].to_numpy() * 0.7 + rng.normal(size=len(y))
    return X, y, groups


def _est(task, **kw):
    return (FairUseClassifier if task == "classification" else FairUseRegressor)(l2=ALPHA, **kw)


@pytest.mark.parametrize("merge_rows", [True, False])
@pytest.mark.parametrize("task,encoding,group_reg,fair_use,margin,route", SETTINGS)
def test_duplicated_rows_fit_as_weight_two(task, encoding, group_reg, fair_use, margin, route, merge_rows):
    X, y, groups = _data(task)
    dup = np.arange(0, len(y), 3)  # every third row twice
    Xd = np.vstack([X, X[dup]])
    yd = np.concatenate([y, y[dup]])
    gd = pd.concat([groups, groups.iloc[dup]], ignore_index=True)
    w = np.ones(len(y))
    w[dup] = 2.0
    kw = dict(encoding=encoding, group_reg=group_reg, fair_use=fair_use, margin=margin, merge_rows=merge_rows)
    m_dup = _fit(_est(task, **kw), Xd, yd, gd)
    m_w = _fit(_est(task, **kw), X, y, groups, w)
    _compare(m_dup, m_w, atol=1e-6 if m_w.certificate_.route == "ccp" else 1e-8,
             obj_rtol=1e-9 if m_w.certificate_.route == "ccp" else 1e-10)
    assert m_w.certificate_.verified and m_dup.certificate_.verified
    assert m_w.certificate_.route == route
    assert m_w.certificate_.table["rationality_active"].any() == (margin > 0)


@pytest.mark.parametrize("task,encoding,group_reg,fair_use,margin,route", SETTINGS)
def test_zero_weight_rows_fit_as_dropped(task, encoding, group_reg, fair_use, margin, route):
    X, y, groups = _data(task)
    rng = np.random.default_rng(9)
    k = 25
    # extra rows far from the data, in every group, with weight 0
    Xz = np.vstack([X, rng.normal(size=(k, 2)) * 50 + 100])
    yz = np.concatenate([y, (rng.random(k) < 0.5).astype(float) if task == "classification" else rng.normal(size=k) * 1e3])
    gz = pd.concat([groups, pd.DataFrame({"g": rng.integers(0, 3, k)})], ignore_index=True)
    w = np.concatenate([np.ones(len(y)), np.zeros(k)])
    kw = dict(encoding=encoding, group_reg=group_reg, fair_use=fair_use, margin=margin)
    m_zero = _fit(_est(task, **kw), Xz, yz, gz, w)
    m_drop = _fit(_est(task, **kw), X, y, groups)
    assert m_drop.certificate_.route == route
    _compare(m_zero, m_drop, atol=1e-8 if route != "ccp" else 1e-6, obj_rtol=1e-9)


def test_group_of_zero_weight_rows_is_a_clear_error():
    X, y, groups = base_data()
    groups = groups.copy()
    groups.loc[:4, "g"] = 7
    w = np.ones(len(y))
    w[:5] = 0.0
    with pytest.raises(InputError) as info:
        FairUseClassifier().fit(X, y, groups=groups, sample_weight=w)
    assert str(info.value) == MSG_EMPTY_WEIGHT_GROUP.format(group=(7,))


# ---------------------------------------------------------------- features
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_single_feature(task):
    X, y, groups = _data(task)
    X1 = X[:, :1]
    n = len(y)
    m = _fit(_est(task, encoding="none", fair_use=None), X1, y)
    if task == "classification":
        ref = LogisticRegression(C=1 / (2 * ALPHA * n), tol=1e-12, max_iter=10_000).fit(X1, y)
    else:
        ref = Ridge(alpha=ALPHA * n, tol=1e-12).fit(X1, y)
    np.testing.assert_allclose(m.coef_[0], np.ravel(ref.coef_), rtol=1e-6)
    assert m.intercept_[0] == pytest.approx(float(np.ravel(ref.intercept_)[0]), abs=1e-6)
    # personalized: against the bounded reference written from the definition
    m = _fit(_est(task, encoding="intersectional", fair_use=None), X1, y, groups)
    coef, intercepts, *_ = reference_intersectional_set(X1, np.asarray(y, float), _codes(m, groups), ALPHA, task)
    np.testing.assert_allclose(m.coef_[0], coef, rtol=1e-5)
    np.testing.assert_allclose(m.intercept_, intercepts, atol=1e-5)


def test_no_feature_gives_each_group_its_log_odds():
    """No feature: each group's intercept is the logit of its positive rate (hand-known)."""
    X, y, groups = base_data()
    X0 = np.zeros((len(y), 0))
    for solver in ("native", "ECOS"):
        m = _fit(FairUseClassifier(encoding="intersectional", fair_use="both", solver=solver), X0, y, groups)
        g = groups["g"].to_numpy()
        expected = [logit(y[g == key[0]].mean()) for key in m.groups_]
        np.testing.assert_allclose(m.intercept_, expected, atol=1e-6)
        assert m.certificate_.route == "unconstrained-feasible"


@pytest.mark.parametrize("alpha", [0.0, ALPHA])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_constant_feature_gets_zero_weight_and_changes_nothing(task, alpha):
    """A constant column moves every score alike, as the intercepts do: with a penalty
    its weight is 0, and the fit is the fit without it (hand-known)."""
    X, y, groups = _data(task)
    Xc = np.column_stack([X[:, 0], np.full(len(y), 3.0), X[:, 1]])
    kw = dict(encoding="intersectional", fair_use="both", margin=0.002 if task == "classification" else 0.0055)
    est = (FairUseClassifier if task == "classification" else FairUseRegressor)(l2=alpha, **kw)
    m_c = _fit(est, Xc, y, groups)
    m = _fit((FairUseClassifier if task == "classification" else FairUseRegressor)(l2=alpha, **kw), X, y, groups)
    np.testing.assert_allclose(m_c.coef_[:, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(m_c.coef_[:, [0, 2]], m.coef_, atol=1e-8)
    np.testing.assert_allclose(m_c.intercept_, m.intercept_, atol=1e-8)
    np.testing.assert_allclose(m_c.decision_function(Xc, groups=groups), m.decision_function(X, groups=groups),
                               atol=1e-8)
    assert m_c.certificate_.objective == pytest.approx(m.certificate_.objective, rel=1e-10)
    assert m.certificate_.route == m_c.certificate_.route == "exact"


# ----------------------------------------------------------- a one-row group
def test_one_row_group_regression_fits_its_row_and_leaves_the_rest():
    """A group of one row: its own intercept fits the row exactly (hand-known: its loss
    is 0), and the shared weights are those of the fit without it, whose mean loss is
    over one row fewer (alpha scaled by n / (n - 1))."""
    X, y, groups = _data("regression")
    n = len(y)
    groups = groups.copy()
    groups.loc[0, "g"] = 9
    with pytest.warns(SmallGroupWarning, match=r"group \(9,\) has 1 row"):
        m = FairUseRegressor(encoding="intersectional", l2=ALPHA, fair_use="both").fit(X, y, groups=groups)
    k = m.groups_.index((9,))
    assert float(m.predict(X[:1], report=(9,))[0]) == pytest.approx(y[0], abs=1e-8)
    assert m.certificate_.table["own_loss"][k] == pytest.approx(0.0, abs=1e-12)
    rest = FairUseRegressor(encoding="intersectional", l2=ALPHA * n / (n - 1), fair_use=None).fit(
        X[1:], y[1:], groups=groups.iloc[1:])
    np.testing.assert_allclose(m.coef_[0], rest.coef_[0], rtol=1e-7)
    others = [m.groups_.index(key) for key in rest.groups_]
    np.testing.assert_allclose(m.intercept_[others], rest.intercept_, atol=1e-7)
    assert m.certificate_.verified


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_one_row_group_classification_sits_on_the_interval(label):
    """A one-row group is separable: its intercept sits on the end of the common interval
    its label points to (hand-known: the generic standardised intercept +- 5)."""
    X, y, groups = base_data()
    groups = groups.copy()
    groups.loc[0, "g"] = 9
    y = y.copy()
    y[0] = label
    with pytest.warns(SmallGroupWarning):
        m = FairUseClassifier(encoding="intersectional", l2=ALPHA, fair_use="both").fit(X, y, groups=groups)
    k = m.groups_.index((9,))
    mean = X.mean(axis=0)
    own_std = m.intercept_[k] + m.coef_[k] @ mean
    gen_std = m.generic_.intercept_[0] + m.generic_.coef_[0] @ mean
    assert own_std == pytest.approx(gen_std + (5.0 if label else -5.0), abs=1e-6)
    assert m.certificate_.table["at_set_boundary"][k]
    assert m.certificate_.verified


def _separable_lp(X, y):
    """Independent check, on the raw rows: is there ``(w, b)`` with every row on its
    label's side of ``x . w + b = 0`` and some row strictly (complete or quasi-complete
    separation)?  Linear program: maximise the sum of signed scores, each >= 0, in a box."""
    from scipy.optimize import linprog

    sgn = 2 * y - 1
    A = sgn[:, None] * np.column_stack([X, np.ones(len(y))])
    res = linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(len(y)), bounds=(-1, 1), method="highs")
    return res.status == 0 and -res.fun > 1e-7


def test_no_minimum_is_detected_exactly_when_the_classes_are_separable():
    """Random small data at alpha=0: the fit raises if and only if an independent linear
    program finds a separating direction; otherwise it is scikit-learn's unpenalised fit."""
    outcomes = {"separable": 0, "not separable": 0}
    for seed in range(30):
        rng = np.random.default_rng(seed)
        n, d = int(rng.integers(8, 30)), int(rng.integers(1, 3))
        X = rng.normal(size=(n, d))
        y = (X @ rng.normal(size=d) + rng.logistic(size=n) * rng.choice([0.01, 3.0]) > 0).astype(float)
        if y.min() == y.max():
            y[0] = 1 - y[0]
        sep = _separable_lp(X, y)
        outcomes["separable" if sep else "not separable"] += 1
        if sep:
            with pytest.raises(InputError, match=re.escape(MSG_SEPARABLE.format(what="generic model"))):
                FairUseClassifier(encoding="none", l2=0.0).fit(X, y)
        else:
            m = FairUseClassifier(encoding="none", l2=0.0).fit(X, y)
            ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=100_000).fit(X, y)
            np.testing.assert_allclose(m.coef_[0], ref.coef_[0], rtol=1e-4, atol=1e-5)
    assert min(outcomes.values()) >= 5, outcomes


def test_jointly_infeasible_margins_are_reported_as_what_was_established():
    """Margins each group can reach alone but not all at once (shared weights).  The
    minimax program ``min t s.t. L_g(own) - (L_g(generic) - margin) <= t`` is convex;
    scipy finds t* > 0: infeasible.  The conic path proves it (a certificate of
    infeasibility) and says so; the native path has no certificate and says only that no
    verified model was found."""
    X, y, groups = _data("classification")
    w = np.ones(len(y))
    w[np.arange(0, len(y), 3)] = 2.0
    margin = 0.003
    g = groups["g"].to_numpy()
    gen = LogisticRegression(C=1 / (2 * ALPHA * w.sum()), tol=1e-12, max_iter=10_000).fit(X, y, sample_weight=w)
    s0 = gen.decision_function(X)
    rl = np.logaddexp(0, s0) - y * s0
    L0 = np.array([np.average(rl[g == k], weights=w[g == k]) for k in range(3)])

    def excess(p, k):
        s = X[g == k] @ p[:2] + p[2 + k]
        return float(np.average(np.logaddexp(0, s) - y[g == k] * s, weights=w[g == k])) - (L0[k] - margin)

    x0 = np.concatenate([gen.coef_[0], np.full(3, gen.intercept_[0]), [1.0]])
    res = minimize(lambda p: p[-1], x0, method="SLSQP", options={"ftol": 1e-14, "maxiter": 1000},
                   constraints=[{"type": "ineq", "fun": (lambda p, k=k: p[-1] - excess(p[:-1], k))} for k in range(3)])
    assert res.success and res.x[-1] > 1e-5  # infeasible: every model leaves some group short
    # each group alone can reach its margin (its floor is below its bound)
    for k in range(3):
        alone = minimize(lambda p: excess(np.concatenate([p[:2], np.full(3, p[2])]), k), x0[:3], method="BFGS")
        assert alone.fun < 0
    msgs = {}
    for solver in ("native", "ECOS"):
        with pytest.raises(FairUseInfeasibleError) as info:
            _fit(FairUseClassifier(encoding="intersectional", l2=ALPHA, fair_use="both", margin=margin,
                                   solver=solver), X, y, groups, w)
        msgs[solver] = str(info.value)
    assert "no model in the family meets every margin at once" in msgs["ECOS"]
    assert "no verified model meeting every margin at once was found" in msgs["native"]


def test_groups_separable_by_bounded_intercepts_have_a_minimum():
    """alpha=0, every group of one class (every row classified correctly by its group's
    intercept), a feature that separates nothing: the intercepts are held by the common
    interval, so a minimum exists (main's check on "every row classified correctly"
    refused it); each sits on the end of the interval its class points to (hand-known)."""
    rng = np.random.default_rng(3)
    n = 200
    g = np.arange(n) % 4
    y = np.isin(g, [0, 3]).astype(float)
    X = rng.normal(size=(n, 1))
    groups = pd.DataFrame({"g": g})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)  # one class per group, on purpose
        m = FairUseClassifier(encoding="intersectional", l2=0.0, fair_use="both").fit(X, y, groups=groups)
    mean = X.mean(axis=0)
    gen_std = m.generic_.intercept_[0] + m.generic_.coef_[0] @ mean
    for k, key in enumerate(m.groups_):
        own_std = m.intercept_[k] + m.coef_[k] @ mean
        assert own_std == pytest.approx(gen_std + (5.0 if key[0] in (0, 3) else -5.0), abs=1e-6)
    assert m.certificate_.verified and m.certificate_.table["at_set_boundary"].all()


def test_one_class_among_weighted_rows_is_a_clear_error():
    """Zero weights on every row of one class leave one class: no intercept minimises the
    log loss, and the error names the classes (scikit-learn's estimator checks ask so)."""
    X, y, groups = base_data()
    w = (y == 1).astype(float)
    with pytest.raises(InputError, match="all have one target class"):
        FairUseClassifier(encoding="none").fit(X, y, sample_weight=w)


def test_wide_data_with_features_of_very_different_scales_fits_natively():
    """Fuzz case 798 (issue 24): 115 rows, 232 features (one-hot site levels) beside a feature
    at scale 1e12.  In the row space of the raw-scale rows the Hessian was so ill-conditioned
    that Newton stalled far from the optimum and every fit fell to the conic solvers
    (fit_system took over 60 s of CPU); such data is now fitted in the standardised feature
    space: Newton converges, to the conic solver's optimum."""
    import warnings

    import numpy as np
    import pandas as pd

    from fairuse_opt import FairUseClassifier

    rng = np.random.default_rng(798)
    n, levels = 115, 230
    X = pd.DataFrame({"x1": rng.normal(5e11, 1e12, n), "x2": rng.normal(0, 3, n)})
    site = pd.get_dummies(pd.Series([f"s{i % levels}" for i in range(n)]), drop_first=True, dtype=float)
    X = pd.concat([X, site], axis=1)
    assert X.shape[1] > n
    y = (rng.random(n) < 1 / (1 + np.exp(-(X["x1"] / 1e12 - 0.3 * X["x2"])))).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        native = FairUseClassifier(encoding="none", solver="native").fit(X, y)
        conic = FairUseClassifier(encoding="none", solver="CLARABEL").fit(X, y)
    p_native, p_conic = native.predict_proba(X)[:, 1], conic.predict_proba(X)[:, 1]
    np.testing.assert_allclose(p_native, p_conic, atol=1e-5)
