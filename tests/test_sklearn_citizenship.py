"""scikit-learn citizenship (docs/scikit-learn.md): the natural spellings of
``cross_val_score``, ``GridSearchCV`` and pipelines with group attributes, the
estimator tags, and ``check_estimator``'s results exactly as the docs list them.

Every score is compared with the same computation done by hand, fold by fold, so a
routing that dropped, misaligned or swapped the group attributes would change it.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import check_estimator

from fairuse_opt import FairUseClassifier, FairUseRegressor, InputError
from fairuse_opt.estimators import MSG_GROUPS_ROUTING_HINT, ROUTED_GROUPS
from fairuse_opt.exceptions import MSG_GROUPS_REQUIRED

from .conftest import REPO, make_data, missing_data

DOC = REPO / "docs" / "scikit-learn.md"


@pytest.fixture
def data():
    X, y, g = make_data(n=240, d=3, n_groups=3, seed=7)
    X = pd.DataFrame(X, columns=["a", "b", "c"])
    groups = pd.DataFrame({"site": np.array(["north", "south", "east"])[g],
                           "sex": np.where(np.arange(len(y)) % 2, "F", "M")})
    return X, pd.Series(y, name="y"), groups


def by_hand_scores(X, y, groups, splits, **params):
    """Accuracy of FairUseClassifier(**params) fitted with groups= on each training fold."""
    scores = []
    for train, test in splits:
        est = FairUseClassifier(**params).fit(X.iloc[train], y.iloc[train], groups=groups.iloc[train])
        scores.append(est.score(X.iloc[test], y.iloc[test], groups=groups.iloc[test]))
    return np.array(scores)


# --------------------------------------------------------------------------- natural spellings
def test_cross_val_score_with_sensitive_features(data):
    X, y, groups = data
    cv = KFold(3, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        scores = cross_val_score(FairUseClassifier(), X, y, params={"sensitive_features": groups}, cv=cv)
    np.testing.assert_allclose(scores, by_hand_scores(X, y, groups, cv.split(X)), rtol=0, atol=1e-12)


def test_a_splitters_groups_never_reach_the_model(data):
    """GroupKFold by patient (the splitter's groups) and the group attributes side by side."""
    X, y, groups = data
    patients = np.arange(len(y)) // 4  # 4 rows per patient
    cv = GroupKFold(3)
    with sklearn.config_context(enable_metadata_routing=True):
        scores = cross_val_score(FairUseClassifier(fair_use=None), X, y, cv=cv,
                                 params={"groups": patients, "sensitive_features": groups})
    expected = by_hand_scores(X, y, groups, cv.split(X, y, patients), fair_use=None)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)
    # each test fold holds whole patients, so the folds really were the splitter's
    for train, test in cv.split(X, y, patients):
        assert not set(patients[train]) & set(patients[test])


def test_grid_search_with_sensitive_features(data):
    X, y, groups = data
    cv = KFold(3, shuffle=True, random_state=1)
    grid = [1e-3, 0.3]
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(FairUseClassifier(fair_use=None), {"l2": grid}, cv=cv)
        search.fit(X, y, sensitive_features=groups)
    means = [by_hand_scores(X, y, groups, cv.split(X), fair_use=None, l2=a).mean() for a in grid]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], means, rtol=0, atol=1e-12)
    best = grid[int(np.argmax(means))]
    assert search.best_params_ == {"l2": best}
    refit = FairUseClassifier(fair_use=None, l2=best).fit(X, y, groups=groups)
    np.testing.assert_array_equal(search.best_estimator_.coef_, refit.coef_)
    np.testing.assert_array_equal(search.best_estimator_.predict(X, groups=groups), refit.predict(X, groups=groups))


def test_pipeline_with_sensitive_features_and_report(data):
    X, y, groups = data
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), FairUseClassifier()).fit(X, y, sensitive_features=groups)
        Z = StandardScaler().fit_transform(X)
        est = FairUseClassifier().fit(Z, y, groups=groups)
        np.testing.assert_array_equal(pipe.predict_proba(X, sensitive_features=groups),
                                      est.predict_proba(Z, groups=groups))
        key = est.groups_[0]
        np.testing.assert_array_equal(pipe.predict_proba(X, report=key), est.predict_proba(Z, report=key))
        np.testing.assert_array_equal(pipe.decision_function(X, sensitive_features=groups),
                                      est.decision_function(Z, groups=groups))
        assert pipe.score(X, y, sensitive_features=groups) == est.score(Z, y, groups=groups)


