"""The portable model file: exact round trip, and a clear InputError for every bad file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairuse_opt import FairUseClassifier, FairUseRegressor, InputError, __version__
from fairuse_opt import model_io
from fairuse_opt.model_io import FORMAT, TabularEncoding, dumps, loads, read


def msg(template: str, **kw) -> str:
    return re.escape(template.format(**kw))


def make(n=160, d=3, task="classification", seed=0, labels=(0, 1), group_values=None):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, d)), columns=[f"f{j}" for j in range(d)])
    a = rng.integers(0, 2, n)
    b = rng.integers(0, 2, n)
    s = X.to_numpy() @ rng.normal(size=d) + 0.8 * a - 0.5 * b
    if task == "classification":
        y01 = (s + rng.logistic(size=n) > 0).astype(int)
        y = np.asarray(labels, dtype=object if isinstance(labels[0], str) else None)[y01]
    else:
        y = s + rng.normal(size=n)
    va, vb = group_values or (("F", "M"), ("old", "young"))
    groups = pd.DataFrame({"sex": np.asarray(va, dtype=object)[a], "age": np.asarray(vb, dtype=object)[b]})
    return X, y, groups


def assert_same_model(a, b, X, groups):
    """Predictions and fitted attributes of ``a`` and ``b`` are identical."""
    for attr in ("coef_", "intercept_"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
        np.testing.assert_array_equal(getattr(a.generic_, attr), getattr(b.generic_, attr))
    assert a.groups_ == b.groups_ and a.group_names_ == b.group_names_
    assert a.feature_names_ == b.feature_names_ and a.n_features_in_ == b.n_features_in_
    if hasattr(a, "feature_names_in_"):
        np.testing.assert_array_equal(a.feature_names_in_, b.feature_names_in_)
    if a.group_index_ is not None:
        assert (a.group_index_.names, a.group_index_.keys, a.group_index_.levels) == \
               (b.group_index_.names, b.group_index_.keys, b.group_index_.levels)
    assert a.certificate_.to_dict() == b.certificate_.to_dict()
    assert a.generic_.certificate_.to_dict() == b.generic_.certificate_.to_dict()
    assert a.n_iter_ == b.n_iter_
    if hasattr(a, "classes_"):
        np.testing.assert_array_equal(a.classes_, b.classes_)
        assert a.classes_.dtype == b.classes_.dtype
    kw = {} if a.group_index_ is None else {"groups": groups}
    np.testing.assert_array_equal(a.decision_function(X, **kw), b.decision_function(X, **kw))
    np.testing.assert_array_equal(a.predict(X, **kw), b.predict(X, **kw))
    np.testing.assert_array_equal(a.generic_.predict(X), b.generic_.predict(X))
    if hasattr(a, "predict_proba"):
        np.testing.assert_array_equal(a.predict_proba(X, **kw), b.predict_proba(X, **kw))
    for key in a.groups_:
        np.testing.assert_array_equal(a.predict(X, report=key), b.predict(X, report=key))
        np.testing.assert_array_equal(a.decision_function(X, report=dict(zip(a.group_names_, key))),
                                      b.decision_function(X, report=dict(zip(a.group_names_, key))))


@pytest.mark.parametrize("params", [
    {},  # the default fair-use model (intersectional, both guarantees)
    {"encoding": "onehot", "fair_use": None},
    {"encoding": "decoupled", "fair_use": "rationality", "margin": 0.001},
    {"encoding": "intersectional", "group_reg": "penalty", "fair_use": None, "l2": 0.01},
    {"encoding": "none"},
])
def test_classifier_round_trip_is_exact(params):
    X, y, g = make()
    est = FairUseClassifier(**params).fit(X, y, groups=g)
    text = dumps(est)
    back = loads(text)
    assert type(back) is FairUseClassifier
    assert back.get_params() == est.get_params()
    assert_same_model(est, back, X, g)
    # writing the loaded model gives the same file
    assert dumps(back) == text


def test_regressor_round_trip_is_exact():
    X, y, g = make(task="regression")
    est = FairUseRegressor(encoding="onehot", fair_use=None).fit(X, y, groups=g)
    back = loads(dumps(est))
    assert type(back) is FairUseRegressor
    assert_same_model(est, back, X, g)
    assert back.score(X, y, groups=g) == est.score(X, y, groups=g)


def test_string_classes_numeric_groups_and_array_input():
    X, y, g = make(labels=("no", "yes"), group_values=((1, 2), (0.5, 1.5)))
    est = FairUseClassifier(fair_use=None).fit(X.to_numpy(), y, groups=g)
    back = loads(dumps(est))
    assert list(back.classes_) == ["no", "yes"] and back.classes_.dtype == est.classes_.dtype
    assert back.groups_ == est.groups_ and isinstance(back.groups_[0][0], int)
    assert isinstance(back.groups_[0][1], float)
    assert not hasattr(back, "feature_names_in_")
    assert_same_model(est, back, X.to_numpy(), g)


def test_to_json_from_json_methods_and_file(tmp_path):
    X, y, g = make()
    est = FairUseClassifier(fair_use=None).fit(X, y, groups=g)
    path = tmp_path / "model.json"
    text = est.to_json(path)
    assert path.read_text(encoding="utf-8") == text
    for source in (path, str(path), text, text.encode("utf-8")):
        assert_same_model(est, FairUseClassifier.from_json(source), X, g)
    with pytest.raises(InputError, match="not a FairUseRegressor"):
        FairUseRegressor.from_json(path)


def test_file_contents_are_portable():
    X, y, g = make()
    est = FairUseClassifier().fit(X, y, groups=g)
    doc = json.loads(dumps(est))
    assert doc["format"] == FORMAT == "fairuse_opt.model/1"
    assert doc["library"] == {"name": "fairuse_opt", "version": __version__}
    assert doc["task"] == "classification" and doc["classes"]["values"] == [0, 1]
    assert doc["groups"]["attributes"] == ["sex", "age"]
    assert [tuple(m["group"]) for m in doc["models"]] == est.groups_
    for k, m in enumerate(doc["models"]):
        assert m["intercept"] == est.intercept_[k] and m["coef"] == list(est.coef_[k])
    assert doc["generic"]["coef"] == list(est.generic_.coef_[0])
    assert doc["certificate"] == est.certificate_.to_dict()
    assert doc["settings"]["params"]["encoding"] == "intersectional"
    # a row scored by hand from the file equals the library's score
    x = X.iloc[0].to_numpy()
    key = tuple(g.iloc[0])
    m = next(m for m in doc["models"] if tuple(m["group"]) == key)
    s = m["intercept"] + float(np.dot(m["coef"], x))
    assert s == pytest.approx(est.decision_function(X.iloc[:1], groups=g.iloc[:1])[0], abs=1e-12)


def test_generic_object_is_recorded_not_written():
    X, y, g = make()
    generic = FairUseClassifier(encoding="none").fit(X, y)
    est = FairUseClassifier(generic=generic).fit(X, y, groups=g)
    doc = json.loads(dumps(est))
    assert doc["settings"]["not_serialised"] == {"generic": "FairUseClassifier"}
    back = loads(json.dumps(doc))
    assert back.generic is None
    assert_same_model(est, back, X, g)


def test_non_serialisable_settings_are_recorded_and_dropped():
    X, y, g = make()
    hook = lambda v: []  # noqa: E731 - a harmless hook
    margin = {("F", "old"): 0.0, ("M", "young"): 0.001}
    est = FairUseClassifier(constraint_hook=hook, margin=margin, solver_options={"CLARABEL": {}}).fit(
        X, y, groups=g)
    doc = json.loads(dumps(est))
    assert "constraint_hook" in doc["settings"]["not_serialised"]
    assert "function" in doc["settings"]["not_serialised"]["constraint_hook"]
    back = loads(json.dumps(doc))
    assert back.constraint_hook is None and back.generic is None
    assert back.margin == margin  # tuple-keyed mapping survives (tagged __items__)
    assert back.solver_options == {"CLARABEL": {}}
    assert_same_model(est, back, X, g)


def test_tuple_parameter_round_trip():
    X, y, g = make()
    est = FairUseClassifier(fair_use=("rationality",)).fit(X, y, groups=g)
    back = loads(dumps(est))
    assert back.fair_use == ("rationality",)


def test_dumps_rejects_unfitted_and_foreign_objects():
    with pytest.raises(InputError, match=msg(model_io.MSG_NOT_FITTED)):
        dumps(FairUseClassifier())
    with pytest.raises(InputError, match=msg(model_io.MSG_NOT_ESTIMATOR, type="dict")):
        dumps({})


def test_dumps_rejects_non_finite_coefficients():
    X, y, g = make()
    est = FairUseClassifier(fair_use=None).fit(X, y, groups=g)
    est.coef_ = est.coef_.copy()
    est.coef_[1, 0] = np.nan
    with pytest.raises(InputError, match=msg(model_io.MSG_NON_FINITE, what="coef_[1]", value=float("nan"))):
        dumps(est)


def test_read_returns_encoding_and_metadata():
    X, y, g = make()
    X["site"] = np.where(np.arange(len(X)) % 2, "a", "b")
    enc = TabularEncoding.fit(X, categorical=[])
    Xe = enc.transform(X)
    est = FairUseClassifier(fair_use=None).fit(Xe, y, groups=g)
    mf = read(dumps(est, encoding=enc, target="y", group_columns=["sex", "age"], metadata={"k": 1}))
    assert mf.target == "y" and mf.group_columns == ["sex", "age"] and mf.metadata == {"k": 1}
    assert mf.encoding.feature_names == list(Xe.columns) == ["f0", "f1", "f2", "site=b"]
    pd.testing.assert_frame_equal(mf.encoding.transform(X), Xe)


# --------------------------------------------------------------------------- encoding
def test_tabular_encoding():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["b", "a", "c", "a"], "k": [3, 1, 2, 3]})
    enc = TabularEncoding.fit(frame, categorical=["k"])
    assert enc.categorical == ["c", "k"]
    assert enc.feature_names == ["x", "c=b", "c=c", "k=2", "k=3"]
    out = enc.transform(frame)
    np.testing.assert_array_equal(out["c=b"], [1, 0, 0, 0])
    np.testing.assert_array_equal(out["k=3"], [1, 0, 0, 1])
    assert TabularEncoding.from_dict(json.loads(json.dumps(enc.to_dict()))).feature_names == enc.feature_names
    with pytest.raises(InputError, match=msg(model_io.MSG_UNKNOWN_LEVEL, column="c", values=["z"],
                                             levels=["a", "b", "c"])):
        enc.transform(frame.assign(c=["a", "z", "b", "a"]))
    with pytest.raises(InputError, match=msg(model_io.MSG_NOT_NUMBER, column="x", values=["oops"])):
        enc.transform(frame.assign(x=["1", "oops", "2", "3"]))
    with pytest.raises(InputError, match=msg(model_io.MSG_MISSING_INPUT_COLUMNS, missing=["k"])):
        enc.transform(frame.drop(columns="k"))


# --------------------------------------------------------------------------- bad files
@pytest.fixture(scope="module")
def good_doc():
    X, y, g = make()
    return json.loads(dumps(FairUseClassifier().fit(X, y, groups=g)))


def _bad(doc_or_text, pattern):
    text = doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text)
    with pytest.raises(InputError, match=pattern):
        loads(text)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(InputError, match=msg(model_io.MSG_FILE_MISSING, path=str(path))):
        loads(path)


def test_not_json(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(f"model file {path} is not valid JSON")):
        loads(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match=re.escape(f"cannot read model file {path}")):
        loads(path)


def test_not_an_object_and_no_format():
    _bad('{"a": 1}', msg(model_io.MSG_NO_FORMAT, source="<text>"))
    with pytest.raises(InputError, match=msg(model_io.MSG_NOT_OBJECT, source="<bytes>")):
        loads(b"[1, 2]")


def test_wrong_format_name_and_newer_version(good_doc):
    _bad({**good_doc, "format": "sklearn.pickle/1"},
         msg(model_io.MSG_BAD_FORMAT, source="<text>", got="sklearn.pickle/1", expected=FORMAT))
    _bad({**good_doc, "format": "fairuse_opt.model/3"},  # version 2 (systems) is read since it was added
         msg(model_io.MSG_NEWER_FORMAT, source="<text>", got=3, expected=2))
    _bad({**good_doc, "format": "fairuse_opt.model/x"},
         msg(model_io.MSG_BAD_FORMAT, source="<text>", got="fairuse_opt.model/x", expected=FORMAT))


def test_missing_required_keys(good_doc):
    doc = {k: v for k, v in good_doc.items() if k not in ("models", "certificate")}
    _bad(doc, msg(model_io.MSG_MISSING_KEYS, source="<text>", keys=["models", "certificate"]))


def test_estimator_name_is_looked_up_never_imported(good_doc):
    _bad({**good_doc, "estimator": "os.system"}, re.escape("estimator must be one of"))


def test_garbled_fields(good_doc):
    models = [dict(m) for m in good_doc["models"]]
    models[0]["coef"] = models[0]["coef"][:-1]
    _bad({**good_doc, "models": models}, re.escape("models[0].coef must be a list of 3 number(s)"))
    models = [dict(m) for m in good_doc["models"]]
    models[1]["intercept"] = "1.0"
    _bad({**good_doc, "models": models}, re.escape("models[1].intercept must be a finite number"))
    models = [dict(m) for m in good_doc["models"]]
    models[0]["group"] = ["X", "old"]
    _bad({**good_doc, "models": models}, re.escape("has sex='X', not among groups.levels"))
    _bad({**good_doc, "models": good_doc["models"][:2]},
         re.escape("certificate.table does not list the same groups as models"))
    _bad({**good_doc, "task": "regression"}, re.escape("task must be 'classification'"))
    _bad({**good_doc, "classes": {"values": [0], "dtype": "<i8"}}, re.escape("classes must be"))
    _bad({**good_doc, "certificate": {"table": "x"}}, re.escape("certificate must be an object"))
    _bad({**good_doc, "settings": []}, re.escape("settings must be an object with 'params'"))


def test_nan_literal_is_rejected(good_doc):
    text = json.dumps(good_doc).replace(str(good_doc["models"][0]["intercept"]), "NaN", 1)
    _bad(text, re.escape("is not valid JSON: NaN is not a valid number"))


def test_unknown_setting_warns_and_is_ignored(good_doc):
    doc = json.loads(json.dumps(good_doc))
    doc["settings"]["params"]["future_option"] = 1
    with pytest.warns(UserWarning, match=re.escape("['future_option']")):
        est = loads(json.dumps(doc))
    assert not hasattr(est, "future_option")


def test_loading_never_unpickles():
    source = open(model_io.__file__, encoding="utf-8").read()
    for word in ("import pickle", "eval(", "exec(", "importlib", "__import__"):
        assert word not in source


# --------------------------------------------------------------------------- issue 10, item 7: loader and writer
from fairuse_opt import exceptions as E  # noqa: E402


def test_integer_intercept_too_large_for_a_float(good_doc):
    text = json.dumps(good_doc).replace(json.dumps(good_doc["models"][0]["intercept"]), "1" + "0" * 400, 1)
    _bad(text, re.escape("models[0].intercept must be a finite number; got an integer too large for a float"))


def test_metadata_nested_too_deeply(good_doc):
    depth = 100_000
    text = json.dumps(good_doc)[:-1] + ', "metadata": ' + "[" * depth + "]" * depth + "}"
    _bad(text, msg(model_io.MSG_TOO_DEEP, source="<text>"))
    X, y, g = make()
    est = FairUseClassifier(fair_use=None).fit(X, y, groups=g)
    deep: list = []
    for _ in range(depth):
        deep = [deep]
    with pytest.raises(InputError, match=msg(model_io.MSG_METADATA_TOO_DEEP)):
        dumps(est, metadata={"deep": deep})


@pytest.mark.parametrize("classes", [
    {"values": [0, 300], "dtype": "|i1"},
    {"values": [-1, 1], "dtype": "|u1"},
    {"values": [0.5, 1], "dtype": "<i8"},
    {"values": ["no", "yes"], "dtype": "<i8"},
    {"values": [0, 1], "dtype": "|b1"},
    {"values": [2 ** 70, 1], "dtype": "<i8"},
], ids=["int8-range", "uint8-negative", "float-in-int", "text-in-int", "int-in-bool", "int64-range"])
def test_classes_outside_their_dtype(good_doc, classes):
    _bad({**good_doc, "classes": classes}, re.escape("classes.values"))


@pytest.mark.parametrize("field, value, expected", [
    ("verified", "yes", "certificate.verified must be true or false; got 'yes'"),
    ("iterations", "3", "certificate.iterations must be a non-negative integer; got '3'"),
    ("iterations", -1, "certificate.iterations must be a non-negative integer; got -1"),
    ("objective", "0.4", "certificate.objective must be a finite number or null; got '0.4'"),
    ("route", 7, "certificate.route must be a string; got 7"),
    ("fair_use", "rationality", "certificate.fair_use must be a list; got 'rationality'"),
    ("failures", [1], "certificate.failures must be a list of strings"),
    ("made_up", 1, "certificate.made_up is not a certificate field"),
])
def test_certificate_fields_are_type_checked(good_doc, field, value, expected):
    doc = json.loads(json.dumps(good_doc))
    doc["certificate"][field] = value
    _bad(doc, re.escape(expected))


def test_certificate_rows_are_type_checked(good_doc):
    doc = json.loads(json.dumps(good_doc))
    doc["certificate"]["table"][0]["n"] = "42"
    _bad(doc, re.escape("certificate.table[0].n must be a non-negative integer; got '42'"))
    doc = json.loads(json.dumps(good_doc))
    doc["certificate"]["table"][1]["own_loss"] = "low"
    _bad(doc, re.escape("certificate.table[1].own_loss must be a finite number or null; got 'low'"))
    doc = json.loads(json.dumps(good_doc))
    doc["generic"]["certificate"]["verified"] = 1
    _bad(doc, re.escape("generic.certificate.verified must be true or false; got 1"))


@pytest.mark.parametrize("make_generic", ["logistic", "forest"])
def test_model_fitted_with_an_external_generic_is_written(make_generic, tmp_path):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from fairuse_opt.audit import audit

    X, y, g = make()
    generic = (LogisticRegression() if make_generic == "logistic"
               else RandomForestClassifier(n_estimators=10, max_depth=2, random_state=0)).fit(X, y)
    est = FairUseClassifier(generic=generic).fit(X, y, groups=g)
    path = tmp_path / "m.json"
    text = est.to_json(path)
    doc = json.loads(text)
    name = type(generic).__name__
    assert doc["generic"] == {"external": name, "intercept": None, "coef": None, "n_iter": 0, "certificate": None}
    assert doc["settings"]["not_serialised"] == {"generic": name}
    back = FairUseClassifier.from_json(path)
    assert back.generic_ is None and back.generic_external_ == name
    np.testing.assert_array_equal(back.predict_proba(X, groups=g), est.predict_proba(X, groups=g))
    assert back.certificate_.to_dict() == est.certificate_.to_dict()
    assert dumps(back) == text
    with pytest.raises(InputError, match="generic"):
        audit(back, X, y, groups=g, n_boot=10)
    report = audit(back, X, y, groups=g, generic=generic, n_boot=10, metrics=["log_loss"])
    expected = audit(est, X, y, groups=g, n_boot=10, metrics=["log_loss"])
    pd.testing.assert_frame_equal(report.table, expected.table)


def test_to_json_write_is_atomic(tmp_path, monkeypatch):
    from fairuse_opt import _files

    X, y, g = make()
    est = FairUseClassifier(fair_use=None).fit(X, y, groups=g)
    path = tmp_path / "m.json"
    good = est.to_json(path)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        FairUseClassifier(encoding="none").fit(X, y).to_json(path)
    assert path.read_text(encoding="utf-8") == good and list(tmp_path.iterdir()) == [path]
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # an ordinary file, not mkstemp's private mode


# --------------------------------------------------------------------------- issue 10, item 5: the schema
def _fits():
    """Fitted models of every kind a model file holds (encodings, regressor, margins,
    generic=, fallback certificates, string classes, numeric groups, the CLI's encoding)."""
    from sklearn.linear_model import LogisticRegression

    X, y, g = make()
    Xr, yr, gr = make(task="regression", seed=1)
    out = {f"clf-{enc}": (FairUseClassifier(encoding=enc).fit(X, y, groups=g), {})
           for enc in ("none", "onehot", "intersectional", "decoupled")}
    out["clf-penalty"] = (FairUseClassifier(group_reg="penalty").fit(X, y, groups=g), {})
    out["clf-margin-se"] = (FairUseClassifier(margin="se:0.1").fit(X, y, groups=g), {})
    out["clf-margin-map"] = (FairUseClassifier(margin={("F", "old"): 0.001}, fair_use=("rationality",)).fit(
        X, y, groups=g), {})
    out["clf-generic-fu"] = (FairUseClassifier(generic=FairUseClassifier(encoding="none").fit(X, y)).fit(
        X, y, groups=g), {})
    out["clf-generic-lr"] = (FairUseClassifier(generic=LogisticRegression().fit(X, y)).fit(X, y, groups=g), {})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["clf-fallback"] = (FairUseClassifier(margin=0.01, on_infeasible="generic").fit(X, y, groups=g), {})
    Xs, ys, gs = make(labels=("no", "yes"), group_values=((1, 2), (0.5, 1.5)))
    out["clf-text-classes"] = (FairUseClassifier(fair_use=None).fit(Xs.to_numpy(), ys, groups=gs), {})
    for enc in ("none", "onehot", "intersectional", "decoupled"):
        out[f"reg-{enc}"] = (FairUseRegressor(encoding=enc).fit(Xr, yr, groups=gr), {})
    frame = X.assign(site=np.where(np.arange(len(X)) % 3, "a", "b"), k=np.arange(len(X)) % 3 + 1.0)
    enc = TabularEncoding.fit(frame, categorical=["k"])
    out["clf-cli-input"] = (FairUseClassifier(fair_use=None).fit(enc.transform(frame), y, groups=g),
                            {"encoding": enc, "target": "y", "group_columns": ["sex", "age"],
                             "metadata": {"data": "d.csv", "n_rows": len(X)}})
    return out


@pytest.fixture(scope="module")
def fits():
    return _fits()


def test_every_kind_of_model_file_matches_the_schema(fits, model_file_schema):
    import jsonschema

    validator = jsonschema.Draft202012Validator(model_io.schema())
    jsonschema.Draft202012Validator.check_schema(model_io.schema())
    assert fits["clf-fallback"][0].certificate_.table["generic_fallback"].any()
    assert fits["clf-cli-input"][1]["encoding"].columns[-1]["levels"] == [1, 2, 3]
    before = model_file_schema.n_checked
    for name, (est, kw) in fits.items():
        doc = json.loads(dumps(est, **kw))
        errors = list(validator.iter_errors(doc))
        assert not errors, (name, errors[0].message)
        assert loads(json.dumps(doc)).get_params(deep=False).keys() == est.get_params(deep=False).keys()
    assert model_file_schema.n_checked == before + len(fits)  # the session-wide hook saw each one


def test_the_schema_rejects_what_the_loader_rejects(good_doc):
    import jsonschema

    validator = jsonschema.Draft202012Validator(model_io.schema())
    assert not list(validator.iter_errors(good_doc))
    for path, value in [(("certificate", "verified"), "yes"), (("models", 0, "intercept"), "1.0"),
                        (("format",), "fairuse_opt.model/2"), (("task",), "ranking"),
                        (("certificate", "table", 0, "n"), 4.5), (("settings", "params", "fair_use"), "always")]:
        doc = json.loads(json.dumps(good_doc))
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        assert list(validator.iter_errors(doc)), path
        with pytest.raises(InputError):
            loads(json.dumps(doc))


def test_the_schema_allows_the_optimality_bound_fields(good_doc):
    import jsonschema

    doc = json.loads(json.dumps(good_doc))
    doc["certificate"].update(objective_lower_bound=0.4, optimality_gap=0.0, gain_out_of_reach=None)
    jsonschema.validate(doc, model_io.schema())
    doc["certificate"]["optimality_gap"] = "small"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, model_io.schema())


