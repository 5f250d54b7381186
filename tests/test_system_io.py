"""A FairUseSystem as a model file (format 2): round trip, every option, scoring without the
library, the format-1 file, non-linear candidates, malformed files."""

from __future__ import annotations

import itertools
import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from fairuse_opt import (
    FairUseClassifier,
    FairUseSystem,
    InputError,
    SklearnGroupModel,
    audit,
    fit_system,
    model_io,
)
from fairuse_opt.system import GENERIC
from fairuse_opt.system._io import MSG_SYSTEM_NOT_FITTED, FileLinearModel

TOL = 1e-12
NAMES = ["A", "B"]
LEVELS = {"A": ["a0", "a1", "a2"], "B": ["b0", "b1"]}
UNSEEN = ("a2", "b1")  # both values are known, the combination is never reported


def make_data(n=600, seed=0, effect=3.0, missing=True, task="classification"):
    """Two features, attributes A (3 levels) and B (2) with strong effects; some reports
    leave A or B out, and nobody reports (a2, b1) together."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 2)), columns=["x1", "x2"])
    A = rng.choice(LEVELS["A"], n, p=[0.4, 0.35, 0.25])
    B = rng.choice(LEVELS["B"], n)
    s = 1.0 * X.x1 - 0.5 * X.x2 + effect * ((A == "a1") * 1.0 - (A == "a0") + (B == "b1") - 0.5)
    y = (s + rng.logistic(size=n) > 0).astype(int) if task == "classification" else s + rng.normal(size=n)
    G = pd.DataFrame({"A": A, "B": B}).astype(object)
    if missing:
        G.loc[rng.random(n) < 0.2, "B"] = None
        G.loc[rng.random(n) < 0.15, "A"] = np.nan
        G.loc[(G.A == "a2") & (G.B == "b1"), "B"] = None
    return X, y, G


@pytest.fixture(scope="module")
def live():
    """A system with personalized options, partial reports and an unseen option."""
    X, y, G = make_data()
    system = fit_system(X, y, G, procedure="split", n_boot=200, metric="log_loss", envy=False, random_state=0,
                        encodings=("onehot", "intersectional"))
    return system, X, y, G


def test_the_fixture_takes_every_branch(live):
    """What the other tests rely on: personalized options, an unseen option served a
    parent's personalized model, partial options served."""
    system, *_ = live
    assert UNSEEN not in system.served_
    by = system._serving_option(UNSEEN)
    assert by != UNSEEN and system.served_[by] != GENERIC
    partial = [o for o, f in system.served_.items() if None in o and any(o) and f != GENERIC]
    full = [o for o, f in system.served_.items() if None not in o and f != GENERIC]
    assert partial and full
    assert any(a not in system.served_ and a != tuple(None for _ in NAMES)
               for a in itertools.product([None, *LEVELS["A"]], [None, *LEVELS["B"]]))


def all_options():
    return list(itertools.product([None, *LEVELS["A"]], [None, *LEVELS["B"]]))


