"""The shipped Poisson regressor (issue 25, "the loss decides").

:class:`~fairuse_opt.estimators.FairUsePoissonRegressor` is the regressor with
:class:`~fairuse_opt.model.losses.PoissonLoss`.  Checked against answers known in
advance: scikit-learn's ``PoissonRegressor`` for the model without groups (its penalty
``alpha_sk / 2 ||w||^2`` on the mean half-deviance is ours with ``alpha_sk = 2 l2``;
the half-deviance is our loss ``exp(s) - y s`` plus a term of ``y`` alone), its D^2 for
``score``; the certificate's claims recomputed by hand from the served coefficients; the
model file's predictions recomputed as ``exp(X coef + intercept)``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import PoissonRegressor

from fairuse_opt import FairUseClassifier, FairUseRegressor, model_io
from fairuse_opt.estimators import FairUsePoissonRegressor
from fairuse_opt.exceptions import MSG_TARGET_RANGE, InputError
from fairuse_opt.model.losses import LOSSES, PoissonLoss
from fairuse_opt.solvers.conic import solver_order

ALPHA = 1e-2
RATE_OFFSETS = np.array([-0.6, 0.3, 0.0, 0.7])


def poisson_data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) * [1.0, 2.0] + [0.5, -1.0]
    g = np.concatenate([np.arange(4), rng.integers(0, 4, n - 4)])
    groups = pd.DataFrame({"a": g % 2, "b": g // 2})
    y = rng.poisson(np.exp(0.4 * X[:, 0] - 0.15 * X[:, 1] + RATE_OFFSETS[g])).astype(float)
    return X, y, groups, g


@pytest.mark.parametrize("solver", ["native", "ECOS", "CLARABEL"])
def test_poisson_regressor_matches_sklearn_without_groups(solver):
    X, y, _, _ = poisson_data()
    m = FairUsePoissonRegressor(encoding="none", fair_use=None, l2=ALPHA, solver=solver).fit(X, y)
    ref = PoissonRegressor(alpha=2 * ALPHA, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(m.coef_[0], ref.coef_, rtol=1e-5, atol=1e-7)
    assert m.intercept_[0] == pytest.approx(ref.intercept_, abs=1e-6)
    np.testing.assert_allclose(m.predict(X), ref.predict(X), rtol=1e-5)
    # score: the fraction of Poisson deviance explained, as scikit-learn's
    assert m.score(X, y) == pytest.approx(ref.score(X, y), abs=1e-6)
    assert m.certificate_.solver == ("NATIVE" if solver == "native" else solver)


def test_poisson_regressor_with_weights_matches_sklearn():
    X, y, _, _ = poisson_data(seed=3)
    w = np.random.default_rng(4).uniform(0.2, 3.0, len(y))
    m = FairUsePoissonRegressor(encoding="none", fair_use=None, l2=ALPHA).fit(X, y, sample_weight=w)
    ref = PoissonRegressor(alpha=2 * ALPHA, tol=1e-12, max_iter=10_000).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(m.coef_[0], ref.coef_, rtol=1e-5, atol=1e-7)
    assert m.intercept_[0] == pytest.approx(ref.intercept_, abs=1e-6)
    assert m.score(X, y, sample_weight=w) == pytest.approx(ref.score(X, y, sample_weight=w), abs=1e-6)


def hand_group_losses(X, y, g, coef, intercept):
    """L[k, r]: mean Poisson loss of group k's rows under group r's model, by hand."""
    L = np.zeros((4, 4))
    for k in range(4):
        for r in range(4):
            s = X[g == k] @ coef[r] + intercept[r]
            L[k, r] = np.mean(np.exp(s) - y[g == k] * s)
    return L


@pytest.mark.parametrize("encoding", ["intersectional", "decoupled"])
def test_poisson_regressor_is_certified_with_fair_use(encoding):
    """Both guarantees asked: the certificate verifies, and its claims hold when the
    losses are recomputed by hand from the served models and the generic model."""
    X, y, groups, g = poisson_data(seed=1)
    m = FairUsePoissonRegressor(encoding=encoding, fair_use="both", l2=ALPHA).fit(X, y, groups=groups)
    cert = m.certificate_
    assert cert.verified and not cert.failures
    order = [m.groups_.index((k % 2, k // 2)) for k in range(4)]  # group code k -> row of coef_
    coef, intercept = m.coef_[order], m.intercept_[order]
    L = hand_group_losses(X, y, g, coef, intercept)
    gen = m.generic_
    L0 = hand_group_losses(X, y, g, np.repeat(gen.coef_, 4, axis=0), np.repeat(gen.intercept_, 4))
    own = np.diag(L)
    assert np.all(own <= np.diag(L0) + 1e-7)  # rationality
    assert np.all(own[:, None] <= L + 1e-7)  # envy-freeness
    table = cert.table.set_index("group").loc[[(k % 2, k // 2) for k in range(4)]]
    np.testing.assert_allclose(table["own_loss"], own, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(table["generic_loss"], np.diag(L0), rtol=1e-9, atol=1e-12)
    # the groups gain: the personalized rates fit the planted offsets better than one rate
    assert own.sum() < np.diag(L0).sum() - 1e-3
    # predictions are rates: exp of each group's score
    np.testing.assert_allclose(m.predict(X, groups=groups), np.exp(np.sum(X * coef[g], axis=1) + intercept[g]),
                               rtol=1e-12)


def test_poisson_model_file_records_its_loss_and_scores_with_the_inverse_link(tmp_path):
    import jsonschema

    X, y, groups, g = poisson_data(seed=2)
    m = FairUsePoissonRegressor(encoding="intersectional", fair_use="both", l2=ALPHA).fit(X, y, groups=groups)
    path = tmp_path / "poisson.json"
    text = m.to_json(path)
    doc = json.loads(text)
    assert doc["loss"] == "poisson" and doc["estimator"] == "FairUseRegressor" and doc["task"] == "regression"
    jsonschema.Draft202012Validator(model_io.schema()).validate(doc)
    back = model_io.loads(path)
    assert type(back) is FairUsePoissonRegressor
    assert isinstance(FairUseRegressor.from_json(path), FairUsePoissonRegressor)
    # scored from the file: exp(X coef + intercept) of each row's group model, by hand
    order = [back.groups_.index((k % 2, k // 2)) for k in range(4)]
    coef = np.array([mdl["coef"] for mdl in doc["models"]])[order]
    intercept = np.array([mdl["intercept"] for mdl in doc["models"]])[order]
    expected = np.exp(np.sum(X * coef[g], axis=1) + intercept[g])
    np.testing.assert_allclose(back.predict(X, groups=groups), expected, rtol=1e-12)
    np.testing.assert_allclose(back.predict(X, groups=groups), m.predict(X, groups=groups), rtol=1e-15)
    assert back.score(X, y, groups=groups) == m.score(X, y, groups=groups)
    assert back.certificate_.verified and back.certificate_.to_dict() == m.certificate_.to_dict()


def test_model_files_of_the_other_losses_record_them_and_old_files_still_read():
    X, y, groups, _ = poisson_data()
    clf = FairUseClassifier(fair_use=None).fit(X, (y > 1).astype(int), groups=groups)
    reg = FairUseRegressor(fair_use=None).fit(X, y, groups=groups)
    for est, loss in ((clf, "log_loss"), (reg, "squared_error")):
        doc = json.loads(est.to_json())
        assert doc["loss"] == loss
        del doc["loss"]  # a file written before the loss was recorded
        back = model_io.loads(json.dumps(doc))
        assert type(back) is type(est)
        np.testing.assert_array_equal(back.predict(X, groups=groups), est.predict(X, groups=groups))


def test_a_model_file_with_a_loss_its_estimator_does_not_have_is_refused():
    X, y, groups, _ = poisson_data()
    doc = json.loads(FairUseClassifier(fair_use=None).fit(X, (y > 1).astype(int), groups=groups).to_json())
    for bad in ("poisson", "hinge", ["poisson"]):
        doc["loss"] = bad
        with pytest.raises(InputError, match=r"loss must be one of \['log_loss'\] for FairUseClassifier"):
            model_io.loads(json.dumps(doc))


def test_the_loss_decides_targets_set_and_solver_order():
    X, y, groups, _ = poisson_data()
    # targets: counts >= 0 only
    with pytest.raises(InputError, match=MSG_TARGET_RANGE.split("{")[0]):
        FairUsePoissonRegressor(encoding="none", fair_use=None).fit(X, y - 1.0)
    # the squared error's rounding check (squared errors float64 cannot resolve) is the
    # squared error's: rates of spread 1e9 are refused by it, not by the Poisson loss
    big, w = y * 1e9, np.ones(len(y))
    with pytest.raises(InputError, match="spread"):
        FairUseRegressor(encoding="none", fair_use=None).fit(X, big)
    with pytest.raises(InputError, match="spread"):
        LOSSES["squared_error"]().check_spread(big, w)
    PoissonLoss().check_spread(big, w)
    # rates c y: the loss of c y at s + log c is c times the loss of y at s, up to a
    # constant, so with the penalty c times larger the same slopes and the intercept
    # shifted by log c
    c = 1e3
    m = FairUsePoissonRegressor(encoding="none", fair_use=None, l2=ALPHA * c).fit(X, y * c)
    ref = FairUsePoissonRegressor(encoding="none", fair_use=None, l2=ALPHA).fit(X, y)
    np.testing.assert_allclose(m.coef_[0], ref.coef_[0], rtol=1e-5, atol=1e-7)
    assert m.intercept_[0] == pytest.approx(ref.intercept_[0] + np.log(c), abs=1e-6)
    # the common set: 5 log-rate units around the generic intercept (not 5 sd of y)
    p = FairUsePoissonRegressor(fair_use=None).fit(X, y, groups=groups)
    assert p.set_spec_.intercept_bound == 5.0
    s = FairUseRegressor(fair_use=None).fit(X, y, groups=groups)
    assert s.set_spec_.intercept_bound == pytest.approx(5.0 * np.std(y), rel=1e-12)
    # exponential cones: ECOS first; the squared error's quadratic: Clarabel first
    assert solver_order("auto", quadratic=PoissonLoss.quadratic)[0] == "ECOS"
    assert solver_order("auto", quadratic=LOSSES["squared_error"].quadratic)[0] == "CLARABEL"


def test_certificate_verify_recomputes_the_guarantee_from_predictions():
    """Certificate.verify (public, moved next to the certificate): empty on the training
    data of a verified fit, and it finds the envy planted by swapping two groups' models."""
    X, y, groups, _ = poisson_data(seed=1)
    m = FairUsePoissonRegressor(encoding="intersectional", fair_use="both", l2=ALPHA).fit(X, y, groups=groups)
    assert m.certificate_.verify(m, X, y, groups=groups) == []
    bad = model_io.loads(m.to_json())
    i, j = int(np.argmin(bad.intercept_)), int(np.argmax(bad.intercept_))
    bad.intercept_[[i, j]] = bad.intercept_[[j, i]]  # two groups served each other's rate
    failures = bad.certificate_.verify(bad, X, y, groups=groups)
    assert any(f.startswith("envy:") for f in failures)


