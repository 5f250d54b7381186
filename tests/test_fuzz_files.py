"""A short seeded run of the certificate and model-file fuzz (issue 24); the long run is
``python benchmarks/fuzz_files.py`` (counts in ``benchmarks/results/fuzz_files.md``).

The harness is tested first: a lying certificate, a loader that returns another model than
its file says, and a raw exception are each caught (so that zero bad outcomes means
something)."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from fairuse_opt import FairUseClassifier, model_io

REPO = Path(__file__).resolve().parents[1]


def _load_fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_files", REPO / "benchmarks" / "fuzz_files.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


F = _load_fuzz()


@pytest.fixture(scope="module")
def base():
    docs = F.base_documents()
    return docs, [json.dumps(d, indent=1, ensure_ascii=False) for _, d in docs]


def _problem(seed=0, n=200):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) + np.array([0.0, 1e6])  # an offset: rounding matters
    import pandas as pd

    g = pd.DataFrame({"g0": rng.integers(0, 3, n)})
    y = (X[:, 0] + 0.8 * (g["g0"].to_numpy() - 1) + rng.logistic(size=n) > 0).astype(int)
    return X, y, g


# --------------------------------------------------------------------------- the harness can fail
def test_a_lying_certificate_is_caught_in_long_double():
    X, y, g = _problem()
    est = FairUseClassifier(margin=0.01).fit(X, y, groups=g)
    L, L0, keys = F.longdouble_losses(est, X, y, g, None)
    worst, bad = F.certificate_lies(est.certificate_, L, L0)
    assert est.certificate_.verified and not bad and worst <= est.certificate_.tolerance
    # the float64 table agrees with long double within the rounding of the scores
    room = F.rounding_room(est, X, y, g, None, keys, est.coef_, est.intercept_)
    own = np.diag(L).astype(np.float64)
    assert np.all(np.abs(est.certificate_.table["own_loss"].to_numpy() - own) <= room)
    # served models moved after the fit: the same certificate now lies, and is caught
    est.intercept_ = est.intercept_ + np.array([2.0, -2.0, 2.0])
    L, L0, _ = F.longdouble_losses(est, X, y, g, None)
    worst, bad = F.certificate_lies(est.certificate_, L, L0)
    assert worst > 0.1 and any(b.startswith("rationality") for b in bad)


def test_a_loader_that_changes_the_model_is_caught(base):
    docs, _ = base
    name, doc = docs[0]
    est = model_io.loads(json.dumps(doc))
    tally = F.Tally("model files")
    F.check_loaded(doc, est, "faithful", tally)
    assert tally.counts == {}
    est.coef_ = est.coef_.copy()
    est.coef_[1, 0] += 1e-9  # what a loader rounding a coefficient would give
    F.check_loaded(doc, est, "changed", tally)
    assert tally.counts == {"silent wrong": 1}
    est = model_io.loads(json.dumps(doc))
    est.certificate_.table.loc[0, "rationality_slack"] = -1.0  # verified, but not by its table
    F.check_loaded(doc, est, "verified with a violation", tally)
    assert tally.counts == {"silent wrong": 2}


def test_a_raw_exception_and_an_unnamed_refusal_are_counted(base, monkeypatch):
    docs, texts = base
    from fairuse_opt import InputError

    def raw(source):
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(model_io, "loads", raw)
    tally = F.Tally("model files")
    F.run_file_case(0, docs, texts, 0, tally)
    assert tally.counts == {"crash": 1}

    def unnamed(source):
        raise InputError("x" * 3000)

    monkeypatch.setattr(model_io, "loads", unnamed)
    F.run_file_case(1, docs, texts, 0, tally)
    assert tally.counts == {"crash": 1, "refused": 1, "long message": 1, "unnamed refusal": 1}


def test_every_mutation_operator_is_drawn(base):
    """The mutations of a short run cover every operator of both kinds (a mutation that is
    never drawn tests nothing)."""
    docs, texts = base
    seen = []
    for i in range(600):
        rng = np.random.default_rng([0, 2424, i])
        k = int(rng.integers(len(docs)))
        if rng.random() < 0.75:
            what, _ = F.mutate_document(docs[k][1], rng)
        else:
            what, _ = F.mutate_text(texts[k], rng)
        seen.append(what)
    for pattern in ("delete ", "nudge ", " = value of ", "in list ", "string ", "extra key", "nested",
                    " = None", " = ''", "truncate", "flip byte", "byte-order mark", "UTF-16", "whitespace",
                    "format version", "overflow token", "leading zero token", "nan token", "given twice"):
        assert any(pattern in w for w in seen), pattern


# --------------------------------------------------------------------------- the short run
def test_short_run_certificates_never_lie():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = F.run(seed=2024, n_certificates=30, n_files=0)
    t = result["certificates"]
    bad = {k: v for k, v in t["counts"].items() if k in F.BAD}
    assert not bad, t["examples"]
    assert t["counts"]["guarantees checked"] >= 12, t["counts"]  # the oracle ran on real guarantees
    assert t["counts"]["round trips"] >= 20, t["counts"]
    assert t["worst"]["largest violation in long double of a verified certificate"] <= 1e-7


def test_short_run_model_files_are_refused_clearly_or_load_faithfully():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = F.run(seed=2024, n_certificates=0, n_files=600)
    t = result["model files"]
    bad = {k: v for k, v in t["counts"].items() if k in F.BAD}
    assert not bad, t["examples"]
    assert t["counts"]["refused"] >= 250 and t["counts"]["loaded"] >= 80, t["counts"]
    assert t["max_message"] <= F.MAX_MESSAGE


# --------------------------------------------------------------------------- cases the fuzz found
@pytest.mark.parametrize("seed", [206, 246])
def test_falling_back_to_an_external_linear_generic_model_verifies(seed):
    """Fuzz cases 206 and 246: groups given an external FairUseClassifier(encoding="none")
    were served exactly its coefficients, but its losses were taken from predict_proba
    (probabilities clipped to 1e-15) while the served models' came from their scores: the
    same model was 'worse than itself' by up to 3e-6 and the fit ended unverified."""
    from fairuse_opt import FairUseClassifier, FairUseRegressor

    prob = F._cert_problem(seed)
    assert prob["params"]["on_infeasible"] == "generic" and "generic=library" in prob["notes"]
    cls = FairUseClassifier if prob["task"] == "classification" else FairUseRegressor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = cls(**prob["params"]).fit(prob["X"], prob["y"], groups=prob["groups"], sample_weight=prob["w"])
    cert = est.certificate_
    assert cert.table["generic_fallback"].any()
    assert cert.verified, cert.failures
    gen = prob["params"]["generic"]
    for g, row in cert.table.iterrows():
        if row["generic_fallback"]:
            k = est.groups_.index(row["group"])
            np.testing.assert_array_equal(est.coef_[k], gen.coef_[0])
            assert row["own_loss"] == row["generic_loss"]
