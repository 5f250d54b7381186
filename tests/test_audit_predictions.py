"""Audit of anything a user has: predictions (arrays or DataFrame columns), a fitted
scikit-learn estimator or pipeline (never refitted), and both recipes of
docs/pipelines.md.  Each agrees with the model-based audit to 1e-12."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from fairuse_opt import FairUseClassifier, FairUseRegressor, InputError, UnseenGroupError
from fairuse_opt.audit import FittedGroupModel, audit, audit_predictions
from fairuse_opt.audit._errors import (
    MSG_FITTED_BOTH_ROUTES,
    MSG_FITTED_NO_ROUTE,
    MSG_GROUPS_DISAGREE,
    MSG_NEED_DATA,
    MSG_NEED_GROUPS,
    MSG_NO_COLUMN,
    MSG_NO_SCORES,
    MSG_POS_LABEL,
    MSG_REPORTS_TYPE,
)

from .conftest import make_data

KW = dict(metrics=["error", "auc", "log_loss", "brier"], n_boot=200, random_state=3)


def assert_same_report(a, b, tol=1e-12):
    """Same rows, same text, numbers within ``tol`` (NaN where NaN), same settings."""
    ta, tb = a.table, b.table
    assert list(ta.columns) == list(tb.columns) and len(ta) == len(tb) > 0
    for col in ta.columns:
        x, y = ta[col], tb[col]
        if pd.api.types.is_float_dtype(x):
            x, y = x.to_numpy(), y.to_numpy()
            assert np.array_equal(np.isnan(x), np.isnan(y)), col
            finite = np.isfinite(x)
            assert np.array_equal(x[~finite & ~np.isnan(x)], y[~finite & ~np.isnan(y)]), col
            assert np.max(np.abs(x[finite] - y[finite]), initial=0.0) <= tol, col
        else:
            assert x.tolist() == y.tolist(), col
    pd.testing.assert_frame_equal(a.groups, b.groups)
    keep = {k: v for k, v in a.settings.items() if k != "elapsed_s"}
    assert keep == {k: v for k, v in b.settings.items() if k != "elapsed_s"}


@pytest.fixture(scope="module")
def data():
    X, y, g = make_data(n=900, d=3, n_groups=3, seed=4)
    X = pd.DataFrame(X * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0], columns=["a", "b", "c"])
    groups = pd.DataFrame({"site": np.array(["north", "south", "east"])[g],
                           "sex": np.where(np.arange(len(y)) % 2, "F", "M")})
    train, test = np.arange(600), np.arange(600, 900)
    part = lambda frame, rows: frame.iloc[rows].reset_index(drop=True)  # noqa: E731
    return (part(X, train), y[train], part(groups, train),
            part(X, test), y[test], part(groups, test))


@pytest.fixture(scope="module")
def fitted(data):
    X, y, g, *_ = data
    return FairUseClassifier().fit(X, y, groups=g)


# ------------------------------------------------------------------ predictions
def model_scores(model, X, g):
    own = model.predict_proba(X, groups=g)[:, 1]
    generic = model.generic_.predict_proba(X)[:, 1]
    as_reported = {key: model.predict_proba(X, report=key)[:, 1] for key in model.groups_}
    return own, generic, as_reported


def test_predictions_as_arrays_give_the_model_audit(data, fitted):
    *_, X, y, g = data
    ref = audit(fitted, X, y, groups=g, **KW)
    own, generic, as_reported = model_scores(fitted, X, g)
    got = audit_predictions(y, groups=g, scores=own, generic_scores=generic,
                            scores_as_reported=as_reported, **KW)
    assert_same_report(got, ref)
    assert {"rationality", "envy_pair", "envy"} == set(got.table.condition)
    # predict_proba output (n, 2) is accepted as it is
    got2 = audit_predictions(
        y, groups=g, scores=fitted.predict_proba(X, groups=g),
        generic_scores=fitted.generic_.predict_proba(X),
        scores_as_reported={k: fitted.predict_proba(X, report=k) for k in fitted.groups_}, **KW)
    assert_same_report(got2, ref)
    # reports given as dicts keyed by attribute (in any order)
    as_dicts = [({"sex": k[1], "site": k[0]}, v) for k, v in as_reported.items()]
    got3 = audit_predictions(y, groups=g, scores=own, generic_scores=generic,
                             scores_as_reported=_DictKeys(as_dicts), **KW)
    assert_same_report(got3, ref)


class _DictKeys(dict):
    """A mapping whose keys are dicts (not hashable): items() as given."""

    def __init__(self, items):
        super().__init__()
        self._items = items

    def items(self):
        return list(self._items)


def test_predictions_from_dataframe_columns(data, fitted):
    *_, X, y, g = data
    ref = audit(fitted, X, y, groups=g, **KW)
    own, generic, as_reported = model_scores(fitted, X, g)
    table = pd.concat([g, pd.DataFrame({"outcome": y, "p_own": own, "p_generic": generic})], axis=1)
    columns = {}
    for key, values in as_reported.items():
        name = f"p_as_{key[0]}_{key[1]}"
        table[name] = values
        columns[key] = name
    got = audit_predictions("outcome", groups=["site", "sex"], scores="p_own",
                            generic_scores="p_generic", scores_as_reported=columns, data=table, **KW)
    assert_same_report(got, ref)
    # a DataFrame of scores under each report (its column labels are the reports)
    frame = pd.DataFrame({key: values for key, values in as_reported.items()})
    got = audit_predictions(table["outcome"], groups=table[["site", "sex"]], scores=table["p_own"],
                            generic_scores=table["p_generic"], scores_as_reported=frame, **KW)
    assert_same_report(got, ref)


def test_own_scores_can_come_from_the_reports(data, fitted):
    *_, X, y, g = data
    ref = audit(fitted, X, y, groups=g, **KW)
    _, generic, as_reported = model_scores(fitted, X, g)
    got = audit_predictions(y, groups=g, generic_scores=generic, scores_as_reported=as_reported, **KW)
    assert_same_report(got, ref)


def test_without_reports_there_is_no_envy_and_rationality_is_unchanged(data, fitted):
    *_, X, y, g = data
    ref = audit(fitted, X, y, groups=g, **KW)
    own, generic, _ = model_scores(fitted, X, g)
    got = audit_predictions(y, groups=g, scores=own, generic_scores=generic, **KW)
    assert set(got.table.condition) == {"rationality"}
    assert got.settings["reports"] == []
    # the same resamples (each group's stream does not depend on the columns): the same
    # rationality rows, and the same Holm family (rationality rows only)
    rat = ref.table[ref.table.condition == "rationality"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got.table, rat)
    text = str(got.summary())
    assert "rationality: own report" in text and "envy: own report" not in text
    assert "envy: not audited (no scores under other reports were given" in text


def test_text_labels_and_pos_label(data, fitted):
    *_, X, y, g = data
    own, generic, as_reported = model_scores(fitted, X, g)
    ref = audit_predictions(y, groups=g, scores=own, generic_scores=generic, **KW)
    text = np.where(y == 1, "sick", "well")
    # "well" > "sick": without pos_label the larger label would be positive
    got = audit_predictions(text, groups=g, scores=own, generic_scores=generic, pos_label="sick", **KW)
    assert_same_report(got, ref)
    # without pos_label "well" is positive: the scores are then P(well), and the losses,
    # hence gains and p-values of error, log loss and Brier, are the same
    flipped = audit_predictions(text, groups=g, scores=1 - own, generic_scores=1 - generic, **KW)
    assert (flipped.table.n_pos + ref.table.n_pos == ref.table.n).all()
    same = flipped.table.metric.isin(["log_loss", "brier"])
    np.testing.assert_allclose(flipped.table.gain[same], ref.table.gain[same], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(flipped.table.p_benefit[same], ref.table.p_benefit[same])
    with pytest.raises(InputError) as info:
        audit_predictions(text, groups=g, scores=own, generic_scores=generic, pos_label="ill")
    assert str(info.value) == MSG_POS_LABEL.format(label="ill", values=["sick", "well"])


def test_regression_predictions():
    X, y, g = make_data(n=400, d=2, n_groups=2, task="regression", seed=2)
    model = FairUseRegressor().fit(X[:250], y[:250], groups=g[:250])
    Xt, yt, gt = X[250:], y[250:], pd.DataFrame({"group": g[250:]})
    ref = audit(model, Xt, yt, groups=gt, n_boot=100)
    got = audit_predictions(yt, groups=gt, scores=model.predict(Xt, groups=gt),
                            generic_scores=model.generic_.predict(Xt),
                            scores_as_reported={k: model.predict(Xt, report=k) for k in model.groups_},
                            n_boot=100)
    assert got.settings["task"] == "regression"
    assert_same_report(got, ref)


def test_prediction_errors(data, fitted):
    *_, X, y, g = data
    own, generic, as_reported = model_scores(fitted, X, g)
    n = len(y)
    partial = dict(list(as_reported.items())[:-1])
    with pytest.raises(UnseenGroupError, match="scores_as_reported has no scores"):
        audit_predictions(y, groups=g, scores=own, generic_scores=generic, scores_as_reported=partial)
    wrong = dict(as_reported)
    key = next(iter(wrong))
    wrong[key] = np.clip(wrong[key] + 0.01, 0, 1)
    with pytest.raises(InputError, match="own-report scores must be the same"):
        audit_predictions(y, groups=g, scores=own, generic_scores=generic, scores_as_reported=wrong)
    with pytest.raises(InputError) as info:
        audit_predictions(y, groups=g, generic_scores=generic)
    assert str(info.value) == MSG_NO_SCORES
    with pytest.raises(InputError) as info:
        audit_predictions("y", groups=g, scores=own, generic_scores=generic)
    assert str(info.value) == MSG_NEED_DATA.format(what="y", name="y")
    table = pd.DataFrame({"y": y, "p": own})
    with pytest.raises(InputError) as info:
        audit_predictions("y", groups=g, scores="p", generic_scores="q", data=table)
    assert str(info.value) == MSG_NO_COLUMN.format(what="generic_scores", name="q", columns=["y", "p"])
    with pytest.raises(InputError, match=r"shape \(299,\)"):
        audit_predictions(y, groups=g, scores=own[:-1], generic_scores=generic)
    with pytest.raises(InputError, match="outside"):
        audit_predictions(y, groups=g, scores=own * 2, generic_scores=generic)
    bad = own.copy()
    bad[3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        audit_predictions(y, groups=g, scores=bad, generic_scores=generic)
    with pytest.raises(InputError, match="one value for each group attribute"):
        audit_predictions(y, groups=g, scores=own, generic_scores=generic,
                          scores_as_reported={"north": own})
    with pytest.raises(InputError) as info:
        audit_predictions(y, groups=g, scores=own, generic_scores=generic,
                          scores_as_reported=list(as_reported.values()))
    assert str(info.value) == MSG_REPORTS_TYPE.format(type="list")
    assert n == 300


# ------------------------------------------------------------------ fitted estimators, no refit
@pytest.fixture
def count_fits(monkeypatch):
    """Count every call to fit, fit_transform and partial_fit of the estimators used here."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from fairuse_opt.estimators import _BaseFairUse

    calls = []
    for cls in (Pipeline, ColumnTransformer, StandardScaler, OneHotEncoder, LogisticRegression,
                LinearRegression, _BaseFairUse, FairUseClassifier, FairUseRegressor):
        for name in ("fit", "fit_transform", "partial_fit"):
            if name in vars(cls):
                original = vars(cls)[name]

                def counted(self, *args, __original=original, __name=f"{cls.__name__}.{name}", **kw):
                    calls.append(__name)
                    return __original(self, *args, **kw)

                monkeypatch.setattr(cls, name, counted)
    return calls


