"""Audit metrics: definitions, and their evaluation under bootstrap count weights.

A :class:`Metric` is a function ``func(y, score) -> float`` and a direction.  For
classification ``y`` is in {0, 1} and ``score`` is the predicted probability of class 1;
for regression both are real.  The audit evaluates each metric on many bootstrap
resamples at once through two methods:

* ``prepare(y, scores)`` - once per group, with ``scores`` of shape ``(n, K)`` (one
  column per model or report);
* ``evaluate(state, weights)`` - for a chunk of resamples given as count weights of
  shape ``(b, n)``, the metric of every column on every resample, shape ``(b, K)``.

A user's metric is evaluated by materialising each resample (slow, but any function
works).  The built-in metrics are defined by scikit-learn functions (``func``) and
evaluated by vectorised weighted kernels that agree with those functions called with
``sample_weight=weights[b]`` (the test suite checks this):

* additive metrics (error, log loss, Brier, MSE, MAE, Poisson deviance): ``weights @ row_losses``;
* AUC: negatives sorted by score, cumulative weights, ties counted 1/2;
* ECE: per-bin sums of ``score - y`` as ``weights @ bin_matrix``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse, special, stats
from sklearn import metrics as skm

from ._errors import (
    MSG_DUPLICATE_METRIC,
    MSG_METRIC_CALLABLE,
    MSG_METRIC_TASK,
    MSG_NO_METRICS,
    MSG_UNKNOWN_METRIC,
)
from ..exceptions import InputError
from ._stats import distinct_columns

__all__ = [
    "Metric",
    "expected_calibration_error",
    "get_metric",
    "resolve_metrics",
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
]

CLASSIFICATION = "classification"
REGRESSION = "regression"
#: Built-in metric names per task.
CLASSIFICATION_METRICS = ("error", "auc", "ece", "log_loss", "brier")
REGRESSION_METRICS = ("mse", "mae", "poisson_deviance")
DEFAULT_METRICS = {CLASSIFICATION: ("error", "auc", "log_loss", "brier"),
                   REGRESSION: ("mse", "mae")}
#: ``log_loss`` clips probabilities to ``[EPS, 1 - EPS]``, as scikit-learn does.
EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class Metric:
    """A performance measure with a direction.

    Parameters
    ----------
    name : str
        Name used in the report.
    func : callable
        ``func(y, score) -> float``.  For classification ``y`` holds 0/1 floats and
        ``score`` the probability of class 1; for regression, targets and predictions.
    greater_is_better : bool, default False
        ``False`` for a loss (error, log loss), ``True`` for a score (AUC).  Gains are
        oriented by it, so that a positive gain always means "better".
    task : {"classification", "regression"} or None, default None
        The task the metric applies to; ``None`` for both.
    needs_both_classes : bool, default False
        Whether the metric is undefined on a group with a single class (AUC); such a
        group is reported as too small to judge for it.

    Examples
    --------
    >>> from sklearn.metrics import f1_score
    >>> f1 = Metric("f1", lambda y, p: f1_score(y, p > 0.5), greater_is_better=True,
    ...             task="classification")
    """

    name: str
    func: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool = False
    task: str | None = None
    needs_both_classes: bool = False

    def __call__(self, y: np.ndarray, score: np.ndarray) -> float:
        return float(self.func(y, score))

    def prepare(self, y: np.ndarray, scores: np.ndarray) -> Any:
        """Precompute what :meth:`evaluate` needs for one group's rows."""
        return np.asarray(y), np.asarray(scores, dtype=np.float64)

    def equal_columns(self, state: Any) -> np.ndarray:
        """Classes of score columns on which the metric is equal under *every* weighting.

        Columns with the same class cannot differ on any resample, so a gain between
        them "cannot change" and is not tested.  A user's metric is only known to be
        equal on identical columns (which the audit merges before :meth:`prepare`),
        so every column is its own class.
        """
        return np.arange(np.asarray(state[1]).shape[1])

    def evaluate(self, state: Any, weights: np.ndarray) -> np.ndarray:
        """Metric of every score column under every row of count ``weights``.

        The generic version rebuilds each resample (rows repeated by their count) and
        calls :attr:`func`; it needs integer counts.  A metric that needs both classes
        is ``NaN`` on a resample that drew a single class (the audit counts such a
        resample as evidence for neither direction).
        """
        y, scores = state
        out = np.empty((weights.shape[0], scores.shape[1]))
        rows_all = np.arange(len(y))
        for b, w in enumerate(np.asarray(weights).astype(np.int64)):
            rows = np.repeat(rows_all, w)
            if self.needs_both_classes and np.unique(y[rows]).size < 2:
                out[b] = np.nan
                continue
            for k in range(scores.shape[1]):
                out[b, k] = self.func(y[rows], scores[rows, k])
        return out


