"""Audit statistics (fairuse_opt/audit/_stats.py), each against an independent computation."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from fairuse_opt.audit import _stats
from fairuse_opt.audit._errors import MSG_BAD_RANDOM_STATE
from fairuse_opt.audit._stats import (
    adjust_pvalues,
    bootstrap_summary,
    delong_test,
    distinct_columns,
    mcnemar_test,
    resample_counts,
    spawn_generators,
)
from fairuse_opt.exceptions import InputError


# ------------------------------------------------------------------ Holm / Bonferroni
def test_holm_and_bonferroni_hand_example():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni"), [0.04, 0.16, 0.12, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, None), p)


def test_nan_entries_are_not_tests():
    p = [0.01, np.nan, 0.04]
    out = adjust_pvalues(p, "holm")
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])  # m = 2, not 3
    assert np.isnan(adjust_pvalues([np.nan], "bonferroni")).all()


def _holm_rejections(p, alpha):
    """Holm's step-down procedure, written from its definition."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    rejected = set()
    for step, i in enumerate(order):
        if p[i] <= alpha / (len(p) - step):
            rejected.add(i)
        else:
            break
    return rejected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12))
def test_holm_adjusted_pvalues_reproduce_the_step_down_procedure(p):
    adj = adjust_pvalues(p, "holm")
    assert (adj >= np.asarray(p) - 1e-15).all() and (adj <= 1.0).all()
    for alpha in (0.01, 0.05, 0.1, 0.2, 0.5):
        # p-values within rounding of a threshold can go either way
        if any(abs(pi - alpha / k) < 1e-12 for pi in p for k in range(1, len(p) + 1)):
            continue
        assert set(np.flatnonzero(adj <= alpha)) == _holm_rejections(p, alpha)


# ------------------------------------------------------------------ McNemar
def _binomial_upper_tail(k: int, n: int) -> float:
    return sum(math.comb(n, j) for j in range(k, n + 1)) / 2 ** n


def test_mcnemar_is_the_exact_binomial_tail():
    own = np.array([1] * 7 + [0] * 2 + [1] * 5 + [0] * 3, dtype=bool)
    base = np.array([0] * 7 + [1] * 2 + [1] * 5 + [0] * 3, dtype=bool)
    # b = 7 rows only the own model gets right, c = 2 only the baseline gets right
    p_violation, p_benefit = mcnemar_test(own, base)
    assert p_violation == pytest.approx(_binomial_upper_tail(2, 9)) == pytest.approx(502 / 512)
    assert p_benefit == pytest.approx(_binomial_upper_tail(7, 9)) == pytest.approx(46 / 512)
    assert mcnemar_test(own, own) == (1.0, 1.0)  # no discordant rows


# ------------------------------------------------------------------ DeLong
def _delong_brute_force(y, a, b):
    """DeLong et al. (1988) from the pairwise kernel, O(m n)."""
    pos, neg = y == 1, y == 0

    def kernel(s):
        d = s[pos][:, None] - s[neg][None, :]
        return (d > 0) + 0.5 * (d == 0)

    ka, kb = kernel(a), kernel(b)
    v10 = ka.mean(axis=1) - kb.mean(axis=1)
    v01 = ka.mean(axis=0) - kb.mean(axis=0)
    gain = ka.mean() - kb.mean()
    var = v10.var(ddof=1) / pos.sum() + v01.var(ddof=1) / neg.sum()
    z = gain / math.sqrt(var)
    p_violation = 0.5 * math.erfc(-z / math.sqrt(2))
    return gain, p_violation, 1.0 - p_violation


@pytest.mark.parametrize("seed", range(4))
def test_delong_matches_the_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    n = 60
    y = (rng.random(n) < 0.4).astype(int)
    a = np.round(y + rng.normal(size=n), 1)  # rounding makes ties
    b = np.round(0.5 * y + rng.normal(size=n), 1)
    gain, p_v, p_b = delong_test(y, a, b)
    ref = _delong_brute_force(y, a, b)
    assert gain == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    np.testing.assert_allclose([gain, p_v, p_b], ref, rtol=1e-10, atol=1e-12)


