"""A candidate shrunk toward the generic model: the rungs of the certified system's ladder.

At strength ``t`` in (0, 1], the shrunk model's score is ``(1 - t) s_generic + t
s_candidate`` on the scale where both models are linear: the log-odds for a classifier,
the prediction for a regressor, the link of the prediction for a regressor of another
loss (the log-rate for the Poisson loss).  ``t = 1`` is the candidate itself.

With a *reference* (the generic model trained alongside the candidate, on the same
rows), the score is ``s_generic + t (s_candidate - s_reference)``: the candidate's
departure from its own generic model, added at strength ``t`` to a generic model that
may be trained on more rows (``fit_system`` trains it on all of them).  Without a
reference the two forms agree (the reference is the generic model).

Linear models blended either way are a linear model (the model file writes its
coefficients).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit, logit

from ..model.losses import loss_of

__all__ = ["ShrunkModel", "blend_scores", "shrunk_name"]

#: Probabilities are clipped to ``[CLIP, 1 - CLIP]`` before the log-odds are taken.
CLIP = 1e-15


def blend_scores(generic: np.ndarray, candidate: np.ndarray, t: float, classification: bool,
                 reference: np.ndarray | None = None, loss: Any = None) -> np.ndarray:
    """Outputs (probability of class 1, or prediction) of the model shrunk to strength ``t``
    (with ``reference``: the generic model plus ``t`` times the candidate's departure
    from the reference, module docstring); a regressor's ``loss`` (a
    :class:`~fairuse_opt.model.losses.Loss`, None: the squared error) gives the link."""
    if reference is None:
        if t >= 1.0:
            return np.asarray(candidate, dtype=np.float64)
        reference = generic
    if not classification and loss is not None:
        link = loss.link
        return loss.inverse_link(link(generic) + t * (link(candidate) - link(reference)))
    if not classification:
        return generic + t * (candidate - reference)
    lg = logit(np.clip(generic, CLIP, 1 - CLIP))
    lc = logit(np.clip(candidate, CLIP, 1 - CLIP))
    lr = lg if reference is generic else logit(np.clip(reference, CLIP, 1 - CLIP))
    return expit(lg + t * (lc - lr))


def shrunk_name(name: str, t: float) -> str:
    """Name of candidate ``name`` shrunk to strength ``t``, e.g. ``intersectional[Age]@0.25``."""
    return f"{name}@{t:g}"


class ShrunkModel:
    """``candidate`` shrunk toward ``generic`` at strength ``strength`` (module docstring);
    with ``reference``, the candidate's departure from ``reference`` added to ``generic``.

    It predicts like the candidate does (``report=`` passed on to the candidate) and
    exposes the attributes the system reads (``group_names_``, ``groups_``, ``classes_``,
    ``n_features_in_``).
    """

    def __init__(self, candidate: Any, generic: Any, strength: float, reference: Any = None):
        if not 0.0 < float(strength) <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength!r}")
        self.candidate = candidate
        self.generic = generic
        self.strength = float(strength)
        self.reference = reference
        for attr in ("group_names_", "groups_", "classes_", "n_features_in_", "feature_names_in_"):
            if hasattr(candidate, attr):
                setattr(self, attr, getattr(candidate, attr))

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def _all(self, method: str, X: Any, kwargs: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        g = np.asarray(getattr(self.generic, method)(X), dtype=np.float64)
        c = np.asarray(getattr(self.candidate, method)(X, **kwargs), dtype=np.float64)
        r = None if self.reference is None else np.asarray(getattr(self.reference, method)(X), dtype=np.float64)
        return g, c, r

    def predict_proba(self, X: Any, **kwargs: Any) -> np.ndarray:
        g, c, r = self._all("predict_proba", X, kwargs)
        p = blend_scores(g[:, 1], c[:, 1], self.strength, True, None if r is None else r[:, 1])
        return np.column_stack([1.0 - p, p])

    def decision_function(self, X: Any, **kwargs: Any) -> np.ndarray:
        if hasattr(self.generic, "predict_proba"):
            p = self.predict_proba(X, **kwargs)[:, 1]
            return logit(np.clip(p, CLIP, 1 - CLIP))
        return self.predict(X, **kwargs)

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        if hasattr(self.generic, "predict_proba"):
            p = self.predict_proba(X, **kwargs)[:, 1]
            return np.asarray(self.classes_)[(p > 0.5).astype(np.int64)]
        g, c, r = self._all("predict", X, kwargs)
        return blend_scores(g, c, self.strength, False, r, loss_of(self.generic))

    def __repr__(self) -> str:
        ref = "" if self.reference is None else ", with reference"
        return f"ShrunkModel({self.candidate!r}, strength={self.strength:g}{ref})"