# --------------------------------------------------------------------------- the tabular encoding
def test_tabular_encoding_lives_in_its_own_module():
    import fairuse_opt.tabular

    assert model_io.TabularEncoding is fairuse_opt.tabular.TabularEncoding


def test_categorical_levels_are_matched_by_value():
    train = pd.DataFrame({"k": [1.0, 2.0, 3.0, 2.0], "c": ["b", "a", "c", "a"]})
    enc = TabularEncoding.fit(train, categorical=["k"])
    assert enc.columns[0]["levels"] == [1, 2, 3] and enc.feature_names == ["k=2", "k=3", "c=b", "c=c"]
    expected = enc.transform(train)
    for cells in (["1", "2", "3", "2"], ["1.0", "2.0", "3.0", "2.0"], [1, 2, 3, 2], ["1", "2.0", "3", "2"]):
        pd.testing.assert_frame_equal(enc.transform(train.assign(k=cells)), expected)
    back = TabularEncoding.from_dict(json.loads(json.dumps(enc.to_dict())))
    pd.testing.assert_frame_equal(back.transform(train.assign(k=["1", "2", "3", "2"])), expected)
    with pytest.raises(InputError, match=msg(E.MSG_UNKNOWN_LEVEL, column="k", values=["4"], levels=[1, 2, 3])):
        enc.transform(train.assign(k=["1", "4", "3", "2"]))
    # text levels stay text: "b" is not "B"
    with pytest.raises(InputError, match=msg(E.MSG_UNKNOWN_LEVEL, column="c", values=["B"], levels=["a", "b", "c"])):
        enc.transform(train.assign(c=["B", "a", "c", "a"]))
    # numbers read as text sort by value: 10 after 9
    enc2 = TabularEncoding.fit(pd.DataFrame({"k": ["9", "10", "9"]}), categorical=["k"])
    assert enc2.columns[0]["levels"] == [9, 10] and enc2.feature_names == ["k=10"]