def test_round_trip_predicts_like_the_live_system(live, tmp_path):
    system, X, y, G = live
    path = tmp_path / "system.json"
    text = system.to_json(path)
    assert path.read_text(encoding="utf-8") == text
    doc = json.loads(text)
    assert doc["format"] == model_io.SYSTEM_FORMAT == "fairuse_opt.model/2"
    loaded = model_io.loads(path)
    assert isinstance(loaded, FairUseSystem)
    mf = model_io.read(text)
    assert mf.kind == "system" and mf.estimator.served_ == loaded.served_
    Xt, _, Gt = make_data(n=300, seed=5)
    Gt.iloc[:20] = None  # nothing reported
    Gt.loc[Gt.index[20:40], "A"] = "a2"
    Gt.loc[Gt.index[20:40], "B"] = "b1"  # the unseen option
    assert Gt.isna().any(axis=1).sum() > 50
    for method in ("predict_proba", "decision_function"):
        got = getattr(loaded, method)(Xt, groups=Gt)
        want = getattr(system, method)(Xt, groups=Gt)
        assert np.max(np.abs(got - want)) <= TOL, method
    np.testing.assert_array_equal(loaded.predict(Xt, groups=Gt), system.predict(Xt, groups=Gt))
    for o in all_options():  # every option, as a report for every row
        for method in ("predict_proba", "decision_function"):
            got = getattr(loaded, method)(Xt, report=o)
            want = getattr(system, method)(Xt, report=o)
            assert np.max(np.abs(got - want)) <= TOL, (method, o)
        np.testing.assert_array_equal(loaded.predict(Xt, report=o), system.predict(Xt, report=o))
    pd.testing.assert_frame_equal(loaded.serving(Gt), system.serving(Gt))
    pd.testing.assert_frame_equal(loaded.assignment_, system.assignment_)
    pd.testing.assert_frame_equal(loaded.decisions_, system.decisions_)
    assert loaded.groups_ == system.groups_ and loaded.levels_ == system.levels_
    assert loaded.group_names_ == system.group_names_ and loaded.metric_ == system.metric_ == "log_loss"
    np.testing.assert_array_equal(loaded.classes_, system.classes_)
    assert loaded.score(Xt, make_data(n=300, seed=5)[1], groups=Gt) == system.score(
        Xt, make_data(n=300, seed=5)[1], groups=Gt)
    assert model_io.dumps(loaded) == text  # the loaded system writes the same file
    with pytest.raises(InputError, match="cannot be fitted"):
        loaded.generic_.fit(Xt, Gt)


def test_the_file_lists_every_option_and_the_settings(live):
    system, X, y, G = live
    doc = json.loads(system.to_json())
    assert doc["estimator"] == "FairUseSystem"
    assert [tuple(r["option"]) for r in doc["options"]] == sorted(
        all_options(), key=lambda o: (sum(v is not None for v in o), [(-1, "") if v is None else (0, v) for v in o]))
    assert len(doc["options"]) == 4 * 3
    rows = {tuple(r["option"]): r for r in doc["options"]}
    # the unseen option: its nearest seen parent is the one of (A=a2) and (B=b1) with more
    # assignment rows, counted here from the assignment rows themselves
    g_assign = G.iloc[system.assign_index_]
    n_a2 = int((g_assign.A == "a2").sum())
    n_b1 = int((g_assign.B == "b1").sum())
    assert n_a2 != n_b1
    expected = ("a2", None) if n_a2 > n_b1 else (None, "b1")
    assert rows[UNSEEN]["seen"] is False and rows[UNSEEN]["n"] == 0
    assert tuple(rows[UNSEEN]["served_by"]) == expected
    assert rows[expected]["n"] == max(n_a2, n_b1) and rows[expected]["seen"]
    assert rows[UNSEEN]["model"] == rows[expected]["model"]
    assert rows[(None, None)] == {"option": [None, None], "seen": True, "n": len(system.assign_index_),
                                  "served_by": [None, None], "model": 0}
    assert doc["models"][0]["candidate"] is None and doc["models"][0]["function"] == "generic"
    assert doc["generic"] == {"intercept": doc["models"][0]["intercept"], "coef": doc["models"][0]["coef"]}
    for o, r in rows.items():  # the served model written is the candidate's own linear model
        fid = system.served_[system._serving_option(o)]
        m = doc["models"][r["model"]]
        if fid == GENERIC:
            coef, b = system.generic_.group_model(None)
        else:
            coef, b = system.candidates_[fid[0]].group_model(fid[1])
            assert m["candidate"] == fid[0] and tuple(m["report"]) == fid[1]
        assert m["intercept"] == b and m["coef"] == coef.tolist()
    assert doc["system"] == {"metric": "log_loss", "alpha": 0.1, "correction": "holm", "test": "auto",
                             "n_boot": 200, "envy": False, "kind": "full", "min_group_size": 10,
                             "random_state": 0, "procedure": "split", "rungs": [0.25, 0.5, 1.0]}
    table = system.assignment_
    assert [r["option"] for r in doc["assignment"]] == list(table["option"])
    assert [r["served"] for r in doc["assignment"]] == list(table["served"])
    assert [r["n"] for r in doc["assignment"]] == list(table["n"])
    p = [np.nan if r["p_adjusted"] is None else r["p_adjusted"] for r in doc["assignment"]]
    np.testing.assert_array_equal(p, table["p_adjusted"].to_numpy())
    assert set(doc["candidates"]) == set(system.candidates_)
    assert doc["groups"]["known"] == [list(k) for k in system.groups_]


