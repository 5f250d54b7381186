"""scikit-learn conformance, pipelines, reports, the toy counterexample."""

from __future__ import annotations

import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import check_estimator

from fairuse_opt import FairUseClassifier, FairUseRegressor, InputError

from .conftest import make_data

BINARY_ONLY = "FairUseClassifier is a binary classifier: multiclass targets are rejected by design"
# Checks that cannot apply, and why.  Everything else in check_estimator must pass.
EXPECTED_FAILURES = {
    FairUseClassifier: {
        **{name: BINARY_ONLY for name in (
            "check_sample_weight_equivalence_on_dense_data", "check_dtype_object",
            "check_f_contiguous_array_estimator", "check_classifiers_classes", "check_classifiers_train",
            "check_supervised_y_2d", "check_non_transformer_estimators_n_iter",
            "check_methods_sample_order_invariance", "check_methods_subset_invariance",
            "check_dict_unchanged", "check_fit2d_predict1d", "check_positive_only_tag_during_fit")},
        "check_estimators_empty_data_messages": (
            "a model without features is allowed on purpose (intercept-only or group-only "
            "models, such as the toy counterexample of fair-use.md section 7)"),
    },
    FairUseRegressor: {
        "check_dtype_object": ("non-numeric entries are rejected with an InputError naming the problem, "
                               "not the TypeError text the check looks for"),
        "check_estimators_empty_data_messages": (
            "a model without features is allowed on purpose (intercept-only or group-only models)"),
        "check_regressors_no_decision_function": (
            "decision_function is part of the library's API for both tasks (the linear score)"),
    },
}


@pytest.mark.parametrize("Est", [FairUseClassifier, FairUseRegressor])
def test_check_estimator_generic(Est):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(Est(encoding="none", fair_use=None), on_fail=None,
                                  expected_failed_checks=EXPECTED_FAILURES[Est])
    # a check that fails only because it feeds three or more classes is the binary-only case
    bad = [(r["check_name"], str(r["exception"])[:200]) for r in results
           if r["status"] == "failed" and r["check_name"] not in EXPECTED_FAILURES[Est]
           and not str(r["exception"]).startswith("y must have exactly two classes")]
    assert not bad
    assert sum(r["status"] == "passed" for r in results) >= 30


def frame_with_groups(n=240, seed=0, task="classification"):
    X, y, g = make_data(n=n, d=3, n_groups=4, task=task, seed=seed)
    df = pd.DataFrame(X, columns=["x0", "x1", "x2"])
    df["sex"] = np.where(g % 2 == 0, "F", "M")
    df["age"] = np.where(g < 2, "young", "old")
    return df, y


def test_clone_get_params_and_unfitted_errors():
    m = FairUseClassifier(encoding="decoupled", l2=0.1, margin=0.01, group_cols=["sex"])
    c = clone(m)
    assert c.get_params() == m.get_params()
    c.set_params(l2=0.5)
    assert c.l2 == 0.5 and m.l2 == 0.1
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        m.predict(np.zeros((2, 3)))


def test_pickle_roundtrip():
    df, y = frame_with_groups()
    m = FairUseClassifier(group_cols=["sex", "age"]).fit(df, y)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m.predict_proba(df), m2.predict_proba(df))
    assert m2.certificate_.verified


def test_pipeline_cross_val_and_grid_search_with_group_cols():
    df, y = frame_with_groups(n=300)
    pipe = make_pipeline(FunctionTransformer(lambda d: d, validate=False),
                         FairUseClassifier(group_cols=["sex", "age"], fair_use=None))
    scores = cross_val_score(pipe, df, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.6)
    grid = GridSearchCV(FairUseClassifier(group_cols=["sex", "age"]),
                        {"l2": [1e-3, 1e-1], "encoding": ["intersectional", "onehot"]}, cv=3)
    grid.fit(df, y)
    assert grid.best_estimator_.certificate_.verified
    assert set(grid.cv_results_["param_encoding"]) == {"intersectional", "onehot"}


def test_regressor_pipeline():
    df, y = frame_with_groups(n=200, task="regression")
    scores = cross_val_score(FairUseRegressor(group_cols=["sex", "age"]), df, y, cv=3)
    assert np.all(scores > 0.5)


def test_report_scores_everyone_as_that_group():
    df, y = frame_with_groups()
    m = FairUseClassifier(group_cols=["sex", "age"], fair_use=None).fit(df, y)
    k = m.groups_.index(("M", "old"))
    expected = df[["x0", "x1", "x2"]].to_numpy() @ m.coef_[k] + m.intercept_[k]
    np.testing.assert_allclose(m.decision_function(df, report=("M", "old")), expected)
    own = m.decision_function(df)
    rows = ((df.sex == "M") & (df.age == "old")).to_numpy()
    np.testing.assert_allclose(own[rows], expected[rows])


def test_predict_labels_follow_the_classes():
    df, y = frame_with_groups()
    labels = np.where(y == 1, "sick", "well")
    m = FairUseClassifier(group_cols=["sex", "age"]).fit(df, labels)
    assert list(m.classes_) == ["sick", "well"]
    p = m.predict_proba(df)[:, 1]  # probability of "well"
    np.testing.assert_array_equal(m.predict(df), np.where(p > 0.5, "well", "sick"))


# ----------------------------------------------------------------- toy counterexample
def group_metrics(model, X, y, groups, key):
    rows = (groups.itertuples(index=False, name=None))
    mask = np.array([r == key for r in rows])
    p = model.predict_proba(X, groups=groups)[:, 1]
    return (log_loss(y[mask], p[mask], labels=[0, 1]), np.mean((p[mask] > 0.5) != y[mask]))


