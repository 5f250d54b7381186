"""Audit metrics: the vectorised bootstrap kernels agree with scikit-learn's metrics
called with ``sample_weight`` (and with naive loops where scikit-learn has none)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from fairuse_opt.audit import Metric, expected_calibration_error
from fairuse_opt.audit._errors import (
    MSG_DUPLICATE_METRIC,
    MSG_METRIC_CALLABLE,
    MSG_METRIC_TASK,
    MSG_NO_METRICS,
    MSG_UNKNOWN_METRIC,
)
from fairuse_opt.audit._metrics import get_metric, resolve_metrics
from fairuse_opt.exceptions import InputError

C, R = "classification", "regression"


def _sklearn_reference(name, y, s, w):
    if name == "error":
        return skm.zero_one_loss(y, s > 0.5, sample_weight=w)
    if name == "auc":
        return skm.roc_auc_score(y, s, sample_weight=w)
    if name == "log_loss":
        return skm.log_loss(y, s, sample_weight=w, labels=[0, 1])
    if name == "brier":
        return skm.brier_score_loss(y, s, sample_weight=w, labels=[0, 1])
    if name == "ece":
        return _ece_naive(y, s, w, 10)
    if name == "mse":
        return skm.mean_squared_error(y, s, sample_weight=w)
    if name == "mae":
        return skm.mean_absolute_error(y, s, sample_weight=w)
    raise AssertionError(name)


def _ece_naive(y, p, w, n_bins):
    """Bin k holds edges[k] < p <= edges[k + 1] (bin 0 also holds 0), as calibration_curve."""
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for k in range(n_bins):
        inside = [i for i in range(len(p)) if (p[i] <= edges[k + 1] or k == n_bins - 1)
                  and (p[i] > edges[k] or k == 0)]
        total += abs(sum(w[i] * (p[i] - y[i]) for i in inside))
    return total / sum(w)


def _data(seed, n=40, task=C):
    rng = np.random.default_rng(seed)
    if task == C:
        y = (rng.random(n) < 0.4).astype(float)
        y[:2] = [0.0, 1.0]
        S = np.round(rng.random((n, 3)), 1)  # ties, and exact 0.5 and bin edges
        S[:, 2] = S[:, 0]  # a duplicated column
        S = np.clip(S, 0.0, 1.0)
    else:
        y = rng.normal(size=n)
        S = np.round(y[:, None] + rng.normal(size=(n, 3)), 1)
    counts = rng.multinomial(n, np.full(n, 1 / n), size=6)
    counts[0] = 1  # the sample itself
    return y, S, counts


@pytest.mark.parametrize("name,task", [("error", C), ("auc", C), ("log_loss", C), ("brier", C),
                                       ("ece", C), ("mse", R), ("mae", R)])
@pytest.mark.parametrize("seed", range(3))
def test_kernels_match_weighted_sklearn_metrics(name, task, seed):
    y, S, counts = _data(seed, task=task)
    metric = get_metric(name, task)
    got = metric.evaluate(metric.prepare(y, S), counts)
    assert got.shape == (counts.shape[0], S.shape[1])
    ref = [[_sklearn_reference(name, y, S[:, k], w) for k in range(S.shape[1])] for w in counts]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # the metric's own definition (scikit-learn) on the unweighted sample
    np.testing.assert_allclose(got[0], [metric(y, S[:, k]) for k in range(S.shape[1])], rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4), st.integers(0, 3)), min_size=2, max_size=25))
def test_auc_kernel_with_ties_and_zero_weights(rows):
    y = np.array([float(r[0]) for r in rows])
    s = np.array([r[1] / 4 for r in rows])[:, None]
    w = np.array([r[2] for r in rows])[None, :]
    metric = get_metric("auc", C)
    got = metric.evaluate(metric.prepare(y, s), w)[0, 0]
    if w[0, y == 1].sum() == 0 or w[0, y == 0].sum() == 0:
        assert np.isnan(got)
    else:
        ref = skm.roc_auc_score(y, s[:, 0], sample_weight=w[0])
        assert got == pytest.approx(ref, abs=1e-12)
        # float weights take the float path and agree
        assert metric.evaluate(metric.prepare(y, s), w.astype(float))[0, 0] == pytest.approx(ref, abs=1e-12)


def test_auc_shares_work_between_columns_with_the_same_ranking():
    y, S, counts = _data(0)
    shifted = np.column_stack([S[:, 0], np.clip(S[:, 0] * 0.5 + 0.1, 0, 1), S[:, 1]])
    metric = get_metric("auc", C)
    state = metric.prepare(y, shifted)
    assert len(state[2]) == 2  # two distinct rankings
    got = metric.evaluate(state, counts)
    np.testing.assert_array_equal(got[:, 0], got[:, 1])


def test_ece_hand_example_and_calibration_curve():
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.05, 0.15, 0.8, 0.85, 0.95])
    # bins: [0, 0.1]: 0.05 - 0 ; (0.1, 0.2]: 0.15 - 1 ; (0.7, 0.8]: 0.8 - 1 ; (0.8, 0.9]: 0.85 - 0 ;
    # (0.9, 1]: 0.95 - 1
    hand = (0.05 + 0.85 + 0.2 + 0.85 + 0.05) / 5
    assert expected_calibration_error(y, p) == pytest.approx(hand)
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.3).astype(int)
    p = np.round(rng.random(500), 2)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=8, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 9)[1:-1], p), minlength=8)
    counts = counts[counts > 0]
    ref = np.sum(counts / 500 * np.abs(prob_true - prob_pred))
    assert expected_calibration_error(y, p, n_bins=8) == pytest.approx(ref)


def test_user_metric_bootstrap_equals_builtin():
    y, S, counts = _data(1)
    brier = get_metric("brier", C)
    mine = Metric("my_brier", lambda t, p: float(np.mean((p - t) ** 2)), task=C)
    np.testing.assert_allclose(mine.evaluate(mine.prepare(y, S), counts),
                               brier.evaluate(brier.prepare(y, S), counts), rtol=1e-12)


def test_resolve_metrics_defaults_and_errors():
    assert [m.name for m in resolve_metrics(None, C)] == ["error", "auc", "log_loss", "brier"]
    assert [m.name for m in resolve_metrics(None, R)] == ["mse", "mae"]
    assert [m.name for m in resolve_metrics("auc", C)] == ["auc"]
    assert get_metric("ece", C, n_bins=4).n_bins == 4
    with pytest.raises(InputError) as info:
        resolve_metrics(["mse"], C)
    assert str(info.value) == MSG_METRIC_TASK.format(
        name="mse", task=C, known=["error", "auc", "ece", "log_loss", "brier"])
    with pytest.raises(InputError) as info:
        resolve_metrics(["auc"], R)
    assert str(info.value) == MSG_METRIC_TASK.format(name="auc", task=R, known=["mse", "mae", "poisson_deviance"])
    with pytest.raises(InputError) as info:
        resolve_metrics(["f1"], C)
    assert str(info.value) == MSG_UNKNOWN_METRIC.format(
        name="f1", known=["error", "auc", "ece", "log_loss", "brier", "mse", "mae", "poisson_deviance"])
    with pytest.raises(InputError) as info:
        resolve_metrics([skm.f1_score], C)
    assert str(info.value) == MSG_METRIC_CALLABLE.format(name="f1_score")
    with pytest.raises(InputError) as info:
        resolve_metrics([Metric("r2", skm.r2_score, True, task=R)], C)
    assert str(info.value) == MSG_METRIC_TASK.format(name="r2", task=C, known="see Metric.task")
    with pytest.raises(InputError) as info:
        resolve_metrics([], C)
    assert str(info.value) == MSG_NO_METRICS
    with pytest.raises(InputError) as info:
        resolve_metrics(["auc", "auc"], C)
    assert str(info.value) == MSG_DUPLICATE_METRIC.format(name="auc")


@pytest.mark.parametrize("seed", range(3))
def test_poisson_deviance_kernel_matches_weighted_sklearn(seed):
    """The mean Poisson deviance under count weights equals scikit-learn's weighted
    ``mean_poisson_deviance``, zero counts included (0 log 0 = 0)."""
    rng = np.random.default_rng(seed)
    y = rng.poisson(2.0, size=40).astype(float)
    y[:2] = 0.0
    S = np.exp(rng.normal(size=(40, 3)) * 0.5) * 2.0
    counts = rng.multinomial(40, np.full(40, 1 / 40), size=6)
    metric = get_metric("poisson_deviance", R)
    got = metric.evaluate(metric.prepare(y, S), counts)
    ref = [[skm.mean_poisson_deviance(y, S[:, k], sample_weight=w) for k in range(3)] for w in counts]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # by hand, one row: y = 2, p = 1: 2 (2 log 2 - 2 + 1)
    assert metric(np.array([2.0]), np.array([1.0])) == pytest.approx(2 * (2 * np.log(2) - 1), rel=1e-14)
    assert not metric.greater_is_better and metric.task == R


def test_poisson_deviance_refuses_where_undefined():
    from fairuse_opt.audit._metrics import MSG_POISSON_DEVIANCE

    metric = get_metric("poisson_deviance", R)
    with pytest.raises(InputError) as info:
        metric.prepare(np.array([1.0, 2.0]), np.array([[1.0], [-0.5]]))
    assert str(info.value) == MSG_POISSON_DEVIANCE.format(what="a prediction <= 0", value=-0.5)
    with pytest.raises(InputError) as info:
        metric.prepare(np.array([1.0, -2.0]), np.array([[1.0], [1.0]]))
    assert str(info.value) == MSG_POISSON_DEVIANCE.format(what="a negative target", value=-2.0)
