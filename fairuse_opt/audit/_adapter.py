"""Any scikit-learn estimator as a personalized model the audit can score."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .._groups import GroupIndex
from .._validation import check_features, check_groups
from ..exceptions import MSG_N_FEATURES, InputError
from ._frames import distinct_rows, group_codes
from ._errors import MSG_ADAPTER_ENCODING, MSG_ADAPTER_NEEDS_GROUPS

__all__ = ["SklearnGroupModel"]

ENCODINGS = ("onehot", "intersectional", "none")


def _estimator_has(method: str):
    def check(self) -> bool:
        est = getattr(self, "estimator_", self.estimator)
        return hasattr(est, method)
    return check


class SklearnGroupModel(BaseEstimator):
    """Make a scikit-learn estimator a personalized model: features plus group indicators.

    The estimator is fitted on ``[X, indicators]``.  With ``encoding="onehot"`` there is
    one indicator per level of each group attribute; with ``"intersectional"``, one per
    intersectional group; with ``"none"`` there are none (the generic model).  The
    fitted model follows the interface :func:`~fairuse_opt.audit.audit` expects:
    ``predict_proba(X, *, groups=None, report=None)`` (when the estimator has it) and
    ``predict(X, *, groups=None, report=None)``, where ``report`` gives every row the
    indicators of one group.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Cloned before fitting (random forest, gradient boosting, MLP, logistic
        regression, ...).
    encoding : {"onehot", "intersectional", "none"}, default "onehot"
        How the group attributes enter.
    fit_generic : bool, default True
        Also fit ``generic_``: the same estimator on the features only.

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone.
    generic_ : SklearnGroupModel or None
        The generic counterpart (``encoding="none"``); it accepts and ignores
        ``groups``/``report``.
    groups_ : list of tuple
        Intersectional groups seen in training (reportable groups).
    group_names_ : list of str
        Group attribute names.
    classes_ : ndarray
        Class labels (classifiers only).
    n_features_in_ : int
        Number of features (without the indicators).

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> model = SklearnGroupModel(RandomForestClassifier(random_state=0),
    ...                           encoding="intersectional")  # doctest: +SKIP
    >>> model.fit(X_train, y_train, groups=g_train)            # doctest: +SKIP
    >>> audit(model, X_test, y_test, groups=g_test)            # doctest: +SKIP
    """

    def __init__(self, estimator: Any, *, encoding: str = "onehot", fit_generic: bool = True):
        self.estimator = estimator
        self.encoding = encoding
        self.fit_generic = fit_generic

    def fit(self, X: Any, y: Any, *, groups: Any = None, sample_weight: Any = None):
        """Fit the estimator on features and group indicators (and the generic model).

        Parameters
        ----------
        X : array-like, shape (n, d)
            Features (numeric).
        y : array-like, shape (n,)
            Target.
        groups : DataFrame, Series or array-like
            Group attributes (ignored with ``encoding="none"``).
        sample_weight : array-like, optional
            Passed to the estimator's ``fit``.

        Returns
        -------
        self
        """
        if self.encoding not in ENCODINGS:
            raise InputError(MSG_ADAPTER_ENCODING.format(value=self.encoding, choices=ENCODINGS))
        features, _ = check_features(X)
        self.n_features_in_ = features.shape[1]
        if self.encoding != "none":
            if groups is None:
                raise InputError(MSG_ADAPTER_NEEDS_GROUPS.format(encoding=self.encoding,
                                                                 method="fit"))
            frame = check_groups(groups, features.shape[0])
            self.index_ = GroupIndex.from_frame(distinct_rows(frame)[0])
            self.groups_ = list(self.index_.keys)
            self.group_names_ = list(self.index_.names)
            codes = group_codes(self.index_, frame)
        else:
            codes = None
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        self.estimator_ = clone(self.estimator).fit(self._design(features, codes), y, **kwargs)
        if hasattr(self.estimator_, "classes_"):
            self.classes_ = self.estimator_.classes_
        self.generic_ = None
        if self.fit_generic and self.encoding != "none":
            self.generic_ = SklearnGroupModel(self.estimator, encoding="none",
                                              fit_generic=False).fit(X, y, **kwargs)
        return self

    def _design(self, features: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
        if self.encoding == "none":
            return features
        if self.encoding == "intersectional":
            indicators = np.zeros((features.shape[0], self.index_.n_groups))
            indicators[np.arange(features.shape[0]), codes] = 1.0
        else:  # one column per level of each attribute
            levels = self.index_.level_codes()[codes]  # (n, n_attributes)
            sizes = [len(self.index_.levels[n]) for n in self.index_.names]
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            indicators = np.zeros((features.shape[0], int(sum(sizes))))
            rows = np.arange(features.shape[0])[:, None]
            indicators[rows, levels + offsets] = 1.0
        return np.hstack([features, indicators])

    def _transform(self, X: Any, groups: Any, report: Any, method: str) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        features, _ = check_features(X)
        if features.shape[1] != self.n_features_in_:
            raise InputError(MSG_N_FEATURES.format(got=features.shape[1], name=type(self).__name__,
                                                   expected=self.n_features_in_))
        n = features.shape[0]
        if self.encoding == "none":
            return features
        if report is not None:
            codes = np.full(n, self.index_.report_code(report), dtype=np.int64)
        elif groups is not None:
            frame = check_groups(groups, n, fit=False)
            codes = group_codes(self.index_, frame)
        else:
            raise InputError(MSG_ADAPTER_NEEDS_GROUPS.format(encoding=self.encoding, method=method))
        return self._design(features, codes)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X: Any, *, groups: Any = None, report: Any = None) -> np.ndarray:
        """Class probabilities, shape (n, n_classes).

        Parameters
        ----------
        X : array-like, shape (n, d)
        groups : DataFrame, Series or array-like, optional
            Each row's group; needed unless ``report`` is given.
        report : tuple, dict or scalar, optional
            Score every row as if it had reported this group.

        Returns
        -------
        ndarray
        """
        design = self._transform(X, groups, report, "predict_proba")
        return self.estimator_.predict_proba(design)

    def predict(self, X: Any, *, groups: Any = None, report: Any = None) -> np.ndarray:
        """Predictions (labels for a classifier, values for a regressor).

        Parameters
        ----------
        X : array-like, shape (n, d)
        groups : DataFrame, Series or array-like, optional
            Each row's group; needed unless ``report`` is given.
        report : tuple, dict or scalar, optional
            Score every row as if it had reported this group.

        Returns
        -------
        ndarray
        """
        design = self._transform(X, groups, report, "predict")
        return self.estimator_.predict(design)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier" if is_classifier(self.estimator) else "regressor"
        return tags
