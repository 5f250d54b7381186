""":class:`FairUseSystem`: serve every reporting option a model that an independent
assignment sample shows to help it, or the generic model."""

from __future__ import annotations

import logging
import numbers
import textwrap
import time
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .._groups import sort_key
from .._validation import check_classification_target, check_param, check_regression_target
from .._validation import check_reports
from ..audit._metrics import CLASSIFICATION, REGRESSION, Metric, get_metric
from ..audit._stats import spawn_generators
from ..model.losses import SquaredLoss, loss_of
from ..exceptions import (
    MSG_BAD_PARAM,
    MSG_GROUP_NAMES_MISMATCH,
    MSG_LENGTH_MISMATCH,
    MSG_SYSTEM_CANDIDATE_NAME,
    MSG_SYSTEM_CANDIDATES_TYPE,
    MSG_SYSTEM_CLASSES,
    MSG_SYSTEM_EXACT_METRIC,
    MSG_SYSTEM_GENERIC_USES_GROUPS,
    MSG_SYSTEM_GROUP_COLS,
    MSG_SYSTEM_N_FEATURES,
    MSG_SYSTEM_NEEDS_GROUPS,
    MSG_SYSTEM_NO_CANDIDATES,
    MSG_SYSTEM_NO_METHOD,
    MSG_SYSTEM_NOT_FITTED,
    MSG_SYSTEM_RESERVED_NAME,
    MSG_SYSTEM_UNKNOWN_ATTRIBUTES,
    InputError,
)
from ._assign import GENERIC, AssignmentProblem, assign, function_label
from ._blend import ShrunkModel
from ._ladder import DEFAULT_RUNGS, assign_ladder
from ._options import (
    ancestors_by_distance,
    check_levels,
    member_mask,
    n_reported,
    option_label,
    option_order,
    project,
    report_key,
    row_options,
    sub_options,
)

__all__ = ["FairUseSystem"]

logger = logging.getLogger("fairuse_opt.system")

KINDS = ("full", "minimal")
#: Assignment procedures: the ladder (default) and the earlier split design.
PROCEDURES = ("ladder", "split", "crossfit")


def _is_classifier(system: "FairUseSystem") -> bool:
    return hasattr(system.generic, "predict_proba")


def _n_rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 1:
        return int(shape[0])
    return len(X)


def _take(X: Any, rows: np.ndarray) -> Any:
    if isinstance(X, (pd.DataFrame, pd.Series)):
        return X.iloc[rows]
    return np.asarray(X)[rows]


def auto_name(model: Any) -> str:
    """A readable name for an unnamed candidate, e.g. ``onehot+fair_use[Age,Sex]``."""
    attrs = list(getattr(model, "group_names_", None) or [])
    suffix = f"[{','.join(attrs)}]" if attrs else ""
    if hasattr(model, "fair_use") and hasattr(model, "encoding"):
        fu = model.fair_use
        return f"{model.encoding}{'+fair_use' if fu not in (None, 'none') else ''}{suffix}"
    if hasattr(model, "estimator") and hasattr(model, "encoding"):
        return f"{type(model.estimator).__name__}:{model.encoding}{suffix}"
    return f"{type(model).__name__}{suffix}"


