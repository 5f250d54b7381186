"""FairUseSystem: known answers, partial reports, unseen options, validation, audit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fairuse_opt import (
    FairUseClassifier,
    FairUseRegressor,
    FairUseSystem,
    InputError,
    SklearnGroupModel,
    UnseenGroupError,
    audit,
    fit_system,
)
from fairuse_opt.exceptions import (
    MSG_SYSTEM_EXACT_METRIC,
    MSG_SYSTEM_NO_CANDIDATES,
    MSG_SYSTEM_NOT_FITTED,
    MSG_SYSTEM_RESERVED_NAME,
    MSG_SYSTEM_UNKNOWN_ATTRIBUTES,
    FairUseWarning,
)
from fairuse_opt.system import GENERIC


class FixedModel:
    """A 'fitted' model with a fixed probability per report (and a feature slope)."""

    def __init__(self, names, probs, default=0.3, classes=(0, 1)):
        self.group_names_ = list(names)
        self.probs = dict(probs)
        self.groups_ = list(self.probs) if names else None
        self.default = default
        self.classes_ = np.array(classes)
        self.n_features_in_ = 1
        self.fitted_ = True

    def predict_proba(self, X, *, groups=None, report=None):
        n = np.asarray(X).shape[0]
        if not self.group_names_:
            p = np.full(n, self.default)
        elif report is not None:
            p = np.full(n, self.probs[tuple(report)])
        else:
            keys = [tuple(r) for r in pd.DataFrame(groups).itertuples(index=False, name=None)]
            p = np.array([self.probs[k] for k in keys])
        return np.column_stack([1 - p, p])


def _known_problem(n_per=120, seed=0):
    """Two attributes; group (a1, b1) is always positive, the rest negative.

    The generic model predicts 0.3 (right for every negative, wrong for (a1, b1)); the
    candidate predicts 0.9 for (a1, b1) and 0.3 elsewhere, so it corrects every error of
    the generic model and makes no new one."""
    rng = np.random.default_rng(seed)
    keys = [("a0", "b0"), ("a0", "b1"), ("a1", "b0"), ("a1", "b1")]
    groups = pd.DataFrame([k for k in keys for _ in range(n_per)], columns=["A", "B"])
    y = np.array([int(k == ("a1", "b1")) for k in keys for _ in range(n_per)])
    X = rng.normal(size=(len(y), 1))
    generic = FixedModel([], {}, default=0.3)
    cand = FixedModel(["A", "B"], {k: (0.9 if k == ("a1", "b1") else 0.3) for k in keys})
    return X, y, groups, generic, cand


def test_known_answer_exact_pvalue_and_serving():
    X, y, groups, generic, cand = _known_problem()
    system = FairUseSystem({"fix": cand}, generic, procedure="split", test="exact", random_state=1).fit(X, y, groups=groups)
    table = system.assignment_.set_index("option")
    row = table.loc["A=a1, B=b1"]
    assert row["served"] == "fix[A=a1, B=b1]"
    # McNemar: the candidate is right on every test row, the generic model on none
    assert row["gain_generic"] == 1.0
    assert row["p_value"] == pytest.approx(0.5 ** row["n_test"])
    for other in ("A=a0, B=b0", "A=a0, B=b1", "A=a1, B=b0"):
        assert table.loc[other, "served"] == "generic"  # identical to the generic model: no gain
    # the served model is what predict uses, for that group only
    p = system.predict_proba(X, groups=groups)[:, 1]
    expected = np.where((groups["A"] == "a1") & (groups["B"] == "b1"), 0.9, 0.3)
    np.testing.assert_allclose(p, expected)
    np.testing.assert_array_equal(system.predict(X, groups=groups), (expected > 0.5).astype(int))
    np.testing.assert_allclose(system.decision_function(X, groups=groups),
                               np.log(expected / (1 - expected)))


def test_partial_reports_at_predict_time():
    X, y, groups, generic, cand = _known_problem()
    system = FairUseSystem({"fix": cand}, generic, procedure="split", random_state=0).fit(X, y, groups=groups)
    g = pd.DataFrame({"A": ["a1", "a1", None, np.nan], "B": ["b1", None, "b1", None]})
    p = system.predict_proba(X[:4], groups=g)[:, 1]
    # only the fully reported (a1, b1) row can use the candidate; a row that declines B is
    # served the option (a1, not reported), whose model uses nothing it did not report
    assert p[0] == pytest.approx(0.9)
    for k in (1, 2, 3):
        fid = system.served_[tuple(None if pd.isna(v) else v for v in g.iloc[k])]
        assert fid == GENERIC
        assert p[k] == pytest.approx(0.3)
    np.testing.assert_allclose(system.predict_proba(X[:2], report=("a1", None))[:, 1], [0.3, 0.3])
    np.testing.assert_allclose(system.predict_proba(X[:2], report={"A": "a1", "B": "b1"})[:, 1], [0.9, 0.9])
    serving = system.serving(g)
    assert list(serving["served_by"]) == ["A=a1, B=b1", "A=a1, B=(not reported)",
                                          "A=(not reported), B=b1", "(nothing reported)"]


def _partial_data(seed=0, n=1500, drop=None, missing=0.15):
    """Data with strong group effects, some missing reports."""
    rng = np.random.default_rng(seed)
    A = rng.choice(["a0", "a1"], n)
    B = rng.choice(["b0", "b1", "b2"], n)
    effect = {("a1", "b0"): 2.0, ("a1", "b1"): -2.0, ("a0", "b2"): 1.5}
    X = rng.normal(size=(n, 2))
    s = 0.5 * X[:, 0] - 0.3 * X[:, 1] + np.array([effect.get((a, b), 0.0) for a, b in zip(A, B)])
    y = (rng.random(n) < 1 / (1 + np.exp(-s))).astype(int)
    groups = pd.DataFrame({"A": A, "B": B}, dtype=object)
    if drop is not None:
        keep = ~((groups["A"] == drop[0]) & (groups["B"] == drop[1])).to_numpy()
        X, y, groups = X[keep], y[keep], groups[keep].reset_index(drop=True)
    reports = groups.copy()
    reports.loc[rng.random(len(y)) < missing, "B"] = None
    reports.loc[rng.random(len(y)) < missing / 2, "A"] = None
    return X, y, groups, reports


def _pool(X, y, groups):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generic = FairUseClassifier(encoding="none").fit(X, y)
        cands = {"int[A,B]": FairUseClassifier(fair_use=None).fit(X, y, groups=groups),
                 "int[A]": FairUseClassifier(fair_use=None).fit(X, y, groups=groups[["A"]]),
                 "int[B]": FairUseClassifier(fair_use=None).fit(X, y, groups=groups[["B"]])}
    return generic, cands


def test_option_never_seen_in_assignment_is_served_nearest_parent():
    X_tr, y_tr, g_tr, _ = _partial_data(seed=1)
    generic, cands = _pool(X_tr, y_tr, g_tr)
    X_as, y_as, g_as, _ = _partial_data(seed=2, drop=("a1", "b2"), missing=0.0)
    system = FairUseSystem(cands, generic, procedure="split", random_state=0).fit(X_as, y_as, groups=g_as)
    unseen = ("a1", "b2")
    assert unseen not in system.served_
    # both parents were seen; the nearest one with the most assignment rows serves it
    parents = [("a1", None), (None, "b2")]
    sizes = {o: system.option_sizes_[o] for o in parents}
    assert sizes[("a1", None)] != sizes[(None, "b2")]
    expect = max(parents, key=sizes.get)
    assert system._serving_option(unseen) == expect
    fid = system.served_[expect]
    model = generic if fid == GENERIC else cands[fid[0]]
    kwargs = {} if fid == GENERIC else {"report": fid[1]}
    np.testing.assert_allclose(system.predict_proba(X_as[:5], report=unseen), model.predict_proba(X_as[:5], **kwargs))
    assert system.serving(report=unseen)["served_by"].iloc[0] == ("A=a1, B=(not reported)" if expect == ("a1", None)
                                                                 else "A=(not reported), B=b2")
    # a value never seen anywhere is an error, not a silent fallback
    with pytest.raises(UnseenGroupError, match="never seen"):
        system.predict_proba(X_as[:1], report=("a2", "b0"))


def test_candidate_on_other_attributes_serves_only_options_reporting_them():
    X_tr, y_tr, g_tr, _ = _partial_data(seed=3)
    generic, cands = _pool(X_tr, y_tr, g_tr)
    only_b = {"int[B]": cands["int[B]"]}
    X_as, y_as, g_as, r_as = _partial_data(seed=4)
    system = FairUseSystem(only_b, generic, procedure="split", random_state=0).fit(X_as, y_as, groups=r_as)
    assert system.candidate_attributes_ == {"int[B]": ["B"]}
    reasons = system.assignment_.set_index("option")["reason"]
    labels = dict(zip(system.served_, [None] * len(system.served_)))
    for option, fid in system.served_.items():
        if fid != GENERIC:
            assert option[1] is not None  # it reports B
            if fid != ("int[B]", (option[1],)):  # another option's model: only by envy reassignment
                label = ", ".join(f"{a}={'(not reported)' if v is None else v}" for a, v in zip("AB", option))
                assert "reassigned" in reasons[label]
    # options that do not report B are never even offered the candidate
    table = system.assignment_
    no_b = table[table["B"].isna()]
    assert (no_b["candidate"] == "generic").all()
    # strong effects on B=b2 (via a0) are found by the B-only model for some option
    assert any(f != GENERIC for f in system.served_.values())


def test_assignment_table_columns_and_reproducibility():
    X_tr, y_tr, g_tr, _ = _partial_data(seed=5)
    generic, cands = _pool(X_tr, y_tr, g_tr)
    X_as, y_as, g_as, r_as = _partial_data(seed=6)
    a = FairUseSystem(cands, generic, procedure="split", random_state=3).fit(X_as, y_as, groups=r_as)
    b = FairUseSystem(cands, generic, procedure="split", random_state=3).fit(X_as, y_as, groups=r_as)
    pd.testing.assert_frame_equal(a.assignment_, b.assignment_)
    for col in ("option", "n", "candidate", "served", "gain_generic", "gain_generic_low", "gain_generic_high",
                "gain_parent", "gain_parent_low", "gain_parent_high", "p_value", "p_adjusted", "reason"):
        assert col in a.assignment_.columns
    assert a.assignment_["reason"].map(bool).all()
    personal = a.assignment_[a.assignment_["served"] != "generic"]
    assert len(personal) > 0
    # a personalized option shows a positive gain whose lower bound is above zero... or it
    # got the model by reassignment / inheritance, which the reason says
    for _, row in personal.iterrows():
        assert ("significant" in row["reason"]) or ("reassigned" in row["reason"]) or ("envy" in row["reason"])
    # the n column counts members: rows reporting the option's values
    opt = a.assignment_.set_index("option")
    n_a1 = int((r_as["A"] == "a1").sum())
    assert opt.loc["A=a1, B=(not reported)", "n"] == n_a1


def test_audit_runs_on_a_system():
    X_tr, y_tr, g_tr, _ = _partial_data(seed=7)
    generic, cands = _pool(X_tr, y_tr, g_tr)
    X_as, y_as, g_as, _ = _partial_data(seed=8)
    system = FairUseSystem(cands, generic, procedure="split", n_boot=200).fit(X_as, y_as, groups=g_as)
    X_te, y_te, g_te, _ = _partial_data(seed=9)
    report = audit(system, X_te, y_te, groups=g_te, metrics=["error"], n_boot=200)
    rat = report.table[report.table["condition"] == "rationality"].set_index("group")
    assert len(rat) == 6
    for key, fid in system.served_.items():
        label = ", ".join(f"{a}={v}" for a, v in zip(["A", "B"], key))
        if None in key or label not in rat.index:
            continue
        if fid == GENERIC:
            assert rat.loc[label, "gain"] == 0.0  # the generic model against itself


def test_regression_system():
    rng = np.random.default_rng(0)
    n = 1200
    g = rng.choice(["u", "v", "w"], n)
    X = rng.normal(size=(n, 2))
    y = X @ [1.0, -1.0] + np.where(g == "u", 2.0, 0.0) + rng.normal(size=n)
    groups = pd.DataFrame({"G": g})
    tr, te = slice(0, 700), slice(700, None)
    generic = FairUseRegressor(encoding="none").fit(X[tr], y[tr])
    cand = FairUseRegressor(fair_use=None).fit(X[tr], y[tr], groups=groups[tr])
    system = FairUseSystem([cand], generic, procedure="split").fit(X[te], y[te], groups=groups[te].reset_index(drop=True))
    assert not hasattr(system, "predict_proba")
    assert system.metric_ == "mse"
    name = next(iter(system.candidates_))
    assert system.served_[("u",)] == (name, ("u",))  # a 2-unit shift is found
    pred = system.predict(X[te], groups=groups[te])
    np.testing.assert_allclose(pred[g[te] == "u"], cand.predict(X[te][g[te] == "u"], report="u"))
    with pytest.raises(InputError, match="does not apply"):
        FairUseSystem([cand], generic, procedure="split", metric="error").fit(X[te], y[te], groups=groups[te])


def test_minimal_uses_one_candidate():
    X_tr, y_tr, g_tr, _ = _partial_data(seed=10)
    generic, cands = _pool(X_tr, y_tr, g_tr)
    X_as, y_as, g_as, _ = _partial_data(seed=11, missing=0.0)
    system = FairUseSystem({"int[A,B]": cands["int[A,B]"]}, generic, procedure="split", kind="minimal").fit(X_as, y_as, groups=g_as)
    personal = {f for f in system.served_.values() if f != GENERIC}
    assert personal and {f[0] for f in personal} == {"int[A,B]"}
    # one candidate, nothing to choose: every row tests (no selection half)
    assert (system.assignment_["n_select"] == 0).all()
    # partial options cannot use a two-attribute candidate: they keep the generic model
    for o, f in system.served_.items():
        if None in o:
            assert f == GENERIC


def test_validation_errors():
    X, y, groups, generic, cand = _known_problem(n_per=20)
    with pytest.raises(InputError, match="alpha"):
        FairUseSystem({"c": cand}, generic, procedure="split", alpha=0.5).fit(X, y, groups=groups)
    with pytest.raises(InputError, match="alpha"):
        FairUseSystem({"c": cand}, generic, procedure="split", alpha=0.0).fit(X, y, groups=groups)
    with pytest.raises(InputError, match="kind"):
        FairUseSystem({"c": cand}, generic, procedure="split", kind="flat").fit(X, y, groups=groups)
    with pytest.raises(InputError, match="unknown metric"):
        FairUseSystem({"c": cand}, generic, procedure="split", metric="accuracy").fit(X, y, groups=groups)
    with pytest.raises(InputError, match="McNemar"):
        FairUseSystem({"c": cand}, generic, procedure="split", test="exact", metric="log_loss").fit(X, y, groups=groups)
    assert MSG_SYSTEM_EXACT_METRIC.format(metric="log_loss") in str(pytest.raises(
        InputError, FairUseSystem({"c": cand}, generic, procedure="split", test="exact", metric="log_loss").fit,
        X, y, groups=groups).value)
    with pytest.raises(InputError, match="empty"):
        FairUseSystem({}, generic, procedure="split").fit(X, y, groups=groups)
    assert MSG_SYSTEM_NO_CANDIDATES == str(pytest.raises(InputError, FairUseSystem([], generic, procedure="split").fit,
                                                         X, y, groups=groups).value)
    unfitted = FairUseClassifier()
    err = pytest.raises(InputError, FairUseSystem({"u": unfitted}, generic, procedure="split").fit, X, y, groups=groups).value
    assert str(err) == MSG_SYSTEM_NOT_FITTED.format(what="candidate 'u'")
    err = pytest.raises(InputError, FairUseSystem({"generic": cand}, generic, procedure="split").fit, X, y, groups=groups).value
    assert str(err) == MSG_SYSTEM_RESERVED_NAME.format(name="generic")
    other = FixedModel(["Sex"], {("F",): 0.5})
    err = pytest.raises(InputError, FairUseSystem({"o": other}, generic, procedure="split").fit, X, y, groups=groups).value
    assert str(err) == MSG_SYSTEM_UNKNOWN_ATTRIBUTES.format(what="candidate 'o'", unknown=["Sex"],
                                                            names=["A", "B"])
    with pytest.raises(InputError, match="trained without them"):
        FairUseSystem({"c": cand}, cand).fit(X, y, groups=groups)
    with pytest.raises(InputError, match="classes_"):
        FairUseSystem({"c": FixedModel(["A", "B"], cand.probs, classes=("n", "y"))}, generic).fit(
            X, y, groups=groups)
    system = FairUseSystem({"c": cand}, generic, procedure="split").fit(X, y, groups=groups)
    with pytest.raises(InputError, match="needs groups"):
        system.predict_proba(X)
    with pytest.raises(InputError, match="one value"):
        system.predict_proba(X, report=("a1",))
    with pytest.raises(InputError, match="attributes"):
        system.predict_proba(X, groups=groups.rename(columns={"A": "Z"}))


def test_list_candidates_get_names_and_sklearn_candidates_work():
    X_tr, y_tr, g_tr, _ = _partial_data(seed=12)
    generic, cands = _pool(X_tr, y_tr, g_tr)
    sk = SklearnGroupModel(LogisticRegression(), encoding="intersectional").fit(X_tr, y_tr, groups=g_tr)
    X_as, y_as, g_as, _ = _partial_data(seed=13, missing=0.0)
    system = FairUseSystem([cands["int[A,B]"], cands["int[A]"], sk], generic, procedure="split").fit(X_as, y_as, groups=g_as)
    assert list(system.candidates_) == ["intersectional[A,B]", "intersectional[A]",
                                        "LogisticRegression:intersectional[A,B]"]


def test_estimators_still_reject_missing_group_values():
    X, y, groups, _ = _partial_data(seed=14)[0:3] + (None,)
    g = groups.copy()
    g.loc[0, "A"] = None
    with pytest.raises(InputError, match="missing"):
        FairUseClassifier().fit(X, y, groups=g)


def test_fit_system_never_fits_on_assignment_rows(caplog):
    X, y, groups, reports = _partial_data(seed=15, n=1000)
    pool = {"int": FairUseClassifier(fair_use=None), "onehot[A]": (FairUseClassifier(encoding="onehot",
                                                                                      fair_use=None), ["A"])}
    with caplog.at_level("INFO", logger="fairuse_opt.system"):
        system = fit_system(X, y, reports, procedure="split", candidates=pool, n_boot=200, random_state=0)
    assert "split:" in caplog.text
    tr, asg = system.train_index_, system.assign_index_
    assert len(np.intersect1d(tr, asg)) == 0 and len(tr) + len(asg) == len(y)
    assert len(asg) == pytest.approx(0.3 * len(y), abs=2)
    # the generic model is exactly the one fitted on the training rows
    ref = FairUseClassifier(encoding="none").fit(X[tr], y[tr])
    np.testing.assert_allclose(system.generic_.coef_, ref.coef_, atol=1e-10)
    # the A-only candidate is trained on the training rows that reported A
    rows = tr[pd.notna(reports["A"].to_numpy()[tr])]
    ref_a = FairUseClassifier(encoding="onehot", fair_use=None).fit(X[rows], y[rows], groups=reports.iloc[rows][["A"]])
    np.testing.assert_allclose(system.candidates_["onehot[A]"].coef_, ref_a.coef_, atol=1e-10)
    # stratified by report and label: every (report, label) cell's share is kept (up to rounding)
    cells = pd.Series(["|".join(map(str, r)) + f"#{v}" for r, v in
                       zip(reports.itertuples(index=False, name=None), y)])
    share = cells.iloc[asg].value_counts() / cells.value_counts()
    assert (share.dropna() - 0.3).abs().max() < 0.15


def test_fit_system_small_cell_fallback_warns():
    X, y, groups, _ = _partial_data(seed=16, n=400, missing=0.0)
    groups.loc[0, "B"] = "rare"  # a cell of one row
    with pytest.warns(FairUseWarning, match="fewer than 2 rows"):
        system = fit_system(X, y, groups, procedure="split", candidates={"int": FairUseClassifier(fair_use=None)}, n_boot=100)
    assert len(system.assign_index_) > 0
    with pytest.raises(InputError, match="assign_size"):
        fit_system(X, y, groups, procedure="split", assign_size=1.5)