def routed(est):
    return est.set_fit_request(groups=True).set_predict_proba_request(groups=True)


def test_recipe_1_routing_pipeline_is_audited_without_refitting(data, count_fits):
    """docs/pipelines.md recipe 1: groups kept out of X, routed by metadata."""
    X, y, g, Xt, yt, gt = data
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), routed(FairUseClassifier()))
        pipe.fit(X, y, groups=g)
        fits = len(count_fits)
        assert fits >= 2  # the counter sees fits
        got = audit(pipe, Xt, yt, groups=gt, **KW)
        assert len(count_fits) == fits  # the audit fitted nothing
    # the model-based audit: the same model fitted by hand on the scaled features
    scaler = StandardScaler().fit(X)
    est = FairUseClassifier().fit(scaler.transform(X), y, groups=g)
    np.testing.assert_array_equal(pipe[-1].coef_, est.coef_)
    ref = audit(est, scaler.transform(Xt), yt, groups=gt, **KW)
    assert_same_report(got, ref)
    assert {"rationality", "envy_pair", "envy"} == set(got.table.condition)


def test_recipe_2_group_columns_pipeline_is_audited_without_refitting(data, count_fits):
    """docs/pipelines.md recipe 2: group columns in X, passed through a ColumnTransformer."""
    X, y, g, Xt, yt, gt = data
    group_cols = ["site", "sex"]
    pre = make_column_transformer((StandardScaler(), list(X.columns)), ("passthrough", group_cols),
                                  verbose_feature_names_out=False).set_output(transform="pandas")
    pipe = make_pipeline(pre, FairUseClassifier(group_cols=group_cols))
    frame, frame_t = pd.concat([X, g], axis=1), pd.concat([Xt, gt], axis=1)
    pipe.fit(frame, y)
    fits = len(count_fits)
    assert fits >= 2
    got = audit(pipe, frame_t, yt, **KW)  # no groups=: they are columns of X
    same = audit(pipe, frame_t, yt, groups=gt, **KW)  # given as well, they agree
    assert len(count_fits) == fits
    assert_same_report(same, got)
    scaler = StandardScaler().fit(X)
    est = FairUseClassifier().fit(scaler.transform(X), y, groups=g)
    np.testing.assert_allclose(pipe[-1].coef_, est.coef_, rtol=0, atol=1e-12)
    ref = audit(est, scaler.transform(Xt), yt, groups=gt, **KW)
    assert_same_report(got, ref)
    # groups= that contradict the columns of X are an error, not a silent choice
    with pytest.raises(InputError) as info:
        audit(pipe, frame_t, yt, groups=gt.iloc[::-1].reset_index(drop=True), **KW)
    assert str(info.value).startswith(MSG_GROUPS_DISAGREE.split("{")[0])