class FairUseSystem(BaseEstimator):
    """Serve each reporting option a model certified on an independent assignment sample.

    A *reporting option* is what a person reported: a value or nothing (``None``) for
    every group attribute.  :meth:`fit` decides, on an assignment sample that none of
    the models was trained on, which model each option is served: a candidate that
    uses only what the option reports, kept only where a one-sided test shows that it
    beats the generic model and the option's parents (the same report with one
    attribute fewer); otherwise the generic model.  See ``docs/system.md``.

    Guarantee: if the assignment sample is independent of the data the candidates and
    the generic model were trained on, the probability that *any* option is served a
    model whose population metric is worse than the generic model's is at most
    ``alpha`` (approximately for the paired t and bootstrap tests; under the test's
    assumptions for McNemar).  With ``reference`` the generic model may also be
    trained on the assignment rows (``fit_system`` does so): its in-sample fit there
    is optimistic, which biases the tests against personalizing; the family-wise harm
    of this configuration is measured in ``docs/system.md``, not proven.

    Parameters
    ----------
    candidates : dict or list
        Fitted personalized models, ``{name: model}`` or a list (named automatically).
        Library estimators (any ``encoding``, with or without ``fair_use``),
        :class:`~fairuse_opt.SklearnGroupModel` or any model with ``predict_proba``
        (or ``predict``) taking ``report=``.  Each uses the attributes in its
        ``group_names_`` (a subset of the system's), and serves only options that
        report all of them.
    generic : fitted model
        The model without group attributes; its classes, and its
        ``predict_proba`` or ``predict``, set the task.
    metric : str or Metric, optional
        Assignment metric: ``"error"`` (default for classification), ``"log_loss"``,
        ``"brier"``, ``"auc"``, ``"ece"``; ``"mse"`` (default for regression), ``"mae"``,
        ``"poisson_deviance"`` (the default when the generic model fits the Poisson loss:
        the generic model's loss names the default, :attr:`Loss.metric`).
    alpha : float, default 0.10
        Family-wise level, in (0, 0.5).
    correction : {"holm", "bonferroni", None}, default "holm"
        Correction across the options tested (``None``: no family-wise guarantee).
    test : {"bootstrap", "exact"}, default "bootstrap"
        Paired, stratified (report, label) bootstrap, or the exact one-sided McNemar test
        (``metric="error"`` only).
    n_boot : int, default 1000
        Bootstrap resamples.
    envy : bool, default True
        Remove personalizations that another option would rather have (scored as if it
        had reported that option), so that on the assignment sample no option does
        better with another option's model.
    kind : {"full", "minimal"}, default "full"
        ``"minimal"``: a single candidate (the only one, or the best on the selection
        half), served to the options where it significantly helps.
    min_group_size : int, optional
        Options with fewer test rows keep the generic model (default: 20 rows for the
        ladder, 10 for split).
    reference : fitted model, optional
        Ladder only: the generic model trained alongside the candidates (on the same
        rows), when ``generic`` was trained on more rows.  A candidate at strength ``t``
        is then served as ``generic`` plus ``t`` times its departure from
        ``reference`` (log-odds scale; :mod:`~fairuse_opt.system._blend`), and tested
        against ``generic``.  :func:`~fairuse_opt.fit_system` passes the generic model
        of its training part here and serves a generic model trained on all rows.
    random_state : int, numpy.random.Generator or None, default 0
        Seed of the selection/test split and of the bootstrap.

    Attributes
    ----------
    candidates_ : dict
        Name to fitted candidate.
    candidate_attributes_ : dict
        Name to the group attributes the candidate uses.
    generic_ : model
        The generic model.
    group_names_ : list of str
        Group attributes (from the assignment data).
    groups_ : list of tuple
        Fully reported groups the system knows (the reports :func:`~fairuse_opt.audit`
        tries).
    levels_ : dict
        Known values of every attribute.
    classes_ : ndarray
        Class labels (classification).
    served_ : dict
        Option to served function: ``("generic", ())`` or ``(candidate name, report)``.
    assignment_ : DataFrame
        One row per option seen in the assignment sample (and the root): ``option``, the
        attribute values (``None``: not reported), ``reported``, ``n`` (assignment
        rows), ``n_select``/``n_test`` (rows in each half), ``candidate`` (the plan
        from the selection half), ``served``, ``gain_generic`` and its interval
        ``gain_generic_low``/``gain_generic_high`` (test half; ``alpha`` and
        ``1 - alpha`` bootstrap percentiles), the same against the parent's plan
        (``parent_compared``, ``gain_parent``, ...), ``p_value`` (the largest of the
        option's one-sided p-values), ``p_adjusted`` and ``reason``.
    decisions_ : DataFrame
        Every serving and envy decision, in order.
    """

    def __init__(self, candidates: Any, generic: Any, *, metric: Any = None, alpha: float = 0.10,
                 procedure: str = "ladder", rungs: tuple = DEFAULT_RUNGS, plans: Any = None,
                 correction: str | None = "holm", test: str = "auto", n_boot: int = 1000,
                 envy: bool = True, kind: str = "full", min_group_size: int | None = None,
                 reference: Any = None, random_state: Any = 0):
        self.reference = reference
        self.procedure = procedure
        self.rungs = rungs
        self.plans = plans
        self.candidates = candidates
        self.generic = generic
        self.metric = metric
        self.alpha = alpha
        self.correction = correction
        self.test = test
        self.n_boot = n_boot
        self.envy = envy
        self.kind = kind
        self.min_group_size = min_group_size
        self.random_state = random_state

    # ------------------------------------------------------------ checks
    def _task(self) -> str:
        return CLASSIFICATION if _is_classifier(self) else REGRESSION

    def _check_params(self) -> None:
        check_param("alpha", self.alpha)
        if not 0.0 < self.alpha < 0.5:
            raise InputError(MSG_BAD_PARAM.format(name="alpha", value=self.alpha, reason="must be in (0, 0.5)"))
        check_param("correction", self.correction, choices=("holm", "bonferroni", None))
        check_param("procedure", self.procedure, choices=PROCEDURES)
        check_param("test", self.test, choices=("auto", "t", "bootstrap", "exact"))
        rungs = self.rungs
        if (not isinstance(rungs, (tuple, list)) or not rungs
                or not all(isinstance(t, numbers.Real) and not isinstance(t, bool) and 0.0 < t <= 1.0 for t in rungs)
                or len(set(rungs)) != len(rungs)):
            raise InputError(MSG_BAD_PARAM.format(name="rungs", value=rungs,
                                                  reason="a non-empty tuple of distinct strengths in (0, 1]"))
        check_param("n_boot", self.n_boot, integer=True, low=1)
        check_param("kind", self.kind, choices=KINDS)
        if self.min_group_size is not None:
            check_param("min_group_size", self.min_group_size, integer=True, low=1)
        if not isinstance(self.envy, (bool, np.bool_)):
            raise InputError(MSG_BAD_PARAM.format(name="envy", value=self.envy, reason="True or False"))

    def _min_group_size(self) -> int:
        """``min_group_size``, or its default: 20 rows for the ladder (where the paired
        t-test on log-loss differences holds its level, ``docs/system.md``), 10 for split."""
        if self.min_group_size is not None:
            return int(self.min_group_size)
        return 10 if self.procedure == "split" else 20

    def _metric(self, task: str) -> Metric:
        metric = self.metric
        if metric is None:
            default = "log_loss" if self.procedure != "split" and self.test != "exact" else "error"
            metric = default if task == CLASSIFICATION else (getattr(loss_of(self.generic), "metric", None) or "mse")
        if isinstance(metric, str):
            metric = get_metric(metric, task)
        elif not isinstance(metric, Metric):
            raise InputError(MSG_BAD_PARAM.format(name="metric", value=metric,
                                                  reason="a metric name or a Metric"))
        elif metric.task is not None and metric.task != task:
            raise InputError(MSG_BAD_PARAM.format(name="metric", value=metric.name,
                                                  reason=f"does not apply to {task}"))
        if self.test == "t" and self.procedure == "split":
            raise InputError(MSG_BAD_PARAM.format(name="test", value="t", reason="needs procedure='ladder'"))
        if self.test == "exact" and metric.name != "error":
            raise InputError(MSG_SYSTEM_EXACT_METRIC.format(metric=metric.name))
        return metric

    def _check_models(self, task: str) -> dict[str, Any]:
        method = "predict_proba" if task == CLASSIFICATION else "predict"
        generic = self.generic
        _check_fitted(generic, "the generic model")
        if not hasattr(generic, method):
            raise InputError(MSG_SYSTEM_NO_METHOD.format(what="the generic model", method=method, task=task))
        if getattr(generic, "group_names_", None):
            raise InputError(MSG_SYSTEM_GENERIC_USES_GROUPS.format(names=list(generic.group_names_)))
        cands = self.candidates
        if isinstance(cands, Mapping):
            items = list(cands.items())
        elif isinstance(cands, (list, tuple)):
            items = []
            for model in cands:
                base, k = auto_name(model), 2
                name = base
                while name in dict(items):
                    name, k = f"{base}#{k}", k + 1
                items.append((name, model))
        else:
            raise InputError(MSG_SYSTEM_CANDIDATES_TYPE.format(got=type(cands).__name__))
        if not items:
            raise InputError(MSG_SYSTEM_NO_CANDIDATES)
        out: dict[str, Any] = {}
        n_features = getattr(generic, "n_features_in_", None)
        classes = getattr(generic, "classes_", None)
        for name, model in items:
            if not isinstance(name, str) or not name:
                raise InputError(MSG_SYSTEM_CANDIDATE_NAME.format(name=name))
            if name == GENERIC[0]:
                raise InputError(MSG_SYSTEM_RESERVED_NAME.format(name=name))
            what = f"candidate {name!r}"
            _check_fitted(model, what)
            if not hasattr(model, method):
                raise InputError(MSG_SYSTEM_NO_METHOD.format(what=what, method=method, task=task))
            if getattr(model, "group_cols", None):
                raise InputError(MSG_SYSTEM_GROUP_COLS.format(what=what, cols=model.group_cols))
            got = getattr(model, "n_features_in_", None)
            if n_features is not None and got is not None and got != n_features:
                raise InputError(MSG_SYSTEM_N_FEATURES.format(what=what, got=got, expected=n_features))
            model_classes = getattr(model, "classes_", None)
            if (task == CLASSIFICATION and classes is not None and model_classes is not None
                    and not np.array_equal(np.asarray(model_classes), np.asarray(classes))):
                raise InputError(MSG_SYSTEM_CLASSES.format(what=what, got=list(model_classes),
                                                           expected=list(classes)))
            out[name] = model
        return out

    def _check_plans(self, options: list[tuple], eligible: dict, attrs: dict) -> dict | None:
        """The plans given (by :func:`fit_system`'s cross-validation), as
        :class:`~fairuse_opt.system._ladder.LadderPlan` per option; ``None`` when not given."""
        from ._ladder import LadderPlan

        if self.plans is None:
            return None
        if not isinstance(self.plans, Mapping):
            raise InputError(MSG_BAD_PARAM.format(name="plans", value=type(self.plans).__name__,
                                                  reason="a dict option -> LadderPlan, or None"))
        out = {}
        for o in options:
            plan = self.plans.get(o)
            if plan is None:
                out[o] = LadderPlan(GENERIC, why="no plan for this option: it was not seen in the training part")
                continue
            if not isinstance(plan, LadderPlan):
                raise InputError(MSG_BAD_PARAM.format(name="plans", value=repr(plan), reason="values must be LadderPlan"))
            if plan.function != GENERIC and plan.function not in eligible[o]:
                raise InputError(MSG_BAD_PARAM.format(
                    name="plans", value=repr(plan.function),
                    reason=f"is not a candidate function that option {o} can be served"))
            out[o] = plan
        return out

    # ------------------------------------------------------------ fit
    def fit(self, X_assign: Any, y_assign: Any, *, groups: Any) -> "FairUseSystem":
        """Assign a model to every reporting option on the assignment sample.

        The assignment rows must not have been used to train any candidate or the
        generic model: the guarantee rests on it.

        Parameters
        ----------
        X_assign : array-like or DataFrame, shape (n, d)
            Features, passed to the models unchanged.
        y_assign : array-like, shape (n,)
            Targets.
        groups : DataFrame, Series or array-like
            Group attributes, one column per attribute; a missing value (``None``,
            NaN) means the row did not report that attribute.

        Returns
        -------
        self
        """
        started = time.perf_counter()
        self._check_params()
        if self.procedure == "crossfit":
            raise InputError(MSG_BAD_PARAM.format(
                name="procedure", value="crossfit",
                reason="the cross-fitted procedure fits the pool itself: use fit_system(procedure='crossfit')"))
        task = self._task()
        metric = self._metric(task)
        models = self._check_models(task)
        n = _n_rows(X_assign)
        frame = check_reports(groups, n)
        names = list(frame.columns)
        attrs = {}
        for name, model in models.items():
            used = [str(a) for a in (getattr(model, "group_names_", None) or [])]
            unknown = [a for a in used if a not in names]
            if unknown:
                raise InputError(MSG_SYSTEM_UNKNOWN_ATTRIBUTES.format(what=f"candidate {name!r}",
                                                                      unknown=unknown, names=names))
            attrs[name] = used
        if task == CLASSIFICATION:
            y, classes = check_classification_target(y_assign, n)
            known = getattr(self.generic, "classes_", None)
            if known is not None and not np.array_equal(np.asarray(known), classes):
                # the assignment sample may lack a class; map the labels by the generic's classes
                known = np.asarray(known)
                if not np.isin(classes, known).all():
                    raise InputError(MSG_SYSTEM_CLASSES.format(what="y_assign", got=list(classes),
                                                               expected=list(known)))
                classes = known
                y = (np.asarray(y_assign) == known[1]).astype(np.float64)
            self.classes_ = classes
        else:
            y = check_regression_target(y_assign, n)

        row_keys, row_codes = row_options(frame)
        positions = {name: [names.index(a) for a in used] for name, used in attrs.items()}
        known_groups = {name: _known_groups(model) for name, model in models.items()}
        self.levels_, known_full = _levels_and_groups(row_keys, names, known_groups, attrs)
        options = sorted({o for k in row_keys for o in sub_options(k)}, key=option_order)
        members = {o: member_mask(o, row_keys, row_codes) for o in options}
        eligible: dict[tuple, list[tuple]] = {}
        for o in options:
            eligible[o] = []
            for name in models:
                pos = positions[name]
                if any(o[j] is None for j in pos):
                    continue
                proj = project(o, pos)
                if pos and known_groups[name] is not None and proj not in known_groups[name]:
                    continue
                eligible[o].append((name, proj))
        fids = [GENERIC] + list(dict.fromkeys(f for fs in eligible.values() for f in fs))
        method = "predict_proba" if task == CLASSIFICATION else "predict"
        scores = np.empty((n, len(fids)))
        for k, fid in enumerate(fids):
            scores[:, k] = _call(self.generic if fid == GENERIC else models[fid[0]], method, X_assign,
                                 fid, attrs)
        columns = {f: k for k, f in enumerate(fids)}
        logger.debug("assignment: %d rows, %d option(s), %d candidate(s), %d function(s)",
                    n, len(options), len(models), len(fids))
        gens, seed = spawn_generators(self.random_state, len(options) + 1)
        reference = None
        if self.reference is not None:
            if self.procedure != "ladder":
                raise InputError(MSG_BAD_PARAM.format(name="reference", value=type(self.reference).__name__,
                                                      reason="applies to procedure='ladder' only"))
            _check_fitted(self.reference, "the reference model")
            reference = _call(self.reference, method, X_assign, GENERIC, attrs)
        problem = AssignmentProblem(names=names, y=y, row_keys=row_keys, row_codes=row_codes,
                                    options=options, members=members, scores=scores, columns=columns,
                                    eligible=eligible, names_of=attrs,
                                    classification=task == CLASSIFICATION, reference=reference,
                                    loss=loss_of(self.generic))
        generators = {o: gens[1 + i] for i, o in enumerate(options)}
        if self.procedure == "ladder":
            plans = self._check_plans(options, eligible, attrs)
            result = assign_ladder(problem, metric=metric, alpha=float(self.alpha), rungs=tuple(self.rungs),
                                   plans=plans, test=self.test, n_boot=int(self.n_boot), envy=bool(self.envy),
                                   min_group_size=self._min_group_size(), generators=generators,
                                   split_rng=gens[0])
        else:
            result = assign(problem, metric=metric, alpha=float(self.alpha), correction=self.correction,
                            test="bootstrap" if self.test == "auto" else self.test, n_boot=int(self.n_boot),
                            envy=bool(self.envy), kind=self.kind, min_group_size=self._min_group_size(),
                            split_rng=gens[0], generators=generators)
        self._set_served(models, attrs, names, metric, result.served, result.planned, result.table,
                         result.decisions, {o: int(members[o].sum()) for o in options}, known_full, seed)
        n_personal = sum(f != GENERIC for o, f in result.served.items())
        if self.procedure == "ladder":
            self._warn_if_nothing_certified()
        logger.debug("assignment done in %.2fs: %d of %d option(s) personalized",
                    time.perf_counter() - started, n_personal, len(options))
        return self

    def _set_served(self, models: dict, attrs: dict, names: list[str], metric: Metric, served: dict,
                    planned: dict, table: pd.DataFrame, decisions: pd.DataFrame, sizes: dict,
                    known_full: set, seed: Any) -> None:
        """Set the fitted attributes; shrunk functions ``("name@t", report)`` are served
        by :class:`~fairuse_opt.system._blend.ShrunkModel` entries added to the models."""
        models = dict(models)
        attrs = dict(attrs)
        for fid in set(served.values()):
            if fid != GENERIC and fid[0] not in models:
                base, t = fid[0].rsplit("@", 1)
                models[fid[0]] = ShrunkModel(models[base], self.generic, float(t), reference=self.reference)
                attrs[fid[0]] = attrs[base]
        self.candidates_ = models
        self.candidate_attributes_ = attrs
        self.generic_ = self.generic
        self.group_names_ = names
        self.metric_ = metric.name
        self.served_ = served
        self.planned_ = planned
        self.assignment_ = table
        self.decisions_ = decisions
        self.option_sizes_ = sizes
        self.groups_ = sorted(known_full, key=sort_key)
        if getattr(self.generic, "n_features_in_", None) is not None:
            self.n_features_in_ = self.generic.n_features_in_
        self.random_state_ = seed if seed is not None else "numpy Generator"

    def _warn_if_nothing_certified(self) -> None:
        import warnings

        from ..exceptions import FairUseWarning
        from ._ladder import nothing_certified_message

        msg = nothing_certified_message(self.assignment_, self.metric_, float(self.alpha))
        if msg is not None:
            warnings.warn(msg, FairUseWarning, stacklevel=3)

    def _fit_served(self, X: Any, y: np.ndarray, frame: pd.DataFrame, plans: dict, *, all_plans: dict,
                    strength: dict,
                    table: pd.DataFrame, decisions: pd.DataFrame, task: str, metric: Metric,
                    options: list[tuple], members: dict, row_keys: list[tuple]) -> "FairUseSystem":
        """Fitted state of a system whose decisions were made elsewhere (the cross-fitted
        procedure of :func:`~fairuse_opt.fit_system`): ``plans[o].function`` served to
        option ``o`` at ``strength[o]``, every other option the generic model."""
        from ._blend import shrunk_name

        models = self._check_models(task)
        names = list(frame.columns)
        attrs = {name: [str(a) for a in (getattr(m, "group_names_", None) or [])] for name, m in models.items()}
        if task == CLASSIFICATION:
            self.classes_ = np.asarray(getattr(self.generic, "classes_", np.array([0, 1])))
        known_groups = {name: _known_groups(model) for name, model in models.items()}
        self.levels_, known_full = _levels_and_groups(row_keys, names, known_groups, attrs)
        root = tuple(None for _ in names)
        served: dict[tuple, tuple] = {root: GENERIC}
        for o in options:
            served[o] = GENERIC
            if o in plans:
                name, key = plans[o].function
                t = strength[o]
                served[o] = (name, key) if t >= 1 else (shrunk_name(name, t), key)
        table = table.copy()
        table["served"] = [function_label(served.get(_option_of(names, r), GENERIC), {**attrs, **{
            k: attrs[k.rsplit("@", 1)[0]] for k in {f[0] for f in served.values() if f != GENERIC} if "@" in k}})
            for r in table.to_dict(orient="records")]
        table["candidate"] = [function_label(all_plans[o].function, attrs) if o in all_plans else c
                              for o, c in zip([_option_of(names, r) for r in table.to_dict(orient="records")],
                                              table["candidate"])]
        planned = {o: (plans[o].function if o in plans else GENERIC) for o in options}
        planned[root] = GENERIC
        self._set_served(models, attrs, names, metric, served, planned, table, decisions,
                         {o: int(members[o].sum()) for o in options}, known_full,
                         self.random_state if isinstance(self.random_state, numbers.Integral) else None)
        self._warn_if_nothing_certified()
        return self

    # ------------------------------------------------------------ serving
    def _serving_option(self, key: tuple) -> tuple:
        """The option whose assignment serves ``key``: itself if seen, else its nearest
        seen ancestor (fewest attributes dropped; then most assignment rows)."""
        if key in self.served_:
            return key
        for level in ancestors_by_distance(key):
            seen = [o for o in level if o in self.served_]
            if seen:
                return sorted(seen, key=lambda o: (-self.option_sizes_.get(o, 0), option_order(o)))[0]
        return tuple(None for _ in self.group_names_)

    def _keys(self, n: int, groups: Any, report: Any, method: str) -> tuple[int, list[tuple], np.ndarray]:
        check_is_fitted(self, "served_")
        names = self.group_names_
        if report is not None:
            key = report_key(report, names)
            keys, codes = [key], np.zeros(n, dtype=np.int64)
        else:
            if groups is None:
                raise InputError(MSG_SYSTEM_NEEDS_GROUPS.format(method=method))
            frame = check_reports(groups, n)
            got = list(frame.columns)
            if sorted(got) == sorted(names):
                frame = frame[names]
            elif len(got) == len(names) and all(c.startswith("group") for c in got):
                frame = frame.set_axis(names, axis=1)
            else:
                raise InputError(MSG_GROUP_NAMES_MISMATCH.format(got=got, expected=names))
            keys, codes = row_options(frame)
        check_levels(keys, names, self.levels_)
        return n, keys, codes

    def _served_functions(self, keys: list[tuple]) -> list[tuple]:
        return [self.served_[self._serving_option(k)] for k in keys]

    def _output(self, X: Any, groups: Any, report: Any, method: str, kind: str) -> np.ndarray:
        n, keys, codes = self._keys(_n_rows(X), groups, report, method)
        fids = self._served_functions(keys)
        out = np.empty(n)
        by_fid: dict[tuple, list[int]] = {}
        for k, fid in enumerate(fids):
            by_fid.setdefault(fid, []).append(k)
        for fid, ks in by_fid.items():
            rows = np.flatnonzero(np.isin(codes, ks))
            if rows.size == 0:
                continue
            model = self.generic_ if fid == GENERIC else self.candidates_[fid[0]]
            Xr = _take(X, rows)
            if kind == "decision" and hasattr(model, "decision_function"):
                out[rows] = _call(model, "decision_function", Xr, fid, self.candidate_attributes_)
            elif kind == "decision":
                p = _call(model, "predict_proba", Xr, fid, self.candidate_attributes_)
                out[rows] = logit(np.clip(p, 1e-15, 1 - 1e-15))
            else:
                out[rows] = _call(model, "predict_proba" if kind == "proba" else "predict", Xr, fid,
                                  self.candidate_attributes_)
        return out

    @available_if(_is_classifier)
    def predict_proba(self, X: Any, *, groups: Any = None, report: Any = None) -> np.ndarray:
        """Class probabilities (n, 2), each row from the model served to its option.

        Parameters
        ----------
        X : array-like or DataFrame, shape (n, d)
        groups : DataFrame, Series or array-like, optional
            Each row's report (``None``/NaN: not reported); needed unless ``report``.
        report : tuple, dict or scalar, optional
            Score every row as if it had reported this option (in the order of
            ``group_names_``; ``None`` entries for attributes not reported).

        Returns
        -------
        ndarray
        """
        p = self._output(X, groups, report, "predict_proba", "proba")
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, *, groups: Any = None, report: Any = None) -> np.ndarray:
        """Class labels (probability above 1/2) or predicted values; see
        :meth:`predict_proba`."""
        if _is_classifier(self):
            p = self._output(X, groups, report, "predict", "proba")
            return np.asarray(self.classes_)[(p > 0.5).astype(np.int64)]
        return self._output(X, groups, report, "predict", "predict")

    def decision_function(self, X: Any, *, groups: Any = None, report: Any = None) -> np.ndarray:
        """Score of the served model: log-odds (classification) or prediction; see
        :meth:`predict_proba`."""
        if _is_classifier(self):
            return self._output(X, groups, report, "decision_function", "decision")
        return self._output(X, groups, report, "decision_function", "predict")

    def summary(self, width: int = 100) -> str:
        """What the system serves and why, one line per option, in words.

        Per option: assignment rows, the model served (with its shrinkage strength), the
        gain over the generic model on the assignment sample with its one-sided lower
        bound, the adjusted p-value, the smallest gain its test could certify
        (testability, ladder only) and the reason.  ``print(system)`` prints it.
        """
        check_is_fitted(self, "served_")
        t = self.assignment_
        procedure = getattr(self, "procedure_", self.procedure)
        n_opt = len(t) - 1
        n_pers = int((t["served"].iloc[1:] != "generic").sum())
        lines = [f"FairUseSystem ({procedure}): {n_pers} of {n_opt} reporting option(s) served a personalized "
                 f"model, the others the generic model",
                 f"metric {self.metric_}, family-wise level alpha = {self.alpha:g}"
                 + (f", rungs {', '.join(f'{r:g}' for r in self.rungs)}" if procedure != "split" else ""),
                 "gain > 0: the model does better than the generic model (metric units, assignment "
                 "sample); (>= b): its one-sided lower bound at level alpha, not adjusted", ""]
        for rec in t.to_dict(orient="records"):
            head = f"{rec['option']}  (n = {rec['n']})"
            served = rec["served"]
            gain = rec.get("gain_generic", np.nan)
            parts = [f"served {served}"]
            if isinstance(gain, float) and np.isfinite(gain):
                low = rec.get("gain_generic_low", np.nan)
                parts.append(f"gain {gain:.4g}" + (f" (>= {low:.4g})" if np.isfinite(low) else ""))
            padj = rec.get("p_adjusted", np.nan)
            if isinstance(padj, float) and np.isfinite(padj):
                parts.append(f"p_adj {padj:.3g}")
            mdg = rec.get("min_detectable_gain", np.nan)
            if isinstance(mdg, float) and np.isfinite(mdg):
                parts.append(f"certifiable gain >= {mdg:.3g}")
            lines.append(head)
            lines.append("    " + "; ".join(parts))
            lines += textwrap.wrap(str(rec.get("reason", "")), width, initial_indent="    ",
                                   subsequent_indent="    ")
        if n_pers == 0 and n_opt:
            from ._ladder import nothing_certified_message

            msg = nothing_certified_message(t, self.metric_, float(self.alpha)) if "min_detectable_gain" in t else None
            lines += ["", msg or "No option was served a personalized model."]
        return "\n".join(lines)

    def __str__(self) -> str:
        try:
            check_is_fitted(self, "served_")
        except NotFittedError:
            return self.__repr__()
        return self.summary()

    def serving(self, groups: Any = None, *, report: Any = None) -> pd.DataFrame:
        """Which option and model serve each distinct report.

        Parameters
        ----------
        groups : DataFrame, Series or array-like, optional
            Reports (``None``: not reported).
        report : tuple or dict, optional
            One report instead of ``groups``.

        Returns
        -------
        DataFrame
            ``report``, ``served_by`` (the option whose assignment applies: the report
            itself, or its nearest ancestor seen in the assignment sample) and ``model``.
        """
        n = 1 if report is not None else (0 if groups is None else len(groups))
        _, keys, _ = self._keys(n, groups, report, "serving")
        rows = []
        for k in keys:
            o = self._serving_option(k)
            rows.append({"report": option_label(self.group_names_, k),
                         "served_by": option_label(self.group_names_, o),
                         "model": function_label(self.served_[o], self.candidate_attributes_)})
        return pd.DataFrame(rows)

    def to_json(self, path: Any = None, **kw: Any) -> str:
        """Serialise the fitted system to the model file (format ``fairuse_opt.model/2``):
        for every reporting option, the linear model it is served.

        Every served model must be linear (a library estimator); see
        :mod:`fairuse_opt.model_io` and ``docs/model-file.md``.  Read it back with
        :func:`fairuse_opt.model_io.loads`.

        Parameters
        ----------
        path : str or path-like, optional
            Also write the JSON text to this file (atomically).
        **kw
            Passed to :func:`fairuse_opt.model_io.dumps` (``metadata=``, ``indent=``, ...).

        Returns
        -------
        str
            The JSON text.
        """
        from .._files import write_atomic
        from ..model_io import dumps

        text = dumps(self, **kw)
        if path is not None:
            write_atomic(path, text)
        return text

    def score(self, X: Any, y: Any, *, groups: Any = None) -> float:
        """Accuracy (classification), or the generic model's loss's score of the served
        models' predictions (R^2 for the squared error, the fraction of Poisson deviance
        explained for the Poisson loss; R^2 for a generic model of another library)."""
        from sklearn.metrics import accuracy_score

        pred = self.predict(X, groups=groups)
        if _is_classifier(self):
            return float(accuracy_score(y, pred))
        return (loss_of(self.generic) or SquaredLoss()).score(np.asarray(y, dtype=np.float64), pred)