def test_delong_degenerate_cases():
    y = np.array([0, 0, 1, 1])
    assert delong_test(np.array([0, 1, 1]), np.ones(3), np.ones(3)) is None  # one negative
    assert delong_test(y, np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.1, 0.2, 0.3, 0.4])) == (0.0, 1.0, 1.0)
    # perfect ranking vs constant scores: zero standard error, gain 0.5
    assert delong_test(y, np.array([0.1, 0.2, 0.3, 0.4]), np.full(4, 0.5)) == (0.5, 1.0, 0.0)


# ------------------------------------------------------------------ bootstrap counts
def test_counts_are_stratified_resamples():
    # (the audit uses one stratum per group; the system may use more)
    rng = np.random.default_rng(0)
    chunks = list(resample_counts(rng, [3, 5, 2], 200, chunk_elements=100))
    counts = np.vstack([c for _, c in chunks])
    assert counts.shape == (200, 10)
    assert [s for s, _ in chunks] == list(range(0, 200, 10))
    np.testing.assert_array_equal(counts[:, :3].sum(axis=1), 3)
    np.testing.assert_array_equal(counts[:, 3:8].sum(axis=1), 5)
    np.testing.assert_array_equal(counts[:, 8:].sum(axis=1), 2)
    assert (counts >= 0).all()


def test_counts_follow_the_multinomial():
    rng = np.random.default_rng(1)
    counts = np.vstack([c for _, c in resample_counts(rng, [4], 20_000)])
    # each row of a cell of 4 is drawn Binomial(4, 1/4) times: P(0) = (3/4)^4
    assert counts.mean() == pytest.approx(1.0, abs=0.02)
    assert (counts[:, 0] == 0).mean() == pytest.approx(0.75 ** 4, abs=0.015)
    assert counts.var(axis=0).mean() == pytest.approx(4 * 0.25 * 0.75, abs=0.03)


def test_counts_do_not_depend_on_the_chunk_size():
    def draw(chunk):
        rng = np.random.default_rng(7)
        return np.vstack([c for _, c in resample_counts(rng, [30, 12], 50, chunk_elements=chunk)])

    ref = draw(None)
    for chunk in (1, 42, 43, 500):
        np.testing.assert_array_equal(draw(chunk), ref)


def test_spawned_streams_reproduce_and_differ():
    a, seed_a = spawn_generators(3, 2)
    b, seed_b = spawn_generators(3, 2)
    c, _ = spawn_generators(4, 2)
    assert seed_a == seed_b == 3
    draw = lambda gens: [g.integers(0, 10**9, 5).tolist() for g in gens]  # noqa: E731
    first_a, first_b, first_c = draw(a), draw(b), draw(c)
    assert first_a == first_b
    assert first_a != first_c
    assert first_a[0] != first_a[1]  # groups get different streams
    fresh, seed = spawn_generators(None, 1)
    again, _ = spawn_generators(seed, 1)
    assert draw(fresh) == draw(again)  # the recorded entropy reproduces a None seed


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_bad_random_state(bad):
    with pytest.raises(InputError, match="random_state") as info:
        spawn_generators(bad, 1)
    assert str(info.value) == MSG_BAD_RANDOM_STATE.format(value=bad)


# ------------------------------------------------------------------ p-values and intervals
def test_bootstrap_summary_definition():
    gains = np.array([[-0.2, 0.0], [-0.1, 0.0], [0.0, 0.3], [0.1, 0.2], [0.3, 0.1]])
    out = bootstrap_summary(gains, 0.5)
    # column 0: 3 of 5 resamples >= 0, 3 of 5 <= 0
    np.testing.assert_allclose(out["p_violation"], [(1 + 3) / 6, (1 + 5) / 6])
    np.testing.assert_allclose(out["p_benefit"], [(1 + 3) / 6, (1 + 2) / 6])
    np.testing.assert_allclose(out["ci_low"], np.quantile(gains, 0.25, axis=0))
    np.testing.assert_allclose(out["ci_high"], np.quantile(gains, 0.75, axis=0))


