"""The pool of fit_system fitted faster, and the same: work shared between fits on the
same rows (fairuse_opt._fitcache) gives the models of fits on their own, bit for bit;
out-of-fold scores equal a row-by-row computation."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pandas as pd
import pytest

from fairuse_opt import FairUseClassifier, fit_system
from fairuse_opt import _fitcache
from fairuse_opt.fairness import routes
from fairuse_opt.system import _fit, _select
from fairuse_opt.system._fit import default_candidates
from fairuse_opt.system._select import fold_ids, out_of_fold


def _data(n=600, seed=0):
    """Two attributes (A: 2 levels, B: 3), 3 features, a slope and an intercept per
    group; some rows do not report B."""
    rng = np.random.default_rng(seed)
    A = rng.choice(["a0", "a1"], n)
    B = rng.choice(["b0", "b1", "b2"], n, p=[0.5, 0.3, 0.2])
    X = rng.normal(size=(n, 3))
    g = (A == "a1") * 1 + (B == "b1") * 2 + (B == "b2") * 4
    logit = X @ np.array([1.0, -0.5, 0.3]) + 0.8 * X[:, 0] * (B == "b2") + 0.6 * (A == "a1") - 0.4 * g / 4
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    groups = pd.DataFrame({"A": A, "B": pd.Series(B, dtype=object)})
    groups.loc[rng.random(n) < 0.1, "B"] = np.nan
    return pd.DataFrame(X, columns=["x0", "x1", "x2"]), y, groups


def _fit_all(pool, X, y, groups):
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (est, attrs) in pool.items():
            rows = groups[attrs].notna().all(axis=1).to_numpy()
            out[name] = est.fit(X[rows], y[rows], groups=groups[rows][attrs].reset_index(drop=True))
    return out


def _count_unconstrained(monkeypatch):
    calls = []
    run = routes.Unconstrained.run

    def counted(self, setup, start):
        calls.append(setup.problem.family.encoding)
        return run(self, setup, start)

    monkeypatch.setattr(routes.Unconstrained, "run", counted)
    return calls


def test_shared_fits_give_the_models_of_fits_on_their_own(monkeypatch):
    X, y, groups = _data()
    calls = _count_unconstrained(monkeypatch)
    alone = _fit_all(default_candidates(["A", "B"]), X, y, groups)
    n_alone = len(calls)
    calls.clear()
    with _fitcache.shared_fits():
        shared = _fit_all(default_candidates(["A", "B"]), X, y, groups)
    assert set(alone) == set(shared) and len(alone) == 15
    for name in alone:
        a, s = alone[name], shared[name]
        assert np.array_equal(a.coef_, s.coef_), name
        assert np.array_equal(a.intercept_, s.intercept_), name
        assert a.certificate_.route == s.certificate_.route, name
        assert a.certificate_.verified == s.certificate_.verified, name
        assert np.array_equal(a.generic_.coef_, s.generic_.coef_), name
    # every candidate runs the unconstrained fit alone; in the pool the 6 fair-use ones
    # (intersectional and decoupled on 3 attribute subsets) reuse their sibling's
    assert n_alone == 15
    assert len(calls) == 15 - 6


def test_shared_fits_are_keyed_on_the_rows_and_the_parameters():
    X, y, groups = _data()
    y2 = y.copy()
    y2[:40] = 1 - y2[:40]
    fits = [(y, 1e-3, "intersectional"), (y2, 1e-3, "intersectional"), (y, 1e-1, "intersectional"),
             (y, 1e-3, "decoupled"), (y2, 1e-3, "decoupled")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = [FairUseClassifier(encoding=e, alpha=a, fair_use=None).fit(X, t, groups=groups[["A"]])
                 for t, a, e in fits]
        with _fitcache.shared_fits():
            shared = [FairUseClassifier(encoding=e, alpha=a, fair_use=None).fit(X, t, groups=groups[["A"]])
                      for t, a, e in fits]
    for a, s in zip(alone, shared):
        assert np.array_equal(a.coef_, s.coef_) and np.array_equal(a.intercept_, s.intercept_)
    # the fits differ from each other (a stale reuse would have made them equal)
    assert not np.allclose(alone[0].coef_, alone[1].coef_)
    assert not np.allclose(alone[0].coef_, alone[2].coef_)


def test_nothing_is_kept_outside_shared_fits():
    assert not _fitcache.active()
    with _fitcache.shared_fits():
        assert _fitcache.active()
        _fitcache.store(b"k", "rows", 1)
        assert _fitcache.lookup(b"k", "rows") == 1
        with _fitcache.shared_fits():  # a nested block starts empty
            assert _fitcache.lookup(b"k", "rows") is None
        assert _fitcache.lookup(b"k", "rows") == 1
    assert not _fitcache.active()
    assert _fitcache.lookup(b"k", "rows") is None
    _fitcache.store(b"k", "rows", 2)  # outside a block: not kept
    with _fitcache.shared_fits():
        assert _fitcache.lookup(b"k", "rows") is None


def test_shared_fits_keep_the_latest_designs_only():
    with _fitcache.shared_fits():
        for i in range(_fitcache.MAX_DESIGNS + 2):
            _fitcache.store(bytes([i]), "rows", i)
        kept = [i for i in range(_fitcache.MAX_DESIGNS + 2) if _fitcache.lookup(bytes([i]), "rows") is not None]
    assert kept == list(range(2, _fitcache.MAX_DESIGNS + 2))


def test_digest_sees_values_order_and_dtype():
    a = np.arange(12.0).reshape(3, 4)
    assert _fitcache.digest(a) == _fitcache.digest(np.asfortranarray(a).copy(order="C"))
    assert _fitcache.digest(a) != _fitcache.digest(a.T.copy())  # same bytes, other shape
    assert _fitcache.digest(np.asfortranarray(a)) != _fitcache.digest(a)  # same values, F order: marked
    b = a.copy()
    b[2, 3] += 1e-12
    assert _fitcache.digest(a) != _fitcache.digest(b)
    assert _fitcache.digest(a) != _fitcache.digest(a.astype(np.float32))
    assert _fitcache.digest(a[:, ::2]) == _fitcache.digest(np.ascontiguousarray(a[:, ::2]))


def test_fit_system_is_unchanged_by_shared_fits(monkeypatch):
    X, y, groups = _data(n=500, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shared = fit_system(X, y, groups, n_boot=200, random_state=1)
        monkeypatch.setattr(_fit, "shared_fits", contextlib.nullcontext)
        monkeypatch.setattr(_select, "shared_fits", contextlib.nullcontext)
        alone = fit_system(X, y, groups, n_boot=200, random_state=1)
    assert shared.served_ == alone.served_
    pd.testing.assert_frame_equal(shared.assignment_, alone.assignment_, check_exact=True)
    for name, model in alone.pool_["fitted"].items():
        assert np.array_equal(model.coef_, shared.pool_["fitted"][name].coef_), name
        assert np.array_equal(model.intercept_, shared.pool_["fitted"][name].intercept_), name
    oa, os_ = alone.pool_["oof"], shared.pool_["oof"]
    assert np.array_equal(oa.generic, os_.generic, equal_nan=True)
    for name in oa.candidates:
        assert np.array_equal(oa.candidates[name], os_.candidates[name], equal_nan=True), name


def test_out_of_fold_scores_equal_a_row_by_row_computation():
    X, y, groups = _data(n=400, seed=5)
    pool = {k: v for k, v in default_candidates(["A", "B"]).items()
            if k in ("intersectional[A,B]", "decoupled[B]", "onehot[A]")}
    folds = fold_ids(y, groups, 3, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oof = out_of_fold(X, y, groups, pool, FairUseClassifier(encoding="none"), folds, classification=True)
        for name, (est, attrs) in pool.items():
            expected = np.full(len(y), np.nan)
            for k in range(3):
                train = (folds != k) & groups[attrs].notna().all(axis=1).to_numpy()
                model = est.fit(X[train], y[train], groups=groups[train][attrs].reset_index(drop=True))
                for i in np.flatnonzero(folds == k):
                    report = tuple(groups.iloc[i][attrs])
                    if any(pd.isna(v) for v in report):
                        continue
                    expected[i] = model.predict_proba(X.iloc[[i]], report=report)[0, 1]
            assert np.isnan(oof.candidates[name]).sum() == np.isnan(expected).sum() > (0 if "B" in attrs else -1)
            np.testing.assert_allclose(oof.candidates[name], expected, rtol=1e-12, atol=0, equal_nan=True)


def test_digests_are_remembered_for_read_only_arrays_only():
    a = np.arange(10000.0)
    with _fitcache.shared_fits():
        d1 = _fitcache.digest(a)
        a[5] = -1.0  # a writeable array is hashed again: its change is seen
        d2 = _fitcache.digest(a)
        assert d1 != d2
        b = a.copy()
        b.flags.writeable = False
        db = _fitcache.digest(b)
        assert db == d2 and db == _fitcache.digest(b)
        assert any(arr is b for arr, _ in _fitcache._DIGESTS.get())
        assert not any(arr is a for arr, _ in _fitcache._DIGESTS.get())
    assert _fitcache._DIGESTS.get() is None


def test_row_subsets_as_arrays_are_the_estimators_own_conversion():
    from fairuse_opt._validation import check_features
    from fairuse_opt.system._select import RowSubsets

    X, _, _ = _data(n=50)
    X["flag"] = np.arange(50) % 2 == 0  # a bool column, converted to 0/1
    rows = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    subsets = RowSubsets(X, arrays=True)
    arr = subsets.take(rows)
    np.testing.assert_array_equal(arr, check_features(X.iloc[rows])[0])
    assert arr.dtype == np.float64 and not arr.flags.writeable
    assert subsets.take(rows.copy()) is arr  # taken once
    assert RowSubsets(X).take(rows).equals(X.iloc[rows])