# --------------------------------------------------------------------------- without the library
def score_system_file(doc: dict, X: np.ndarray, reports: list[tuple]) -> np.ndarray:
    """docs/model-file.md, "Scoring a row with a system file": json + numpy only."""
    table = {tuple(r["option"]): r["model"] for r in doc["options"]}
    out = np.empty(len(reports))
    for i, rep in enumerate(reports):
        m = doc["models"][table[tuple(rep)]]
        s = m["intercept"] + np.dot(np.array(m["coef"]), X[i])
        out[i] = 1.0 / (1.0 + np.exp(-s))
    return out


def test_scoring_a_system_file_without_the_library(live, tmp_path):
    system, *_ = live
    path = tmp_path / "system.json"
    system.to_json(path)
    doc = json.loads(path.read_text(encoding="utf-8"))  # from here on: json and numpy only
    Xt, _, Gt = make_data(n=240, seed=9, missing=False)
    reports = [tuple(r) for r in Gt.itertuples(index=False, name=None)]
    kinds = ["full"] * 80 + ["partial A"] * 40 + ["partial B"] * 40 + ["unseen"] * 40 + ["nothing"] * 40
    for i, kind in enumerate(kinds):
        a, b = reports[i]
        reports[i] = {"full": (a, b), "partial A": (None, b), "partial B": (a, None), "unseen": UNSEEN,
                      "nothing": (None, None)}[kind]
    assert sum(r == UNSEEN for r in reports) >= 40
    p = score_system_file(doc, Xt.to_numpy(), reports)
    groups = pd.DataFrame(reports, columns=NAMES)
    want = system.predict_proba(Xt, groups=groups)[:, 1]
    assert np.max(np.abs(p - want)) <= TOL
    # and the personalized rows really differ from the generic model's
    generic = system.generic_.predict_proba(Xt)[:, 1]
    assert np.max(np.abs(p[:80] - generic[:80])) > 1e-3
    assert np.max(np.abs(p[200:] - generic[200:])) <= TOL


# --------------------------------------------------------------------------- format 1 still loads
V1_FILE = {
    "format": "fairuse_opt.model/1",
    "library": {"name": "fairuse_opt", "version": "0.0.9"},
    "estimator": "FairUseClassifier", "task": "classification",
    "classes": {"values": ["no", "yes"], "dtype": "<U3"},
    "features": {"names": ["u", "v"], "names_in": None},
    "input": None,
    "groups": {"attributes": ["S"], "levels": {"S": ["f", "m"]}},
    "models": [{"group": ["f"], "intercept": 0.5, "coef": [1.0, -2.0]},
               {"group": ["m"], "intercept": -1.0, "coef": [0.25, 0.0]}],
    "generic": {"intercept": 0.0, "coef": [0.5, -1.0], "n_iter": 3,
                "certificate": {"table": [], "fair_use": [], "route": "generic", "solver": None,
                                "status": "optimal", "verified": True}},
    "certificate": {"table": [{"group": ["f"], "n": 10}, {"group": ["m"], "n": 12}],
                    "fair_use": ["rationality"], "route": "exact", "solver": "CLARABEL", "status": "optimal",
                    "verified": True},
    "settings": {"params": {"encoding": "intersectional", "fair_use": "rationality", "alpha": 0.001},
                 "not_serialised": {}, "set_spec": None, "n_iter": 4},
    "metadata": {"note": "written by hand"},
}