# ------------------------------------------------------------------ built-in metrics
@dataclass(frozen=True)
class _AdditiveMetric(Metric):
    """A mean of per-row losses: the weighted mean is ``weights @ losses / sum(w)``."""

    row_loss: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    exact_test: str | None = None

    def prepare(self, y, scores):
        return self.row_loss(np.asarray(y, dtype=np.float64)[:, None],
                             np.asarray(scores, dtype=np.float64))

    def evaluate(self, losses, weights):
        weights = np.asarray(weights, dtype=np.float64)
        return (weights @ losses) / weights.sum(axis=1, keepdims=True)

    def equal_columns(self, losses):
        """Columns with the same per-row losses (for the error rate: the same rows
        misclassified) have the same weighted mean under every weighting."""
        return distinct_columns(np.asarray(losses))[1]


def _clip(p):
    return np.clip(p, EPS, 1.0 - EPS)


def _error_rows(y, p):
    return ((p > 0.5) != (y == 1)).astype(np.float64)


def _log_loss_rows(y, p):
    p = _clip(p)
    return -(y * np.log(p) + (1.0 - y) * np.log1p(-p))


def _brier_rows(y, p):
    return (p - y) ** 2


def _abs_rows(y, p):
    return np.abs(p - y)


#: Message of Poisson deviance asked of targets or predictions it is not defined for.
MSG_POISSON_DEVIANCE = ("the Poisson deviance needs targets >= 0 and predictions > 0 (rates or counts); "
                        "got {what} (first: {value!r})")


def _poisson_rows(y, p):
    """Poisson deviance of each row, ``2 (y log(y / p) - y + p)`` (``0 log 0 = 0``), as
    scikit-learn's ``mean_poisson_deviance``; a proper scoring rule for the mean."""
    return 2.0 * (special.xlogy(y, y) - special.xlogy(y, p) - y + p)


