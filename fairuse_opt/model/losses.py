"""Losses, one object each.

A loss object carries everything the library needs to know about a loss, and nothing
else knows it: its value, derivative and curvature in the linear score ``s``, the
inverse link (score -> prediction), the start value (the best constant score), the
range of its targets and of its predictions, and its cvxpy atom.  Adding a loss is
adding one subclass of :class:`Loss`; an estimator uses it by returning it from
``_get_loss()`` (as scikit-learn's generalised linear models do)::

    class FairUsePoissonRegressor(FairUseRegressor):
        def _get_loss(self):
            return PoissonLoss()  # row_loss, value, grad, curvature, cvx, inverse_link, link, start

``tests/test_custom_loss.py`` defines a Poisson loss this way, outside the library, and
checks its fits (generic, personalized, with fair-use constraints; native and cvxpy)
against scikit-learn's ``PoissonRegressor`` and scipy.  The library ships its own
:class:`PoissonLoss` (and ``FairUsePoissonRegressor``); a loss is found by its
:attr:`Loss.name` in :data:`LOSSES` (model files record it).

What used to be decided by the estimator's task ("classification" / "regression") is
the loss's: the targets it accepts (:meth:`Loss.check_target`, :meth:`Loss.check_spread`),
the scale of its scores (:meth:`Loss.score_unit`, the common set's default size), whether
its objective is quadratic (:attr:`Loss.quadratic`, the conic solvers' order) and the
estimator's ``score`` (:meth:`Loss.score`).

Rows are handled as *merged rows*: rows identical in (features, group) share one
score, so their losses add up to a function of the score and a few sufficient
statistics.  For the logistic loss with labels ``y in {0, 1}`` and weights ``w``:
``sum w_i [log(1 + e^s) - y_i s] = W log(1 + e^s) - W1 s`` with ``W = sum w_i`` and
``W1 = sum w_i y_i``.  For the squared error:
``sum w_i (y_i - s)^2 = W s^2 - 2 Wy s + Wyy``.  The same formulas hold for a single
row (``W = w_i``), so one code path serves merged and unmerged data.  Column 0 of the
statistics is always the total weight ``W``.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
from scipy.special import expit

from .._validation import check_target_spread
from ..exceptions import MSG_BAD_PREDICTIONS, MSG_TARGET_RANGE, InputError

__all__ = ["Loss", "LogisticLoss", "SquaredLoss", "PoissonLoss", "LOSSES", "get_loss", "loss_of"]


class Loss:
    """Interface of a loss of a linear score ``s`` (override every method).

    Attributes
    ----------
    name : str
        Name used in certificates and messages (``"log_loss"``).
    n_stats : int
        Number of sufficient statistics per merged row (:meth:`stats`).
    target_range : tuple of float
        Closed interval every target must lie in (``(0, 1)`` for labels coded 0/1).
    prediction_range : tuple of float
        Closed interval of the predictions (:meth:`inverse_link`); a user-supplied
        generic model's predictions are checked against it.
    """

    name = "loss"
    n_stats = 2
    #: the kind of estimator the loss fits (``"classification"``: labels, ``predict_proba``;
    #: ``"regression"``: real predictions); model files record it as their ``task``
    task = "regression"
    #: the audit metric (:func:`fairuse_opt.audit.get_metric`) a certified system of
    #: regressors of this loss assigns by default (a proper scoring rule for its
    #: prediction); ``None``: the system's own default (classification)
    metric: str | None = None
    target_range = (-np.inf, np.inf)
    prediction_range = (-np.inf, np.inf)
    #: a bound on ``|d row_loss / d s|`` over every score and target in range, or None:
    #: with it the certificate bounds the rounding of the served losses by
    #: ``lipschitz * |score error|`` (no per-row derivatives: :meth:`row_terms`)
    lipschitz: float | None = None
    #: the summed loss is a quadratic of the scores: the conic solvers that take it
    #: directly (Clarabel) and the direct form are tried first
    quadratic: bool = False

    # ------------------------------------------------------------ statistics
    def stats(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Per-row sufficient statistics, an array ``(n, n_stats)``; column 0 is ``w``."""
        return np.column_stack([w, w * y])

    # --------------------------------------------------------- of the score
    def row_loss(self, y: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Unweighted loss of each row."""
        raise NotImplementedError

    def value(self, stats: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Weighted loss of each merged row."""
        raise NotImplementedError

    def grad(self, stats: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Derivative of :meth:`value` in ``s``."""
        raise NotImplementedError

    def curvature(self, stats: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Second derivative of :meth:`value` in ``s`` (non-negative: the loss is convex)."""
        raise NotImplementedError

    def value_grad(self, stats: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`value` and :meth:`grad` at once (override when they share work: the
        fits ask for both on every row at every iterate)."""
        return self.value(stats, s), self.grad(stats, s)

    def row_terms(self, y: np.ndarray, s: np.ndarray):
        """Unweighted loss of each row and the absolute values of its first and second
        derivatives in ``s`` (the certificate's rounding bound for a loss without
        :attr:`lipschitz`)."""
        st = self.stats(y, np.ones_like(y))
        return self.row_loss(y, s), np.abs(self.grad(st, s)), self.curvature(st, s)

    def constant(self, stats: np.ndarray) -> float:
        """The part of the summed loss that :meth:`cvx` leaves out (0 unless overridden)."""
        return 0.0

    def cvx(self, stats: np.ndarray, s: cp.Expression) -> cp.Expression:
        """Sum of :meth:`value` over the given merged rows minus :meth:`constant`, in cvxpy."""
        raise NotImplementedError

    # ------------------------------------------------------ of a prediction
    def inverse_link(self, s: np.ndarray) -> np.ndarray:
        """Prediction (probability, mean) of a score."""
        raise NotImplementedError

    def link(self, pred: np.ndarray) -> np.ndarray:
        """Score of a prediction (the inverse of :meth:`inverse_link`)."""
        raise NotImplementedError

    def loss_of_prediction(self, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """Unweighted row losses of predictions ``pred`` (for a user's generic model)."""
        return self.row_loss(y, self.link(pred))

    def start(self, y: np.ndarray, w: np.ndarray) -> float:
        """The best constant score: a finite start for Newton's method."""
        raise NotImplementedError

    def target_shift(self, y: np.ndarray, w: np.ndarray) -> float:
        """A constant ``c`` such that fitting targets ``y - c`` (scores ``s - c``) is the same
        problem (0: the targets are fitted as they are).  The estimators fit ``y - c`` and
        add ``c`` back to every served intercept."""
        return 0.0

    def target_scale(self, stats: np.ndarray) -> float:
        """A scale ``c`` of the targets such that the loss of ``(c y, c s)`` is ``c^2`` times
        the loss of ``(y, s)`` (1: the loss is not rescaled).  The conic backends solve the
        problem for targets ``y / c`` (scores and losses of order one), whose solution is
        the original one divided by ``c`` (see :meth:`scaled_stats`)."""
        return 1.0

    def scaled_stats(self, stats: np.ndarray, c: float) -> np.ndarray:
        """The statistics of the targets divided by ``c`` (see :meth:`target_scale`)."""
        return stats

    def gradient_scale(self, stats: np.ndarray) -> float:
        """The size, relative to a loss of order one, of the mean loss's derivatives in the
        score near its minimum (at least 1; 1 by default).  The native solvers' stopping
        rules on the gradient are multiplied by it: a fixed absolute tolerance of 1e-10 is
        below the rounding of a gradient whose terms are of order 1e9."""
        return 1.0

    def recession(self, stats: np.ndarray) -> np.ndarray | None:
        """Per merged row, the directions of the score along which its loss does not grow
        without bound: ``+1`` (only ``s -> +inf``), ``-1`` (only ``s -> -inf``), ``0``
        (neither).  ``None`` (the default): the loss grows without bound both ways for
        every row, so any fit has a minimum.  Used to detect fits with no minimum
        (separable classes with nothing penalised)."""
        return None

    def score_unit(self, y: np.ndarray, w: np.ndarray) -> float:
        """The natural unit of a score (1: log-odds, log-rates); the common set's default
        half-widths are multiples of it."""
        return 1.0

    def score(self, y: np.ndarray, pred: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        """The estimator's ``score`` of predictions ``pred`` (:meth:`inverse_link` of the
        scores) for targets ``y``; the default is R^2 (override it: the Poisson loss's is
        the fraction of deviance explained, as scikit-learn's ``PoissonRegressor``)."""
        from sklearn.metrics import r2_score

        return float(r2_score(y, pred, sample_weight=sample_weight))

    # -------------------------------------------------------------- checks
    def check_spread(self, y: np.ndarray, w: np.ndarray) -> None:
        """Raise :class:`InputError` when float64 cannot resolve the loss of these targets
        (nothing to check by default)."""

    def check_target(self, y: np.ndarray) -> None:
        """Raise :class:`InputError` when a target lies outside :attr:`target_range`."""
        lo, hi = self.target_range
        bad = ~((y >= lo) & (y <= hi))
        if bad.any():
            raise InputError(MSG_TARGET_RANGE.format(loss=self.name, low=lo, high=hi, n_bad=int(bad.sum()),
                                                     first=int(np.flatnonzero(bad)[0])))

    def check_predictions(self, pred: np.ndarray, n_rows: int, what: str = "generic") -> np.ndarray:
        """Predictions of a user's model as a float vector of ``n_rows`` in range, or raise."""
        lo, hi = self.prediction_range
        try:
            arr = np.asarray(pred, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(MSG_BAD_PREDICTIONS.format(what=what, problem="they are not numbers")) from None
        if arr.ndim != 1 or arr.shape[0] != n_rows:
            raise InputError(MSG_BAD_PREDICTIONS.format(
                what=what, problem=f"expected {n_rows} values, one per row; got an array of shape {arr.shape}"))
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputError(MSG_BAD_PREDICTIONS.format(
                what=what, problem=f"{int(bad.sum())} are NaN or infinite (first at row {int(np.flatnonzero(bad)[0])})"))
        out = (arr < lo) | (arr > hi)
        if out.any():
            k = int(np.flatnonzero(out)[0])
            raise InputError(MSG_BAD_PREDICTIONS.format(
                what=what, problem=f"{int(out.sum())} lie outside [{lo:g}, {hi:g}] (first: {arr[k]!r} at row {k})"))
        return arr

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class LogisticLoss(Loss):
    """Logistic loss (log loss in nats) of a score ``s`` (log-odds); labels 0/1."""

    name = "log_loss"
    n_stats = 2  # W, W1
    task = "classification"
    lipschitz = 1.0  # |expit(s) - y| <= 1 for y in [0, 1]
    target_range = (0.0, 1.0)
    prediction_range = (0.0, 1.0)

    @staticmethod
    def _softplus(s):
        # log(1 + e^s) = max(s, 0) + log1p(e^-|s|): stable, and twice as fast as
        # np.logaddexp(0, s) (1.4 ms against 2.8 ms on 125,000 rows); equal to it within
        # 1e-15 (the loss is evaluated on every row at every iterate)
        return np.maximum(s, 0.0) + np.log1p(np.exp(-np.abs(s)))

    def row_loss(self, y, s):
        return self._softplus(s) - y * s

    def value(self, stats, s):
        return stats[:, 0] * self._softplus(s) - stats[:, 1] * s

    def grad(self, stats, s):
        return stats[:, 0] * expit(s) - stats[:, 1]

    def curvature(self, stats, s):
        p = expit(s)
        return stats[:, 0] * p * (1.0 - p)

    def value_grad(self, stats, s):
        # one exponential for both: e = e^-|s|, softplus(s) = max(s, 0) + log1p(e) and
        # expit(s) = 1 / (1 + e) for s >= 0, e / (1 + e) below (as exact as scipy's expit)
        e = np.exp(-np.abs(s))
        W, W1 = stats[:, 0], stats[:, 1]
        v = np.maximum(s, 0.0)
        v += np.log1p(e)
        v *= W
        v -= W1 * s
        p = 1.0 / (1.0 + e)
        np.multiply(p, e, out=p, where=s < 0)
        p *= W
        p -= W1
        return v, p

    def cvx(self, stats, s):
        return stats[:, 0] @ cp.logistic(s) - stats[:, 1] @ s

    def inverse_link(self, s):
        return expit(s)

    def link(self, pred):
        p = np.clip(pred, 1e-15, 1 - 1e-15)
        return np.log(p) - np.log1p(-p)

    def loss_of_prediction(self, y, pred):
        """Log loss of probabilities: ``pred`` is P(y = 1) (n,), or both columns (n, 2) of
        ``predict_proba`` (more accurate near 0 and 1).  Probabilities of exactly 0 or 1
        are clipped to 1e-15 (as scikit-learn's ``log_loss`` does)."""
        pred = np.asarray(pred, dtype=np.float64)
        if pred.ndim == 2:
            p1 = np.clip(pred[:, 1], 1e-300, 1.0)
            p0 = np.clip(pred[:, 0], 1e-300, 1.0)
            return -(y * np.log(p1) + (1 - y) * np.log(p0))
        p = np.clip(pred, 1e-15, 1 - 1e-15)
        return -(y * np.log(p) + (1 - y) * np.log1p(-p))

    def start(self, y, w):
        m = min(max(float(np.average(y, weights=w)), 1e-6), 1 - 1e-6)
        return float(np.log(m / (1 - m)))

    def recession(self, stats):
        """Rows whose labels are all 1 lose less as ``s -> +inf``, all 0 as ``s -> -inf``."""
        W, W1 = stats[:, 0], stats[:, 1]
        out = np.zeros(len(W), dtype=np.int64)
        out[W1 >= W * (1 - 1e-12)] = 1
        out[W1 <= W * 1e-12] = -1
        return out


class SquaredLoss(Loss):
    """Squared error ``(y - s)^2``."""

    name = "squared_error"
    n_stats = 3  # W, Wy, Wyy
    metric = "mse"
    quadratic = True

    def score_unit(self, y, w):
        """The standard deviation of the targets (1 when they are constant)."""
        ybar = np.average(y, weights=w)
        return float(np.sqrt(np.average((y - ybar) ** 2, weights=w))) or 1.0

    def check_spread(self, y, w):
        """Squared errors that float64 cannot resolve (targets of very large spread)."""
        check_target_spread(y, w)

    def stats(self, y, w):
        return np.column_stack([w, w * y, w * y * y])

    def row_loss(self, y, s):
        return (y - s) ** 2

    def value(self, stats, s):
        return stats[:, 0] * s * s - 2.0 * stats[:, 1] * s + stats[:, 2]

    def grad(self, stats, s):
        return 2.0 * (stats[:, 0] * s - stats[:, 1])

    def curvature(self, stats, s):
        return 2.0 * stats[:, 0] * np.ones_like(s)

    def cvx(self, stats, s):
        """``sum W (s - ybar)^2`` (without the constant: see :meth:`constant`).

        Written as one sum of squares, a single second-order cone per group.
        """
        W = stats[:, 0]
        keep = W > 0
        ybar = np.divide(stats[:, 1], W, out=np.zeros_like(W), where=keep)
        return cp.sum_squares(cp.multiply(np.sqrt(W), s - ybar))

    def constant(self, stats):
        """``sum Wyy - Wy^2 / W``: the part of the loss no score can remove."""
        W = stats[:, 0]
        keep = W > 0
        return float(np.sum(stats[keep, 2] - stats[keep, 1] ** 2 / W[keep]))

    def target_shift(self, y, w):
        """The weighted mean: ``(y - s)^2`` depends on ``y - s`` only, and its sufficient
        statistics (``W s^2 - 2 Wy s + Wyy``) cancel catastrophically for y far from 0."""
        return float(np.average(y, weights=w))

    def target_scale(self, stats):
        """The root mean square of the targets: ``(y - s)^2`` is homogeneous of degree 2."""
        W = float(stats[:, 0].sum())
        rms = float(np.sqrt(stats[:, 2].sum() / W)) if W > 0 else 0.0
        return rms if np.isfinite(rms) and rms > 0 else 1.0

    def scaled_stats(self, stats, c):
        return np.column_stack([stats[:, 0], stats[:, 1] / c, stats[:, 2] / (c * c)])

    def inverse_link(self, s):
        return np.asarray(s, dtype=np.float64)

    def link(self, pred):
        return np.asarray(pred, dtype=np.float64)

    def loss_of_prediction(self, y, pred):
        return (y - pred) ** 2

    def start(self, y, w):
        return float(np.average(y, weights=w))


class PoissonLoss(Loss):
    """Poisson loss of a log-rate ``s``: ``exp(s) - y s``, half the Poisson deviance up to
    a term of ``y`` alone (so that the mean loss plus ``alpha ||w||^2`` is scikit-learn's
    ``PoissonRegressor`` objective with its ``alpha = 2 alpha``); counts or rates ``y >= 0``."""

    name = "poisson"
    n_stats = 2  # W, Wy
    metric = "poisson_deviance"
    target_range = (0.0, np.inf)
    prediction_range = (0.0, np.inf)

    def row_loss(self, y, s):
        return np.exp(s) - y * s

    def value(self, stats, s):
        return stats[:, 0] * np.exp(s) - stats[:, 1] * s

    def grad(self, stats, s):
        return stats[:, 0] * np.exp(s) - stats[:, 1]

    def curvature(self, stats, s):
        return stats[:, 0] * np.exp(s)

    def value_grad(self, stats, s):
        e = np.exp(s)
        return stats[:, 0] * e - stats[:, 1] * s, stats[:, 0] * e - stats[:, 1]

    def cvx(self, stats, s):
        return stats[:, 0] @ cp.exp(s) - stats[:, 1] @ s

    def inverse_link(self, s):
        return np.exp(s)

    def link(self, pred):
        return np.log(np.maximum(np.asarray(pred, dtype=np.float64), 1e-300))

    def loss_of_prediction(self, y, pred):
        """``pred - y log(pred)`` (a prediction of 0 where ``y = 0`` loses nothing)."""
        pred = np.asarray(pred, dtype=np.float64)
        return pred - np.where(y > 0, y * np.log(np.maximum(pred, 1e-300)), 0.0)

    def start(self, y, w):
        return float(np.log(max(float(np.average(y, weights=w)), 1e-12)))

    def gradient_scale(self, stats):
        """The mean target (at least 1): the mean loss's curvature at its minimum is the mean
        rate ``exp(s)``, so its gradient grows with the rates (counts of order 1e9: a
        gradient of order 1e9 times the error of the score)."""
        W = float(stats[:, 0].sum())
        m = float(stats[:, 1].sum()) / W if W > 0 else 1.0
        return max(1.0, m) if np.isfinite(m) else 1.0

    def recession(self, stats):
        """Rows whose targets are all 0 lose less as ``s -> -inf``."""
        out = np.zeros(len(stats), dtype=np.int64)
        out[stats[:, 1] <= 0] = -1
        return out

    def score(self, y, pred, sample_weight=None):
        """D^2, the fraction of Poisson deviance explained (scikit-learn's
        ``PoissonRegressor.score``)."""
        from sklearn.metrics import d2_tweedie_score

        return float(d2_tweedie_score(y, pred, sample_weight=sample_weight, power=1))


#: The losses the library ships, by :attr:`Loss.name` (model files name their loss).
LOSSES = {cls.name: cls for cls in (LogisticLoss, SquaredLoss, PoissonLoss)}


def get_loss(task: str) -> Loss:
    """Loss object of a task (``"classification"`` or ``"regression"``)."""
    return LogisticLoss() if task == "classification" else SquaredLoss()


def loss_of(model) -> Loss | None:
    """The loss a fitted model was fitted with: its ``_get_loss()`` (the library's
    estimators, and linear models read from a system file), else ``None`` (a model of
    another library)."""
    get = getattr(model, "_get_loss", None)
    loss = get() if callable(get) else None
    return loss if isinstance(loss, Loss) else None