def test_toy_counterexample_onehot_harms_female_old(toy):
    X, y, groups = toy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onehot = FairUseClassifier(encoding="onehot", fair_use=None, l2=1e-6).fit(X, y, groups=groups)
        inter = FairUseClassifier(encoding="intersectional", fair_use=None, l2=1e-6).fit(X, y, groups=groups)
    generic = onehot.generic_
    p0 = generic.predict_proba(X)[:, 1]
    # overall log loss drops (0.6931 -> 0.6922) ...
    overall_generic = log_loss(y, p0)
    overall_onehot = log_loss(y, onehot.predict_proba(X, groups=groups)[:, 1])
    assert overall_generic == pytest.approx(0.6931, abs=1e-4)
    assert overall_onehot == pytest.approx(0.6922, abs=1e-4)
    # ... while female-old's rises (0.6833 -> 0.744) and it goes from 0 to 24 errors
    key = ("female", "old")
    mask = (groups["sex"] == "female").to_numpy() & (groups["age"] == "old").to_numpy()
    gen_ll = log_loss(y[mask], p0[mask], labels=[0, 1])
    gen_err = np.mean((p0[mask] > 0.5) != y[mask])
    oh_ll, oh_err = group_metrics(onehot, X, y, groups, key)
    assert gen_ll == pytest.approx(0.6833, abs=1e-4) and gen_err == 0.0
    assert oh_ll > gen_ll + 0.05 and oh_err == 1.0
    assert onehot.predict_proba(X, report=key)[0, 1] == pytest.approx(0.525, abs=1e-3)
    # the intersectional model harms no group
    for k in inter.groups_:
        m = np.array([r == k for r in groups.itertuples(index=False, name=None)])
        ll, err = group_metrics(inter, X, y, groups, k)
        assert ll <= log_loss(y[m], p0[m], labels=[0, 1])
        assert err <= np.mean((p0[m] > 0.5) != y[m])


# ------------------------------------------------------------------ one name per meaning (issue 23)
def test_l2_is_the_penalty_and_alpha_its_deprecated_alias():
    """``l2=`` is the L2 penalty (scikit-learn's ``C = 1 / (2 l2 n)``); ``alpha=``, its earlier
    name, still sets it, with a FutureWarning, and is stored as given (scikit-learn's way)."""
    from sklearn.linear_model import LogisticRegression

    from fairuse_opt.exceptions import MSG_ALPHA_AND_L2, MSG_ALPHA_RENAMED

    X, y, g = make_data(n=300, d=3, n_groups=3, seed=11)
    ref = LogisticRegression(C=1 / (2 * 0.05 * len(y)), tol=1e-12, max_iter=10_000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the new name never warns
        new = FairUseClassifier(encoding="none", l2=0.05).fit(X, y)
    np.testing.assert_allclose(new.coef_[0], ref.coef_[0], rtol=0, atol=1e-5)
    old = FairUseClassifier(encoding="none", alpha=0.05)
    with pytest.warns(FutureWarning) as caught:
        old.fit(X, y)
    assert [str(w.message) for w in caught if w.category is FutureWarning] == [
        MSG_ALPHA_RENAMED.format(name="FairUseClassifier", value=0.05)]
    np.testing.assert_array_equal(old.coef_, new.coef_)  # the same fit, exactly
    np.testing.assert_array_equal(old.intercept_, new.intercept_)
    # stored as given: get_params, clone, set_params and repr keep both names apart
    assert old.get_params()["alpha"] == 0.05 and old.get_params()["l2"] == 1e-3
    assert clone(old).alpha == 0.05 and "alpha=0.05" in repr(old)
    assert new.get_params()["alpha"] == "deprecated" and "alpha" not in repr(new)
    # the personalized model and its generic model with the alias: the same as with l2
    with pytest.warns(FutureWarning):
        m_old = FairUseClassifier(alpha=0.05, fair_use=None).fit(X, y, groups=g)
    m_new = FairUseClassifier(l2=0.05, fair_use=None).fit(X, y, groups=g)
    np.testing.assert_array_equal(m_old.coef_, m_new.coef_)
    assert (m_old.generic_.l2, m_old.generic_.alpha) == (0.05, "deprecated")  # under its name
    # both names: an error unless l2 is left at its default
    with pytest.raises(InputError) as info:
        FairUseClassifier(encoding="none", l2=0.1, alpha=0.05).fit(X, y)
    assert str(info.value) == MSG_ALPHA_AND_L2.format(name="FairUseClassifier", l2=0.1, alpha=0.05)
    with pytest.warns(FutureWarning):
        same = FairUseClassifier(encoding="none", l2=1e-3, alpha=0.05).fit(X, y)
    np.testing.assert_array_equal(same.coef_, new.coef_)
    with pytest.raises(InputError, match=re.escape("alpha=-1.0")):
        FairUseClassifier(encoding="none", alpha=-1.0).fit(X, y)


def test_a_search_over_the_old_name_still_runs_and_picks_the_same_penalty():
    X, y, _ = make_data(n=240, d=3, n_groups=2, task="regression", seed=5)
    new = GridSearchCV(FairUseRegressor(encoding="none"), {"l2": [1e-3, 1.0]}, cv=3).fit(X, y)
    with pytest.warns(FutureWarning):
        old = GridSearchCV(FairUseRegressor(encoding="none"), {"alpha": [1e-3, 1.0]}, cv=3).fit(X, y)
    np.testing.assert_array_equal(old.cv_results_["mean_test_score"], new.cv_results_["mean_test_score"])
    assert old.best_params_["alpha"] == new.best_params_["l2"]
    assert len(set(new.cv_results_["mean_test_score"])) == 2  # the penalty changes the scores