@dataclass(frozen=True)
class _PoissonDeviance(_AdditiveMetric):
    """Mean Poisson deviance; refuses negative targets and non-positive predictions (where
    it is undefined) instead of returning infinities."""

    def prepare(self, y, scores):
        y = np.asarray(y, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        for what, bad, values in (("a negative target", ~(y >= 0), y),
                                  ("a prediction <= 0", ~(scores > 0), scores)):
            if bad.any():
                raise InputError(MSG_POISSON_DEVIANCE.format(what=what, value=float(values[bad].flat[0])))
        return super().prepare(y, scores)


@dataclass(frozen=True)
class _AUCMetric(Metric):
    """Weighted ROC AUC: the weighted share of (positive, negative) pairs ranked right.

    For each score column the negatives are sorted once (``prepare``); a resample's
    AUC is then ``sum_i w_i C(s_i) / (W_pos W_neg)``, with ``C(s)`` the cumulative
    weight of negatives scored below ``s`` (plus half of those tied), read from a
    cumulative sum.  AUC depends on the scores only through their order within the
    group, so columns that rank the group's rows identically (reports that shift every
    score alike, as group intercepts do) are computed once.  Integer counts use
    integer cumulative sums, which are exact and faster.
    """

    exact_test: str | None = "delong"

    def prepare(self, y, scores):
        y = np.asarray(y)
        scores = np.asarray(scores, dtype=np.float64)
        neg = np.flatnonzero(y == 0)
        pos = np.flatnonzero(y == 1)
        ranks = stats.rankdata(scores, method="dense", axis=0)
        _, inverse = distinct_columns(ranks)
        first = [int(np.flatnonzero(inverse == u)[0]) for u in range(inverse.max(initial=-1) + 1)]
        columns = []
        for k in first:
            order = np.argsort(scores[neg, k], kind="stable")
            sorted_neg = scores[neg[order], k]
            lo = np.searchsorted(sorted_neg, scores[pos, k], side="left")
            hi = np.searchsorted(sorted_neg, scores[pos, k], side="right")
            columns.append((neg[order], lo, None if np.array_equal(lo, hi) else hi))
        return neg, pos, columns, inverse

    def equal_columns(self, state):
        """Columns that rank the group's rows identically have the same AUC under every
        weighting (e.g. reports that only shift a group intercept)."""
        return state[3]

    def evaluate(self, state, weights):
        neg, pos, columns, inverse = state
        weights = np.asarray(weights)
        if weights.dtype.kind not in "iu":
            weights = weights.astype(np.float64, copy=False)
        w_pos = weights[:, pos]
        total_neg = weights[:, neg].sum(axis=1)
        denom = total_neg.astype(np.float64) * w_pos.sum(axis=1)
        if weights.dtype.kind in "iu":  # int32 when 2 * W_neg * max(w_pos) cannot overflow
            small = 2 * int(total_neg.max(initial=0)) * int(w_pos.max(initial=0)) < 2**31
            dtype = np.int32 if small else np.int64
            weights, w_pos = weights.astype(dtype, copy=False), w_pos.astype(dtype, copy=False)
        b = weights.shape[0]
        out = np.full((b, len(columns)), np.nan)
        cum = np.zeros((b, neg.size + 1), dtype=weights.dtype)
        for k, (neg_sorted, lo, hi) in enumerate(columns):
            # cum[:, j] = weight of the j lowest-scored negatives
            np.cumsum(weights[:, neg_sorted], axis=1, out=cum[:, 1:])
            if hi is None:  # no positive ties a negative
                num = (cum[:, lo] * w_pos).sum(axis=1, dtype=np.float64)
            else:  # negatives tied with a positive count 1/2
                num = 0.5 * ((cum[:, lo] + cum[:, hi]) * w_pos).sum(axis=1, dtype=np.float64)
            np.divide(num, denom, out=out[:, k], where=denom > 0)
        return out[:, inverse]


def expected_calibration_error(y: np.ndarray, prob: np.ndarray, *, n_bins: int = 10,
                               sample_weight: np.ndarray | None = None) -> float:
    """Expected calibration error with equal-width bins.

    ``ECE = sum_k |sum_{i in bin k} w_i (p_i - y_i)| / sum_i w_i``: the weighted mean,
    over bins, of ``|mean(p) - mean(y)|`` in the bin.  Bins split [0, 1] into
    ``n_bins`` equal parts and are assigned as in
    :func:`sklearn.calibration.calibration_curve` (a probability on an inner edge goes
    to the lower bin).

    Parameters
    ----------
    y : ndarray
        Labels in {0, 1}.
    prob : ndarray
        Predicted probabilities of class 1.
    n_bins : int, default 10
        Number of bins.
    sample_weight : ndarray, optional
        Row weights.

    Returns
    -------
    float
    """
    y = np.asarray(y, dtype=np.float64)
    prob = np.asarray(prob, dtype=np.float64)
    w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    bins = _bin_ids(prob, n_bins)
    sums = np.bincount(bins, weights=w * (prob - y), minlength=n_bins)
    return float(np.abs(sums).sum() / w.sum())


def _bin_ids(prob: np.ndarray, n_bins: int) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], prob)