def test_undefined_gains_count_for_neither_direction():
    # a NaN gain (AUC on a resample with one class) is on the null side of both tests
    gains = np.array([[np.nan], [0.2], [0.3], [-0.1], [np.nan], [0.4]])  # B = 6
    out = bootstrap_summary(gains, 0.5)
    assert out["p_benefit"][0] == pytest.approx((1 + 1 + 2) / 7)  # -0.1 and the 2 NaN
    assert out["p_violation"][0] == pytest.approx((1 + 3 + 2) / 7)  # 3 gains >= 0, 2 NaN
    # as -inf for the lower end, +inf for the upper end
    as_low = np.array([-np.inf, -np.inf, -0.1, 0.2, 0.3, 0.4])
    assert out["ci_low"][0] == -np.inf  # the 25% point lies between -inf and -0.1
    wide = bootstrap_summary(gains, 0.2)  # 40% and 60% points
    assert wide["ci_low"][0] == pytest.approx(np.quantile(as_low, 0.4))
    # the 60% point of -0.1, 0.2, 0.3, 0.4, inf, inf falls on 0.4 (numpy's interpolation
    # would give NaN there: 0 * inf)
    assert wide["ci_high"][0] == 0.4
    assert bootstrap_summary(gains, 0.9)["ci_high"][0] == np.inf  # the 95% point: past 0.4
    low, high = _stats.bootstrap_tails(gains, 0.5)
    np.testing.assert_array_equal(low[:2, 0], [-np.inf, -np.inf])
    np.testing.assert_array_equal(high[:2, 0], [np.inf, np.inf])
    # the bounds still agree with the tests: p_benefit = 4/7 > 0.5, the bound does not exclude 0
    assert _stats.percentile_bound(low[:, 0], 6, 1.0, 0.5) <= 0
    assert not _stats.significant(out["p_benefit"][0], 1.0, 0.5)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(0, 10_000), st.sampled_from([0.1, 0.2, 0.4]))
def test_bounds_agree_with_the_tests_when_some_gains_are_undefined(n_boot, seed, alpha):
    rng = np.random.default_rng(seed)
    gains = np.round(rng.normal(0.5, 1.0, size=(n_boot, 2)), 1)
    gains[rng.random(gains.shape) < 0.2] = np.nan
    summ = bootstrap_summary(gains, 0.9)
    low, high = _stats.bootstrap_tails(gains, alpha)
    for k in range(2):
        lower = _stats.percentile_bound(low[:, k], n_boot, 1.0, alpha)
        upper = _stats.percentile_bound(high[:, k], n_boot, 1.0, alpha, side="upper")
        assert (lower > 0) == bool(_stats.significant(summ["p_benefit"][k], 1.0, alpha))
        assert (upper < 0) == bool(_stats.significant(summ["p_violation"][k], 1.0, alpha))
        # never more significant than the same gains with the NaN left out
        defined = gains[~np.isnan(gains[:, k]), k]
        assert summ["p_benefit"][k] >= (1 + (defined <= 0).sum()) / (n_boot + 1)


def test_distinct_columns():
    m = np.array([[1.0, 2.0, 1.0, 3.0], [4.0, 5.0, 4.0, 6.0]])
    distinct, inverse = distinct_columns(m)
    np.testing.assert_array_equal(inverse, [0, 1, 0, 2])
    np.testing.assert_array_equal(distinct[:, inverse], m)


def test_chunk_constant_is_memory_aware():
    # one chunk of counts is at most CHUNK_ELEMENTS int64 values (a few MB)
    assert _stats.CHUNK_ELEMENTS * 8 <= 16 * 2**20
    rng = np.random.default_rng(0)
    sizes = [c.shape for _, c in resample_counts(rng, [100_000], 12)]
    assert all(b * n <= _stats.CHUNK_ELEMENTS for b, n in sizes)