def test_one_number_written_two_ways_is_refused():
    with pytest.raises(InputError, match=msg(E.MSG_LEVELS_AMBIGUOUS, column="k", values=["1", "1.0"])):
        TabularEncoding.fit(pd.DataFrame({"k": ["1", "1.0", "2"]}), categorical=["k"])


def test_encoded_feature_names_may_not_collide():
    frame = pd.DataFrame({"a": ["a", "b=c"], "a=b": ["b", "c"]})
    with pytest.raises(InputError, match=msg(E.MSG_FEATURE_NAME_COLLISION, name="a=b=c",
                                             sources="column 'a' level 'b=c' and column 'a=b' level 'c'")):
        TabularEncoding.fit(frame)
    with pytest.raises(InputError, match=re.escape("would be made by numeric column 'x=1'")):
        TabularEncoding.fit(pd.DataFrame({"x=1": [0.5, 1.5], "x": ["0", "1"]}))


def test_a_version_1_file_of_an_earlier_release_loads_as_before():
    """tests/data/model_file_v1_release_0.1.json (the demo's model file, as an earlier release
    wrote it to docs/demo/) was written before format 2 existed (and before the certificate's
    optimality-bound fields): it loads, and scores by its own numbers."""
    path = Path(__file__).resolve().parent / "data" / "model_file_v1_release_0.1.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "fairuse_opt.model/1"
    mf = read(path)
    est = mf.estimator
    assert mf.kind == "estimator" and type(est).__name__ == doc["estimator"]
    X = np.random.default_rng(0).normal(size=(40, len(doc["features"]["names"])))
    for m in doc["models"]:
        coef, b = est.group_model(tuple(m["group"]))
        assert b == m["intercept"] and coef.tolist() == m["coef"]
        by_hand = 1.0 / (1.0 + np.exp(-(m["intercept"] + X @ np.array(m["coef"]))))
        np.testing.assert_allclose(est.predict_proba(X, report=tuple(m["group"]))[:, 1], by_hand, rtol=0, atol=1e-12)
    np.testing.assert_allclose(est.generic_.decision_function(X),
                               doc["generic"]["intercept"] + X @ np.array(doc["generic"]["coef"]), rtol=0, atol=1e-12)
    # written again, it is still format 1
    assert json.loads(dumps(est))["format"] == FORMAT == "fairuse_opt.model/1"