def test_any_fitted_sklearn_pipeline_with_encoded_group_columns(data, count_fits):
    """A plain scikit-learn pipeline (one-hot group columns + logistic regression) and its
    generic counterpart, audited as fitted; the reference scores every report by hand."""
    X, y, g, Xt, yt, gt = data
    group_cols = ["site", "sex"]
    frame, frame_t = pd.concat([X, g], axis=1), pd.concat([Xt, gt], axis=1)
    pipe = make_pipeline(
        make_column_transformer((OneHotEncoder(), group_cols), remainder=StandardScaler()),
        LogisticRegression(max_iter=1000)).fit(frame, y)
    # as in docs/pipelines.md: the generic model drops the group columns itself
    generic = make_pipeline(make_column_transformer(("drop", group_cols), remainder=StandardScaler()),
                            LogisticRegression(max_iter=1000)).fit(frame, y)
    fits = len(count_fits)
    assert fits >= 4
    model = FittedGroupModel(pipe, group_cols=group_cols, generic=generic)
    got = audit(model, frame_t, yt, **KW)
    assert len(count_fits) == fits
    keys = sorted(set(map(tuple, gt.to_numpy().tolist())))
    as_reported = {}
    for key in keys:
        by_hand = frame_t.copy()
        by_hand["site"], by_hand["sex"] = key
        as_reported[key] = pipe.predict_proba(by_hand)[:, 1]
    ref = audit_predictions(yt, groups=gt, scores=pipe.predict_proba(frame_t)[:, 1],
                            generic_scores=generic.predict_proba(frame_t)[:, 1],
                            scores_as_reported=as_reported, **KW)
    assert_same_report(got, ref)
    # the personalization is real: reports change the scores
    assert not np.array_equal(as_reported[keys[0]], as_reported[keys[1]])
    # reportable groups can be given; a report the data lacks is listed without rows
    # the generic pipeline never saw the groups: its scores do not move with them
    np.testing.assert_array_equal(generic.predict_proba(frame_t),
                                  generic.predict_proba(frame_t.assign(site="east", sex="F")))
    # reportable groups can be given (tuples or dicts)
    model = FittedGroupModel(pipe, group_cols=group_cols, generic=generic,
                             reports=keys[:-1] + [{"sex": "F", "site": "east"}])
    assert model.groups_[-1] == ("east", "F")


