"""Unconstrained fits (fair_use=None) equal scikit-learn's, and the solvers agree.

With ``group_reg="penalty"`` every encoding is a ridge-penalised logistic (or linear)
regression on ``[X, group indicators]`` whose scikit-learn equivalent is
``LogisticRegression(C=1/(2*alpha*n))`` (``Ridge(alpha=alpha*n)``).  With
``group_reg="set"`` and a set that is not active at the optimum, the group blocks are
unpenalised: scikit-learn sees the group columns scaled up by 1e4 (or, for decoupled,
one unpenalised fit per group).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from fairuse_opt import FairUseClassifier, FairUseRegressor

from .conftest import make_data

ALPHA = 0.01
TOL = 1e-5


def onehot(values) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    levels = sorted(set(values.tolist()), key=str)
    return np.column_stack([(values == v).astype(float) for v in levels])


def intersectional_codes(groups: pd.DataFrame) -> np.ndarray:
    keys = list(groups.itertuples(index=False, name=None))
    order = {k: i for i, k in enumerate(sorted(set(keys), key=lambda t: tuple(map(str, t))))}
    return np.array([order[k] for k in keys])


def sk_logistic(Z, y, alpha, fit_intercept=True, penalty="l2"):
    n = len(y)
    kw = dict(C=1.0 / (2 * alpha * n)) if penalty == "l2" else dict(C=np.inf)
    m = LogisticRegression(tol=1e-12, max_iter=1000, solver="newton-cholesky", fit_intercept=fit_intercept, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(Z, y)
    return m.coef_.ravel(), (m.intercept_[0] if fit_intercept else 0.0)


def sk_ridge(Z, y, alpha, fit_intercept=True):
    m = Ridge(alpha=alpha * len(y), fit_intercept=fit_intercept, solver="cholesky", tol=1e-12).fit(Z, y)
    return m.coef_.ravel(), (m.intercept_ if fit_intercept else 0.0)


def effective_from_sklearn(encoding, coef, intercept, d, G, level_codes=None, n_levels=None):
    """Effective (coef, intercept) per intersectional group from a flat sklearn fit."""
    if encoding == "none":  # the generic model serves everyone: one row
        return coef[None, :d], np.array([intercept])
    if encoding == "intersectional":
        return np.tile(coef[:d], (G, 1)), intercept + coef[d:d + G]
    if encoding == "onehot":
        offs = np.split(coef[d:], np.cumsum(n_levels)[:-1])
        b = intercept + sum(offs[a][level_codes[:, a]] for a in range(len(n_levels)))
        return np.tile(coef[:d], (G, 1)), b
    if encoding == "decoupled":
        W = coef[: G * d].reshape(G, d)
        return W, intercept + coef[G * d: G * d + G]
    raise AssertionError(encoding)


def design(encoding, X, groups: pd.DataFrame, scale_groups=1.0):
    codes = intersectional_codes(groups)
    G = codes.max() + 1
    if encoding == "none":
        return X
    if encoding == "intersectional":
        return np.column_stack([X, scale_groups * np.eye(G)[codes]])
    if encoding == "onehot":
        return np.column_stack([X] + [scale_groups * onehot(groups[c]) for c in groups.columns])
    if encoding == "decoupled":
        E = np.eye(G)[codes]
        inter = np.column_stack([X * E[:, [g]] for g in range(G)])
        return np.column_stack([inter, E])
    raise AssertionError(encoding)


def two_attribute_groups(g: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"a": np.where(g % 2 == 0, "p", "q"), "b": np.where(g < 2, "lo", "hi")})


def level_info(groups: pd.DataFrame):
    keys = sorted(set(groups.itertuples(index=False, name=None)), key=lambda t: tuple(map(str, t)))
    levels = [sorted(set(groups[c]), key=str) for c in groups.columns]
    lc = np.array([[levels[a].index(k[a]) for a in range(len(levels))] for k in keys])
    return lc, [len(lv) for lv in levels]


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("encoding", ["none", "onehot", "intersectional", "decoupled"])
def test_penalty_matches_sklearn_random(task, encoding):
    X, y, g = make_data(n=400, d=3, n_groups=4, task=task, seed=1)
    groups = two_attribute_groups(g)
    Est = FairUseClassifier if task == "classification" else FairUseRegressor
    m = Est(encoding=encoding, fair_use=None, l2=ALPHA, group_reg="penalty").fit(X, y, groups=groups)
    Z = design(encoding, X, groups)
    fit = sk_logistic if task == "classification" else sk_ridge
    coef, b = fit(Z, y, ALPHA)
    lc, nl = level_info(groups)
    W, B = effective_from_sklearn(encoding, coef, b, X.shape[1], 4, lc, nl)
    np.testing.assert_allclose(m.coef_, W, atol=TOL)
    np.testing.assert_allclose(m.intercept_, B, atol=TOL)


@pytest.mark.parametrize("encoding", ["none", "onehot", "intersectional", "decoupled"])
def test_penalty_matches_sklearn_apnea(apnea, encoding):
    X, y, groups = apnea
    m = FairUseClassifier(encoding=encoding, fair_use=None, l2=ALPHA, group_reg="penalty")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X, y, groups=groups)
    Z = design(encoding, X.to_numpy(float), groups)
    coef, b = sk_logistic(Z, y.to_numpy(), ALPHA)
    lc, nl = level_info(groups)
    W, B = effective_from_sklearn(encoding, coef, b, X.shape[1], 6, lc, nl)
    np.testing.assert_allclose(m.coef_, W, atol=TOL)
    np.testing.assert_allclose(m.intercept_, B, atol=TOL)
    expected_groups = [] if encoding == "none" else sorted(set(groups.itertuples(index=False, name=None)))
    assert m.groups_ == expected_groups


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_set_intersectional_matches_unpenalised_offsets(task):
    """Inactive common interval: the group intercepts are free, as scaled-up dummies."""
    X, y, g = make_data(n=400, d=3, n_groups=4, task=task, seed=2)
    groups = pd.Series(g, name="g")
    Est = FairUseClassifier if task == "classification" else FairUseRegressor
    m = Est(encoding="intersectional", fair_use=None, l2=ALPHA, group_reg="set",
            intercept_bound=50.0).fit(X, y, groups=groups)
    assert not m.certificate_.table["at_set_boundary"].any()
    Z = design("intersectional", X, groups.to_frame(), scale_groups=1e4)
    fit = sk_logistic if task == "classification" else sk_ridge
    coef, b = fit(Z, y, ALPHA, fit_intercept=False)
    np.testing.assert_allclose(m.coef_, np.tile(coef[:3], (4, 1)), atol=TOL)
    np.testing.assert_allclose(m.intercept_, 1e4 * coef[3:], atol=TOL)


@pytest.mark.parametrize("apnea_data", [True, False])
def test_set_onehot_is_the_penalised_fit(apnea, apnea_data):
    """onehot offsets are shared weights: group_reg does not change the fit."""
    if apnea_data:
        X, y, groups = apnea
    else:
        X, y, g = make_data(n=300, d=2, n_groups=4, seed=3)
        groups = two_attribute_groups(g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = FairUseClassifier(encoding="onehot", fair_use=None, l2=ALPHA, group_reg="set").fit(X, y, groups=groups)
        b = FairUseClassifier(encoding="onehot", fair_use=None, l2=ALPHA, group_reg="penalty").fit(X, y, groups=groups)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=TOL)
    np.testing.assert_allclose(a.intercept_, b.intercept_, atol=TOL)


def test_set_intersectional_matches_sklearn_apnea(apnea):
    X, y, groups = apnea
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = FairUseClassifier(encoding="intersectional", fair_use=None, l2=ALPHA).fit(X, y, groups=groups)
    assert not m.certificate_.table["at_set_boundary"].any()
    Z = design("intersectional", X.to_numpy(float), groups, scale_groups=1e4)
    coef, _ = sk_logistic(Z, y.to_numpy(), ALPHA, fit_intercept=False)
    d = X.shape[1]
    np.testing.assert_allclose(m.coef_, np.tile(coef[:d], (6, 1)), atol=TOL)
    np.testing.assert_allclose(m.intercept_, 1e4 * coef[d:], atol=TOL)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_set_decoupled_is_one_unpenalised_fit_per_group(task):
    X, y, g = make_data(n=600, d=2, n_groups=3, task=task, seed=4, effect=0.5)
    Est = FairUseClassifier if task == "classification" else FairUseRegressor
    m = Est(encoding="decoupled", fair_use=None, l2=ALPHA, intercept_bound=100.0,
            coef_bound=100.0).fit(X, y, groups=g)
    assert not m.certificate_.table["at_set_boundary"].any()
    for k in range(3):
        rows = g == k
        if task == "classification":
            coef, b = sk_logistic(X[rows], y[rows], ALPHA, penalty=None)
        else:
            lr = LinearRegression().fit(X[rows], y[rows])
            coef, b = lr.coef_, lr.intercept_
        np.testing.assert_allclose(m.coef_[k], coef, atol=TOL)
        np.testing.assert_allclose(m.intercept_[k], b, atol=TOL)


def test_sample_weight_matches_sklearn():
    X, y, g = make_data(n=300, d=3, n_groups=3, seed=5)
    w = np.random.default_rng(0).uniform(0.2, 3.0, size=len(y))
    m = FairUseClassifier(encoding="intersectional", fair_use=None, l2=ALPHA, group_reg="penalty")
    m.fit(X, y, groups=g, sample_weight=w)
    Z = design("intersectional", X, pd.DataFrame({"g": g}))
    sk = LogisticRegression(C=1 / (2 * ALPHA * w.sum()), tol=1e-12, max_iter=100_000).fit(Z, y, sample_weight=w)
    np.testing.assert_allclose(m.coef_[0], sk.coef_.ravel()[:3], atol=TOL)
    np.testing.assert_allclose(m.intercept_, sk.intercept_[0] + sk.coef_.ravel()[3:], atol=TOL)


def test_merging_rows_changes_nothing(apnea):
    X, y, groups = apnea
    kw = dict(encoding="intersectional", fair_use=None, l2=ALPHA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = FairUseClassifier(merge_rows=True, **kw).fit(X, y, groups=groups)
        b = FairUseClassifier(merge_rows=False, **kw).fit(X, y, groups=groups)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=TOL)
    np.testing.assert_allclose(a.intercept_, b.intercept_, atol=TOL)


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("encoding,group_reg", [("none", "set"), ("onehot", "set"), ("intersectional", "set"),
                                                ("intersectional", "penalty"), ("decoupled", "set"),
                                                ("decoupled", "penalty")])
def test_ecos_and_clarabel_agree(task, encoding, group_reg):
    X, y, g = make_data(n=300, d=3, n_groups=4, task=task, seed=6)
    groups = two_attribute_groups(g)
    Est = FairUseClassifier if task == "classification" else FairUseRegressor
    objs = []
    for solver in ("CLARABEL", "ECOS"):
        m = Est(encoding=encoding, group_reg=group_reg, fair_use=None, l2=ALPHA, solver=solver)
        m.fit(X, y, groups=groups)
        assert m.certificate_.solver == solver
        objs.append(m.certificate_.objective)
    assert abs(objs[0] - objs[1]) <= 1e-6 * abs(objs[0])


def test_ecos_and_clarabel_agree_apnea(apnea):
    X, y, groups = apnea
    objs = []
    for solver in ("CLARABEL", "ECOS"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = FairUseClassifier(encoding="intersectional", fair_use=None, l2=ALPHA, solver=solver)
            m.fit(X, y, groups=groups)
        assert m.certificate_.solver == solver
        objs.append(m.certificate_.objective)
    assert abs(objs[0] - objs[1]) <= 1e-6 * abs(objs[0])


def test_row_merging_is_skipped_only_when_rows_are_almost_all_distinct():
    from fairuse_opt.problem.data import TrainData, _worth_merging

    rng = np.random.default_rng(0)
    n = 30_000
    codes = rng.integers(0, 3, n)
    continuous = rng.normal(size=(n, 4))
    binary = rng.integers(0, 2, size=(n, 4)).astype(float)
    assert not _worth_merging(continuous, codes)
    assert _worth_merging(binary, codes)
    stats = np.column_stack([np.ones(n), rng.integers(0, 2, n)])
    assert TrainData.build(binary, codes, stats, 3).n_distinct <= 3 * 16
    assert TrainData.build(continuous, codes, stats, 3).n_distinct == n