def test_dumps_refuses_what_is_neither_an_estimator_nor_a_system():
    with pytest.raises(InputError, match="FairUseClassifier, FairUseRegressor or FairUseSystem"):
        dumps(object())
    with pytest.raises(InputError, match="does not hold a FairUseSystem"):
        loads(json.dumps({"format": model_io.SYSTEM_FORMAT, "estimator": "FairUseClassifier"}))


# --------------------------------------------------------------------------- issue 24: model files
@pytest.mark.parametrize("margin, problem", [
    ({"__items__": [[{"a": 1}, 0.1]]}, "__items__[0][0] is {'a': 1}, which cannot be a mapping key"),
    ({"__items__": [[1, 2, 3]]}, "__items__ must be a list of [key, value] pairs"),
    ({"__items__": 5}, "__items__ must be a list of [key, value] pairs"),
    ({"__tuple__": 5}, "__tuple__ must be a list"),
    ({"__items__": [[[1, {"b": 2}], 0.1]]}, "__items__[0][0] is [1, {'b': 2}], which cannot be a mapping key"),
    ({"__items__": [["F", 0.1], ["F", 0.2]]}, "__items__ lists key 'F' twice"),
], ids=["dict-key", "triple", "items-not-list", "tuple-not-list", "dict-in-list-key", "repeated-key"])
def test_malformed_tags_in_settings_are_an_input_error(good_doc, margin, problem):
    """Issue 24, M1: they raised a raw TypeError/ValueError."""
    doc = json.loads(json.dumps(good_doc))
    doc["settings"]["params"]["margin"] = margin
    _bad(doc, re.escape("model file <text>: settings.params.margin") + r"[ .]" + re.escape(problem))


