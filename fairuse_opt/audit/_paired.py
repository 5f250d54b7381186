"""Paired one-sided tests of a population gain, unconditional on the label mix.

The certified system compares, on the same rows, a candidate function with the generic
model.  For a metric that is a mean of per-row losses (error, log loss, Brier, MSE,
MAE) the gain is the mean of the per-row differences ``d_i = loss_generic_i -
loss_candidate_i``, and the rows are an i.i.d. sample of the option's population (its
size is fixed by design; its label mix is not): the one-sided paired t-test of
H0 "E[d] <= 0" is then valid for the population gain, asymptotically, and accurate from
about 20 rows on log-loss differences (``fair-use.md`` section 9 measures it; below,
the skew of log-loss differences makes it liberal).  Resampling within (group, label)
cells is *not*: it treats the label mix as known and is anti-conservative whenever a
model's gain differs by label.

* :func:`paired_t` - the one-sided paired t-test (and the estimate, its standard error).
* :func:`min_detectable_gain` - the smallest gain a one-sided test at a given level
  detects with a given power (normal approximation with a t quantile), the *testability*
  of an option.
* :func:`bootstrap_benefit` - for metrics that are not means of row losses (AUC, ECE, a
  user's metric): the paired bootstrap over the option's rows, unstratified.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ._stats import resample_counts

__all__ = ["paired_t", "min_detectable_gain", "bootstrap_benefit", "ROUNDING"]

#: Per-row gains no larger than this are rounding, not evidence (a model blended with
#: itself on the logit scale differs from it by about 1e-16).
ROUNDING = 1e-12


def paired_t(diffs: np.ndarray) -> dict[str, float]:
    """One-sided paired t-test of H0 "mean gain <= 0" against H1 "mean gain > 0".

    Parameters
    ----------
    diffs : ndarray (n,)
        Per-row gains (positive: the candidate is better).

    Returns
    -------
    dict
        ``gain`` (mean), ``se`` (standard error), ``sd``, ``n``, ``p`` (one-sided
        p-value of a benefit).  With fewer than 2 rows, or every gain within
        :data:`ROUNDING` of 0: ``p`` is 1; all gains equal and positive: 0.
    """
    d = np.asarray(diffs, dtype=np.float64).reshape(-1)
    n = d.size
    if n == 0:
        return {"gain": np.nan, "se": np.nan, "sd": np.nan, "n": 0, "p": np.nan}
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    se = sd / np.sqrt(n) if n > 1 else np.inf
    if n < 2 or float(np.max(np.abs(d))) <= ROUNDING:
        p = 1.0  # no difference beyond rounding (e.g. a candidate equal to the generic model)
    elif not se > 1e-12 * max(1.0, abs(mean)):
        p = 0.0 if mean > 0 else 1.0
    else:
        p = float(stats.t.sf(mean / se, df=n - 1))
    return {"gain": mean, "se": float(se), "sd": sd, "n": n, "p": p}


def min_detectable_gain(sd: float, n: int, level: float, power: float = 0.8) -> float:
    """Smallest mean gain that a one-sided paired t-test at ``level`` detects with
    probability ``power``, for per-row gains of standard deviation ``sd`` on ``n`` rows:
    ``(t_{1-level} + t_{power}) sd / sqrt(n)`` (``n - 1`` degrees of freedom).

    Returns ``inf`` for fewer than 2 rows or a level of 0."""
    if n < 2 or not level > 0 or not np.isfinite(sd):
        return float("inf")
    df = n - 1
    return float((stats.t.isf(level, df) + stats.t.ppf(power, df)) * sd / np.sqrt(n))


def bootstrap_benefit(metric, y: np.ndarray, scores: np.ndarray, rng: np.random.Generator,
                      n_boot: int) -> dict[str, float]:
    """Paired bootstrap of the gain of column 1 of ``scores`` over column 0 (the generic
    model) on all the rows of one option, resampled without strata.

    ``p = (1 + #{b: gain_b <= 0}) / (B + 1)``; resamples where the metric is undefined
    (AUC on one class) count as "no gain" (conservative).
    """
    state = metric.prepare(y, scores)
    sign = -1.0 if metric.greater_is_better else 1.0
    point = sign * metric.evaluate(state, np.ones((1, y.size), dtype=np.int64))[0]
    gain = float(point[0] - point[1])
    boots = np.empty(n_boot)
    for start, counts in resample_counts(rng, [y.size], n_boot):
        v = sign * metric.evaluate(state, counts)
        boots[start:start + len(v)] = v[:, 0] - v[:, 1]
    boots = np.where(np.isnan(boots), 0.0, boots)
    p = float((1.0 + (boots <= 0).sum()) / (n_boot + 1.0))
    sd = float(boots.std(ddof=1) * np.sqrt(y.size)) if n_boot > 1 else np.nan
    return {"gain": gain, "se": float(boots.std(ddof=1)) if n_boot > 1 else np.nan, "sd": sd,
            "n": int(y.size), "p": p}