def test_a_version_1_file_loads_as_before():
    est = model_io.loads(json.dumps(V1_FILE))
    assert type(est) is FairUseClassifier and model_io.read(json.dumps(V1_FILE)).kind == "estimator"
    X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    # by hand: f: 0.5 + u - 2v; m: -1 + 0.25u
    s_f = np.array([1.5, -1.5, 0.5])
    s_m = np.array([-0.75, -1.0, -0.5])
    np.testing.assert_allclose(est.decision_function(X, report=("f",)), s_f, rtol=0, atol=1e-15)
    np.testing.assert_allclose(est.predict_proba(X, groups=["m", "m", "m"])[:, 1], 1 / (1 + np.exp(-s_m)),
                               rtol=0, atol=1e-15)
    assert list(est.predict(X, groups=["f", "m", "f"])) == ["yes", "no", "yes"]
    np.testing.assert_allclose(est.generic_.decision_function(X), [0.5, -1.0, 0.0], rtol=0, atol=1e-15)
    assert est.n_iter_ == 4 and est.certificate_.route == "exact"
    # an estimator is still written as format 1, and a format-1 file with a system is refused
    assert json.loads(model_io.dumps(est))["format"] == "fairuse_opt.model/1"
    with pytest.raises(InputError, match="a system file has format 'fairuse_opt.model/2'"):
        model_io.loads(json.dumps({**V1_FILE, "estimator": "FairUseSystem"}))


# --------------------------------------------------------------------------- what cannot be written
def _forest_system(effect: float):
    """A random-forest candidate on data where group (a1, b1) is always positive (effect) or
    where groups do not matter (effect 0); kind="minimal" with one candidate."""
    rng = np.random.default_rng(3)
    n = 800
    G = pd.DataFrame({"A": rng.choice(["a0", "a1"], n), "B": rng.choice(["b0", "b1"], n)})
    X = rng.normal(size=(n, 2))
    cell = ((G.A == "a1") & (G.B == "b1")).to_numpy()
    y = (X[:, 0] + effect * cell - effect / 4 + rng.logistic(size=n) > 0).astype(int)
    tr, asg = np.arange(n) < 400, np.arange(n) >= 400
    forest = SklearnGroupModel(RandomForestClassifier(n_estimators=30, max_depth=4, random_state=0),
                               encoding="intersectional").fit(X[tr], y[tr], groups=G[tr])
    generic = FairUseClassifier(encoding="none").fit(X[tr], y[tr])
    system = FairUseSystem({"forest": forest}, generic, procedure="split", metric="log_loss", kind="minimal", n_boot=200,
                           envy=False).fit(X[asg], y[asg], groups=G[asg].reset_index(drop=True))
    return system


def test_a_served_candidate_that_is_not_linear_cannot_be_written():
    system = _forest_system(effect=6.0)
    served = [o for o, f in system.served_.items() if f != GENERIC]
    assert served  # the forest is served somewhere
    with pytest.raises(InputError, match=r"candidate 'forest' \(SklearnGroupModel\) is not a linear model"):
        system.to_json()


def test_a_non_linear_candidate_served_nowhere_does_not_stop_the_file():
    system = _forest_system(effect=0.0)
    assert all(f == GENERIC for f in system.served_.values())
    loaded = model_io.loads(system.to_json())
    X = np.random.default_rng(1).normal(size=(50, 2))
    groups = pd.DataFrame({"A": ["a0", "a1"] * 25, "B": ["b1"] * 50})
    assert np.max(np.abs(loaded.predict_proba(X, groups=groups) - system.predict_proba(X, groups=groups))) <= TOL
    assert json.loads(system.to_json())["candidates"] == {"forest": {"attributes": ["A", "B"],
                                                                     "type": "SklearnGroupModel"}}


def test_an_unfitted_system_cannot_be_written():
    with pytest.raises(InputError, match=re.escape(MSG_SYSTEM_NOT_FITTED)):
        FairUseSystem({"m": FairUseClassifier()}, FairUseClassifier(encoding="none")).to_json()