def test_a_well_formed_per_group_margin_still_loads(good_doc):
    doc = json.loads(json.dumps(good_doc))
    doc["settings"]["params"]["margin"] = {"__items__": [[{"__tuple__": ["F", "old"]}, 0.0]]}
    assert loads(json.dumps(doc)).margin == {("F", "old"): 0.0}


@pytest.mark.parametrize("version", ["\u00b2", "1" * 5000, "01", "\u0661", "\uff11", "1 ", "+1", "1.0", ""],
                         ids=["superscript-2", "5000-digits", "leading-zero", "arabic-indic-1", "fullwidth-1",
                              "trailing-space", "plus", "decimal", "empty"])
def test_a_format_version_that_is_not_plain_ascii_digits_is_refused(good_doc, version):
    """Issue 24, M2 (raw ValueError) and the lower-priority item: '/01' and an Arabic-Indic
    digit were read as version 1."""
    fmt = f"fairuse_opt.model/{version}"
    with pytest.raises(InputError) as info:
        loads(json.dumps({**good_doc, "format": fmt}))
    text = str(info.value)
    assert text.startswith("model file <text> has format ") and len(text) < 400
    if version == "1" * 5000:  # a version in plain digits: a newer one
        assert "newer than this library reads" in text
    else:
        assert text.endswith(f"; expected {FORMAT!r}")