def test_regressor_routes_sensitive_features():
    X, y, g = make_data(n=150, d=2, n_groups=2, task="regression", seed=2)
    cv = KFold(3, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        scores = cross_val_score(FairUseRegressor(fair_use=None), X, y, params={"sensitive_features": g}, cv=cv)
    expected = [FairUseRegressor(fair_use=None).fit(X[tr], y[tr], groups=g[tr]).score(X[te], y[te], groups=g[te])
                for tr, te in cv.split(X)]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)


@sklearn.config_context(enable_metadata_routing=True)
def test_default_requests_and_their_override():
    routing = FairUseClassifier().get_metadata_routing()
    for method in ("fit", "score", "predict", "predict_proba", "decision_function"):
        assert getattr(routing, method).requests["groups"] == ROUTED_GROUPS, method
    for method in ("predict", "predict_proba", "decision_function"):
        assert getattr(routing, method).requests["report"] is True, method
    assert routing.fit.requests["sample_weight"] is None  # weights stay opt-in, as in scikit-learn
    assert FairUseRegressor().get_metadata_routing().predict.requests["groups"] == ROUTED_GROUPS
    explicit = FairUseClassifier().set_fit_request(groups=True).get_metadata_routing()
    assert explicit.fit.requests["groups"] is True


# --------------------------------------------------------------------------- the trap, explained
def test_groups_given_to_cross_val_score_go_to_the_splitter_and_the_error_says_what_to_do(data):
    X, y, groups = data
    with pytest.raises(InputError) as info, pytest.warns(UserWarning, match="groups parameter is ignored by KFold"):
        cross_val_score(FairUseClassifier(), X, y, groups=groups, cv=KFold(3), error_score="raise")
    message = str(info.value)
    assert message == MSG_GROUPS_REQUIRED.format(encoding="intersectional", method="fit") + MSG_GROUPS_ROUTING_HINT
    assert "enable_metadata_routing=True" in message and "params={'sensitive_features': groups}" in message
    # the hint is only for fit without groups; other input errors are unchanged
    with pytest.raises(InputError) as other:
        FairUseClassifier().fit(X, y, groups=groups.iloc[:10])
    assert MSG_GROUPS_ROUTING_HINT not in str(other.value)


def test_routed_groups_under_the_splitters_name_are_refused(data):
    """With routing on, params={'groups': ...} is the splitter's: the model does not take it."""
    X, y, groups = data
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.raises(TypeError, match="not routed to any object"):
            cross_val_score(FairUseClassifier(), X, y, params={"groups": groups}, cv=KFold(3))


# --------------------------------------------------------------------------- tags
def test_tags():
    for Est in (FairUseClassifier, FairUseRegressor):
        tags = get_tags(Est())
        assert tags.input_tags.sparse is False and tags.input_tags.allow_nan is False
        assert tags.target_tags.required is True and tags.target_tags.multi_output is False
        assert tags.non_deterministic is False
    ctags = get_tags(FairUseClassifier()).classifier_tags
    assert ctags.multi_class is False and ctags.multi_label is False
    assert get_tags(FairUseRegressor()).classifier_tags is None


# --------------------------------------------------------------------------- check_estimator
ESTIMATORS = {
    "FairUseClassifier()": FairUseClassifier,
    'FairUseClassifier(encoding="none")': lambda: FairUseClassifier(encoding="none"),
    "FairUseRegressor()": FairUseRegressor,
    'FairUseRegressor(encoding="none")': lambda: FairUseRegressor(encoding="none"),
}


def documented_failures() -> dict[str, dict[str, str]]:
    """``{estimator: {check: reason}}`` from the tables of docs/scikit-learn.md."""
    text = DOC.read_text(encoding="utf-8")
    out: dict[str, dict[str, str]] = {}
    for head, body in re.findall(r"^#### `(.+?)`[^\n]*\n\n((?:\|.*\n)+)", text, flags=re.M):
        rows = [line.strip().strip("|").split("|") for line in body.strip().splitlines()[2:]]
        out[head] = {cells[0].strip().strip("`"): cells[1].strip() for cells in rows}
    return out


def documented_counts() -> dict[str, tuple[int, int]]:
    """``{estimator: (checks run, passed)}`` from the headings of docs/scikit-learn.md."""
    text = DOC.read_text(encoding="utf-8")
    return {head: (int(run), int(passed)) for head, run, passed in
            re.findall(r"^#### `(.+?)`: (\d+) checks, (\d+) pass", text, flags=re.M)}