def test_a_regression_system_round_trips():
    X, y, G = make_data(n=500, seed=2, task="regression")
    system = fit_system(X, y, G, procedure="split", n_boot=200, envy=False, random_state=1, encodings=("intersectional",))
    assert any(f != GENERIC for f in system.served_.values())
    doc = json.loads(system.to_json())
    assert doc["task"] == "regression" and doc["classes"] is None and doc["system"]["metric"] == "mse"
    loaded = model_io.loads(json.dumps(doc))
    assert not hasattr(loaded, "predict_proba")
    Xt, _, Gt = make_data(n=200, seed=3, task="regression")
    for method in ("predict", "decision_function"):
        assert np.max(np.abs(getattr(loaded, method)(Xt, groups=Gt) - getattr(system, method)(Xt, groups=Gt))) <= 1e-12
    # regression: the prediction is the score, by hand from the file
    table = {tuple(r["option"]): r["model"] for r in doc["options"]}
    keys = [tuple(None if pd.isna(v) else v for v in r) for r in Gt.itertuples(index=False, name=None)]
    by_hand = [doc["models"][table[k]]["intercept"] + np.dot(doc["models"][table[k]]["coef"], x)
               for k, x in zip(keys, Xt.to_numpy())]
    assert np.max(np.abs(np.array(by_hand) - system.predict(Xt, groups=Gt))) <= 1e-12


# --------------------------------------------------------------------------- the loaded system audits
def test_the_loaded_system_audits_like_the_live_one(live):
    system, *_ = live
    loaded = model_io.loads(system.to_json())
    Xt, yt, Gt = make_data(n=400, seed=11, missing=False)
    keep = ~((Gt.A == "a2") & (Gt.B == "b1")).to_numpy()  # the audit needs groups the system knows
    Xt, yt, Gt = Xt[keep].reset_index(drop=True), yt[keep], Gt[keep].reset_index(drop=True)
    kw = dict(metrics=["log_loss", "error"], n_boot=200, random_state=0)
    a = audit(system, Xt, yt, groups=Gt, **kw).summary()
    b = audit(loaded, Xt, yt, groups=Gt, **kw).summary()
    pd.testing.assert_frame_equal(a, b)
    assert len(a) > 0


# --------------------------------------------------------------------------- schema and malformed files
def test_system_files_match_the_schema(live, model_file_schema):
    import jsonschema

    system, *_ = live
    jsonschema.Draft202012Validator.check_schema(model_io.schema())
    validator = jsonschema.Draft202012Validator(model_io.schema())
    before = model_file_schema.n_checked
    doc = json.loads(system.to_json())
    assert not list(validator.iter_errors(doc))
    assert model_file_schema.n_checked == before + 1  # the session-wide hook checks every file written
    assert list(validator.iter_errors({**doc, "format": "fairuse_opt.model/1"}))
    assert list(validator.iter_errors({**doc, "options": [{**doc["options"][0], "seen": "yes"}]}))


@pytest.fixture(scope="module")
def good(live):
    return json.loads(live[0].to_json())


def _mutated(doc, path, value):
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


def _unseen_index(doc):
    return [tuple(r["option"]) for r in doc["options"]].index(UNSEEN)