def test_categorical_group_columns_keep_their_dtype(data):
    X, y, g, Xt, yt, gt = data
    cat = g.astype("category")
    frame = pd.concat([X, cat], axis=1)
    seen = []

    class Spy:
        classes_ = np.array([0, 1])

        def predict_proba(self, Z):
            seen.append(Z[["site", "sex"]].dtypes.tolist())
            p = 1 / (1 + np.exp(-(Z["a"].to_numpy() + (Z["site"] == "east").to_numpy())))
            return np.column_stack([1 - p, p])

    model = FittedGroupModel(Spy(), group_cols=["site", "sex"], generic=Spy())
    out = model.predict_proba(frame, report=("east", "M"))
    assert all(isinstance(d, pd.CategoricalDtype) for d in seen[-1])
    np.testing.assert_allclose(out[:, 1], 1 / (1 + np.exp(-(frame["a"].to_numpy() + 1))))


def test_fitted_model_errors(data):
    X, y, g, Xt, yt, gt = data
    plain = LogisticRegression().fit(X, y)
    with pytest.raises(InputError) as info:
        audit(plain, Xt, yt, groups=gt, generic=plain)
    assert str(info.value) == MSG_FITTED_NO_ROUTE.format(estimator="LogisticRegression")
    with pytest.raises(InputError) as info:
        FittedGroupModel(plain, group_cols=["site"], groups_param="groups")
    assert str(info.value) == MSG_FITTED_BOTH_ROUTES
    est = FairUseClassifier().fit(X, y, groups=g)
    with pytest.raises(InputError) as info:
        audit(est, Xt, yt)
    assert str(info.value) == MSG_NEED_GROUPS
    # a routing pipeline whose final step did not request the groups for predict_proba
    with sklearn.config_context(enable_metadata_routing=True):
        # (the estimators request predict_proba's groups under the alias sensitive_features by
        # default; here the request is unset on purpose)
        pipe = make_pipeline(StandardScaler(), FairUseClassifier().set_fit_request(groups=True)
                             .set_predict_proba_request(groups=None))
        pipe.fit(X, y, groups=g)
        with pytest.raises(InputError, match=r"set_predict_proba_request\(groups=True\)"):
            audit(pipe, Xt, yt, groups=gt, **KW)


def test_regression_pipeline_with_group_columns(count_fits):
    X, y, g = make_data(n=400, d=2, n_groups=3, task="regression", seed=5)
    frame = pd.DataFrame(X, columns=["u", "v"]).assign(site=np.array(["a", "b", "c"])[g])
    pre = make_column_transformer((StandardScaler(), ["u", "v"]), ("passthrough", ["site"]),
                                  verbose_feature_names_out=False).set_output(transform="pandas")
    pipe = make_pipeline(pre, FairUseRegressor(group_cols=["site"])).fit(frame[:250], y[:250])
    fits = len(count_fits)
    assert fits >= 2
    test = frame[250:].reset_index(drop=True)
    got = audit(pipe, test, y[250:], n_boot=100)
    assert len(count_fits) == fits and got.settings["task"] == "regression"
    scaler = StandardScaler().fit(frame[["u", "v"]][:250])
    est = FairUseRegressor().fit(scaler.transform(frame[["u", "v"]][:250]), y[:250],
                                 groups=frame[["site"]][:250])
    ref = audit(est, scaler.transform(test[["u", "v"]]), y[250:], groups=test[["site"]], n_boot=100)
    assert_same_report(got, ref)
