"""scikit-learn conventions: groups routed by metadata routing, and the group_cols recipe.

Every result is compared with the same computation done by hand (fit on the transformed
features with ``groups=``, fold by fold), so a routing that dropped or misaligned the
groups would change the numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.compose import make_column_transformer
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fairuse_opt import FairUseClassifier, FairUseRegressor, InputError

from .conftest import make_data


@pytest.fixture
def data():
    X, y, g = make_data(n=240, d=3, n_groups=3, seed=4)
    X = pd.DataFrame(X * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0], columns=["a", "b", "c"])
    groups = pd.DataFrame({"site": np.array(["north", "south", "east"])[g],
                           "sex": np.where(np.arange(len(y)) % 2, "F", "M")})
    return X, pd.Series(y, name="y"), groups


def routed(est):
    """``est`` asking for ``groups`` in fit, predict, predict_proba and score."""
    est = est.set_fit_request(groups=True).set_predict_request(groups=True).set_score_request(groups=True)
    if hasattr(est, "predict_proba"):
        est = est.set_predict_proba_request(groups=True)
    return est


def by_hand(X, y, groups, **params):
    """Standardise, then fit with groups= directly (what the pipeline must do)."""
    scaler = StandardScaler().fit(X)
    est = FairUseClassifier(**params).fit(scaler.transform(X), y, groups=groups)
    return scaler, est


def test_pipeline_routes_groups_to_fit_and_predict(data):
    X, y, groups = data
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), routed(FairUseClassifier(fair_use=None)))
        pipe.fit(X, y, groups=groups)
        scaler, est = by_hand(X, y, groups, fair_use=None)
        np.testing.assert_array_equal(pipe[-1].coef_, est.coef_)
        np.testing.assert_array_equal(pipe[-1].intercept_, est.intercept_)
        assert pipe[-1].groups_ == est.groups_ and len(est.groups_) == 6
        Z = scaler.transform(X)
        np.testing.assert_array_equal(pipe.predict_proba(X, groups=groups), est.predict_proba(Z, groups=groups))
        np.testing.assert_array_equal(pipe.predict(X, groups=groups), est.predict(Z, groups=groups))
        assert pipe.score(X, y, groups=groups) == est.score(Z, y, groups=groups)
        # the groups really are used: other groups give other probabilities
        shuffled = groups.iloc[::-1].reset_index(drop=True)
        assert not np.array_equal(pipe.predict_proba(X, groups=shuffled), pipe.predict_proba(X, groups=groups))
        # and without them the model says what it needs
        with pytest.raises(InputError, match="needs group attributes"):
            pipe.predict(X)


def test_cross_validate_routes_groups_fold_by_fold(data):
    X, y, groups = data
    cv = KFold(4, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), routed(FairUseClassifier()))
        result = cross_validate(pipe, X, y, params={"groups": groups}, cv=cv)
    expected = []
    for train, test in cv.split(X):
        scaler, est = by_hand(X.iloc[train], y.iloc[train], groups.iloc[train])
        expected.append(est.score(scaler.transform(X.iloc[test]), y.iloc[test], groups=groups.iloc[test]))
    np.testing.assert_allclose(result["test_score"], expected, rtol=0, atol=1e-12)


def test_grid_search_routes_groups(data):
    X, y, groups = data
    cv = KFold(3, shuffle=True, random_state=1)
    grid = {"fairuseclassifier__l2": [1e-3, 0.3]}
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), routed(FairUseClassifier(fair_use=None)))
        search = GridSearchCV(pipe, grid, cv=cv).fit(X, y, groups=groups)
        means = {}
        for alpha in grid["fairuseclassifier__l2"]:
            scores = []
            for train, test in cv.split(X):
                scaler, est = by_hand(X.iloc[train], y.iloc[train], groups.iloc[train], fair_use=None, l2=alpha)
                scores.append(est.score(scaler.transform(X.iloc[test]), y.iloc[test], groups=groups.iloc[test]))
            means[alpha] = float(np.mean(scores))
        np.testing.assert_allclose(search.cv_results_["mean_test_score"], list(means.values()), atol=1e-12)
        best = max(means, key=means.get)
        assert search.best_params_ == {"fairuseclassifier__l2": best}
        # the refitted best model got the groups too (GridSearchCV.predict takes no metadata:
        # predict with best_estimator_)
        scaler, est = by_hand(X, y, groups, fair_use=None, l2=best)
        np.testing.assert_array_equal(search.best_estimator_[-1].coef_, est.coef_)
        np.testing.assert_array_equal(search.best_estimator_.predict(X, groups=groups),
                                      est.predict(scaler.transform(X), groups=groups))


def test_regressor_routes_groups():
    X, y, g = make_data(n=150, d=2, n_groups=2, task="regression", seed=2)
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), routed(FairUseRegressor(fair_use=None)))
        pipe.fit(X, y, groups=g)
        Z = StandardScaler().fit_transform(X)
        est = FairUseRegressor(fair_use=None).fit(Z, y, groups=g)
        np.testing.assert_array_equal(pipe.predict(X, groups=g), est.predict(Z, groups=g))


# --------------------------------------------------------------------------- group_cols recipe
def recipe(features, group_cols, **params):
    """docs/pipelines.md: scale the features, pass the group columns through untouched."""
    pre = make_column_transformer((StandardScaler(), features), ("passthrough", group_cols),
                                  verbose_feature_names_out=False).set_output(transform="pandas")
    return make_pipeline(pre, FairUseClassifier(group_cols=group_cols, **params))


def test_standard_scaler_on_string_group_columns_fails_plainly(data):
    X, y, groups = data
    frame = pd.concat([X, groups], axis=1)
    with pytest.raises(ValueError, match="could not convert string to float"):
        make_pipeline(StandardScaler(), FairUseClassifier(group_cols=["site", "sex"])).fit(frame, y)


def test_column_transformer_recipe_with_group_cols(data):
    X, y, groups = data
    frame = pd.concat([X, groups], axis=1)
    pipe = recipe(list(X.columns), ["site", "sex"]).fit(frame, y)
    scaler, est = by_hand(X, y, groups)
    np.testing.assert_allclose(pipe[-1].coef_, est.coef_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pipe.predict_proba(frame), est.predict_proba(scaler.transform(X), groups=groups),
                               rtol=0, atol=1e-12)
    assert pipe[-1].certificate_.verified
    # every scikit-learn scorer works, since the groups travel in X
    cv = KFold(3, shuffle=True, random_state=0)
    result = cross_validate(pipe, frame, y, cv=cv, scoring=["neg_log_loss", "accuracy"])
    for k, (train, test) in enumerate(cv.split(frame)):
        fitted = clone(pipe).fit(frame.iloc[train], y.iloc[train])
        p = fitted.predict_proba(frame.iloc[test])[:, 1]
        yt = y.iloc[test].to_numpy()
        ll = -np.mean(yt * np.log(p) + (1 - yt) * np.log(1 - p))
        assert result["test_neg_log_loss"][k] == pytest.approx(-ll, abs=1e-12)
        assert result["test_accuracy"][k] == pytest.approx(np.mean((p > 0.5) == (yt == 1)), abs=1e-12)
    search = GridSearchCV(pipe, {"fairuseclassifier__l2": [1e-3, 1e-1]}, cv=cv, scoring="neg_log_loss")
    search.fit(frame, y)
    assert search.best_estimator_[-1].groups_ == est.groups_