def _check_fitted(model: Any, what: str) -> None:
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise InputError(MSG_SYSTEM_NOT_FITTED.format(what=what)) from exc
    except TypeError as exc:  # not an estimator at all
        if not (hasattr(model, "predict_proba") or hasattr(model, "predict")):
            raise InputError(MSG_SYSTEM_NO_METHOD.format(what=what, method="predict", task="any")) from exc


def _option_of(names: list[str], record: dict) -> tuple:
    """The option of a row of ``assignment_``."""
    return tuple(None if (v is None or (isinstance(v, float) and np.isnan(v))) else v
                 for v in (record[a] for a in names))


def _levels_and_groups(row_keys: list[tuple], names: list[str], known_groups: dict,
                       attrs: dict) -> tuple[dict, set]:
    """Known values of every attribute and the fully reported groups, from the reports
    seen and the groups the candidates know."""
    levels: dict[str, set] = {a: set() for a in names}
    for key in row_keys:
        for a, v in zip(names, key):
            if v is not None:
                levels[a].add(v)
    for name, groups_c in known_groups.items():
        for key in groups_c or []:
            for a, v in zip(attrs[name], key):
                levels[a].add(v)
    full = {k for k in row_keys if None not in k}
    for name, groups_c in known_groups.items():
        if groups_c is not None and len(attrs[name]) == len(names):
            order = [attrs[name].index(a) for a in names]
            full |= {tuple(k[i] for i in order) for k in groups_c}
    return {a: sorted(v, key=sort_key) for a, v in levels.items()}, full


def _known_groups(model: Any) -> set[tuple] | None:
    groups = getattr(model, "groups_", None)
    if groups is None:
        return None
    return {tuple(k) if isinstance(k, (tuple, list)) else (k,) for k in groups}


def _call(model: Any, method: str, X: Any, fid: tuple, attrs: dict[str, list[str]]) -> np.ndarray:
    """One function's output on ``X``: the candidate with its fixed report."""
    kwargs = {}
    if fid != GENERIC and attrs[fid[0]]:
        kwargs["report"] = fid[1]
    out = np.asarray(getattr(model, method)(X, **kwargs), dtype=np.float64)
    if method == "predict_proba":
        out = out[:, 1]
    return out.reshape(-1)
