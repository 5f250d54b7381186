"""Margins (the gain each group is asked for) and a user-supplied generic model."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..exceptions import MSG_BAD_PARAM, MSG_BAD_PREDICTIONS, MSG_GENERIC_FAILED, InputError

__all__ = ["check_margin", "check_margin_groups", "resolve_margins", "generic_predictions"]


def check_margin(margin: Any) -> None:
    """Checks that need no data (done even when no guarantee is asked)."""
    if isinstance(margin, str):
        if not margin.startswith("se:"):
            raise InputError(MSG_BAD_PARAM.format(name="margin", value=margin,
                                                  reason="a number, a mapping or 'se:k'"))
        try:
            k = float(margin[3:])
        except ValueError as exc:
            raise InputError(MSG_BAD_PARAM.format(name="margin", value=margin, reason="k must be a number")) from exc
        if not np.isfinite(k) or k < 0:
            raise InputError(MSG_BAD_PARAM.format(name="margin", value=margin, reason="k must be >= 0"))
        return
    if isinstance(margin, Mapping):
        for value in margin.values():
            _check_margin_value(value, margin)
        return
    if isinstance(margin, (np.ndarray, list, tuple)):
        try:
            arr = np.asarray(margin, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(MSG_BAD_PARAM.format(name="margin", value=margin,
                                                  reason="margins must be finite numbers >= 0")) from None
        if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise InputError(MSG_BAD_PARAM.format(name="margin", value=margin,
                                                  reason="an array of margins must be 1-d, finite and >= 0"))
        return
    _check_margin_value(margin, margin)


def check_margin_groups(margin: Any, keys, index) -> None:
    """Checks against the groups seen in training, done even when no guarantee is asked
    (a margin for an unknown group, or an array of the wrong length, is never ignored)."""
    if isinstance(margin, (Mapping, np.ndarray, list, tuple)):
        resolve_margins(margin, keys, index, None, None, None, None)


def resolve_margins(margin: Any, keys, index, codes: np.ndarray, w: np.ndarray,
                    row_loss_generic: np.ndarray, row_loss_model: np.ndarray) -> np.ndarray:
    """Per-group margins ``eps_g`` (loss units) from a number, a mapping, an array or ``"se:k"``.

    ``"se:k"``: k standard errors of the weighted mean of the per-row loss difference
    (generic minus unconstrained personalized model) within the group.
    ``row_loss_model`` may be a callable returning those row losses (computed only for
    ``"se:k"``).
    """
    check_margin(margin)
    G = len(keys)
    if isinstance(margin, str):
        k = float(margin[3:])
        if callable(row_loss_model):
            row_loss_model = row_loss_model()
        diff = row_loss_generic - row_loss_model
        # by group sums (one pass each, not a mask per group): the weighted mean of the
        # difference, then the sum of w^2 (diff - mean)^2 around it
        wsum = np.bincount(codes, weights=w, minlength=G)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(codes, weights=w * diff, minlength=G) / wsum
        dev = w * (diff - mean[codes])
        with np.errstate(invalid="ignore", divide="ignore"):
            out = k * np.sqrt(np.bincount(codes, weights=dev * dev, minlength=G)) / wsum
        return out
    if isinstance(margin, (np.ndarray, list, tuple)):
        arr = np.asarray(margin, dtype=np.float64)
        if arr.shape != (G,):
            raise InputError(MSG_BAD_PARAM.format(
                name="margin", value=margin,
                reason=f"an array of margins needs one value per group ({G}, in the order of groups_); "
                       f"got {arr.shape[0]}"))
        return arr.copy()
    if isinstance(margin, Mapping):
        out = np.zeros(G)
        known = {key: g for g, key in enumerate(keys)}
        for key, value in margin.items():
            norm = index.report_key(key) if index is not None else key
            out[known[norm]] = _check_margin_value(value, margin)
        return out
    return np.full(G, _check_margin_value(margin, margin))


def _check_margin_value(value, whole) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < 0:
        raise InputError(MSG_BAD_PARAM.format(name="margin", value=whole,
                                              reason="margins must be finite numbers >= 0"))
    return float(value)


def generic_predictions(predict, loss, n_rows: int, classification: bool) -> np.ndarray:
    """A user-supplied generic model's predictions on the training rows, checked.

    ``predict()`` returns probabilities ``(n, 2)`` (classification) or values ``(n,)``.
    Any failure of the model, and predictions that cannot be certified against (NaN,
    out of range, wrong count or shape), raise :class:`InputError`.
    """
    try:
        out = predict()
    except InputError:
        raise
    except Exception as exc:  # the user's model: unfitted, wrong features, ...
        raise InputError(MSG_GENERIC_FAILED.format(error=f"{type(exc).__name__}: {exc}")) from exc
    try:
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.asarray(out, dtype=object)
    if classification:
        if arr.ndim == 2 and arr.shape[1] == 2:
            if arr.dtype.kind == "f" and np.all(np.isfinite(arr)):
                off = np.abs(arr.sum(axis=1) - 1.0)
                if off.max() > 1e-6:
                    k = int(np.argmax(off))
                    raise InputError(MSG_BAD_PREDICTIONS.format(
                        what="generic", problem=f"{int((off > 1e-6).sum())} row(s) of predict_proba do not "
                                                f"sum to 1 (first: {arr[k].tolist()} at row {k})"))
            arr = arr[:, 1]
        elif arr.ndim != 1:
            return loss.check_predictions(arr, n_rows)  # raises with the shape
    return loss.check_predictions(arr, n_rows)