def test_a_byte_order_mark_is_not_taken_for_a_path(good_doc, tmp_path):
    """Issue 24, M3: a UTF-8 byte-order mark before the text of a model file."""
    X, y, g = make()
    est = FairUseClassifier().fit(X, y, groups=g)
    text = dumps(est)
    for source in ("\ufeff" + text, ("\ufeff" + text).encode("utf-8")):
        assert_same_model(est, loads(source), X, g)
    path = tmp_path / "bom.json"
    path.write_bytes(("\ufeff" + text).encode("utf-8"))
    assert_same_model(est, loads(path), X, g)


def test_long_text_that_is_neither_json_nor_a_path_is_an_input_error():
    with pytest.raises(InputError, match=re.escape("cannot read model file")):
        loads("x" * 5000)  # File name too long
    with pytest.raises(InputError, match=re.escape("model file a\x00b does not exist")):
        loads("a\x00b")  # embedded null byte


def test_a_certificate_without_its_table_is_refused(good_doc):
    """Issue 24, M5: "table": [] loaded with verified == True; n_violations then raised
    KeyError."""
    doc = json.loads(json.dumps(good_doc))
    assert doc["certificate"]["verified"] is True
    doc["certificate"]["table"] = []
    _bad(doc, re.escape("model file <text>: certificate.table does not list the same groups as models"))