def test_malformed_system_files_raise_input_error_naming_the_field(good):
    import jsonschema

    validator = jsonschema.Draft202012Validator(model_io.schema())
    k = _unseen_index(good)
    other_parent = [None, "b1"] if good["options"][k]["served_by"] == ["a2", None] else ["a2", None]
    personal = next(i for i, r in enumerate(good["options"]) if r["model"] != 0)
    cases = [
        (("options", 0, "model"), 99, "options[0].model"),
        (("options", 0, "seen"), "yes", "options[0].seen"),
        (("options", 0, "option"), ["a9", None], "options[0].option"),
        (("options", k, "served_by"), other_parent, f"options[{k}]"),   # breaks the nearest-parent rule
        (("options", 0, "model"), good["options"][personal]["model"], "options"),  # root not generic
        (("options",), good["options"][:-1], "options"),                # an option missing
        (("models", 0, "coef"), [1.0], "models[0].coef"),
        (("models", 1, "intercept"), "0.5", "models[1].intercept"),
        (("models", 1, "candidate"), "nobody", "models[1].candidate"),
        (("models", 1, "report"), ["zz"], "models[1].report"),
        (("generic", "intercept"), 123.0, "generic"),
        (("system", "alpha"), "0.1", "system.alpha"),
        (("system", "metric"), "accuracy?", "system.metric"),
        (("system", "n_boot"), 0, "system.n_boot"),
        (("system", "envy"), 1, "system.envy"),
        (("assignment", 0, "n"), "5", "assignment[0].n"),
        (("assignment", 1, "p_value"), "small", "assignment[1].p_value"),
        (("decisions",), [{"step": "1"}], "decisions[0]"),
        (("candidates", "onehot[A]", "attributes"), ["Z"], "candidates['onehot[A]'].attributes"),
        (("groups", "levels", "A"), [], "groups.levels['A']"),
        (("groups", "known"), [["a0"]], "groups.known"),
        (("classes", "dtype"), "<U3", "classes.values"),
        (("features", "names"), "x1", "features.names"),
        (("task",), "ranking", "task"),
        (("options",), KeyError, "options"),
    ]
    for path, value, field in cases:
        doc = _mutated(good, path, value)
        with pytest.raises(InputError) as info:
            model_io.loads(json.dumps(doc))
        assert field in str(info.value), (path, str(info.value))
        if path not in ((("options", k, "served_by")), ("options", 0, "model"), ("options",), ("options", 0, "option"),
                        ("models", 0, "coef"),
                        ("generic", "intercept"), ("models", 1, "candidate"), ("models", 1, "report"),
                        ("groups", "known"), ("classes", "dtype"), ("system", "metric"),
                        ("candidates", "onehot[A]", "attributes")):
            assert list(validator.iter_errors(doc)), path


def test_a_model_that_uses_an_attribute_the_option_did_not_report_is_refused(good):
    """Point the root's neighbour (A=a0, B=(not reported)) at a model that uses B."""
    opts = [tuple(r["option"]) for r in good["options"]]
    i = opts.index(("a0", None))
    j = next(m for m, d in enumerate(good["models"]) if d["candidate"] and "B" in
             good["candidates"][d["candidate"]]["attributes"])
    doc = _mutated(good, ("options", i, "model"), j)
    with pytest.raises(InputError, match=rf"options\[{i}\]\.model uses attribute"):
        model_io.loads(json.dumps(doc))


@pytest.mark.parametrize("junk", [None, 1, "x", [], {}, [1, 2], {"a": 1}, True, 1.5])
def test_every_field_with_the_wrong_type_is_an_input_error(good, junk):
    """No raw traceback: each top-level field, and each field of the first entry of every
    list of objects, replaced by junk, is an InputError or still loads."""
    paths = [(k,) for k in good]
    for key in ("options", "models", "assignment", "decisions"):
        paths += [(key, 0, f) for f in good[key][0]]
    paths += [("system", f) for f in good["system"]] + [("groups", f) for f in good["groups"]]
    for path in paths:
        doc = _mutated(good, path, junk)
        try:
            model_io.loads(json.dumps(doc))
        except InputError:
            pass


@pytest.mark.filterwarnings("ignore::fairuse_opt.exceptions.SmallGroupWarning")
def test_a_generic_model_that_is_not_a_library_estimator_cannot_be_written():
    from sklearn.linear_model import LogisticRegression

    X, y, G = make_data(n=300, seed=1, missing=False)
    cand = FairUseClassifier(encoding="intersectional", fair_use=None).fit(X[:150], y[:150], groups=G[:150])
    generic = LogisticRegression().fit(X[:150], y[:150])
    system = FairUseSystem({"c": cand}, generic, procedure="split", n_boot=50).fit(X[150:], y[150:], groups=G[150:])
    with pytest.raises(InputError, match=r"the generic model \(LogisticRegression\) is not a linear model of "
                                         r"this library.*it is served to \(nothing reported\)"):
        system.to_json()