@dataclass(frozen=True)
class _ECEMetric(Metric):
    """ECE: bin sums of ``p - y`` for all resamples at once, ``weights @ bin_matrix``
    with a sparse ``bin_matrix``."""

    n_bins: int = 10
    exact_test: str | None = None

    def prepare(self, y, scores):
        y = np.asarray(y, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        n, n_cols = scores.shape
        # row i has one entry per column k: p_ik - y_i, in the column of its bin (sparse,
        # so memory grows as rows x columns, not rows x columns x bins)
        cols = _bin_ids(scores, self.n_bins) + self.n_bins * np.arange(n_cols)
        return sparse.csr_array(((scores - y[:, None]).ravel(),
                                 (np.repeat(np.arange(n), n_cols), cols.ravel())),
                                shape=(n, n_cols * self.n_bins))

    def equal_columns(self, matrix):
        return np.arange(matrix.shape[1] // self.n_bins)

    def evaluate(self, matrix, weights):
        weights = np.asarray(weights, dtype=np.float64)
        sums = np.abs(weights @ matrix).reshape(weights.shape[0], -1, self.n_bins)
        return sums.sum(axis=2) / weights.sum(axis=1, keepdims=True)


def _zero_one(y, p):
    return skm.zero_one_loss(y, p > 0.5)


def _log_loss(y, p):
    return skm.log_loss(y, p, labels=[0, 1])


def _brier(y, p):
    return skm.brier_score_loss(y, p, labels=[0, 1])


def get_metric(name: str, task: str, *, n_bins: int = 10) -> Metric:
    """The built-in metric called ``name`` for ``task``.

    Parameters
    ----------
    name : str
        One of :data:`CLASSIFICATION_METRICS` or :data:`REGRESSION_METRICS`.
    task : {"classification", "regression"}
    n_bins : int, default 10
        Bins of ``"ece"``.

    Returns
    -------
    Metric

    Raises
    ------
    InputError
        Unknown name, or a metric that does not apply to ``task``.
    """
    c, r = CLASSIFICATION, REGRESSION
    builtins: dict[str, Metric] = {
        "error": _AdditiveMetric("error", _zero_one, False, c, False, _error_rows, "mcnemar"),
        "auc": _AUCMetric("auc", skm.roc_auc_score, True, c, True),
        "ece": _ECEMetric("ece", lambda y, p: expected_calibration_error(y, p, n_bins=n_bins),
                          False, c, False, n_bins),
        "log_loss": _AdditiveMetric("log_loss", _log_loss, False, c, False, _log_loss_rows),
        "brier": _AdditiveMetric("brier", _brier, False, c, False, _brier_rows),
        "mse": _AdditiveMetric("mse", skm.mean_squared_error, False, r, False, _brier_rows),
        "mae": _AdditiveMetric("mae", skm.mean_absolute_error, False, r, False, _abs_rows),
        "poisson_deviance": _PoissonDeviance("poisson_deviance", skm.mean_poisson_deviance, False, r, False,
                                             _poisson_rows),
    }
    if name not in builtins:
        raise InputError(MSG_UNKNOWN_METRIC.format(name=name, known=list(builtins)))
    metric = builtins[name]
    if metric.task != task:
        known = list(CLASSIFICATION_METRICS if task == c else REGRESSION_METRICS)
        raise InputError(MSG_METRIC_TASK.format(name=name, task=task, known=known))
    return metric


def resolve_metrics(metrics: Any, task: str, *, n_bins: int = 10) -> list[Metric]:
    """Turn the ``metrics`` argument of :func:`~fairuse_opt.audit.audit` into metrics.

    ``None`` gives the task's defaults (classification: error, AUC, log loss, Brier;
    regression: MSE, MAE).  Names and :class:`Metric` objects may be mixed.
    """
    if metrics is None:
        metrics = DEFAULT_METRICS[task]
    if isinstance(metrics, (str, Metric)) or callable(metrics):
        metrics = [metrics]
    out: list[Metric] = []
    for m in metrics:
        if isinstance(m, Metric):
            if m.task is not None and m.task != task:
                raise InputError(MSG_METRIC_TASK.format(name=m.name, task=task, known="see Metric.task"))
            out.append(m)
        elif isinstance(m, str):
            out.append(get_metric(m, task, n_bins=n_bins))
        elif callable(m):
            raise InputError(MSG_METRIC_CALLABLE.format(name=getattr(m, "__name__", repr(m))))
        else:
            raise InputError(MSG_UNKNOWN_METRIC.format(
                name=m, known=list(CLASSIFICATION_METRICS + REGRESSION_METRICS)))
    if not out:
        raise InputError(MSG_NO_METRICS)
    names = [m.name for m in out]
    for name in names:
        if names.count(name) > 1:
            raise InputError(MSG_DUPLICATE_METRIC.format(name=name))
    return out