# ------------------------------------------------------------------ bounds that agree with the tests
def test_correction_factors_hand_example():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm at 0.05: 0.005 * 4 and 0.01 * 3 pass, 0.03 * 2 = 0.06 fails: two rejected at steps
    # 1 and 2 (levels alpha/4, alpha/3); the others were decided at the failing level alpha/2
    np.testing.assert_array_equal(_stats.correction_factors(p, "holm", 0.05), [3, 2, 2, 4])
    np.testing.assert_array_equal(_stats.correction_factors(p, "bonferroni", 0.05), [4] * 4)
    np.testing.assert_array_equal(_stats.correction_factors(p, None, 0.05), [1] * 4)
    # every test rejected: each at its own step
    np.testing.assert_array_equal(_stats.correction_factors(p, "holm", 0.5), [3, 1, 2, 4])
    out = _stats.correction_factors([0.01, np.nan, 0.04], "holm", 0.05)
    assert np.isnan(out[1]) and list(out[[0, 2]]) == [2, 1]  # m = 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.01, 0.025, 0.05, 1 / 3])),
                min_size=1, max_size=12),
       st.sampled_from([0.01, 0.05, 0.1, 0.2]), st.sampled_from(["holm", "bonferroni", None]))
def test_significant_at_the_factor_level_is_the_corrected_verdict(p, alpha, method):
    f = _stats.correction_factors(p, method, alpha)
    verdict = adjust_pvalues(p, method) <= alpha
    np.testing.assert_array_equal(_stats.significant(p, f, alpha), verdict)
    if method == "holm":  # the step-down procedure written from its definition
        assert set(np.flatnonzero(verdict)) == _holm_rejections(p, alpha)
        # a rejected test passes at its own step's level, alpha / (m - step)
        order = np.argsort(p, kind="stable")
        for step, i in enumerate(order):
            if verdict[i]:
                assert f[i] == len(p) - step


def test_percentile_bound_hand_example():
    gains = np.array([[-0.2], [-0.1], [0.0], [0.1], [0.3], [0.4], [0.5], [0.6], [0.7]])  # B = 9
    low, high = _stats.bootstrap_tails(gains, 0.3)  # at most 0.3 * 10 = 3 values used
    assert low.shape == high.shape == (4, 1)
    np.testing.assert_array_equal(low[:, 0], [-0.2, -0.1, 0.0, 0.1])
    np.testing.assert_array_equal(high[:, 0], [0.7, 0.6, 0.5, 0.4])
    # level 0.3: attainable p = k / 10 <= 0.3 for k = 1, 2, 3: the 3rd smallest gain
    assert _stats.percentile_bound(low[:, 0], 9, 1.0, 0.3) == 0.0
    assert _stats.percentile_bound(high[:, 0], 9, 1.0, 0.3, side="upper") == 0.5
    # p_benefit = (1 + 3) / 10 = 0.4 > 0.3: not significant, and the bound does not exclude 0
    assert bootstrap_summary(gains, 0.9)["p_benefit"][0] == pytest.approx(0.4)
    # level 0.3 / 2 = 0.15: k = 1, the smallest gain; level 0.3 / 4 = 0.075: no k, -inf
    assert _stats.percentile_bound(low[:, 0], 9, 2.0, 0.3) == -0.2
    # 3 * 0.1 > 0.3 in floating point, as in the Holm/Bonferroni adjusted p-value: k = 0
    assert _stats.percentile_bound(low[:, 0], 9, 3.0, 0.3) == -np.inf
    assert _stats.percentile_bound(low[:, 0], 9, 4.0, 0.3) == -np.inf
    assert _stats.percentile_bound(high[:, 0], 9, 4.0, 0.3, side="upper") == np.inf
    # a union over 2 comparisons at factor 1 is the level 0.3 / 2
    assert _stats.percentile_bound(high[:, 0], 9, 1.0, 0.3, union=2.0, side="upper") == 0.7


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 60), st.integers(0, 10_000), st.sampled_from([0.05, 0.1, 0.2]),
       st.sampled_from([1.0, 2.0, 3.0, 7.0]), st.sampled_from([1.0, 2.0, 5.0]))
