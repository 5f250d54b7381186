"""Every bad input raises the documented exception with a message naming the problem."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from fairuse_opt import (
    FairUseClassifier,
    FairUseError,
    FairUseRegressor,
    InputError,
    SmallGroupWarning,
    UnseenGroupError,
)
from fairuse_opt import exceptions as E

from .conftest import make_data


def msg(template: str, **kw) -> str:
    return re.escape(template.format(**kw))


@pytest.fixture
def data():
    X, y, g = make_data(n=120, d=2, n_groups=3, seed=0)
    return pd.DataFrame(X, columns=["a", "b"]), y, pd.Series(np.array(["g0", "g1", "g2"])[g], name="grp")


def test_error_family():
    assert issubclass(InputError, ValueError) and issubclass(InputError, FairUseError)
    assert issubclass(UnseenGroupError, InputError)


def test_nan_in_features_names_columns_and_rows(data):
    X, y, g = data
    X = X.copy()
    X.loc[[3, 7], "b"] = np.nan
    with pytest.raises(InputError, match=msg(E.MSG_NOT_FINITE, what="X", kind="NaN", columns=["b"], n_rows=2)):
        FairUseClassifier().fit(X, y, groups=g)


def test_infinite_values_in_array(data):
    X, y, g = data
    Xa = X.to_numpy().copy()
    Xa[5, 0] = np.inf
    with pytest.raises(InputError, match=msg(E.MSG_NOT_FINITE, what="X", kind="infinite",
                                             columns=["column 0"], n_rows=1)):
        FairUseClassifier().fit(Xa, y, groups=g)


def test_non_numeric_feature(data):
    X, y, g = data
    X = X.assign(c=["x"] * len(X))
    with pytest.raises(InputError, match=msg(E.MSG_NOT_NUMERIC, what="X", columns=["c"])):
        FairUseClassifier().fit(X, y, groups=g)


def test_labels_not_binary(data):
    X, y, g = data
    y3 = np.arange(len(y)) % 3
    with pytest.raises(InputError, match=msg(E.MSG_NOT_BINARY, n_classes=3, classes=[0, 1, 2])):
        FairUseClassifier().fit(X, y3, groups=g)


def test_single_class_labels(data):
    X, _, g = data
    with pytest.raises(InputError, match=msg(E.MSG_ONE_CLASS, cls=1)):
        FairUseClassifier().fit(X, np.ones(len(X), dtype=int), groups=g)


@pytest.mark.parametrize("labels", [(0, 1), (-1, 1), (False, True), ("no", "yes")])
def test_accepted_label_codings_give_the_same_model(data, labels):
    X, y, g = data
    y_coded = np.where(y == 1, labels[1], labels[0])
    m = FairUseClassifier(fair_use=None).fit(X, y_coded, groups=g)
    ref = FairUseClassifier(fair_use=None).fit(X, y, groups=g)
    assert list(m.classes_) == list(labels)
    np.testing.assert_allclose(m.coef_, ref.coef_, atol=1e-8)
    assert set(m.predict(X, groups=g)) <= set(labels)


def test_length_mismatch(data):
    X, y, g = data
    with pytest.raises(InputError, match=msg(E.MSG_LENGTH_MISMATCH, what="y", n_other=len(y) - 1, n_rows=len(y))):
        FairUseClassifier().fit(X, y[:-1], groups=g)
    with pytest.raises(InputError, match=msg(E.MSG_LENGTH_MISMATCH, what="groups", n_other=len(y) - 2,
                                             n_rows=len(y))):
        FairUseClassifier().fit(X, y, groups=g[:-2])


def test_group_attribute_with_missing_values(data):
    X, y, g = data
    g = g.astype(object).copy()
    g.iloc[[4, 9, 11]] = None
    with pytest.raises(InputError, match=msg(E.MSG_GROUP_MISSING, name="grp", n_missing=3, first=4)):
        FairUseClassifier().fit(X, y, groups=g)


def test_unseen_group_at_predict_is_named(data):
    X, y, g = data
    m = FairUseClassifier(fair_use=None).fit(X, y, groups=g)
    g2 = g.copy()
    g2.iloc[0] = "g9"
    with pytest.raises(UnseenGroupError, match=re.escape("[('g9',)] were not seen in training")):
        m.predict_proba(X, groups=g2)
    with pytest.raises(UnseenGroupError, match=re.escape("('g7',)")):
        m.predict_proba(X, report="g7")


def test_empty_group_level(data):
    X, y, g = data
    cat = pd.Series(pd.Categorical(g, categories=["g0", "g1", "g2", "g3"]), name="grp")
    with pytest.raises(InputError, match=msg(E.MSG_EMPTY_GROUP, name="grp", levels=["g3"])):
        FairUseClassifier().fit(X, y, groups=cat)


def test_group_with_zero_weight_is_an_error(data):
    X, y, g = data
    w = np.where(g == "g2", 0.0, 1.0)
    with pytest.raises(InputError, match=msg(E.MSG_EMPTY_WEIGHT_GROUP, group=("g2",))):
        FairUseClassifier().fit(X, y, groups=g, sample_weight=w)


def test_no_rows_and_no_group_columns(data):
    X, y, g = data
    with pytest.raises(InputError, match=msg(E.MSG_NO_ROWS, what="X")):
        FairUseClassifier().fit(X.iloc[:0], y[:0], groups=g[:0])
    with pytest.raises(InputError, match=re.escape(E.MSG_NO_GROUP_ATTRIBUTES)):
        FairUseClassifier().fit(X, y, groups=pd.DataFrame(index=range(len(X))))


def test_groups_required_unless_generic(data):
    X, y, _ = data
    with pytest.raises(InputError, match=msg(E.MSG_GROUPS_REQUIRED, encoding="intersectional", method="fit")):
        FairUseClassifier().fit(X, y)
    FairUseClassifier(encoding="none").fit(X, y)  # the generic model needs no groups


def test_bad_sample_weight(data):
    X, y, g = data
    w = np.ones(len(y))
    w[3] = -1
    with pytest.raises(InputError, match=msg(E.MSG_WEIGHT_BAD, problem="1 value(s) are negative")):
        FairUseClassifier().fit(X, y, groups=g, sample_weight=w)
    with pytest.raises(InputError, match=re.escape(E.MSG_WEIGHT_ZERO)):
        FairUseClassifier().fit(X, y, groups=g, sample_weight=np.zeros(len(y)))


def test_regression_target_must_be_numeric(data):
    X, _, g = data
    with pytest.raises(InputError, match="y must be numeric"):
        FairUseRegressor().fit(X, np.array(["a"] * len(X)), groups=g)


@pytest.mark.parametrize("param,value", [("encoding", "hot"), ("group_reg", "ball"), ("l2", -1.0), ("alpha", -1.0),
                                         ("fair_use", "fairness"), ("on_infeasible", "ignore"),
                                         ("intercept_bound", -2.0),
                                         ("margin", "se:x"), ("margin", -0.1)])
def test_bad_parameters_are_named(data, param, value):
    X, y, g = data
    with pytest.raises(InputError, match=re.escape(f"{param}={value!r}")):
        FairUseClassifier(**{param: value}).fit(X, y, groups=g)


def test_unknown_solver(data):
    X, y, g = data
    with pytest.raises(InputError, match=msg(E.MSG_SOLVER_UNKNOWN, solver="GUROBI",
                                             installed=["CLARABEL", "ECOS", "SCS"])):
        FairUseClassifier(solver="GUROBI").fit(X, y, groups=g)


def test_misspelt_parameter_is_not_swallowed():
    with pytest.raises(TypeError):
        FairUseClassifier(alhpa=1.0)


def test_wrong_number_of_features_at_predict(data):
    X, y, g = data
    m = FairUseClassifier(fair_use=None).fit(X, y, groups=g)
    with pytest.raises(InputError, match=msg(E.MSG_N_FEATURES, got=1, name="FairUseClassifier", expected=2)):
        m.predict(X[["a"]].to_numpy(), groups=g)


def test_bad_report(data):
    X, y, g = data
    groups = pd.DataFrame({"s": np.where(g == "g0", "F", "M"), "a": np.where(g == "g2", "old", "young")})
    m = FairUseClassifier(fair_use=None).fit(X, y, groups=groups)
    with pytest.raises(InputError, match=re.escape("must give one value for each group attribute")):
        m.predict_proba(X, report=("F",))
    p1 = m.predict_proba(X, report=("M", "old"))
    p2 = m.predict_proba(X, report={"a": "old", "s": "M"})
    np.testing.assert_array_equal(p1, p2)


def test_small_and_single_class_groups_are_warned_not_refused(data):
    X, y, g = data
    g = g.copy()
    y = y.copy()
    small = np.flatnonzero(g == "g2")[:4]
    g[:] = np.where(g == "g2", "g1", g)
    g.iloc[small] = "tiny"
    y[small] = 1
    with pytest.warns(SmallGroupWarning, match=re.escape("group ('tiny',) has a single class (1) in 4 row(s)")):
        m = FairUseClassifier().fit(X, y, groups=g)
    # bounded: the lone-class group's intercept sits on the common interval, finite
    assert np.isfinite(m.intercept_).all()
    k = m.groups_.index(("tiny",))
    assert m.certificate_.table["at_set_boundary"].iloc[k]


def test_single_class_group_is_bounded_with_penalty(data):
    X, y, g = data
    y = y.copy()
    y[g.to_numpy() == "g0"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        for enc in ("intersectional", "decoupled", "onehot"):
            m = FairUseClassifier(encoding=enc, group_reg="penalty", fair_use=None, l2=1e-3).fit(X, y, groups=g)
            assert np.isfinite(m.intercept_).all() and np.abs(m.intercept_).max() < 50


# --------------------------------------------------------------------------- keys that collide, raw errors (issue 10, item 7)
@pytest.mark.parametrize("values", [(True, 1), (1, 1.0), (False, 0.0)], ids=["True-1", "1-1.0", "False-0.0"])
def test_group_values_of_different_types_that_compare_equal_are_refused(data, values):
    X, y, _ = data
    g = pd.Series(np.array(values * (len(y) // 2), dtype=object), name="grp")
    shown = sorted([values[0], values[1]], key=lambda v: type(v).__name__)
    with pytest.raises(InputError, match=msg(E.MSG_GROUP_VALUES_AMBIGUOUS, name="grp",
                                             values=[type(v)(values[0]) for v in shown])):
        FairUseClassifier().fit(X, y, groups=g)
    # one type per attribute: two groups, kept apart
    as_text = g.map(repr)
    est = FairUseClassifier(fair_use=None).fit(X, y, groups=as_text)
    assert len(est.groups_) == 2


def test_group_columns_are_matched_by_name_not_position(data):
    X, y, g = data
    groups = pd.DataFrame({"group_1": g.to_numpy(), "group_0": np.where(np.arange(len(y)) % 2, "u", "v")})
    est = FairUseClassifier(fair_use=None).fit(X, y, groups=groups)
    expected = est.predict_proba(X, groups=groups)
    reordered = groups[["group_0", "group_1"]]
    np.testing.assert_array_equal(est.predict_proba(X, groups=reordered), expected)
    # other names, in any order, are not matched by position
    other = est.fit(X, y, groups=groups.set_axis(["a", "b"], axis=1))
    with pytest.raises(InputError, match=msg(E.MSG_GROUP_NAMES_MISMATCH, got=["group_1", "group_0"],
                                             expected=["a", "b"])):
        other.predict(X, groups=groups)
    # unnamed groups (an array) still match by position
    np.testing.assert_array_equal(other.predict_proba(X, groups=groups.to_numpy()),
                                  other.predict_proba(X, groups=groups.set_axis(["a", "b"], axis=1)))


def test_duplicated_group_column_names(data):
    X, y, g = data
    groups = pd.concat([g, g], axis=1)
    with pytest.raises(InputError, match=msg(E.MSG_DUPLICATE_GROUP_COLUMNS, columns=["grp"])):
        FairUseClassifier().fit(X, y, groups=groups)


def test_report_with_a_list_inside(data):
    X, y, g = data
    est = FairUseClassifier(fair_use=None).fit(X, y, groups=g)
    with pytest.raises(InputError, match=msg(E.MSG_REPORT_VALUE, report=(["a"],), value=["a"], name="grp",
                                             type="list")):
        est.predict(X, report=(["a"],))


def test_groups_as_a_list_of_dicts_are_records(data):
    X, y, g = data
    records = [{"grp": v} for v in g]
    est = FairUseClassifier(fair_use=None).fit(X, y, groups=records)
    ref = FairUseClassifier(fair_use=None).fit(X, y, groups=g)
    np.testing.assert_array_equal(est.coef_, ref.coef_)
    assert est.groups_ == ref.groups_ == [("g0",), ("g1",), ("g2",)]
    np.testing.assert_array_equal(est.predict_proba(X, groups=records), ref.predict_proba(X, groups=g))
    with pytest.raises(InputError, match=msg(E.MSG_GROUP_RECORDS, row=1, keys=["other"])):
        FairUseClassifier().fit(X, y, groups=[{"grp": "a"}, {"other": "b"}] + records[2:])


def test_group_values_that_are_not_scalars(data):
    X, y, g = data
    bad = pd.Series([("t", 1)] * len(y), name="grp")
    with pytest.raises(InputError, match=msg(E.MSG_GROUP_VALUE_UNHASHABLE, name="grp", type="tuple", value=("t", 1))):
        FairUseClassifier().fit(X, y, groups=bad)


def test_duplicated_feature_names_say_so(data):
    X, y, g = data
    X2 = pd.concat([X, X[["a"]]], axis=1)
    with pytest.raises(InputError, match=msg(E.MSG_DUPLICATE_FEATURES, what="X", columns=["a"])):
        FairUseClassifier().fit(X2, y, groups=g)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_codes_match_a_dictionary_of_tuples(seed):
    """``GroupIndex.with_codes`` (per-column hashing, combined) numbers the rows as a
    dictionary of Python tuples does, on columns of ints, strings, floats and booleans,
    as given and after ``check_groups``; the index built from it codes the rows alike."""
    from fairuse_opt._groups import GroupIndex, _distinct_rows, sort_key
    from fairuse_opt._validation import check_groups

    rng = np.random.default_rng(seed)
    n = 500
    raw = pd.DataFrame({"i": rng.integers(0, 7, n), "s": rng.choice(["a", "b", "c"], n),
                        "f": rng.choice([0.5, 1.5, 2.25], n), "b": rng.random(n) < 0.3})
    for frame in (raw, check_groups(raw, n)):
        index, codes = GroupIndex.with_codes(frame)
        tuples = [tuple(v.item() if hasattr(v, "item") else v for v in row)
                  for row in raw.itertuples(index=False, name=None)]
        keys = sorted(set(tuples), key=lambda k: [str(type(v)) + repr(v) for v in k])
        assert sorted(index.keys, key=lambda k: [str(type(v)) + repr(v) for v in k]) == keys
        assert [index.keys[c] for c in codes] == tuples
        np.testing.assert_array_equal(index.codes(frame), codes)
        # the levels of each attribute: its distinct values, sorted
        for j, name in enumerate(raw.columns):
            values = {v.item() if hasattr(v, "item") else v for v in pd.unique(raw[name])}
            assert index.levels[name] == sorted(values, key=sort_key)
        # the first appearance of each distinct row
        which, first = _distinct_rows(frame)
        assert len(first) == len(keys) and np.all(which[first] == np.arange(len(first)))
        assert all(which[i] in set(which[:i]) for i in range(n) if i not in set(first))


def test_stable_order_of_group_codes_is_numpys_stable_argsort():
    """``stable_order`` (a radix sort on 16-bit codes where they fit) gives the
    permutation of ``np.argsort(kind="stable")``, ties in row order, for codes that fit
    in 16 bits and for codes that do not."""
    from fairuse_opt.problem.data import stable_order

    rng = np.random.default_rng(0)
    for top in (1, 8, (1 << 15) - 1, 1 << 15, 1 << 20):
        codes = rng.integers(0, top + 1, 5000)
        np.testing.assert_array_equal(stable_order(codes), np.argsort(codes, kind="stable"))
    assert stable_order(np.zeros(0, dtype=np.int64)).size == 0