# --------------------------------------------------------------------------- system, file, command line
def poisson_system_data(n, seed):
    """Counts with strong group effects on the log-rate; B unreported on 20% of the rows."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 2)), columns=["x1", "x2"])
    A = rng.choice(["a0", "a1", "a2"], n, p=[0.4, 0.35, 0.25])
    B = rng.choice(["b0", "b1"], n)
    s = 0.5 + 0.4 * X.x1 - 0.2 * X.x2 + 0.8 * ((A == "a1") * 1.0 - (A == "a0")) + 0.5 * (B == "b1")
    y = rng.poisson(np.exp(s)).astype(float)
    G = pd.DataFrame({"A": A, "B": B}).astype(object)
    G.loc[rng.random(n) < 0.2, "B"] = None
    return X, y, G


@pytest.fixture(scope="module")
def poisson_system():
    from fairuse_opt import fit_system
    from fairuse_opt.system import default_candidates

    X, y, G = poisson_system_data(1200, 0)
    pool = {k: (FairUsePoissonRegressor(**e.get_params()), a)
            for k, (e, a) in default_candidates(["A", "B"], "regression", encodings=("intersectional",)).items()}
    system = fit_system(X, y, G, candidates=pool, generic=FairUsePoissonRegressor(encoding="none"),
                        task="regression", n_boot=200, random_state=0)
    return system


def test_a_poisson_system_assigns_by_poisson_deviance_and_scores_d2(poisson_system):
    """The loss decides the system's default metric (mean Poisson deviance) and its score
    (D^2, as scikit-learn's PoissonRegressor.score)."""
    from sklearn.metrics import d2_tweedie_score, mean_poisson_deviance

    system = poisson_system
    assert system.metric_ == "poisson_deviance"
    X, y, G = poisson_system_data(400, 5)
    pred = system.predict(X, groups=G)
    assert (pred > 0).all()
    assert system.score(X, y, groups=G) == pytest.approx(d2_tweedie_score(y, pred, power=1), rel=1e-12)
    # the gain column is the deviance the generic model loses more than the served one, on the
    # assignment rows: positive where a personalized model is served at strength 1
    personal = [o for o, f in system.served_.items() if f[0] != "generic"]
    assert personal and all(system.assignment_.set_index("option").loc[
        r, "gain_generic"] > 0 for r in system.assignment_.option[system.assignment_.served != "generic"])
    assert mean_poisson_deviance(y, system.generic_.predict(X)) > mean_poisson_deviance(y, pred)


def test_a_poisson_system_file_round_trips_and_scores_with_the_log_link(poisson_system, tmp_path):
    """Written, read back, and scored from the file by hand (exp(intercept + coef . x)):
    the same predictions as the live system to 1e-12, shrunk rungs included (blended on
    the log-rate, as the file's linear models are)."""
    system = poisson_system
    served = {f[0] for f in system.served_.values()}
    assert any(name.endswith("@0.5") or name.endswith("@0.25") for name in served)  # a shrunk rung
    path = tmp_path / "system.json"
    system.to_json(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["task"] == "regression" and doc["loss"] == "poisson" and doc["system"]["metric"] == "poisson_deviance"
    loaded = model_io.loads(path)
    assert loaded.metric_ == "poisson_deviance" and loaded.generic_.loss_ == PoissonLoss()
    X, y, G = poisson_system_data(300, 7)
    want = system.predict(X, groups=G)
    np.testing.assert_allclose(loaded.predict(X, groups=G), want, rtol=1e-12, atol=0)
    assert loaded.score(X, y, groups=G) == pytest.approx(system.score(X, y, groups=G), rel=1e-12)
    table = {tuple(r["option"]): r["model"] for r in doc["options"]}
    keys = [tuple(None if pd.isna(v) else v for v in r) for r in G.itertuples(index=False, name=None)]
    by_hand = np.exp([doc["models"][table[k]]["intercept"] + np.dot(doc["models"][table[k]]["coef"], x)
                      for k, x in zip(keys, X.to_numpy())])
    np.testing.assert_allclose(by_hand, want, rtol=1e-12, atol=0)
    assert model_io.dumps(loaded) == model_io.dumps(system)
    # a file naming a loss of the other task is refused, naming the field
    with pytest.raises(InputError, match="loss must be one of"):
        model_io.loads(json.dumps({**doc, "loss": "log_loss"}))
    # a file without the loss (written before it was recorded) is a squared-error system
    old = model_io.loads(json.dumps({k: v for k, v in doc.items() if k != "loss"}))
    assert old.generic_.loss_ == LOSSES["squared_error"]()


def test_a_poisson_system_file_matches_the_schema(poisson_system):
    import jsonschema

    validator = jsonschema.Draft202012Validator(model_io.schema())
    doc = json.loads(poisson_system.to_json())
    assert not list(validator.iter_errors(doc))
    assert list(validator.iter_errors({**doc, "loss": "gamma"}))


def _poisson_csv(path, n, seed):
    X, y, G = poisson_system_data(n, seed)
    frame = pd.concat([X, G, pd.Series(y, name="count")], axis=1)
    frame.to_csv(path, index=False)
    return X, y, G


def test_command_line_fit_and_predict_task_poisson(tmp_path, capsys):
    """``fit --task poisson`` writes a Poisson model; ``predict`` gives exp(score)."""
    from fairuse_opt.cli import main

    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    X, y, G = _poisson_csv(train, 600, 1)
    keep = G.B.notna()
    pd.concat([X, G, pd.Series(y, name="count")], axis=1)[keep].to_csv(train, index=False)
    Xt, _, Gt = _poisson_csv(test, 100, 2)
    pd.concat([Xt, Gt], axis=1)[Gt.B.notna()].to_csv(test, index=False)
    model, out = tmp_path / "m.json", tmp_path / "pred.csv"
    assert main(["fit", "--data", str(train), "--target", "count", "--groups", "A,B", "--task", "poisson",
                 "--out", str(model), "--quiet"]) == 0
    doc = json.loads(model.read_text(encoding="utf-8"))
    assert doc["loss"] == "poisson"
    est = model_io.loads(model)
    assert isinstance(est, FairUsePoissonRegressor) and est.certificate_.verified
    # the same fit in Python
    ref = FairUsePoissonRegressor().fit(X[keep], y[keep], groups=G[keep].astype(str))
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--data", str(test), "--out", str(out)]) == 0
    pred = pd.read_csv(out)
    rows = Gt.B.notna().to_numpy()
    want = est.predict(Xt[rows], groups=Gt[rows].reset_index(drop=True))
    np.testing.assert_allclose(pred["prediction"], want, rtol=1e-12)
    np.testing.assert_allclose(pred["prediction"], np.exp(est.decision_function(
        Xt[rows], groups=Gt[rows].reset_index(drop=True))), rtol=1e-12)
    # negative counts: a clear error, nothing written
    bad = tmp_path / "bad.csv"
    pd.concat([X, G, pd.Series(y - 5, name="count")], axis=1)[keep].to_csv(bad, index=False)
    assert main(["fit", "--data", str(bad), "--target", "count", "--groups", "A,B", "--task", "poisson",
                 "--out", str(tmp_path / "bad.json"), "--quiet"]) == 2
    assert "poisson" in capsys.readouterr().err and not (tmp_path / "bad.json").exists()


def test_command_line_fit_system_task_poisson(tmp_path, capsys):
    """``fit --system --task poisson``: a Poisson pool, assigned by Poisson deviance; the
    file's predictions (``predict``) are the loaded system's."""
    from fairuse_opt.cli import main

    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    _poisson_csv(train, 1200, 0)
    Xt, _, Gt = _poisson_csv(test, 200, 3)
    pd.concat([Xt, Gt], axis=1).to_csv(test, index=False)
    model, out = tmp_path / "s.json", tmp_path / "pred.csv"
    assert main(["fit", "--system", "--data", str(train), "--target", "count", "--groups", "A,B", "--task",
                 "poisson", "--n-boot", "200", "--seed", "0", "--out", str(model), "--quiet"]) == 0
    doc = json.loads(model.read_text(encoding="utf-8"))
    assert doc["loss"] == "poisson" and doc["system"]["metric"] == "poisson_deviance"
    types = {c["type"] for c in doc["candidates"].values()}  # the pool's, and its shrunk rungs
    assert "FairUsePoissonRegressor" in types and types <= {"FairUsePoissonRegressor", "ShrunkModel"}
    system = model_io.loads(model)
    assert any(f[0] != "generic" for f in system.served_.values())
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--data", str(test), "--out", str(out)]) == 0
    pred = pd.read_csv(out)
    groups = pd.read_csv(test, dtype={"A": object, "B": object})[["A", "B"]]
    want = system.predict(Xt, groups=groups.astype(object).where(groups.notna(), None))
    np.testing.assert_allclose(pred["prediction"], want, rtol=1e-12)
    assert (pred["prediction"] > 0).all()


# --------------------------------------------------------------------------- rates of order 1e9
def _large_rate_data():
    """Exact rates (no noise) with known log-linear effects: rates times 1e3 and 1e9 are the
    same problem up to the intercept (log 1e6) and the penalty's weight relative to the loss."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    g = rng.integers(0, 4, 400)
    groups = pd.DataFrame({"a": g % 2, "b": g // 2})
    mu = np.exp(0.4 * X[:, 0] - 0.15 * X[:, 1] + RATE_OFFSETS[g])
    return X, groups, mu


@pytest.mark.parametrize("encoding", ["none", "intersectional", "decoupled"])
@pytest.mark.parametrize("fair_use", [None, "both"])
def test_rates_of_order_1e9_give_the_coefficients_of_rates_of_order_1e3(encoding, fair_use):
    """The reproduction of issue 25: with rates of order 1e9 native Newton missed its fixed
    gradient tolerance (1e-10, below the gradient's rounding), fell back to CLARABEL,
    which returned "optimal" with coefficient 0.0096 for 0.4.  The gradient tolerance is
    now relative to the Poisson loss's scale (the mean rate)."""
    X, groups, mu = _large_rate_data()
    gr = groups if encoding != "none" else None
    fits = {c: FairUsePoissonRegressor(encoding=encoding, fair_use=fair_use).fit(X, mu * c, groups=gr)
            for c in (1e3, 1e9)}
    small, large = fits[1e3], fits[1e9]
    assert large.certificate_.solver == "NATIVE" and large.certificate_.verified
    np.testing.assert_allclose(large.coef_, small.coef_, atol=1e-5)
    np.testing.assert_allclose(large.intercept_ - np.log(1e9), small.intercept_ - np.log(1e3), atol=1e-5)
    if encoding != "none":  # and the truth (the penalty is small): slopes 0.4 and -0.15
        np.testing.assert_allclose(large.coef_[0], [0.4, -0.15], atol=1e-5)


def test_a_conic_solvers_wrong_optimal_is_polished_not_served():
    """CLARABEL, asked for explicitly on rates of order 1e9, says "optimal" for a solution a
    Newton step improves by 6e-4 of the objective (its coefficient 0.31 for 0.4): not served
    as it is, but polished by Newton's method to the right coefficients (those of rates of
    order 1e3, the intercept shifted by log 1e6); the attempts say so."""
    X, _, mu = _large_rate_data()
    m9 = FairUsePoissonRegressor(encoding="none", fair_use=None, solver="CLARABEL").fit(X, mu * 1e9)
    m3 = FairUsePoissonRegressor(encoding="none", fair_use=None).fit(X, mu * 1e3)
    np.testing.assert_allclose(m9.coef_[0], m3.coef_[0], atol=1e-5)
    assert float(m9.intercept_[0] - m3.intercept_[0]) == pytest.approx(np.log(1e6), abs=1e-5)
    # at rates of order 1e3 the same solver is right (scikit-learn's answer), and is not refused
    m = FairUsePoissonRegressor(encoding="none", fair_use=None, solver="CLARABEL").fit(X, mu * 1e3)
    ref = PoissonRegressor(alpha=2e-3, tol=1e-12, max_iter=10_000).fit(X, mu * 1e3)
    np.testing.assert_allclose(m.coef_[0], ref.coef_, atol=1e-5)


def test_a_wrong_optimal_that_newton_cannot_polish_is_refused(monkeypatch):
    """The refusal branch: the same wrong CLARABEL answer, Newton's polish made to fail."""
    from fairuse_opt.exceptions import MSG_WRONG_OPTIMAL, SolverError
    from fairuse_opt.fairness import routes

    real = routes.native.newton

    def failing(prob, theta, *args, **kw):
        res = real(prob, theta, *args, **kw)
        if kw.get("max_steps") == 20:  # the polish only
            res.status = "max_iter"
        return res

    monkeypatch.setattr(routes.native, "newton", failing)
    X, _, mu = _large_rate_data()
    with pytest.raises(SolverError) as info:
        FairUsePoissonRegressor(encoding="none", fair_use=None, solver="CLARABEL").fit(X, mu * 1e9)
    head = MSG_WRONG_OPTIMAL.split("{excess")[0].format(solver="CLARABEL", what="unconstrained fit")
    assert str(info.value).startswith(head)