def test_a_certificate_table_without_a_column_is_refused(good_doc):
    doc = json.loads(json.dumps(good_doc))
    for row in doc["certificate"]["table"]:
        del row["rationality_slack"]
    _bad(doc, re.escape("model file <text>: certificate.table[0] lacks column(s) ['rationality_slack']"))


def test_a_verified_certificate_whose_table_shows_a_violation_is_refused(good_doc):
    doc = json.loads(json.dumps(good_doc))
    doc["certificate"]["table"][2]["rationality_slack"] = -0.5
    _bad(doc, re.escape("model file <text>: certificate.verified is true, but its table shows 1 violated "
                        "constraint(s)"))
    doc = json.loads(json.dumps(good_doc))
    doc["certificate"]["failures"] = ["rationality for ('F', 'old'): own loss 0.7 > bound 0.6"]
    _bad(doc, re.escape("model file <text>: certificate.verified is true, but it lists failures"))


@pytest.mark.parametrize("token", ["1e400", "-1e400", "1E999"])
@pytest.mark.parametrize("field", ["objective", "seconds", "tolerance", "table[0].own_loss", "trace[0]"])
def test_a_number_too_large_for_a_float_is_refused_in_every_certificate_field(good_doc, token, field):
    """Issue 24, M6: a 1e400 token in a certificate field loaded as inf (and dumps() of the
    loaded model then failed)."""
    doc = json.loads(json.dumps(good_doc))
    cert = doc["certificate"]
    if field.startswith("table"):
        cert["table"][0]["own_loss"] = 123.25
    elif field.startswith("trace"):
        cert["trace"] = [123.25]
    else:
        cert[field] = 123.25
    text = json.dumps(doc)
    assert text.count("123.25") == 1
    _bad(text.replace("123.25", token), re.escape(f"model file <text>: certificate.{field} must be a finite "
                                                  f"number; got {token}"))


def test_a_number_too_large_for_a_float_is_refused_anywhere(good_doc):
    doc = json.loads(json.dumps(good_doc))
    doc["metadata"] = {"note": [1, 2, 123.25]}
    _bad(json.dumps(doc).replace("123.25", "1e400"),
         re.escape("model file <text>: metadata.note[2] must be a finite number; got 1e400"))


def test_a_key_given_twice_in_one_object_is_refused(good_doc):
    text = json.dumps(good_doc)
    twice = text[:-1] + ', "models": []}'
    _bad(twice, re.escape("model file <text>: key 'models' is given twice in one object"))


def test_a_verified_certificate_at_another_tolerance_is_refused(good_doc):
    """A tolerance of 1e300 would hide any violation from n_violations."""
    doc = json.loads(json.dumps(good_doc))
    doc["certificate"]["tolerance"] = 1e300
    doc["certificate"]["table"][0]["rationality_slack"] = -0.5
    _bad(doc, re.escape("model file <text>: certificate.tolerance is 1e+300, but the model was verified at "
                        "settings.params.tol = 1e-07"))


@pytest.mark.parametrize("field", ["objective", "table[1].own_loss", "trace[0]"])
def test_an_integer_too_large_for_a_float_is_refused_in_the_certificate(good_doc, field):
    doc = json.loads(json.dumps(good_doc))
    big = 10 ** 400
    if field == "objective":
        doc["certificate"]["objective"] = big
    elif field == "trace[0]":
        doc["certificate"]["trace"] = [big]
    else:
        doc["certificate"]["table"][1]["own_loss"] = big
    where = field.split("[")[0] if field.startswith("trace") else field
    _bad(doc, re.escape(f"model file <text>: certificate.{where} must be a") + ".* finite number")


# --------------------------------------------------------------------------- issue 24: found by the file fuzz
def _with(doc: dict, path: tuple, value) -> dict:
    """A copy of ``doc`` with ``path`` set to ``value`` (``KeyError``: deleted)."""
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize("path, value, expected", [
    (("estimator",), ["FairUseClassifier"], "estimator must be one of"),  # was TypeError: unhashable
    (("settings", "params", "group_cols"), "None", "settings.params.group_cols must name the group attributes"),
    (("settings", "params", "group_cols"), [None, None], "settings.params.group_cols must be null, a column name"),
    (("settings", "params", "group_cols"), ["f0"], "settings.params.group_cols names feature column(s) ['f0']"),
    (("settings", "params", "constraint_hook"), -1, "settings.params.constraint_hook must be null"),
    (("settings", "params", "generic"), "LogisticRegression", "settings.params.generic must be null"),
    (("settings", "n_iter"), -4, "settings.n_iter must be a non-negative integer"),
    (("settings", "n_iter"), KeyError, "settings lacks required key(s) ['n_iter']"),
    (("settings", "not_serialised"), {"__items__": [[{"a": 1}, 0.1]]}, "settings.not_serialised must be an object"),
    (("features", "names_in"), KeyError, "features lacks required key(s) ['names_in']"),
    (("certificate", "fair_use"), KeyError, "certificate lacks required key(s) ['fair_use']"),
    (("certificate", "fair_use"), [], "certificate.fair_use is [], but the settings ask for"),
    (("generic", "certificate", "status"), KeyError, "generic.certificate lacks required key(s) ['status']"),
    (("generic", "n_iter"), -1, "generic.n_iter must be a non-negative integer"),
    (("metadata",), None, "metadata must be an object"),
    (("metadata",), "", "metadata must be an object"),
    (("library",), None, "library must be an object"),
    (("library", "name"), ["fairuse_opt"], "library must be {'name': 'fairuse_opt'"),
    (("groups", "levels", "zz"), [1], "groups must list distinct attributes and one entry of levels per attribute"),
    (("input",), {}, "input lacks required key(s) ['target', 'group_columns', 'columns']"),
])
def test_fields_the_fuzz_found_loosely_read_are_refused(good_doc, path, value, expected):
    """Each loaded before (or raised a raw TypeError): a setting replaced, a required field
    missing, a count below zero, a certificate that asks for no guarantee under settings
    that ask for both."""
    doc = _with(good_doc, path, value)
    _bad(doc, re.escape(f"model file <text>: {expected}"))


