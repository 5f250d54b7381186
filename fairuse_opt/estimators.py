"""scikit-learn estimators: :class:`FairUseClassifier` and :class:`FairUseRegressor`."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import sys
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score
from sklearn.utils.validation import check_is_fitted

from . import _fitcache
from ._groups import GroupIndex
from ._validation import (
    check_classification_target,
    check_features,
    check_fit_magnitude,
    check_groups,
    check_param,
    check_regression_target,
    check_sample_weight,
    split_group_columns,
    warn_small_groups,
)
from .certificate import Certificate
from .exceptions import (
    MSG_ALPHA_AND_L2,
    MSG_ALPHA_RENAMED,
    MSG_BAD_PARAM,
    MSG_EMPTY_WEIGHT_GROUP,
    MSG_FALLBACK_EXTERNAL,
    MSG_FEATURE_NAMES,
    MSG_GROUPS_REQUIRED,
    MSG_ILL_SCALED,
    MSG_N_FEATURES,
    MSG_Y_NONE,
    FairUseInfeasibleError,
    InputError,
    SolverError,
    VerificationError,
)
from .fairness import routes
from .fairness.certify import Served, row_scores, served_losses
from .fairness.margins import check_margin, check_margin_groups, generic_predictions
from .model.family import ENCODINGS, GROUP_REGS, Family
from .model.losses import Loss, LogisticLoss, PoissonLoss, SquaredLoss
from .problem import FORMS, Problem, SetSpec, TrainData
from .problem.data import centred_rows, wide_basis
from .solvers import SOLVER_CHOICES, ConicBackend, Task, solver_order
from .solvers.base import CONIC_SOLVERS, NATIVE_CHOICES, registered_backend
from .solvers import native
from .solvers.conic import raise_failed

__all__ = ["FairUseClassifier", "FairUseRegressor", "FairUsePoissonRegressor", "FILE_ESTIMATORS"]

FAIR_USE_CHOICES = ("rationality", "envy_freeness")
#: Upper bound of ``tol``: it is the tolerance of a numerical check, not a slack of the
#: guarantee; gains worth certifying are 1e-3 and up (apnea's are ~1e-2), so a larger
#: tolerance would certify violations the size of the gains themselves.
MAX_TOL = 1e-3

_log = logging.getLogger("fairuse_opt.fit")

#: Name under which the group attributes travel in scikit-learn's metadata routing
#: (fairlearn's name): a splitter's ``groups`` (GroupKFold) never reaches the estimator.
ROUTED_GROUPS = "sensitive_features"
#: Appended to the "needs group attributes" error of ``fit``: the fix for scikit-learn's
#: tools, whose own ``groups=`` goes to the splitter, not to ``fit``.
MSG_GROUPS_ROUTING_HINT = (
    "; in cross_val_score, cross_validate or GridSearchCV (whose groups= goes to the CV "
    "splitter, not to fit) turn on metadata routing, sklearn.set_config("
    "enable_metadata_routing=True), and pass params={'" + ROUTED_GROUPS + "': groups} "
    "(search.fit(X, y, " + ROUTED_GROUPS + "=groups)), or use group_cols: see docs/pipelines.md"
)


@contextlib.contextmanager
def _progress(verbose: bool):
    """``verbose=True``: progress of the ``fairuse_opt.fit`` logger on standard error."""
    if not verbose:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[fairuse_opt] %(message)s"))
    old = _log.level
    _log.addHandler(handler)
    if not _log.isEnabledFor(logging.INFO):
        _log.setLevel(logging.INFO)
    try:
        yield
    finally:
        _log.removeHandler(handler)
        _log.setLevel(old)


def _scale_note(mean, scale, names, y, w, task) -> str:
    """What in the data's scaling can defeat a float64 fit (appended to solver and
    verification errors): features or a regression target far from 0 relative to their
    spread, a regression target of very large spread."""
    notes = []
    if len(mean):
        ratio = np.abs(mean) / scale
        far = [names[j] for j in np.argsort(-ratio)[:3] if ratio[j] > 1e6]
        if far:
            notes.append(f"feature(s) {far} have offsets up to {ratio.max():.2g} times their spread "
                         "(center them)")
    if task == "regression":
        ybar = float(np.average(y, weights=w))
        ysd = float(np.sqrt(np.average((y - ybar) ** 2, weights=w)))
        if ysd > 1e6:
            notes.append(f"y has a spread of {ysd:.2g}, so squared errors of order {ysd ** 2:.2g} "
                         "(rescale y)")
        elif ysd > 0 and abs(ybar) > 1e6 * ysd:
            notes.append(f"y has an offset {abs(ybar) / ysd:.2g} times its spread (center y)")
    return "; note: " + "; ".join(notes) if notes else ""


def _generic_blocks(gprob: Problem, theta0: np.ndarray):
    """The generic fit's last Hessian blocks (one per group, effective coordinates) when
    they were taken near its solution ``theta0`` (:meth:`Problem.recent_hessians`' test),
    else ``None``: the personalised problem's Hessian at the generic model, for its
    unconstrained fit's first steps."""
    recent = getattr(gprob, "_recent_blocks", None)
    if recent is None or recent[0].shape != theta0.shape:
        return None
    scale = max(1.0, float(np.max(np.abs(theta0), initial=0.0)))
    return recent[1] if np.max(np.abs(recent[0] - theta0), initial=0.0) <= 1e-2 * scale else None


#: Default of the deprecated ``alpha=`` (the L2 penalty's earlier name): not given.
DEPRECATED_ALPHA = "deprecated"
#: Default of ``l2=``, the weight of the L2 penalty.
DEFAULT_L2 = 1e-3


#: Wide data (more features than rows) is fitted in the row space of its raw-scale rows,
#: unless its features' scales differ by more than this factor and there are at most
#: :data:`WIDE_FEATURE_SPACE_MAX` of them (then in the standardised feature space).
WIDE_MAX_SCALE_SPREAD = 1e6
WIDE_FEATURE_SPACE_MAX = 2000


def alpha_given(alpha: Any) -> bool:
    """Whether the deprecated ``alpha=`` was given (anything but its default)."""
    return not (isinstance(alpha, str) and alpha == DEPRECATED_ALPHA)


def _copy_result(res):
    """A solver result whose solution is a copy (``None`` stays ``None``)."""
    if res is None:
        return None
    out = copy.copy(res)
    if res.solution is not None:
        out.solution = np.array(res.solution, dtype=np.float64, copy=True)
    return out


class _BaseFairUse(BaseEstimator):
    """Shared machinery of the classifier and the regressor."""

    _task = "classification"

    def __init__(self, *, encoding: str = "intersectional", fair_use: Any = "both",
                 l2: float = DEFAULT_L2, group_reg: str = "set", intercept_bound: Any = "auto",
                 coef_bound: Any = "auto", margin: Any = 0.0, generic: Any = None,
                 on_infeasible: str = "raise", solver: str = "auto", formulation: str = "auto",
                 merge_rows: bool = True, group_cols: Any = None, min_group_size: int = 10,
                 max_iter: int = 30, tol: float = 1e-7, constraint_hook: Callable | None = None,
                 solver_options: dict | None = None, verbose: bool = False,
                 alpha: Any = DEPRECATED_ALPHA):
        self.encoding = encoding
        self.fair_use = fair_use
        self.l2 = l2
        self.group_reg = group_reg
        self.intercept_bound = intercept_bound
        self.coef_bound = coef_bound
        self.margin = margin
        self.generic = generic
        self.on_infeasible = on_infeasible
        self.solver = solver
        self.formulation = formulation
        self.merge_rows = merge_rows
        self.group_cols = group_cols
        self.min_group_size = min_group_size
        self.max_iter = max_iter
        self.tol = tol
        self.constraint_hook = constraint_hook
        self.solver_options = solver_options
        self.verbose = verbose
        self.alpha = alpha

    # scikit-learn metadata routing, requested by default (no set_*_request call needed):
    # the ``groups`` argument of each method is fed by the metadata ``sensitive_features``
    # (ROUTED_GROUPS), so a group splitter's ``groups`` never reaches the model, and
    # ``report`` by ``report``.  set_fit_request(groups=True) etc. still override this.
    __metadata_request__fit = {"groups": ROUTED_GROUPS}
    __metadata_request__score = {"groups": ROUTED_GROUPS}
    __metadata_request__predict = {"groups": ROUTED_GROUPS, "report": True}
    __metadata_request__predict_proba = {"groups": ROUTED_GROUPS, "report": True}
    __metadata_request__decision_function = {"groups": ROUTED_GROUPS, "report": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.input_tags.two_d_array = True
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------ parameters
    def _fair_use_set(self) -> tuple[str, ...]:
        fu = self.fair_use
        reason = "use None, 'rationality', 'envy_freeness', 'both' or a list of those"
        if fu is None or (isinstance(fu, str) and fu == "none"):
            return ()
        if isinstance(fu, str) and fu == "both":
            return FAIR_USE_CHOICES
        if isinstance(fu, str):
            items = [s.strip() for s in fu.split(",")] if "," in fu else [fu]
        elif isinstance(fu, (list, tuple, set, frozenset)):
            items = list(fu)
        else:
            raise InputError(MSG_BAD_PARAM.format(name="fair_use", value=fu, reason=reason))
        bad = [i for i in items if not isinstance(i, str) or i not in FAIR_USE_CHOICES]
        if bad or not items:
            raise InputError(MSG_BAD_PARAM.format(name="fair_use", value=fu, reason=reason))
        return tuple(c for c in FAIR_USE_CHOICES if c in items)

    def _check_params(self) -> None:
        check_param("encoding", self.encoding, choices=ENCODINGS)
        check_param("group_reg", self.group_reg, choices=GROUP_REGS)
        if alpha_given(self.alpha):  # the deprecated alias of l2 (fit() warns)
            if not (isinstance(self.l2, (int, float, np.number)) and not isinstance(self.l2, bool)
                    and self.l2 == DEFAULT_L2):
                raise InputError(MSG_ALPHA_AND_L2.format(name=type(self).__name__, l2=self.l2,
                                                         alpha=self.alpha))
            check_param("alpha", self.alpha, low=0.0)
        else:
            check_param("l2", self.l2, low=0.0)
        check_param("on_infeasible", self.on_infeasible, choices=("raise", "generic"))
        check_param("formulation", self.formulation, choices=("auto", "epigraph", "direct"))
        check_param("min_group_size", self.min_group_size, low=0, integer=True)
        check_param("max_iter", self.max_iter, low=1, integer=True)
        check_param("tol", self.tol, low=0.0)
        if self.tol > MAX_TOL:
            raise InputError(MSG_BAD_PARAM.format(
                name="tol", value=self.tol,
                reason=f"must be <= {MAX_TOL:g}: it is the tolerance of the numerical check, and a larger "
                       "one would certify violations the size of the gains"))
        check_margin(self.margin)
        for name in ("intercept_bound", "coef_bound"):
            value = getattr(self, name)
            if value != "auto":
                check_param(name, value, low=0.0, reason="a positive number or 'auto' is required")
                if value <= 0:
                    raise InputError(MSG_BAD_PARAM.format(name=name, value=value, reason="must be > 0"))
        if not isinstance(self.solver, str):
            raise InputError(MSG_BAD_PARAM.format(name="solver", value=self.solver,
                                                  reason=f"a solver name: one of {list(SOLVER_CHOICES)}"))
        if self.constraint_hook is not None and not callable(self.constraint_hook):
            raise InputError(MSG_BAD_PARAM.format(name="constraint_hook", value=self.constraint_hook,
                                                  reason="must be callable"))
        self._fair_use_set()

    def _l2(self) -> float:
        """The weight of the L2 penalty: ``l2``, or the deprecated ``alpha`` when given."""
        return float(self.alpha if alpha_given(self.alpha) else self.l2)

    # ------------------------------------------------------------------- fit
    def fit(self, X, y, *, groups=None, sample_weight=None):
        """Fit the generic model, then the personalized model (with fair use if asked).

        Parameters
        ----------
        X : array-like or DataFrame (n_samples, n_features)
            Numeric features.  With ``group_cols`` set, a DataFrame that also holds the
            group attribute columns.
        y : array-like (n_samples,)
            Binary labels (classifier) or real targets (regressor).
        groups : DataFrame, Series or array-like, optional
            Group attributes, one column per attribute (not needed for
            ``encoding="none"`` or with ``group_cols``).  Through scikit-learn's
            metadata routing (pipelines, ``cross_val_score``, ``GridSearchCV``) they are
            passed as ``sensitive_features=``: see ``docs/pipelines.md``.
        sample_weight : array-like (n_samples,), optional
            Non-negative weights; every mean loss is a weighted mean.

        Returns
        -------
        self
        """
        self._check_params()
        if alpha_given(self.alpha):
            warnings.warn(MSG_ALPHA_RENAMED.format(name=type(self).__name__, value=self.alpha),
                          FutureWarning, stacklevel=2)
        self._scale_note = ""
        with _progress(self.verbose):
            try:
                return self._fit(X, y, groups=groups, sample_weight=sample_weight)
            except InputError as exc:
                # no groups: say how scikit-learn's tools pass them (their groups= is the splitter's)
                if str(exc) != MSG_GROUPS_REQUIRED.format(encoding=self.encoding, method="fit"):
                    raise
                raise InputError(f"{exc}{MSG_GROUPS_ROUTING_HINT}") from None
            except np.linalg.LinAlgError as exc:  # (scipy's is numpy's)
                raise SolverError(f"linear algebra failed during the fit ({exc}){self._scale_note}") from exc
            except (SolverError, VerificationError, FairUseInfeasibleError) as exc:
                if not self._scale_note or "center or rescale" in str(exc):
                    raise
                raise type(exc)(f"{exc}{self._scale_note}") from exc

    def _get_loss(self) -> Loss:
        """The loss of this estimator (override to fit another loss: one object, see
        :class:`fairuse_opt.model.Loss`)."""
        return LogisticLoss() if self._task == "classification" else SquaredLoss()

    def _fit(self, X, y, *, groups=None, sample_weight=None):
        if y is None:
            raise InputError(MSG_Y_NONE.format(name=type(self).__name__))
        X_feat, groups = split_group_columns(X, self.group_cols, groups)
        extremes: list = []
        Xa, names = check_features(X_feat, allow_empty_columns=True, extremes=extremes)
        self._extremes = extremes
        n, d = Xa.shape
        if self._task == "classification":
            y01, classes = check_classification_target(y, n)
            self.classes_ = classes
        else:
            y01 = check_regression_target(y, n)
        self._get_loss().check_target(y01)
        w = check_sample_weight(sample_weight, n)
        self._get_loss().check_spread(y01, w)
        if groups is None and self.encoding != "none":
            raise InputError(MSG_GROUPS_REQUIRED.format(encoding=self.encoding, method="fit"))
        index, codes = None, np.zeros(n, dtype=np.int64)
        if groups is not None and self.encoding != "none":
            coded: dict = {}
            frame = check_groups(groups, n, fit=True, codes_out=coded)
            index, codes = GroupIndex.with_codes(frame, coded)
            group_weight = np.bincount(codes, weights=w, minlength=index.n_groups)
            zero = [index.keys[g] for g in range(index.n_groups) if group_weight[g] <= 0]
            if zero:
                raise InputError(MSG_EMPTY_WEIGHT_GROUP.format(group=zero[0]))
            warn_small_groups(index.keys, codes, y01 if self._task == "classification" else None,
                              w, self.min_group_size)
        self.n_features_in_ = d
        if names is not None:
            self.feature_names_in_ = np.array(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        feature_names = names if names is not None else [f"x{j}" for j in range(d)]
        self.feature_names_ = list(feature_names)
        if index is not None:
            check_margin_groups(self.margin, index.keys, index)
        self._fit_arrays(Xa, y01, w, index, codes, X, y, groups, sample_weight)
        return self

    def _fit_arrays(self, Xa, y01, w, index, codes, X_orig, y_orig, groups_orig, sw_orig):
        n, d = Xa.shape
        loss = self._get_loss()
        # an added backend (solvers.base.register_backend) is refused at once when the fit
        # may ask it a task it does not declare
        added = registered_backend(self.solver)
        if added is not None:
            added.check(None, routes.tasks_needed(self._fair_use_set() if self.encoding != "none" else ()))
        if index is not None and self.constraint_hook is None:
            # routes that cannot finish in reasonable time are refused before any fit
            if self.solver.upper() in CONIC_SOLVERS:
                routes.check_conic_size(self.solver, self.encoding, self.group_reg, self._fair_use_set(),
                                        index.n_groups)
            else:
                G_ = index.n_groups
                extra = {"onehot": 1 + sum(len(v) for v in index.levels.values()),
                         "intersectional": 1 + G_}.get(self.encoding, 0)
                n_params = (G_ * (d + 1) + 1 if self.encoding == "decoupled" else min(d, n) + extra)
                routes.check_sequence_size(self.encoding, self.group_reg, self._fair_use_set(), G_, n_params, d)
        extremes, self._extremes = getattr(self, "_extremes", None), None
        check_fit_magnitude(Xa, self.feature_names_, extremes)
        # weighted mean and standard deviation; the rows centred into Z, sorted by group
        # as TrainData keeps them (one n x d array: sorting a standardised copy would
        # hold two), in one read of Xa whatever its layout (see centred_rows); Z scaled
        # in place
        # inside fit_system's pool (_fitcache.shared_fits), the fits on the same arrays
        # share the standardised rows, the generic model and the unconstrained fit
        design = (_fitcache.digest(Xa, y01, w, codes) + repr((loss, bool(self.merge_rows), index.n_groups if index is not None else 1)).encode()
                  if _fitcache.active() else None)
        prepared = _fitcache.lookup(design, "rows") if design is not None else None
        if prepared is None:
            Z, mean, var, order = centred_rows(Xa, w, codes)
            sd = np.sqrt(var)
            # a column is constant when its spread is at the rounding level of its values (a
            # relative test: features of spread 1e-12 around 0 are features, not constants)
            scale = np.where((sd > 0) & (sd > 1e-13 * np.abs(mean)), sd, 1.0)
        else:
            loss, mean, scale, data = prepared
        self._scale_note = _scale_note(mean, scale, self.feature_names_, y01, w, self._task)
        if d and self.encoding == "decoupled" and self.group_reg == "penalty":
            # the penalised offsets are intercepts at x = 0: scores carry shift . w_r, whose
            # rounding (|shift| eps) must stay below the verification tolerance
            ratio = np.abs(mean) / scale
            if ratio.max() * np.finfo(float).eps > self.tol:
                names = [self.feature_names_[j] for j in np.argsort(-ratio)[:3]
                         if ratio[j] * np.finfo(float).eps > self.tol]
                raise InputError(MSG_ILL_SCALED.format(
                    features=names, ratio=float(ratio.max()),
                    what="the penalised group offset of encoding='decoupled' with group_reg='penalty'"))
        G = index.n_groups if index is not None else 1
        keys = index.keys if index is not None else [()]
        # the squared error's target is fitted centred: its sufficient statistics
        # (W s^2 - 2 Wy s + Wyy) cancel catastrophically for y far from 0; the loss says
        # whether its targets may be shifted (not the Poisson loss of a log-rate, say)
        y_shift = float(loss.target_shift(y01, w))
        y_fit = y01 - y_shift if y_shift else y01
        if prepared is None:
            Z /= scale
            stats = loss.stats(y_fit, w)
            data = TrainData.build(Z, codes if order is None else codes[order],
                                   stats if order is None else stats[order], G, merge=self.merge_rows)
            del Z, stats
            if design is not None:
                _fitcache.store(design, "rows", (loss, mean, scale, data))
        # more features than distinct rows, weights shared by every group: fit the weights
        # in the row space of the data (the same problem, see wide_basis); raw-scale
        # weights are then basis @ c and the reduced features are not rescaled again
        # (the decoupled encoding: the generic model alone in the row space, once it has
        # half as many dimensions as the features - the SVD costs about as much as the fit
        # it saves below that -, its groups' blocks each in the row space of their own
        # rows, see solvers.blocks)
        basis = gbasis = None
        gdata = data
        shared = self.encoding in ("none", "onehot", "intersectional")
        # (not when the features' scales differ by many orders of magnitude and the features
        # are few enough for a Hessian over them: the row space of the raw-scale rows is then
        # ill-conditioned - a feature at 1e12 beside features at 1: Newton stalls far from
        # the optimum - and the standardised features are not)
        spread = float(np.max(scale) / np.min(scale)) if scale.size else 1.0
        wide = (d > (1 if shared else 2) * data.n_distinct and self.constraint_hook is None
                and (spread <= WIDE_MAX_SCALE_SPREAD or d > WIDE_FEATURE_SPACE_MAX))
        if wide:
            gbasis = wide_basis(data.Z * scale[None, :])
            gdata = dataclasses.replace(data, Z=np.ascontiguousarray((data.Z * scale[None, :]) @ gbasis))
            if shared:
                basis, data = gbasis, gdata
            _log.info("%d features, %d distinct rows: %s fitted in the %d-dimensional row space",
                      d, data.n_distinct, "the generic model's weights" if basis is None else "weights",
                      gbasis.shape[1])
        d_fit = d if basis is None else basis.shape[1]
        mean_fit = mean if basis is None else np.zeros(d_fit)
        scale_fit = scale if basis is None else np.ones(d_fit)

        def raw(Ws, bs, basis=basis):
            """Effective models on the raw feature (and target) scale."""
            if basis is None:
                return self._raw_models(Ws, bs, mean, scale, y_shift)
            coef = Ws @ basis.T
            return coef, bs - coef @ mean + y_shift
        solvers = solver_order(self.solver, quadratic=loss.quadratic) if added is None else []
        if self.formulation != "auto":
            forms = [self.formulation]
        elif loss.quadratic:  # the direct form keeps a quadratic objective (QP)
            forms = ["direct", "epigraph"]
        else:  # one epigraph variable per group: each row's exponential cones once
            forms = list(FORMS)
        level_codes = index.level_codes() if index is not None else np.zeros((1, 0), dtype=np.int64)
        n_levels = [len(index.levels[a]) for a in index.names] if index is not None else []
        choice = self.solver.lower()
        served = Served(X=Xa, codes=codes, y=y01, w=w, loss=loss, n_groups=G, feature_names=self.feature_names_)

        def problem(encoding, set_spec=None, hook=None):
            fam = Family(encoding, self.group_reg, d_fit, level_codes, n_levels, shift=mean_fit / scale_fit)
            return Problem(fam, loss, data, alpha=self._l2(), scale=scale_fit, mean=mean_fit,
                           set_spec=set_spec, hook=hook, groups=keys, feature_names=self.feature_names_,
                           y_shift=y_shift)

        # 1. the generic model (also the anchor of the common set)
        theta0, grec, gprob, cached = None, None, None, None
        # what the generic and the unconstrained fits depend on besides the rows (shared
        # within fit_system's pool only, and not in the row space of wide data)
        shared_key = None
        if design is not None and gdata is data and self.constraint_hook is None:
            shared_key = (self._l2(), self.group_reg, choice, tuple(solvers), tuple(forms),
                          repr(self.solver_options), level_codes.tobytes(), level_codes.shape, tuple(n_levels))
            cached = _fitcache.lookup(design, "generic", shared_key)
            if cached is not None:
                gprob, theta0, grec = cached[0], cached[1].copy(), cached[2]
        if gprob is None and gdata is data:
            gprob = problem("none")
        elif gprob is None:  # in the row space of the rows (the decoupled encoding with more features than rows)
            r = gbasis.shape[1]
            gprob = Problem(Family("none", self.group_reg, r, level_codes, n_levels, shift=np.zeros(r)), loss,
                            gdata, alpha=self._l2(), scale=np.ones(r), mean=np.zeros(r), groups=keys,
                            feature_names=self.feature_names_, y_shift=y_shift)
        _log.info("fitting the generic model on %d rows (%d distinct)", n, data.n_distinct)
        if added is not None and theta0 is None:
            added.check(gprob)
            grec = added(gprob, (self.solver_options or {}).get(added.name)).solve(Task("unconstrained"))
            if not grec.ok:
                raise_failed(grec, "generic model")
            theta0 = grec.solution
        elif theta0 is None and choice in NATIVE_CHOICES:
            start = np.zeros(gprob.d + 1)
            start[gprob.d] = loss.start(y_fit, w)
            res = native.newton(gprob, start, rough_start=True)
            if res.status == "optimal":
                theta0, grec = res.solution, res
        if theta0 is None:
            if choice == "native":
                raise SolverError("the native backend did not converge on the generic model")
            grec = ConicBackend(gprob, solvers, forms, self.solver_options).solve(Task("unconstrained"))
            if not grec.ok:
                raise_failed(grec, "generic model")
            # interior-point solutions leave gradients ~1e-6 on small problems, and the
            # generic losses are the bound of every rationality constraint: polish them
            theta0 = native.newton(gprob, grec.solution, max_steps=8).solution
        if shared_key is not None and cached is None:
            _fitcache.store(design, "generic", (gprob, theta0.copy(), grec), shared_key)
        g_fit = gprob.d
        w0, b0 = theta0[:g_fit], float(theta0[g_fit])
        if gdata is not data:  # the generic weights on the personalised problem's (standardised) scale
            w0 = scale * (gbasis @ w0)
        gcoef, gint = raw(*gprob.effective(theta0), basis=gbasis if gdata is not data else basis)
        # the model the guarantee is certified against: the one passed in, else the internal fit
        self.generic_ = (self.generic if self.generic is not None
                         else self._make_generic(theta0, gprob, grec, (gcoef, gint)))
        if self.generic is None:
            L0, E0 = served_losses(served, gcoef[:1], gint[:1])
            L0, E0 = L0[:, 0], E0[:, 0]
            if basis is not None or gdata is not data:
                generic_row_loss = loss.row_loss(y_fit, (Xa - mean) @ gcoef[0] + b0)
            else:
                # scores without an n x d temporary: x . (w0 / scale) + b0 - mean . (w0 / scale)
                generic_row_loss = loss.row_loss(y_fit, Xa @ (w0 / scale) + (b0 - float(mean @ (w0 / scale)))) \
                    if d else loss.row_loss(y_fit, np.full(n, b0))
            generic_served = (gcoef[0].copy(), float(gint[0]))
        else:
            # the rows of a group given the generic model (on_infeasible="generic") are
            # served generic_ itself: only a linear generic model of this library can be
            generic_served = self._external_served(d)
            if generic_served is not None:  # its losses in the served models' arithmetic
                ecoef, eint = generic_served
                L0, E0 = served_losses(served, ecoef[None, :], np.array([eint]))
                L0, E0 = L0[:, 0], E0[:, 0]
                generic_row_loss = loss.row_loss(y01, row_scores(Xa, np.zeros(n, dtype=np.int64), ecoef[None, :],
                                                                 np.array([eint])))
            else:
                pred = generic_predictions(lambda: self._external_predict(X_orig, groups_orig), loss, n,
                                           self._task == "classification")
                generic_row_loss = loss.loss_of_prediction(y01, pred)
                wsum = np.bincount(codes, weights=w, minlength=G)
                L0 = np.bincount(codes, weights=w * generic_row_loss, minlength=G) / wsum
                E0 = np.zeros(G)
        # 2. the personalized model
        set_spec = self._set_spec(loss, y_fit, w, w0, b0)
        hook = self.constraint_hook
        prob = problem(self.encoding, set_spec, hook)
        prob.share_passes(gprob)  # its objective at the generic model without a pass
        fair_use = self._fair_use_set() if self.encoding != "none" else ()
        theta_generic = prob.family.embed_generic(w0, b0)
        setup = routes.FitSetup(problem=prob, keys=keys, index=index, served=served,
                                to_raw=raw,
                                native=choice in NATIVE_CHOICES and hook is None,
                                native_only=choice == "native" and hook is None,
                                solvers=solvers, forms=forms, solver_options=self.solver_options,
                                start_blocks=_generic_blocks(gprob, theta0) if gprob.data is prob.data else None)
        if added is not None:  # every task of the routes to the added backend
            added.check(prob)
            setup.conic = added(prob, (self.solver_options or {}).get(added.name))
        # an external generic= model that cannot be served in a group's place: a fit that
        # cannot be verified raises, saying why it could not fall back
        on_infeasible = ("raise" if self.generic is not None and generic_served is None
                         else self.on_infeasible)
        unconstrained_key = None
        if shared_key is not None and basis is None and self.generic is None:
            unconstrained_key = (shared_key, self.encoding, repr(self.intercept_bound), repr(self.coef_bound))
            setup.unconstrained = _copy_result(_fitcache.lookup(design, "unconstrained", unconstrained_key))
        try:
            theta, coef, intercept, cert = routes.fit(
                setup, fair_use=fair_use, theta_generic=theta_generic, generic_row_loss=generic_row_loss,
                generic_losses=L0, generic_err=E0, generic_served=generic_served, margin=self.margin,
                on_infeasible=on_infeasible, max_iter=int(self.max_iter), tol=float(self.tol),
                objective_generic=prob.objective(theta_generic), start=theta_generic)
        except (FairUseInfeasibleError, SolverError, VerificationError) as exc:
            if on_infeasible == self.on_infeasible:
                raise
            raise type(exc)(MSG_FALLBACK_EXTERNAL.format(generic=type(self.generic).__name__, reason=exc)) from exc
        if unconstrained_key is not None and setup.unconstrained is not None:
            _fitcache.store(design, "unconstrained", _copy_result(setup.unconstrained), unconstrained_key)
        self._theta = theta
        self._family = prob.family
        self._mean, self._scale, self._y_shift = mean, scale, y_shift
        self._set_fitted(coef, intercept, index=index, certificate=cert, set_spec=set_spec,
                         n_iter=max(1, cert.iterations))

    def _external_served(self, d: int):
        """``(coef, intercept)`` of the user's ``generic=`` model when it is a generic linear
        model of this library with this model's features, classes and loss (so that a
        group given the generic model is served exactly ``generic_``); else ``None``."""
        gen = self.generic
        if not (isinstance(gen, _BaseFairUse) and hasattr(gen, "coef_")
                and getattr(gen, "group_index_", 1) is None and gen._task == self._task
                and gen._get_loss() == self._get_loss() and np.shape(gen.coef_) == (1, d)
                and list(getattr(gen, "feature_names_", [])) == list(self.feature_names_)):
            return None
        if self._task == "classification" and not np.array_equal(np.asarray(gen.classes_), self.classes_):
            return None
        return np.asarray(gen.coef_[0], dtype=np.float64).copy(), float(gen.intercept_[0])

    def _external_predict(self, X, groups):
        """Predictions of the user's ``generic=`` model on the training rows."""
        generic = self.generic
        classification = self._task == "classification"
        if isinstance(generic, _BaseFairUse):
            kw = {"groups": groups} if groups is not None else {}
            return generic.predict_proba(X, **kw) if classification else generic.predict(X, **kw)
        Xf = X.drop(columns=list(self.group_cols)) if self.group_cols is not None else X
        method = "predict_proba" if classification else "predict"
        if not hasattr(generic, method):
            raise InputError(MSG_BAD_PARAM.format(name="generic", value=generic,
                                                  reason=f"a fitted model with {method}() is required"))
        return getattr(generic, method)(Xf)

    def _set_fitted(self, coef, intercept, *, index, certificate, set_spec, n_iter) -> None:
        """Set the fitted attributes that describe the served models (one place, used by
        :meth:`fit`, the generic model and :mod:`fairuse_opt.model_io`)."""
        self.coef_, self.intercept_ = coef, intercept
        self.group_index_ = index
        self.groups_ = list(index.keys) if index is not None else []
        self.group_names_ = list(index.names) if index is not None else []
        self.certificate_ = certificate
        self.set_spec_ = set_spec
        self.n_iter_ = n_iter

    @staticmethod
    def _raw_models(Ws, bs, mean, scale, y_shift=0.0):
        """Effective models on the raw feature scale from standardised ones (``y_shift``:
        the centre of a regression target, added back to the intercepts)."""
        coef = Ws / scale[None, :] if Ws.shape[1] else Ws.copy()
        intercept = bs - coef @ mean if Ws.shape[1] else bs.copy()
        return coef, intercept + y_shift

    def _set_spec(self, loss, y01, w, w0, b0) -> SetSpec:
        """The common set (standardised scale), with scale-aware defaults."""
        unit = loss.score_unit(y01, w)  # log-odds (per standard deviation of a feature), sd(y), ...
        ib = 5.0 * unit if self.intercept_bound == "auto" else float(self.intercept_bound)
        cb = (max(float(np.linalg.norm(w0)), unit) if self.coef_bound == "auto"
              else float(self.coef_bound))
        return SetSpec(intercept_center=b0, intercept_bound=ib, coef_center=w0, coef_bound=cb)

    def _make_generic(self, theta0, gprob, grec, raw_models):
        params = self.get_params(deep=False)
        params.update(encoding="none", fair_use=None, generic=None, constraint_hook=None,
                      l2=self._l2(), alpha=DEPRECATED_ALPHA)  # the penalty under its name
        gen = type(self)(**params)
        for attr in ("classes_", "n_features_in_", "feature_names_in_", "feature_names_"):
            if hasattr(self, attr):
                setattr(gen, attr, getattr(self, attr))
        gen._theta, gen._family = theta0, gprob.family
        gen._mean, gen._scale, gen._y_shift = gprob.mean, gprob.scale, gprob.y_shift
        coef, intercept = raw_models
        cert = Certificate(table=pd.DataFrame(), route="generic", solver=grec.backend, status=grec.status,
                           objective=grec.objective, objective_generic=grec.objective,
                           seconds=grec.seconds, verified=True, attempts=grec.attempts)
        gen._set_fitted(coef[:1], intercept[:1], index=None, certificate=cert, set_spec=None, n_iter=1)
        return gen

    # --------------------------------------------------------------- predict
    def _rows(self, X, groups, report, method: str):
        """Return ``(X array, per-row model index)`` for prediction."""
        check_is_fitted(self, "coef_")
        X_feat, groups = split_group_columns(X, self.group_cols, groups)
        Xa, names = check_features(X_feat, allow_empty_columns=True)
        if Xa.shape[1] != self.n_features_in_:
            raise InputError(MSG_N_FEATURES.format(got=Xa.shape[1], name=type(self).__name__,
                                                   expected=self.n_features_in_))
        if names is not None and hasattr(self, "feature_names_in_") and list(names) != list(self.feature_names_in_):
            raise InputError(MSG_FEATURE_NAMES.format(got=names, expected=list(self.feature_names_in_)))
        n = Xa.shape[0]
        if self.group_index_ is None:  # generic model: groups and reports are irrelevant
            return Xa, np.zeros(n, dtype=np.int64)
        if report is not None:
            return Xa, np.full(n, self.group_index_.report_code(report), dtype=np.int64)
        if groups is None:
            raise InputError(MSG_GROUPS_REQUIRED.format(encoding=self.encoding, method=method))
        frame = check_groups(groups, n, fit=False)
        return Xa, self.group_index_.codes(frame)

    def decision_function(self, X, *, groups=None, report=None) -> np.ndarray:
        """Linear score of each row (log-odds for the classifier).

        Parameters
        ----------
        X, groups : as in :meth:`fit`
        report : tuple, dict or scalar, optional
            Score every row as if it had reported this group (a tuple of attribute
            values in the order of ``group_names_``, or a dict); ``groups`` is then not
            needed.
        """
        Xa, idx = self._rows(X, groups, report, "decision_function")
        return row_scores(Xa, idx, self.coef_, self.intercept_)

    def group_model(self, group) -> tuple[np.ndarray, float]:
        """The effective linear model ``(coef, intercept)`` served to ``group``."""
        check_is_fitted(self, "coef_")
        k = 0 if self.group_index_ is None else self.group_index_.report_code(group)
        return self.coef_[k].copy(), float(self.intercept_[k])

    # ------------------------------------------------------------ model file
    def to_json(self, path=None, **kw) -> str:
        """Serialise the fitted model to the portable JSON model file.

        See :mod:`fairuse_opt.model_io` for the format.

        Parameters
        ----------
        path : str or path-like, optional
            Also write the JSON text to this file.
        """
        from ._files import write_atomic
        from .model_io import dumps

        text = dumps(self, **kw)
        if path is not None:
            write_atomic(path, text)  # a temporary file, then a rename: never half-written
        return text

    @classmethod
    def from_json(cls, text_or_path):
        """Load a model written by :meth:`to_json` (JSON text or a file path); never runs code."""
        from .model_io import loads

        est = loads(text_or_path)
        if not isinstance(est, cls):
            raise InputError(MSG_BAD_PARAM.format(
                name="model file", value=type(est).__name__,
                reason=f"it holds a {type(est).__name__}, not a {cls.__name__}"))
        return est


class FairUseClassifier(ClassifierMixin, _BaseFairUse):
    """Personalized logistic regression that makes fair use of group attributes.

    Fits ``encoding``'s personalized model as a convex program and, with ``fair_use``
    set, guarantees on the training data that every intersectional group is better off
    reporting its attributes than with the generic model (rationality) and than by
    reporting any other group (envy-freeness).  See ``docs/fair-use-training.md``.

    Parameters
    ----------
    encoding : {"intersectional", "onehot", "decoupled", "none"}, default="intersectional"
        How group attributes enter the model: one intercept per intersectional group,
        additive offsets per attribute level, a full linear model per group, or not at
        all (the generic model).
    fair_use : None, "rationality", "envy_freeness" or "both", default="both"
        Which guarantees to enforce on the training data.
    l2 : float, default=1e-3
        Weight of the squared L2 penalty on the shared weights (raw feature scale):
        the objective is ``weighted mean loss + l2 * ||shared||^2``.
        ``LogisticRegression(C=1 / (2 * l2 * n))`` is the scikit-learn equivalent.
        ``fairuse fit --l2`` on the command line.
    group_reg : {"set", "penalty"}, default="set"
        How group-specific blocks are regularised: all within one common set (not
        penalised; makes the fair-use fit one exact convex program), or penalised with
        ``l2`` (ridge with dummies).
    intercept_bound : float or "auto", default="auto"
        Half-width of the common interval for each group's intercept, measured at the
        training mean of the features around the generic model's intercept.  "auto":
        5 log-odds (classifier) or 5 standard deviations of ``y`` (regressor).
    coef_bound : float or "auto", default="auto"
        Radius of the common ball (L2, standardised feature scale) around the generic
        model's weights for each decoupled group's weights.  "auto": the norm of the
        generic weights, at least 1 log-odds (classifier) or one standard deviation of
        ``y`` (regressor) per standard deviation of the features.
    margin : float, mapping or "se:k", default=0.0
        Gain required of every group over the generic model (loss units): one number,
        a mapping ``{group: margin}``, or ``"se:k"`` for k standard errors of the group's
        per-row loss difference against the generic model.
    generic : fitted estimator, optional
        A generic model to compare against instead of the one fitted internally.
    on_infeasible : {"raise", "generic"}, default="raise"
        When a guarantee cannot be met or verified: raise
        :class:`~fairuse_opt.FairUseInfeasibleError`, or give the groups concerned the
        generic model and warn.  Those groups are served ``generic_`` itself: with a
        ``generic=`` model that is not a generic ``FairUseClassifier`` /
        ``FairUseRegressor`` (``encoding="none"``, same features), which the
        personalized model cannot serve, the fit raises instead
        (:data:`~fairuse_opt.exceptions.MSG_FALLBACK_EXTERNAL`).
    solver : {"auto", "CLARABEL", "ECOS", "SCS"}, default="auto"
        "auto": every problem by the native methods in numpy (Newton's method, SQP on
        the exact route, the decoupled encoding one group at a time, an interior-point
        method for the sequence of restrictions; every result verified), a conic solver
        only as a fallback, ECOS first for the classifier and Clarabel first for the
        regressor (see ``benchmarks/results/solvers.md``).  A solver name sends every
        problem through cvxpy with that solver first; it is refused at once
        (``InputError``) on a sequence of restrictions with more than 120 envy pairs.
    formulation : {"auto", "epigraph", "direct"}, default="auto"
        How group losses enter the program; "auto" tries "epigraph" then "direct".
    merge_rows : bool, default=True
        Merge rows identical in (features, group) into one weighted row.
    group_cols : list of str, optional
        Columns of ``X`` that hold the group attributes (for pipelines).
    min_group_size : int, default=10
        Groups smaller than this are warned about.
    max_iter : int, default=30
        Iterations of the sequence of convex restrictions (``onehot`` encoding or
        ``group_reg="penalty"`` with envy-freeness).
    tol : float, default=1e-7
        Tolerance of the numpy verification of every constraint.
    constraint_hook : callable, optional
        ``hook(variables) -> constraints | penalty | (constraints, penalty)``; receives
        a :class:`~fairuse_opt.ModelVariables` with the model's cvxpy handles.
    solver_options : dict, optional
        ``{"CLARABEL": {...}, "ECOS": {...}}`` options passed to the solvers.
    verbose : bool, default=False
        Print progress to standard error.
    alpha : float, optional
        Deprecated: the earlier name of ``l2`` (``alpha`` is a significance level in
        :func:`~fairuse_opt.audit.audit`, :func:`~fairuse_opt.fit_system` and
        :class:`~fairuse_opt.FairUseSystem`).  When given, ``fit`` warns
        (``FutureWarning``) and uses it as ``l2``; giving both, with ``l2`` not at its
        default, is an error.  Model files store the penalty as ``l2``, and files that
        hold ``alpha`` load with it as ``l2``.

    Attributes
    ----------
    classes_ : ndarray (2,)
    groups_ : list of tuple
        Intersectional groups seen in training (rows of ``coef_``).
    group_names_ : list of str
    coef_ : ndarray (n_groups, n_features)
        Effective feature weights served to each group (raw feature scale).
    intercept_ : ndarray (n_groups,)
    generic_ : FairUseClassifier
        The fitted generic model (``encoding="none"``).
    certificate_ : Certificate
        Per-group evidence of fair use on the training data.
    """

    _task = "classification"

    def __sklearn_tags__(self):
        # here, not in the base class: ClassifierMixin sets classifier_tags after the
        # base class's tags are made
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # binary logistic models only
        tags.classifier_tags.multi_label = False
        return tags

    def predict_proba(self, X, *, groups=None, report=None) -> np.ndarray:
        """Probabilities of ``classes_`` (n_samples, 2); see :meth:`decision_function`."""
        s = self.decision_function(X, groups=groups, report=report)
        loss = self._get_loss()
        return np.column_stack([loss.inverse_link(-s), loss.inverse_link(s)])

    def predict(self, X, *, groups=None, report=None) -> np.ndarray:
        """Predicted class labels; see :meth:`decision_function`."""
        s = self.decision_function(X, groups=groups, report=report)
        return self.classes_[(s > 0).astype(np.int64)]

    def score(self, X, y, *, groups=None, sample_weight=None) -> float:
        """Accuracy on ``(X, y)``."""
        return float(accuracy_score(y, self.predict(X, groups=groups), sample_weight=sample_weight))


class FairUseRegressor(RegressorMixin, _BaseFairUse):
    """Personalized linear regression (squared error) that makes fair use of group attributes.

    Same parameters as :class:`FairUseClassifier`; the loss is ``(y - s)^2`` and
    ``Ridge(alpha=l2 * n)`` is the scikit-learn equivalent of the penalty.
    """

    _task = "regression"

    def predict(self, X, *, groups=None, report=None) -> np.ndarray:
        """Predicted values (the inverse link of the score); see :meth:`decision_function`."""
        return self._get_loss().inverse_link(self.decision_function(X, groups=groups, report=report))

    def score(self, X, y, *, groups=None, sample_weight=None) -> float:
        """The loss's score of the predictions on ``(X, y)``: R^2 for the squared error
        (:meth:`fairuse_opt.model.Loss.score`)."""
        return self._get_loss().score(y, self.predict(X, groups=groups), sample_weight=sample_weight)


class FairUsePoissonRegressor(FairUseRegressor):
    """Personalized Poisson regression (log link) that makes fair use of group attributes.

    Same parameters as :class:`FairUseClassifier`; the loss is the Poisson loss
    ``exp(s) - y s`` of the log-rate ``s`` (:class:`~fairuse_opt.model.losses.PoissonLoss`),
    targets are counts or rates ``y >= 0``, :meth:`predict` gives ``exp(s)`` and
    :meth:`score` the fraction of Poisson deviance explained (D^2).  Without groups and
    guarantees it is scikit-learn's ``PoissonRegressor(alpha=2 * l2)`` (whose penalty
    ``alpha / 2 ||w||^2`` is on the mean half-deviance).  ``intercept_bound="auto"`` is 5
    (log-rate units).
    """

    def _get_loss(self) -> Loss:
        return PoissonLoss()


#: The estimators a model file may hold: (the class named in the file, the name of its
#: loss) -> class.  A file written before the loss was recorded holds the first loss of
#: its class here.
FILE_ESTIMATORS = {
    ("FairUseClassifier", LogisticLoss.name): FairUseClassifier,
    ("FairUseRegressor", SquaredLoss.name): FairUseRegressor,
    ("FairUseRegressor", PoissonLoss.name): FairUsePoissonRegressor,
}
