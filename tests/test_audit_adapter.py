"""SklearnGroupModel: any scikit-learn estimator as a personalized model, and its audit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from fairuse_opt.audit import SklearnGroupModel, audit
from fairuse_opt.audit._errors import MSG_ADAPTER_ENCODING, MSG_ADAPTER_NEEDS_GROUPS
from fairuse_opt.exceptions import MSG_N_FEATURES, MSG_UNSEEN_GROUP, InputError, UnseenGroupError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = {
    "logistic": LogisticRegression(max_iter=500),
    "forest": RandomForestClassifier(n_estimators=30, random_state=0),
    "boosting": GradientBoostingClassifier(n_estimators=30, random_state=0),
    "mlp": MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0),
}


def make_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    groups = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "age": rng.choice([30, 60, 90], n)})
    X = rng.normal(size=(n, 3))
    logit = X @ [1.0, -1.0, 0.5] + 0.8 * (groups["sex"] == "F") - 0.01 * groups["age"] + 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    return X, y, groups


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("encoding", ["onehot", "intersectional"])
def test_adapter_follows_the_personalized_model_interface(data, name, encoding):
    X, y, g = data
    model = SklearnGroupModel(ESTIMATORS[name], encoding=encoding).fit(X, y, groups=g)
    assert model.group_names_ == ["sex", "age"]
    assert model.groups_ == [(s, a) for s in ("F", "M") for a in (30, 60, 90)]
    n_indicators = 2 + 3 if encoding == "onehot" else 6
    assert model.estimator_.n_features_in_ == 3 + n_indicators
    np.testing.assert_array_equal(model.classes_, [0, 1])
    proba = model.predict_proba(X, groups=g)
    assert proba.shape == (len(y), 2)
    np.testing.assert_array_equal(model.predict(X, groups=g), proba.argmax(axis=1))
    # report= gives every row the indicators of one group
    key = ("M", 60)
    as_if = pd.DataFrame({"sex": ["M"] * len(y), "age": [60] * len(y)})
    np.testing.assert_allclose(model.predict_proba(X, report=key), model.predict_proba(X, groups=as_if))
    np.testing.assert_allclose(model.predict_proba(X, report={"age": 60, "sex": "M"}),
                               model.predict_proba(X, report=key))
    # the generic counterpart: the same estimator on the features only
    generic = clone(ESTIMATORS[name]).fit(X, y)
    np.testing.assert_allclose(model.generic_.predict_proba(X), generic.predict_proba(X))
    np.testing.assert_allclose(model.generic_.predict_proba(X, groups=g, report=key),
                               generic.predict_proba(X))  # groups and report are ignored


def test_onehot_indicators(data):
    X, y, g = data
    model = SklearnGroupModel(LogisticRegression(), encoding="onehot").fit(X, y, groups=g)
    design = model._design(X[:2], np.array([model.groups_.index(("F", 90)), model.groups_.index(("M", 30))]))
    # columns: 3 features, sex F, sex M, age 30, age 60, age 90
    np.testing.assert_array_equal(design[:, 3:], [[1, 0, 0, 0, 1], [0, 1, 1, 0, 0]])
    inter = SklearnGroupModel(LogisticRegression(), encoding="intersectional").fit(X, y, groups=g)
    design = inter._design(X[:1], np.array([4]))
    np.testing.assert_array_equal(design[0, 3:], [0, 0, 0, 0, 1, 0])


def test_adapter_is_a_scikit_learn_estimator(data):
    X, y, g = data
    model = SklearnGroupModel(LogisticRegression(C=0.5), encoding="intersectional")
    assert model.get_params()["encoding"] == "intersectional"
    assert clone(model).get_params()["estimator__C"] == 0.5
    assert is_classifier(model) and not is_regressor(model)
    with pytest.raises(NotFittedError):
        model.predict_proba(X, groups=g)
    reg = SklearnGroupModel(RandomForestRegressor(n_estimators=5, random_state=0))
    assert is_regressor(reg) and not hasattr(reg, "predict_proba")
    reg.fit(X, X[:, 0] + (g["sex"] == "F"), groups=g)
    assert not hasattr(reg, "predict_proba") and not hasattr(reg, "classes_")
    assert reg.predict(X, groups=g).shape == (len(y),)


def test_adapter_errors(data):
    X, y, g = data
    with pytest.raises(InputError) as info:
        SklearnGroupModel(LogisticRegression(), encoding="dummies").fit(X, y, groups=g)
    assert str(info.value) == MSG_ADAPTER_ENCODING.format(value="dummies",
                                                          choices=("onehot", "intersectional", "none"))
    with pytest.raises(InputError) as info:
        SklearnGroupModel(LogisticRegression()).fit(X, y)
    assert str(info.value) == MSG_ADAPTER_NEEDS_GROUPS.format(encoding="onehot", method="fit")
    model = SklearnGroupModel(LogisticRegression()).fit(X, y, groups=g)
    with pytest.raises(InputError) as info:
        model.predict_proba(X)
    assert str(info.value) == MSG_ADAPTER_NEEDS_GROUPS.format(encoding="onehot", method="predict_proba")
    with pytest.raises(InputError) as info:
        model.predict_proba(X[:, :2], groups=g)
    assert str(info.value) == MSG_N_FEATURES.format(got=2, name="SklearnGroupModel", expected=3)
    unseen = g.copy()
    unseen.loc[0, "age"] = 45
    with pytest.raises(UnseenGroupError) as info:
        model.predict_proba(X, groups=unseen)
    assert str(info.value) == MSG_UNSEEN_GROUP.format(groups=[("F", 45)] if unseen.loc[0, "sex"] == "F"
                                                      else [("M", 45)], known=model.groups_)
    with pytest.raises(UnseenGroupError):
        model.predict_proba(X, report=("F", 45))


@pytest.mark.parametrize("name", ["forest", "boosting", "mlp"])
def test_audit_of_any_estimator(name):
    X, y, g = make_data(n=1200, seed=1)
    train, test = slice(0, 600), slice(600, None)
    model = SklearnGroupModel(ESTIMATORS[name], encoding="intersectional")
    model.fit(X[train], y[train], groups=g[train])
    report = audit(model, X[test], y[test], groups=g[test].reset_index(drop=True), n_boot=100)
    t = report.table
    assert set(t.group) == {f"sex={s}, age={a}" for s in "FM" for a in (30, 60, 90)}
    assert (t[t.condition == "envy_pair"].groupby(["group", "metric"]).size() == 5).all()
    assert report.verdict_counts().to_numpy().sum() == 6 * 2 * 4
    # the generic model's values are those of the same estimator on the features only
    generic = clone(ESTIMATORS[name]).fit(X[train], y[train])
    rat = t[(t.condition == "rationality") & (t.metric == "brier")]
    members = (g[test]["sex"] == "F").to_numpy() & (g[test]["age"] == 30).to_numpy()
    p = generic.predict_proba(X[test][members])[:, 1]
    expected = np.mean((p - y[test][members]) ** 2)
    assert rat[rat.group == "sex=F, age=30"].baseline.iloc[0] == pytest.approx(expected)


def test_xor_counterexample_is_flagged(toy):
    """fair-use.md section 7: the additive one-hot fit harms female-old (0 -> 24 errors)."""
    _, y, groups = toy
    X = np.zeros((len(y), 1))  # the toy has no features: a constant column
    onehot = SklearnGroupModel(LogisticRegression(C=1e6, max_iter=10_000), encoding="onehot")
    onehot.fit(X, y, groups=groups)
    p = onehot.predict_proba(X, report=("female", "old"))[0, 1]
    assert p == pytest.approx(0.525, abs=2e-3)
    report = audit(onehot, X, y, groups=groups, metrics=["error", "log_loss"], n_boot=200,
                   test="exact", min_group_size=1)
    t = report.table
    fo = t[(t.group == "sex=female, age=old") & (t.condition == "rationality")].set_index("metric")
    assert fo.loc["error", "gain"] == pytest.approx(-1.0)  # 0 errors -> all 24 wrong
    assert fo.loc["error", "verdict"] == "violation"
    assert fo.loc["error", "p_violation"] == pytest.approx(2.0 ** -24)  # McNemar, 24 discordant
    assert fo.loc["log_loss", "baseline"] == pytest.approx(0.6833, abs=1e-3)
    assert fo.loc["log_loss", "value"] == pytest.approx(0.7442, abs=2e-3)
    assert fo.loc["log_loss", "verdict"] == "violation"
    errors = (t[(t.condition == "rationality") & (t.metric == "error")]
              .assign(wrong=lambda d: d.value * d.n).wrong.sum())
    assert errors == pytest.approx(74)
    inter = SklearnGroupModel(LogisticRegression(C=1e6, max_iter=10_000), encoding="intersectional")
    inter.fit(X, y, groups=groups)
    t = audit(inter, X, y, groups=groups, metrics=["error"], n_boot=200, min_group_size=1).table
    rat = t[t.condition == "rationality"]
    assert (rat.value == 0).all()  # fits all four groups
    assert set(rat[rat.gain > 0].verdict) == {"benefit"}