def test_an_external_generic_entry_must_hold_no_model():
    from sklearn.linear_model import LogisticRegression

    X, y, g = make()
    est = FairUseClassifier(generic=LogisticRegression().fit(X, y)).fit(X, y, groups=g)
    doc = json.loads(dumps(est))
    assert loads(json.dumps(doc)).generic_ is None
    _bad(_with(doc, ("generic", "coef"), [0.0, 0.0, 0.0]),
         re.escape("model file <text>: generic must have intercept, coef and certificate null when the generic "
                   "model is external"))


def test_group_cols_of_a_pipeline_model_round_trip():
    X, y, g = make()
    frame = X.assign(sex=g["sex"], age=g["age"])
    est = FairUseClassifier(group_cols=["sex", "age"]).fit(frame, y)
    back = loads(dumps(est))
    assert back.group_cols == ["sex", "age"]
    np.testing.assert_array_equal(back.predict_proba(frame), est.predict_proba(frame))


def test_an_unknown_level_of_a_column_with_many_levels_gives_a_short_message():
    """Issue 24, lower priority: an error line listed every known level (over 10 KB)."""
    import pandas as pd

    levels = [f"zip-{i:05d}-{'x' * 20}" for i in range(2000)]
    frame = pd.DataFrame({"zip": levels, "x": np.arange(2000.0)})
    enc = TabularEncoding.fit(frame)
    with pytest.raises(InputError) as info:
        enc.transform(frame.assign(zip=["nowhere"] * 1999 + ["y" * 5000]))
    text = str(info.value)
    assert len(text) < 2000 and "(2000 in all)" in text and "'nowhere'" in text
    with pytest.raises(InputError) as info:
        enc.transform(frame.assign(x=[f"bad{i}" + "z" * 1000 for i in range(2000)]))
    assert len(str(info.value)) < 1000 and "(2000 in all)" in str(info.value)


# --------------------------------------------------------------------------- the L2 penalty's name (issue 23)
OLD_FORM = Path(__file__).resolve().parent / "data" / "model_file_alpha_before_l2.json"


def _old_form_data():
    """The data tests/data/model_file_alpha_before_l2.json was fitted on (commit 4ac4887, with
    ``FairUseClassifier(alpha=0.05, fair_use=None)``, when alpha= was the L2 penalty)."""
    rng = np.random.default_rng(23)
    n = 300
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    g = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "age": rng.choice(["old", "young"], n)})
    y = (X.x1 - 0.5 * X.x2 + 0.8 * (g.sex == "F") + rng.logistic(size=n) > 0).astype(int)
    return X, y, g


def test_a_file_written_with_alpha_loads_with_it_as_l2_and_is_written_back_as_l2():
    import warnings

    import jsonschema

    from fairuse_opt.model_io import schema

    doc = json.loads(OLD_FORM.read_text(encoding="utf-8"))
    assert doc["settings"]["params"]["alpha"] == 0.05 and "l2" not in doc["settings"]["params"]
    jsonschema.validate(doc, schema())  # the schema still accepts the old form
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading an old file warns of nothing
        est = read(OLD_FORM).estimator
    assert (est.l2, est.alpha) == (0.05, "deprecated")
    assert (est.generic_.l2, est.generic_.alpha) == (0.05, "deprecated")
    # its numbers are the file's, and a refit with l2=0.05 gives them again: the penalty was kept
    X, y, g = _old_form_data()
    for m in doc["models"]:
        coef, b = est.group_model(tuple(m["group"]))
        assert b == m["intercept"] and coef.tolist() == m["coef"]
    refit = FairUseClassifier(l2=0.05, fair_use=None).fit(X, y, groups=g)
    np.testing.assert_allclose(refit.coef_, est.coef_, rtol=0, atol=1e-9)
    np.testing.assert_allclose(refit.intercept_, est.intercept_, rtol=0, atol=1e-9)
    other = FairUseClassifier(l2=1e-3, fair_use=None).fit(X, y, groups=g)
    assert np.abs(other.coef_ - est.coef_).max() > 1e-3  # (the default penalty would not)
    # written again: the new name only
    again = json.loads(dumps(est))
    assert again["settings"]["params"]["l2"] == 0.05 and "alpha" not in again["settings"]["params"]


def test_new_files_name_the_penalty_l2_even_when_fitted_with_alpha():
    X, y, groups = make(seed=3)
    with pytest.warns(FutureWarning):
        est = FairUseClassifier(alpha=0.02, fair_use=None).fit(X, y, groups=groups)
    doc = json.loads(dumps(est))
    params = doc["settings"]["params"]
    assert params["l2"] == 0.02 and "alpha" not in params
    back = loads(json.dumps(doc))
    assert (back.l2, back.alpha) == (0.02, "deprecated")
    assert_same_model(est, back, X, groups)
    # a file that gives both names is refused, as a file can only be written with one
    params["alpha"] = 0.02
    with pytest.raises(InputError) as info:
        loads(json.dumps(doc))
    assert "settings.params.alpha is the earlier name of l2, which the file also gives: keep l2 only" in str(info.value)