def test_percentile_bound_excludes_zero_exactly_when_the_bootstrap_test_rejects(
        n_boot, seed, alpha, factor, union):
    rng = np.random.default_rng(seed)
    # coarse values, so that ties and exact zeros are common
    gains = np.round(rng.normal(rng.normal(), 1.0, size=(n_boot, 3)), 1)
    summ = bootstrap_summary(gains, 0.9)
    low, high = _stats.bootstrap_tails(gains, alpha)
    for k in range(3):
        lower = _stats.percentile_bound(low[:, k], n_boot, factor, alpha)
        upper = _stats.percentile_bound(high[:, k], n_boot, factor, alpha, union, side="upper")
        assert (lower > 0) == bool(_stats.significant(summ["p_benefit"][k], factor, alpha))
        assert (upper < 0) == bool(_stats.significant(summ["p_violation"][k], factor, alpha,
                                                      union))
        # the order statistic of the level, counted with exact fractions
        level = Fraction(alpha).limit_denominator(100) / Fraction(factor)
        j = int(level * (n_boot + 1))
        order = np.concatenate([[-np.inf], np.sort(gains[:, k])])
        if level * (n_boot + 1) == j and j >= 1:  # on the boundary rounding decides
            assert lower in (order[j - 1], order[j])
        else:
            assert lower == order[j]


def test_mcnemar_bound_is_the_clopper_pearson_inversion():
    from scipy.stats import binomtest

    for b, c, n, level in [(7, 2, 40, 0.05), (2, 7, 40, 0.05), (10, 0, 30, 0.1),
                           (0, 6, 30, 0.025), (12, 11, 50, 0.1), (1, 0, 5, 0.2)]:
        d = b + c
        # one-sided 1 - level bound = one end of the two-sided 1 - 2 level interval
        ci = binomtest(c, d).proportion_ci(1 - 2 * level, method="exact")
        lower = _stats.mcnemar_bound(b, c, n, level, "lower")
        upper = _stats.mcnemar_bound(b, c, n, level, "upper")
        assert lower == pytest.approx(d / n * (1 - 2 * ci.high), abs=1e-12)
        assert upper == pytest.approx(d / n * (1 - 2 * ci.low), abs=1e-12)
        assert lower <= (b - c) / n <= upper
        own = np.array([True] * b + [False] * c + [True] * (n - d))
        base = np.array([False] * b + [True] * c + [True] * (n - d))
        p_violation, p_benefit = mcnemar_test(own, base)
        assert (lower > 0) == (p_benefit < level) and (upper < 0) == (p_violation < level)
    assert _stats.mcnemar_bound(0, 0, 10, 0.05, "lower") == 0.0


def test_mcnemar_bound_agrees_with_the_test_on_a_grid():
    for b in range(0, 25):
        for c in range(0, 25):
            if b + c == 0:
                continue
            own = np.array([True] * b + [False] * c)
            p_violation, p_benefit = mcnemar_test(own, ~own)
            for level in (0.01, 0.05, 0.1 / 3):
                assert (_stats.mcnemar_bound(b, c, 50, level, "lower") > 0) == (p_benefit < level)
                assert (_stats.mcnemar_bound(b, c, 50, level, "upper") < 0) == (p_violation < level)


@pytest.mark.parametrize("seed", range(4))
def test_delong_bound_inverts_the_test(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(80) < 0.4).astype(int)
    a = y + rng.normal(size=80)
    b = y + 1.5 * rng.normal(size=80)
    gain, se = _stats.delong_statistic(y, a, b)
    g2, p_violation, p_benefit = delong_test(y, a, b)
    assert gain == g2 and se > 0
    for level in (0.01, 0.05, 0.2):
        lower = _stats.delong_bound(gain, se, level, "lower")
        upper = _stats.delong_bound(gain, se, level, "upper")
        assert lower == pytest.approx(gain - norm.ppf(1 - level) * se)
        assert upper == pytest.approx(gain + norm.ppf(1 - level) * se)
        assert (lower > 0) == (p_benefit < level) and (upper < 0) == (p_violation < level)
    assert _stats.delong_bound(0.1, 0.0, 0.05, "lower") == 0.1