def run_checks(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return check_estimator(make(), on_fail=None)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_check_estimator_fails_exactly_the_documented_checks(name):
    results = run_checks(ESTIMATORS[name])
    failed = {r["check_name"] for r in results if r["status"] == "failed"}
    documented = documented_failures()[name]
    assert failed == set(documented), (sorted(failed - set(documented)), sorted(set(documented) - failed))
    assert all(reason for reason in documented.values())
    n_passed = sum(r["status"] == "passed" for r in results)
    assert documented_counts()[name] == (len(results), n_passed)
    if "encoding" not in name:
        # a check that fails only here (not on the generic model, which runs the same
        # validation, fit and prediction code without group attributes) fails because it
        # calls fit without them
        generic = {r["check_name"] for r in run_checks(ESTIMATORS[f'{name[:-2]}(encoding="none")'])
                   if r["status"] == "failed"}
        needs = {r["check_name"]: r["exception"] for r in results
                 if r["status"] == "failed" and r["check_name"] not in generic}
        for check, reason in documented.items():
            assert (check in needs) == reason.startswith("calls fit without group attributes"), check
        direct = [str(e) for e in needs.values() if isinstance(e, InputError)]
        assert direct and all(m.startswith(MSG_GROUPS_REQUIRED.format(encoding="intersectional", method="fit"))
                              for m in direct)


def test_the_other_cells_of_the_docs_table(data):
    """docs/scikit-learn.md's table, the cells that do not run."""
    X, y, groups = data
    est, cv = FairUseClassifier(fair_use=None), KFold(3)
    # routing off: params go to fit only; fit has no sensitive_features argument
    with pytest.raises(TypeError, match="sensitive_features"):
        cross_val_score(est, X, y, params={"sensitive_features": groups}, cv=cv, error_score="raise")
    # routing off: groups in params reach fit, but score is called without them
    with pytest.warns(UserWarning, match="needs group attributes"):
        scores = cross_val_score(est, X, y, params={"groups": groups}, cv=cv)
    assert np.isnan(scores).all()
    with pytest.raises(InputError, match="needs group attributes"):
        cross_val_score(est, X, y, params={"groups": groups}, cv=cv, error_score="raise")
    with sklearn.config_context(enable_metadata_routing=True):
        # routing on: scikit-learn refuses its own groups= argument
        with pytest.raises(ValueError, match="only be passed if metadata routing is not enabled"):
            cross_val_score(est, X, y, groups=groups, cv=cv)
        # a named scorer calls predict_proba without metadata
        with pytest.raises(InputError, match="needs group attributes"):
            cross_val_score(est, X, y, params={"sensitive_features": groups}, cv=cv,
                            scoring="neg_log_loss", error_score="raise")
        # GridSearchCV.predict takes no metadata
        search = GridSearchCV(est, {"l2": [1e-3]}, cv=cv).fit(X, y, sensitive_features=groups)
        with pytest.raises(TypeError, match="sensitive_features"):
            search.predict(X, sensitive_features=groups)


# --------------------------------------------------------------------------- the docs' examples
def _python_blocks(path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def _needs_nhefs():
    import importlib.util

    if importlib.util.find_spec("causaldata") is None:
        missing_data("optional package causaldata (NHEFS) is not installed")


def test_the_examples_of_scikit_learn_md_run_as_written():
    _needs_nhefs()
    (code,) = _python_blocks(DOC)
    namespace: dict = {}
    with sklearn.config_context():  # the example turns routing on; restored afterwards
        exec(compile(code, str(DOC), "exec"), namespace)
    search = namespace["search"]
    assert search.best_estimator_.certificate_.verified
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert np.isfinite(namespace["scores"]).all() and np.isfinite(namespace["by_site"]).all()


def test_the_recipes_of_pipelines_md_run_as_written():
    _needs_nhefs()
    from fairuse_opt.datasets import load_nhefs

    X, y, groups = load_nhefs()
    setup = {"X": X, "y": y, "groups": groups, "X_new": X.iloc[:50], "groups_new": groups.iloc[:50],
             "frame": pd.concat([X, groups], axis=1)}
    blocks = _python_blocks(REPO / "docs" / "pipelines.md")
    # the two recipes are the first two blocks; the audit snippets after them are run, in the
    # same spelling, by tests/test_audit_predictions.py
    assert len(blocks) >= 2 and "make_pipeline(StandardScaler(), FairUseClassifier())" in blocks[0]
    spaces = []
    for code in blocks[:2]:
        namespace = dict(setup)
        with sklearn.config_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small groups of NHEFS folds are warned about
            exec(compile(code, "docs/pipelines.md", "exec"), namespace)
        spaces.append(namespace)
        assert np.isfinite(namespace["scores"]).all()  # no fold failed (a failed fold scores nan)
    assert spaces[0]["pipe"][-1].certificate_.verified  # recipe 1 fits the pipeline itself
    assert spaces[1]["pipe"][-1].group_cols == ["Sex", "Race", "Age"]  # recipe 2 cross-validates clones
