"""Audit statistics, in one place.

* :func:`spawn_generators` - one seeded random stream per group.
* :func:`resample_counts` - the paired, stratified bootstrap (the audit's strata: its
  groups) as multinomial counts, drawn in memory-bounded chunks of resamples.
* :func:`bootstrap_summary` - percentile intervals and one-sided bootstrap p-values.
* :func:`adjust_pvalues` - Holm and Bonferroni corrections.
* :func:`correction_factors` - for each test, the divisor of ``alpha`` at which the
  corrected procedure decided it, so that a one-sided bound can agree with the verdict.
* :func:`bootstrap_tails`, :func:`percentile_bound` - one-sided percentile bounds that
  exclude 0 exactly when the bootstrap test at the same level rejects.
* :func:`mcnemar_test`, :func:`delong_test` - exact (McNemar) and asymptotic (DeLong)
  paired tests, the alternatives to the bootstrap for error rate and AUC;
  :func:`mcnemar_bound`, :func:`delong_bound` - the bounds obtained by inverting them.

The bootstrap is written as counts: resample ``b`` of a group is a vector ``w_b`` of how
many times each row was drawn.  Within each stratum of ``m`` rows, ``w_b`` restricted to
the stratum is ``Multinomial(m, 1/m, ..., 1/m)``, so every resample keeps the stratum
sizes of the sample.  The audit's strata are its groups, never (group, label) cells: a
group's size is fixed by the design, its label mix is not, and a resample that kept the
label counts would leave out the label mix's share of the variance of every gain that
differs by label (anti-conservative for a population gain; measured in
``benchmarks/results/audit_calibration.md``).  Additive metrics are then a matrix product
``W @ losses`` (see :mod:`fairuse_opt.audit._metrics`), with every model scored on the
same resample (paired).

A gain that a resample cannot define (AUC on a resample that drew a single class) is
``NaN``; :func:`bootstrap_summary` and :func:`bootstrap_tails` count it as evidence for
neither direction: on the null side of both one-sided tests, ``-inf`` in a lower bound and
``+inf`` in an upper bound.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Iterator, Sequence

import numpy as np
from scipy import special, stats

from ._errors import MSG_BAD_RANDOM_STATE
from ..exceptions import InputError

__all__ = [
    "CHUNK_ELEMENTS",
    "spawn_generators",
    "resample_counts",
    "bootstrap_summary",
    "adjust_pvalues",
    "correction_factors",
    "significant",
    "bootstrap_tails",
    "percentile_bound",
    "mcnemar_test",
    "mcnemar_counts",
    "mcnemar_bound",
    "delong_test",
    "delong_statistic",
    "delong_pvalues",
    "delong_bound",
    "distinct_columns",
    "stratified_halves",
]

#: Largest number of count entries (resamples x rows) drawn at once.  2**19 entries
#: keep a chunk (and each temporary a metric builds from it) at 4 MB, small enough to
#: stay in cache; a group of 100,000 rows is processed 5 resamples at a time.
CHUNK_ELEMENTS = 1 << 19


def spawn_generators(random_state, n: int) -> tuple[list[np.random.Generator], object]:
    """Return ``n`` independent generators derived from ``random_state``.

    Parameters
    ----------
    random_state : int, numpy.random.Generator or None
        A non-negative integer gives the same streams on every call.  ``None`` draws
        fresh entropy, returned so that the run can be repeated.  A generator is
        advanced (its streams are spawned).
    n : int
        Number of streams (one per group).

    Returns
    -------
    generators : list of numpy.random.Generator
    seed : int or None
        The integer that reproduces the streams (``None`` for a generator input).
    """
    if isinstance(random_state, np.random.Generator):
        return list(random_state.spawn(n)), None
    if random_state is not None and (
            isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral)
            or random_state < 0):
        raise InputError(MSG_BAD_RANDOM_STATE.format(value=random_state))
    seq = np.random.SeedSequence(None if random_state is None else int(random_state))
    return [np.random.default_rng(s) for s in seq.spawn(n)], seq.entropy


def resample_counts(rng: np.random.Generator, cell_sizes: Sequence[int], n_boot: int,
                    chunk_elements: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Draw stratified bootstrap resamples as count vectors, a chunk at a time.

    The rows of a group are laid out cell after cell (``cell_sizes[0]`` rows of the
    first cell, then the second, ...).  Resample ``b`` draws ``cell_sizes[c]`` rows
    uniformly with replacement inside each cell ``c``: draw ``j`` of cell ``c`` picks
    row ``start_c + floor(u * m_c)`` for a uniform ``u`` (53-bit, so the rows are
    equally likely up to a relative 2**-53).  The uniforms are consumed resample by
    resample, so the counts do not depend on the chunk size.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    cell_sizes : sequence of int
        Sizes of the strata, in row order.
    n_boot : int
        Number of resamples.
    chunk_elements : int, optional
        Largest ``resamples x rows`` per chunk (default :data:`CHUNK_ELEMENTS`).

    Yields
    ------
    start : int
        Index of the chunk's first resample.
    counts : ndarray of int64, shape (b, n_rows)
        ``counts[j, i]`` is how often row ``i`` appears in resample ``start + j``.
    """
    sizes = np.array([int(m) for m in cell_sizes if int(m) > 0], dtype=np.int64)
    n = int(sizes.sum())
    size_of = np.repeat(sizes, sizes)  # for each draw (column), its cell's size ...
    start_of = np.repeat(np.cumsum(sizes) - sizes, sizes)  # ... and first row
    budget = CHUNK_ELEMENTS if chunk_elements is None else int(chunk_elements)
    per_chunk = max(1, min(n_boot, budget // max(n, 1)))
    for start in range(0, n_boot, per_chunk):
        b = min(per_chunk, n_boot - start)
        u = rng.random((b, n))
        u *= size_of
        idx = u.astype(np.int64)
        np.minimum(idx, size_of - 1, out=idx)  # u * m may round up to m
        idx += start_of + (np.arange(b, dtype=np.int64) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        yield start, counts


def bootstrap_summary(gains: np.ndarray, ci_level: float) -> dict[str, np.ndarray]:
    """Percentile intervals and one-sided p-values from bootstrap gains.

    Gains are oriented so that a positive gain means the own report is better.  For
    each column ``k`` of ``gains`` (shape ``(B, K)``):

    * ``p_violation = (1 + #{b : gain_b >= 0 or undefined}) / (B + 1)``, for H0 "gain >=
      0" against H1 "gain < 0";
    * ``p_benefit = (1 + #{b : gain_b <= 0 or undefined}) / (B + 1)``, for H0 "gain <= 0"
      against H1 "gain > 0".

    These are percentile-bootstrap p-values: ``p_violation <= alpha`` exactly when
    (up to the ``+1``) the one-sided ``1 - alpha`` percentile upper bound of the gain is
    below zero.  The ``+1`` and the ties counted on the null side make them
    conservative; ``p_violation + p_benefit >= 1``, so a gain is never both.

    An undefined gain (``NaN``: a resample on which the metric does not exist, such as
    AUC on a resample with a single class) supports neither alternative: it is counted
    on the null side of both tests, as ``-inf`` for ``ci_low`` and ``+inf`` for
    ``ci_high``.  This can only make the tests more conservative, by at most the share of
    undefined resamples; it never moves a p-value towards rejection.

    Parameters
    ----------
    gains : ndarray, shape (B, K)
        Bootstrap gains, one column per comparison; ``NaN`` where undefined.
    ci_level : float
        Confidence level of the two-sided percentile interval.

    Returns
    -------
    dict
        ``ci_low``, ``ci_high``, ``p_violation``, ``p_benefit``: arrays of shape ``(K,)``.
    """
    gains = np.asarray(gains, dtype=np.float64)
    n_boot = gains.shape[0]
    tail = (1.0 - ci_level) / 2.0
    undefined = np.isnan(gains)
    if undefined.any():
        low = _quantile_with_inf(np.where(undefined, -np.inf, gains), tail, -np.inf)
        high = _quantile_with_inf(np.where(undefined, np.inf, gains), 1.0 - tail, np.inf)
    else:
        low, high = np.quantile(gains, [tail, 1.0 - tail], axis=0)
    n_undefined = undefined.sum(axis=0)
    return {
        "ci_low": low,
        "ci_high": high,
        "p_violation": (1.0 + (gains >= 0).sum(axis=0) + n_undefined) / (n_boot + 1.0),
        "p_benefit": (1.0 + (gains <= 0).sum(axis=0) + n_undefined) / (n_boot + 1.0),
    }


def _quantile_with_inf(values: np.ndarray, q: float, fill: float) -> np.ndarray:
    """Column quantiles (linear interpolation) of values holding infinities of one sign.

    Where the interpolation meets the infinity numpy returns NaN (``0 * inf`` or ``inf -
    inf``): the quantile is then the order statistic itself when the point falls exactly
    on it, and the infinity otherwise.
    """
    with np.errstate(invalid="ignore"):
        out = np.quantile(values, q, axis=0)
    bad = np.isnan(out)
    if bad.any():
        h = (values.shape[0] - 1) * q
        at = int(np.floor(h))
        on_point = np.sort(values[:, bad], axis=0)[at] if h == at else np.full(int(bad.sum()), fill)
        out = out.copy()
        out[bad] = on_point
    return out


def adjust_pvalues(pvalues, method: str | None) -> np.ndarray:
    """Correct p-values for multiple testing; NaN entries are not tests and stay NaN.

    Parameters
    ----------
    pvalues : array-like
        Raw p-values of one family of tests.
    method : {"holm", "bonferroni"} or None
        ``"bonferroni"``: ``min(1, m p)``.  ``"holm"``: the step-down adjusted
        p-values, ``p_adj(i) = max_{j <= i} min(1, (m - j + 1) p(j))`` over the sorted
        p-values; both control the family-wise error rate.  ``None`` returns a copy.

    Returns
    -------
    ndarray
        Adjusted p-values, in the input order.
    """
    p = np.asarray(pvalues, dtype=np.float64).copy()
    if method is None:
        return p
    ok = ~np.isnan(p)
    q = p[ok]
    m = q.size
    if m == 0:
        return p
    if method == "bonferroni":
        p[ok] = np.minimum(1.0, m * q)
    elif method == "holm":
        order = np.argsort(q, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * q[order])
        adj = np.empty(m)
        adj[order] = np.minimum(1.0, stepped)
        p[ok] = adj
    else:  # checked by the caller
        raise ValueError(f"unknown correction {method!r}")
    return p


def correction_factors(pvalues, method: str | None, alpha: float) -> np.ndarray:
    """The divisor ``f`` of ``alpha`` at which each test of one family was decided.

    With ``f`` from here, test ``i`` is significant after the correction exactly when
    :func:`significant` ``(p_i, f_i, alpha)`` holds, i.e. ``min(1, f_i p_i) <= alpha``
    with the same floating-point products as :func:`adjust_pvalues`; a one-sided bound
    at level ``1 - alpha / f_i`` therefore excludes 0 exactly when the test is
    significant.

    * ``None``: ``f = 1``.
    * ``"bonferroni"``: ``f = m`` (the number of tests, NaN entries excluded).
    * ``"holm"``: with the p-values sorted and ``r`` of them rejected, the ``j``-th
      smallest (1-based) is rejected at step ``j``, at level ``alpha / (m - j + 1)``,
      so ``f = m - j + 1``; every test not rejected gets ``f = m - r``, the level at
      which the step-down procedure stopped (its p-value is at least the one that
      failed there).  These are the levels at which Holm's procedure tested each
      hypothesis.  They are not simultaneous bounds: the Holm-compatible simultaneous
      bounds (Strassburger and Bretz, 2008) give a rejected hypothesis the bound 0 unless
      all are rejected, which says nothing about the size of a gain.  Each bound here is
      at least as wide as the unadjusted ``1 - alpha`` bound (``f >= 1``), and the
      Bonferroni bound (``f = m`` for all) would disagree with Holm's verdicts on the
      tests Holm rejects at a later step.

    Parameters
    ----------
    pvalues : array-like
        Raw p-values of one family; NaN entries are not tests (their factor is NaN).
    method : {"holm", "bonferroni"} or None
    alpha : float
        Significance level, in (0, 1).

    Returns
    -------
    ndarray of float
        The factors, in the input order.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    if method is None:
        out[ok] = 1.0
    elif method == "bonferroni":
        out[ok] = float(m)
    elif method == "holm":
        order = np.argsort(q, kind="stable")
        factor = (m - np.arange(m)).astype(np.float64)
        rejected = np.minimum(1.0, np.maximum.accumulate(factor * q[order])) <= alpha
        n_rejected = int(rejected.sum())  # a prefix: the running maximum only grows
        factor[n_rejected:] = float(m - n_rejected)
        f = np.empty(m)
        f[order] = factor
        out[ok] = f
    else:  # checked by the caller
        raise ValueError(f"unknown correction {method!r}")
    return out


def significant(p, factor, alpha: float, union: float = 1.0) -> np.ndarray:
    """Whether p-value ``p`` is significant at level ``alpha / factor``.

    ``factor * min(1, union * p) <= alpha``: the arithmetic of :func:`adjust_pvalues`
    applied to a p-value ``min(1, union * p)`` (``union > 1`` for a Bonferroni union
    test over ``union`` comparisons), so that it agrees with the corrected verdict to
    the last bit.
    """
    return np.asarray(factor, dtype=np.float64) * np.minimum(
        1.0, float(union) * np.asarray(p, dtype=np.float64)) <= alpha


def bootstrap_tails(gains: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest bootstrap gains that a bound at level ``<= alpha`` can use.

    A one-sided percentile bound at level ``alpha / f`` (``f >= 1``) is the ``k``-th
    smallest (or largest) gain with ``k <= alpha (B + 1)``; only those are kept, so a
    report keeps ``alpha (B + 1) + 1`` values per comparison and side, not ``B``.

    Parameters
    ----------
    gains : ndarray, shape (B, K)
        ``NaN`` where a resample cannot define the gain: ``-inf`` in ``low`` and ``+inf``
        in ``high``, as :func:`bootstrap_summary` counts it.
    alpha : float

    Returns
    -------
    low : ndarray, shape (k, K)
        The ``k`` smallest gains of each column, ascending.
    high : ndarray, shape (k, K)
        The ``k`` largest, descending.
    """
    gains = np.asarray(gains, dtype=np.float64)
    n_boot = gains.shape[0]
    k = min(n_boot, _n_passing(int(n_boot), 1.0, float(alpha), 1.0) + 1)
    undefined = np.isnan(gains)  # evidence for neither side (see bootstrap_summary)
    as_low = np.where(undefined, -np.inf, gains)
    as_high = np.where(undefined, -np.inf, -gains)
    low = np.sort(np.partition(as_low, k - 1, axis=0)[:k], axis=0)
    high = -np.sort(np.partition(as_high, k - 1, axis=0)[:k], axis=0)
    return low, high


@functools.lru_cache(maxsize=1024)
def _n_passing(n_boot: int, factor: float, alpha: float, union: float) -> int:
    """How many of the attainable p-values ``(1 + k) / (B + 1)`` are significant."""
    candidates = (1.0 + np.arange(n_boot + 1, dtype=np.float64)) / (n_boot + 1.0)
    return int(significant(candidates, factor, alpha, union).sum())


def percentile_bound(tail: np.ndarray, n_boot: int, factor: float, alpha: float,
                     union: float = 1.0, side: str = "lower") -> float:
    """One-sided percentile bound that agrees exactly with the bootstrap p-value.

    The lower bound (for a benefit) from the ascending ``tail`` of
    :func:`bootstrap_tails`: the benefit p-value of a shifted null, ``p(t) =
    (1 + #{b : gain_b <= t}) / (B + 1)``, is significant for every ``t`` below the
    ``k``-th smallest gain and for none above, where ``k`` is the number of attainable
    p-values that are significant (:func:`significant`).  The bound is that order
    statistic, the ``alpha / f`` percentile of the resampled gains (``k ~ alpha (B +
    1) / f``), and it is ``> 0`` exactly when ``p(0)`` - the ``p_benefit`` of
    :func:`bootstrap_summary` - is significant.  With the descending tail the same
    gives the upper bound (for a violation), ``< 0`` exactly when ``p_violation`` is
    significant.  ``-inf`` (``+inf``) when no attainable p-value is significant (too
    few resamples for the level).

    Parameters
    ----------
    tail : ndarray, shape (k,)
        One column of ``low`` (lower bound) or ``high`` (upper bound).
    n_boot : int
        Number of resamples ``B``.
    factor, alpha, union : float
        As in :func:`significant`.
    side : {"lower", "upper"}, default "lower"
        Which bound ``tail`` gives (only used when no p-value is significant).

    Returns
    -------
    float
    """
    tail = np.asarray(tail, dtype=np.float64)
    k = _n_passing(int(n_boot), float(factor), float(alpha), float(union))
    if k == 0:
        return -np.inf if side == "lower" else np.inf
    if k > tail.size:  # the tail holds every value a bound at level <= alpha can use
        raise ValueError("tail too short for this level")
    return float(tail[k - 1])


def mcnemar_test(correct_own: np.ndarray, correct_base: np.ndarray) -> tuple[float, float]:
    """Exact one-sided McNemar tests for a paired difference in error rate.

    With ``b`` rows that only the own model gets right and ``c`` rows that only the
    baseline gets right, the error-rate gain is ``(b - c) / n``.  Under H0 (no
    difference) ``c ~ Binomial(b + c, 1/2)`` given ``b + c``.

    Parameters
    ----------
    correct_own, correct_base : ndarray of bool
        Whether each row is classified correctly by the own model and the baseline.

    Returns
    -------
    p_violation : float
        ``P(X >= c)``, small when the own model makes more errors.
    p_benefit : float
        ``P(X >= b)``, small when it makes fewer.  Both are 1 without discordant rows.
    """
    b, c = mcnemar_counts(correct_own, correct_base)
    if b + c == 0:
        return 1.0, 1.0
    p_violation = stats.binomtest(c, b + c, 0.5, alternative="greater").pvalue
    p_benefit = stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue
    return float(p_violation), float(p_benefit)


def mcnemar_counts(correct_own: np.ndarray, correct_base: np.ndarray) -> tuple[int, int]:
    """Discordant rows: ``b`` only the own model gets right, ``c`` only the baseline."""
    own = np.asarray(correct_own, dtype=bool)
    base = np.asarray(correct_base, dtype=bool)
    return int(np.sum(own & ~base)), int(np.sum(~own & base))


def mcnemar_bound(b: int, c: int, n: int, level: float, side: str) -> float:
    """One-sided bound on the error-rate gain by inverting the exact McNemar test.

    Given the ``d = b + c`` discordant rows, ``c ~ Binomial(d, pi)`` and the gain is
    ``(d / n)(1 - 2 pi)``.  The Clopper-Pearson bound on ``pi`` at one-sided level
    ``level`` (``pi_U = Beta^{-1}(1 - level; c + 1, d - c)`` for the lower bound of
    the gain, ``pi_L = Beta^{-1}(level; c, d - c + 1)`` for the upper) is the exact
    inversion of the binomial test of :func:`mcnemar_test`: the lower bound is ``> 0``
    exactly when ``p_benefit < level``, the upper ``< 0`` exactly when ``p_violation <
    level``.  The bound is conditional on ``d`` (the share of discordant rows is taken
    as observed); only the p-value is exact unconditionally.

    Parameters
    ----------
    b, c : int
        From :func:`mcnemar_counts`.
    n : int
        Rows of the group.
    level : float
        One-sided significance level (the bound holds with confidence ``1 - level``).
    side : {"lower", "upper"}

    Returns
    -------
    float
    """
    d = b + c
    if d == 0:
        return 0.0
    # Beta quantiles (scipy.special.betaincinv is scipy.stats.beta.ppf without its overhead)
    if side == "lower":
        pi = 1.0 if c == d else float(special.betaincinv(c + 1, d - c, 1.0 - level))
    else:
        pi = 0.0 if c == 0 else float(special.betaincinv(c, d - c + 1, level))
    return (d / n) * (1.0 - 2.0 * pi)


def _delong_components(y01: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components by midranks (Sun and Xu, 2014).

    ``v10[i]`` is the share of negatives that positive ``i`` outranks (ties count 1/2);
    ``v01[j]`` is the share of positives that outrank negative ``j``.
    """
    pos = score[y01 == 1]
    neg = score[y01 == 0]
    m, n = pos.size, neg.size
    rank_all = stats.rankdata(np.concatenate([pos, neg]))
    v10 = (rank_all[:m] - stats.rankdata(pos)) / n
    v01 = 1.0 - (rank_all[m:] - stats.rankdata(neg)) / m
    return v10, v01


def delong_test(y01: np.ndarray, score_own: np.ndarray,
                score_base: np.ndarray) -> tuple[float, float, float] | None:
    """DeLong's test for the difference of two paired AUCs, one-sided both ways.

    The gain is ``AUC(own) - AUC(base)``; its variance is
    ``var(v10_own - v10_base) / m + var(v01_own - v01_base) / n`` (DeLong, DeLong and
    Clarke-Pearson, 1988) for ``m`` positives and ``n`` negatives, and
    ``z = gain / se`` is compared with the standard normal.

    Parameters
    ----------
    y01 : ndarray
        Labels in {0, 1}.
    score_own, score_base : ndarray
        Scores of the two models on the same rows.

    Returns
    -------
    (gain, p_violation, p_benefit) or None
        ``None`` when a class has fewer than two rows (the variance is undefined).
        ``p_violation = Phi(z)`` and ``p_benefit = 1 - Phi(z)``; with a zero standard
        error both are 1 for a zero gain, and 0 / 1 by the sign of the gain otherwise.
    """
    stat = delong_statistic(y01, score_own, score_base)
    if stat is None:
        return None
    return (stat[0], *delong_pvalues(*stat))


def delong_pvalues(gain: float, se: float) -> tuple[float, float]:
    """``(p_violation, p_benefit) = (Phi(z), 1 - Phi(z))`` for ``z = gain / se`` (see
    :func:`delong_test`, which also gives the degenerate ``se = 0`` case)."""
    if se <= 0:
        if gain == 0:
            return 1.0, 1.0
        return float(gain > 0), float(gain < 0)
    z = gain / se
    return float(special.ndtr(z)), float(special.ndtr(-z))


def delong_statistic(y01: np.ndarray, score_own: np.ndarray,
                     score_base: np.ndarray) -> tuple[float, float] | None:
    """The AUC gain and its DeLong standard error (see :func:`delong_test`).

    Returns
    -------
    (gain, se) or None
        ``None`` when a class has fewer than two rows.
    """
    y01 = np.asarray(y01)
    m = int(np.sum(y01 == 1))
    n = int(np.sum(y01 == 0))
    if m < 2 or n < 2:
        return None
    v10_a, v01_a = _delong_components(y01, np.asarray(score_own, dtype=np.float64))
    v10_b, v01_b = _delong_components(y01, np.asarray(score_base, dtype=np.float64))
    gain = float(v10_a.mean() - v10_b.mean())
    var = np.var(v10_a - v10_b, ddof=1) / m + np.var(v01_a - v01_b, ddof=1) / n
    return gain, float(np.sqrt(var)) if var > 0 else 0.0


def delong_bound(gain: float, se: float, level: float, side: str) -> float:
    """One-sided bound on the AUC gain by inverting DeLong's test: ``gain -/+ z se``.

    ``z = Phi^{-1}(1 - level)``; the lower bound is ``> 0`` exactly when ``p_benefit <
    level`` and the upper ``< 0`` exactly when ``p_violation < level`` (a normal
    approximation, as the test).  With ``se = 0`` both bounds are the gain.
    """
    if se <= 0:
        return float(gain)
    z = float(-special.ndtri(level))  # Phi^{-1}(1 - level), accurate for small levels
    return float(gain - z * se) if side == "lower" else float(gain + z * se)


def distinct_columns(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bitwise-distinct columns of ``matrix`` (first occurrences, in order) and the map
    back: ``matrix == distinct[:, inverse]``.  Identical columns are then evaluated once,
    so their differences are exactly zero on every resample."""
    seen: dict[bytes, int] = {}
    inverse = np.array([seen.setdefault(np.ascontiguousarray(matrix[:, k]).tobytes(), len(seen))
                        for k in range(matrix.shape[1])], dtype=np.int64)
    first = np.array([int(np.flatnonzero(inverse == u)[0]) for u in range(len(seen))], dtype=np.int64)
    return matrix[:, first], inverse


def stratified_halves(rng: np.random.Generator, strata: np.ndarray) -> np.ndarray:
    """Split rows into two halves within every stratum, at random.

    Each stratum of ``m`` rows puts ``floor(m / 2)`` rows in the first half, plus its
    odd row with probability 1/2, so both halves keep every stratum's share.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    strata : ndarray of int, shape (n,)
        Stratum of every row.

    Returns
    -------
    ndarray of bool, shape (n,)
        ``True`` for the rows of the first half.
    """
    strata = np.asarray(strata)
    first = np.zeros(strata.size, dtype=bool)
    for s in np.unique(strata):
        rows = np.flatnonzero(strata == s)
        rows = rows[rng.permutation(rows.size)]
        k = rows.size // 2 + int(rows.size % 2 == 1 and rng.random() < 0.5)
        first[rows[:k]] = True
    return first
