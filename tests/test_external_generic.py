"""A generic= model passed from outside: what a fallback serves, and verification after a file.

Issue 24, C1: with ``on_infeasible="generic"`` the rows of a group given the generic model
must be served ``generic_`` itself; an external model the personalized model cannot serve in
a group's place (a gradient-boosting classifier) makes the fit refuse, saying why.
C2: ``certificate_.verify`` on a model read from a file that was fitted with an external
generic model needs that model again (``generic=``), and says so.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from fairuse_opt import FairUseClassifier, FairUseRegressor, InputError
from fairuse_opt.exceptions import MSG_FALLBACK_EXTERNAL, FairUseInfeasibleError, FallbackWarning
from fairuse_opt.model_io import MSG_NO_GENERIC_LOADED, dumps, loads


def circle_data(n=300, seed=0):
    """The issue's reproduction: y = 1[x1^2 + x2^2 + noise > 1.4], groups a/b at random."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    g = rng.choice(["a", "b"], n)
    y = (X[:, 0] ** 2 + X[:, 1] ** 2 + rng.normal(0, 0.3, n) > 1.4).astype(int)
    return X, y, g


def shifted_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    g = rng.choice(["a", "b"], n)
    y = (X[:, 0] + (g == "a") + rng.normal(0, 1, n) > 0.5).astype(int)
    return X, y, g


def test_fallback_to_an_external_model_that_cannot_be_served_refuses_clearly():
    X, y, g = circle_data()
    ext = GradientBoostingClassifier(random_state=0).fit(X, y)
    # no model of the family comes near the boosted trees' loss (0.02): no fit can verify
    with pytest.raises(FairUseInfeasibleError) as info:
        FairUseClassifier(generic=ext, margin=0.01, on_infeasible="generic").fit(X, y, groups=g)
    text = str(info.value)
    prefix = MSG_FALLBACK_EXTERNAL.split("{reason}")[0].format(generic="GradientBoostingClassifier")
    assert text.startswith(prefix)
    assert "cannot be met for group(s)" in text  # the reason the fit could not verify


def test_an_external_model_that_is_not_needed_is_not_refused():
    # the same external model, a fit that verifies: on_infeasible="generic" changes nothing
    X, y, g = shifted_data()
    ext = LogisticRegression().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)
        m = FairUseClassifier(generic=ext, on_infeasible="generic").fit(X, y, groups=g)
    assert m.certificate_.verified
    assert not m.certificate_.table["generic_fallback"].any()


@pytest.mark.parametrize("margin_a", [0.5, 5.0])
def test_a_group_given_an_external_linear_generic_model_is_served_that_model(margin_a):
    # an external generic model of this library, fitted with another penalty than the one
    # fitted inside: the group that cannot reach its margin must be served it, bit for bit
    X, y, g = shifted_data()
    ext = FairUseClassifier(encoding="none", l2=0.5).fit(X, y)
    with pytest.warns(FallbackWarning, match=re.escape("group(s) [('a',)] were given the generic model")):
        m = FairUseClassifier(generic=ext, margin={("a",): margin_a, ("b",): 0.0},
                              on_infeasible="generic").fit(X, y, groups=g)
    rows = {r["group"]: r for r in m.certificate_.table.to_dict("records")}
    assert rows[("a",)]["generic_fallback"] and not rows[("b",)]["generic_fallback"]
    assert m.certificate_.verified
    a = g == "a"
    np.testing.assert_array_equal(m.predict_proba(X[a], groups=g[a]), ext.predict_proba(X[a]))
    np.testing.assert_array_equal(m.coef_[m.groups_.index(("a",))], ext.coef_[0])
    # the certificate's own loss of the fallen-back group is the external model's loss
    p = ext.predict_proba(X[a])[:, 1]
    loss = -np.mean(np.where(y[a] == 1, np.log(p), np.log1p(-p)))
    assert rows[("a",)]["own_loss"] == pytest.approx(loss, rel=1e-12)
    assert rows[("a",)]["generic_loss"] == pytest.approx(loss, rel=1e-12)
    assert m.certificate_.verify(m, X, y, groups=g) == []


def test_a_regressor_falls_back_to_an_external_linear_generic_model():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3))
    g = rng.choice(["u", "v"], 200)
    y = X @ np.array([1.0, -0.5, 0.2]) + 0.7 * (g == "u") + rng.normal(size=200)
    ext = FairUseRegressor(encoding="none", l2=1.0).fit(X, y)
    with pytest.warns(FallbackWarning):
        m = FairUseRegressor(generic=ext, margin=50.0, on_infeasible="generic").fit(X, y, groups=g)
    assert m.certificate_.table["generic_fallback"].all()
    np.testing.assert_array_equal(m.predict(X, groups=g), ext.predict(X))


def test_verify_after_a_file_needs_the_external_generic_model():
    X, y, g = shifted_data()
    ext = LogisticRegression().fit(X, y)
    m = FairUseClassifier(generic=ext).fit(X, y, groups=g)
    assert m.certificate_.verified and m.certificate_.verify(m, X, y, groups=g) == []
    back = loads(dumps(m))
    assert back.generic_ is None
    with pytest.raises(InputError, match=re.escape(MSG_NO_GENERIC_LOADED.format(description="LogisticRegression"))):
        back.certificate_.verify(back, X, y, groups=g)
    # given the model again, it verifies as in memory
    assert back.certificate_.verify(back, X, y, groups=g, generic=ext) == []


def test_verify_with_another_generic_model_finds_the_violations():
    # verify(generic=...) really uses the model given: against a far better generic model
    # (boosted trees on a circle) rationality fails for every group
    X, y, g = circle_data()
    lin = LogisticRegression().fit(X, y)
    m = FairUseClassifier(generic=lin, fair_use="rationality").fit(X, y, groups=g)
    assert m.certificate_.verify(m, X, y, groups=g) == []
    strong = GradientBoostingClassifier(random_state=0).fit(X, y)
    failures = m.certificate_.verify(m, X, y, groups=g, generic=strong)
    assert len(failures) == 2 and all(f.startswith("rationality for") for f in failures)


def test_a_nan_loss_is_no_evidence():
    """A constraint whose loss is NaN (no evidence) fails, in the fit's check and in verify()."""
    from fairuse_opt.fairness.certify import check_constraints

    L = np.array([[0.3, 0.5], [0.6, np.nan]])
    E = np.zeros((2, 2))
    failures, _ = check_constraints(L, E, np.array([0.4, 0.7]), np.zeros(2), np.zeros(2),
                                    ("rationality", "envy_freeness"), 1e-7, [("a",), ("b",)],
                                    np.zeros((2, 2), dtype=bool), np.zeros(2, dtype=bool))
    assert failures == ["rationality for ('b',): own loss nan > bound 0.7",
                        "envy: ('b',) prefers report ('a',) (0.6 < nan)"]
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 2))
    g = rng.choice(["a", "b"], 200)
    y = X[:, 0] + (g == "a") + rng.normal(size=200)
    m = FairUseRegressor().fit(X, y, groups=g)
    assert m.certificate_.verify(m, X, y, groups=g) == []
    y_nan = y.copy()
    y_nan[np.flatnonzero(g == "b")[0]] = np.nan  # its losses are NaN under every model
    failures = m.certificate_.verify(m, X, y_nan, groups=g)
    assert any(f.startswith("rationality for ('b',)") for f in failures)
    assert not any("('a',)" in f.split(":")[0] for f in failures)
