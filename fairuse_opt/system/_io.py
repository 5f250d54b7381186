"""A fitted :class:`~fairuse_opt.FairUseSystem` as a model file (format ``fairuse_opt.model/2``).

:func:`system_document` turns a fitted system into the JSON document that
:func:`fairuse_opt.model_io.dumps` writes; :func:`system_from_document` reads it back into a
:class:`~fairuse_opt.FairUseSystem` that predicts like the system that was written (same
``predict``, ``predict_proba``, ``decision_function`` and ``serving``, with ``groups=`` or
``report=``, partial reports included).  ``docs/model-file.md`` specifies the fields.

The file holds, for **every reporting option the system can be asked about** (every
combination of a known value or nothing for each attribute), the index of the linear model it
is served: the nearest-seen-parent rule of :meth:`FairUseSystem._serving_option` is applied
when writing, so a reader needs no rule at all (the rule and the option that applied it,
``served_by``, are written too, and the loader checks that they agree).  Only linear models
can be written: every served candidate must be a library estimator (or a model read from a
file); the generic model too.
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import Any, Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .._groups import sort_key
from .._validation import check_features
from ..exceptions import MSG_FEATURE_NAMES, MSG_N_FEATURES, InputError
from ..model.losses import LOSSES, LogisticLoss, Loss, SquaredLoss, loss_of
from ._assign import GENERIC, function_label
from ._options import ancestors_by_distance, option_label, option_order

__all__ = ["FileLinearModel", "system_document", "system_from_document", "SYSTEM_ESTIMATOR",
           "MAX_OPTIONS"]

#: The ``estimator`` value of a system file.
SYSTEM_ESTIMATOR = "FairUseSystem"
#: A system with more reporting options than this is refused (the file lists every option).
MAX_OPTIONS = 100_000

#: Settings of the system written to (and read from) ``system``.
SETTINGS = ("metric", "alpha", "correction", "test", "n_boot", "envy", "kind", "min_group_size",
            "random_state", "procedure", "rungs")
#: Settings added after the first system files; a file without them was written by the
#: ``"split"`` procedure (the only one then).
LATER_SETTINGS = {"procedure": "split", "rungs": [0.25, 0.5, 1.0]}
#: Columns of ``assignment_`` besides ``option`` and the attribute columns, in their order.
TABLE_TEXT = ("reported", "candidate", "served", "reason", "parent_compared")
TABLE_INTS = ("n", "n_select", "n_test")
TABLE_FLOATS = ("gain_generic", "gain_generic_low", "gain_generic_high", "gain_parent", "gain_parent_low",
                "gain_parent_high", "p_value", "p_adjusted", "p_parent", "strength", "cv_gain",
                "min_detectable_gain")
#: Order of the columns of ``assignment_`` after the attribute columns (as ``assign`` builds it).
TABLE_ORDER = ("reported", "n", "n_select", "n_test", "candidate", "served", "strength", "cv_gain",
               "reason", "gain_generic", "gain_generic_low", "gain_generic_high", "parent_compared", "gain_parent",
               "gain_parent_low", "gain_parent_high", "p_value", "p_adjusted", "p_parent", "min_detectable_gain")
#: The procedure's columns (the ladder's table has no parent or selection-half columns).
TABLE_COLUMNS = {
    "split": ("reported", "n", "n_select", "n_test", "candidate", "served", "reason", "gain_generic",
              "gain_generic_low", "gain_generic_high", "parent_compared", "gain_parent", "gain_parent_low",
              "gain_parent_high", "p_value", "p_adjusted", "p_parent"),
    "ladder": ("reported", "n", "n_select", "n_test", "candidate", "served", "strength", "cv_gain",
               "gain_generic", "gain_generic_low", "p_value", "p_adjusted", "min_detectable_gain", "reason"),
}

# --------------------------------------------------------------------------- messages
MSG_SYSTEM_NOT_FITTED = "only a fitted FairUseSystem can be written to a model file; call fit() first"
MSG_SYSTEM_NOT_LINEAR = (
    "{what} ({type}) is not a linear model of this library, so the model file cannot hold it; "
    "it is served to {options}. A system file holds linear models only (FairUseClassifier / "
    "FairUseRegressor); {advice}"
)
MSG_SYSTEM_TOO_MANY_OPTIONS = (
    "the system has {n} reporting options (every combination of a known value or nothing per "
    "attribute), more than a model file lists ({limit})"
)
MSG_FILE_TOO_MANY_OPTIONS = (
    "declare more than {limit} reporting options (every combination of a level or nothing per "
    "attribute), more than a model file lists"
)
MSG_SYSTEM_REFIT = (
    "this model was read from a model file and holds only the linear models the system served; "
    "it cannot be fitted"
)


def _bad(source: str, field: str, problem: str) -> InputError:
    from ..model_io import _bad as bad_field

    return bad_field(source, field, problem)


def _short(v: Any, limit: int = 60) -> str:
    from ..model_io import _short as short

    return short(v, limit)


# --------------------------------------------------------------------------- linear models
def _is_classifier(model: Any) -> bool:
    return getattr(model, "task_", None) == "classification"


class FileLinearModel(BaseEstimator):
    """The served linear models of one candidate (or the generic model), read from a file.

    For every report it was served with, the effective model on the raw feature scale:
    ``score = intercept + coef . x``; classification probability ``1 / (1 + exp(-score))``,
    regression prediction the inverse link of the score (the score itself for the squared
    error, ``exp(score)`` for the Poisson loss).  It takes ``report=`` like the candidate
    did; ``groups=`` selects each row's report.

    Attributes
    ----------
    group_names_ : list of str
        The attributes the candidate used (empty for the generic model).
    groups_ : list of tuple or None
        The reports it can be scored with (``None`` for the generic model).
    coef_ : ndarray (k, d)
    intercept_ : ndarray (k,)
    classes_ : ndarray
        Classification only.
    loss_ : Loss
        The loss the models were fitted with (its inverse link gives the predictions).
    n_features_in_ : int
    """

    def __init__(self) -> None:
        pass

    def fit(self, *args, **kwargs):
        raise InputError(MSG_SYSTEM_REFIT)

    @classmethod
    def build(cls, *, loss: Loss, attributes: list[str], reports: list[tuple], coef: np.ndarray,
              intercept: np.ndarray, classes: np.ndarray | None, n_features: int,
              names_in: list[str] | None) -> "FileLinearModel":
        model = cls()
        model.task_ = loss.task
        model.loss_ = loss
        model.group_names_ = list(attributes)
        model.groups_ = [tuple(r) for r in reports] if attributes else None
        model.coef_ = np.asarray(coef, dtype=np.float64).reshape(len(reports), n_features)
        model.intercept_ = np.asarray(intercept, dtype=np.float64).reshape(len(reports))
        model.n_features_in_ = int(n_features)
        if names_in is not None:
            model.feature_names_in_ = np.array(names_in, dtype=object)
        if classes is not None:
            model.classes_ = classes
        return model

    def _get_loss(self) -> Loss:
        return self.loss_

    def _code(self, report: Any, groups: Any, n: int) -> np.ndarray:
        if not self.group_names_:
            return np.zeros(n, dtype=np.int64)
        lookup = {k: i for i, k in enumerate(self.groups_)}
        if report is not None:
            key = tuple(report) if isinstance(report, (tuple, list)) else (report,)
            if key not in lookup:
                raise InputError(f"report {_short(key)} is not among the reports this model was served with "
                                 f"({_short(self.groups_, 300)})")
            return np.full(n, lookup[key], dtype=np.int64)
        if groups is None:
            raise InputError("this model needs groups= or report=")
        frame = pd.DataFrame(groups)
        keys = [tuple(r) for r in frame.itertuples(index=False, name=None)]
        missing = sorted({k for k in keys if k not in lookup}, key=sort_key)
        if missing:
            raise InputError(f"reports {_short(missing[:5], 300)} are not among the reports this model was served with")
        return np.array([lookup[k] for k in keys], dtype=np.int64)

    def decision_function(self, X: Any, *, groups: Any = None, report: Any = None) -> np.ndarray:
        """Linear score of each row."""
        from ..fairness.certify import row_scores

        check_is_fitted(self, "coef_")
        Xa, names = check_features(X, allow_empty_columns=True)
        if Xa.shape[1] != self.n_features_in_:
            raise InputError(MSG_N_FEATURES.format(got=Xa.shape[1], name=type(self).__name__,
                                                   expected=self.n_features_in_))
        if names is not None and hasattr(self, "feature_names_in_") and list(names) != list(self.feature_names_in_):
            raise InputError(MSG_FEATURE_NAMES.format(got=names, expected=list(self.feature_names_in_)))
        return row_scores(Xa, self._code(report, groups, Xa.shape[0]), self.coef_, self.intercept_)

    @available_if(_is_classifier)
    def predict_proba(self, X: Any, *, groups: Any = None, report: Any = None) -> np.ndarray:
        """Probabilities of ``classes_`` (n, 2)."""
        from scipy.special import expit

        s = self.decision_function(X, groups=groups, report=report)
        return np.column_stack([expit(-s), expit(s)])

    def predict(self, X: Any, *, groups: Any = None, report: Any = None) -> np.ndarray:
        s = self.decision_function(X, groups=groups, report=report)
        if self.task_ == "classification":
            return np.asarray(self.classes_)[(s > 0).astype(np.int64)]
        return self.loss_.inverse_link(s)


def _linear(model: Any, what: str, report: tuple | None, loss: Loss, options: list[str]) -> tuple[np.ndarray, float]:
    """The effective linear model ``(coef, intercept)`` of ``model`` under ``report``: a
    linear model of the system's ``loss`` (its scores are linear, and the file's scorer
    applies that loss's inverse link)."""
    from ..estimators import FairUseClassifier, FairUseRegressor

    from ._blend import ShrunkModel

    if isinstance(model, ShrunkModel):
        c, b = _linear(model.candidate, what, report, loss, options)
        c0, b0 = _linear(model.generic, what, None, loss, options)
        cr, br = (c0, b0) if model.reference is None else _linear(model.reference, what, None, loss, options)
        t = model.strength
        return c0 + t * (c - cr), b0 + t * (b - br)
    if isinstance(model, FileLinearModel) and model.loss_ == loss:
        k = 0 if not model.group_names_ else model.groups_.index(tuple(report))
        return model.coef_[k].copy(), float(model.intercept_[k])
    if (isinstance(model, (FairUseClassifier, FairUseRegressor)) and hasattr(model, "coef_")
            and model._get_loss() == loss and getattr(model, "group_cols", None) is None):
        return model.group_model(report if model.group_index_ is not None else None)
    shown = ", ".join(options[:5]) + (f" and {len(options) - 5} more" if len(options) > 5 else "")
    advice = ("use FairUseClassifier(encoding='none') or FairUseRegressor(encoding='none') as the generic model"
              if what == "the generic model" else "leave this candidate out of the system to write it")
    raise InputError(MSG_SYSTEM_NOT_LINEAR.format(what=what, type=type(model).__name__, options=shown or "no option",
                                                  advice=advice))


def _value(v: Any, what: str) -> Any:
    """A group value as JSON can hold it."""
    from ..model_io import _check_group_value

    if isinstance(v, np.generic):
        v = v.item()
    _check_group_value(v, what)
    return v


def _number_or_null(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def all_options(names: list[str], levels: Mapping[str, list]) -> list[tuple]:
    """Every option the system can be asked about, in :func:`option_order`."""
    return sorted(itertools.product(*[[None, *levels[a]] for a in names]), key=option_order)


def nearest_seen(options: list[tuple], served: Mapping, sizes: Mapping) -> dict[tuple, tuple]:
    """The option whose assignment serves each option (:meth:`FairUseSystem._serving_option`
    for all of them at once): itself when seen, else its nearest seen ancestor (fewest
    attributes dropped), the one with the most assignment rows, ties broken by
    :func:`option_order`.

    ``options`` must list every option, fewer reported attributes first (as
    :func:`all_options` does).  Each option is settled from its parents (one reported
    attribute dropped): its nearest seen ancestors are those of the parents that are
    nearest, so the work is one step per (option, parent), not one per (option, ancestor),
    which grows as 3^k with k attributes (16 attributes of one level: 43 million).
    """
    def rank(o: tuple):
        return (-sizes.get(o, 0), option_order(o))

    dist: dict[tuple, int] = {}
    best: dict[tuple, tuple] = {}
    for o in options:
        if o in served:
            dist[o], best[o] = 0, o
            continue
        near, pick = None, None
        for j, v in enumerate(o):
            if v is None:
                continue
            p = o[:j] + (None,) + o[j + 1:]
            dp = dist[p]
            if near is None or dp < near or (dp == near and rank(best[p]) < rank(pick)):
                near, pick = dp, best[p]
        if pick is None:  # the root, never seen: served as nothing reported
            near, pick = 0, o
        dist[o], best[o] = near + 1, pick
    return best


# --------------------------------------------------------------------------- writing
def system_document(system: Any) -> dict:
    """The system-specific fields of a system file (everything but ``format``, ``library``,
    ``input`` and ``metadata``).

    Raises
    ------
    InputError
        The system is not fitted, serves a model that is not linear, or has more than
        :data:`MAX_OPTIONS` reporting options.
    """
    from ..model_io import _classes_dict, _nums, _num

    if not hasattr(system, "served_"):
        raise InputError(MSG_SYSTEM_NOT_FITTED)
    names = [str(a) for a in system.group_names_]
    task = system._task()
    # the generic model's loss is the system's: every model served must be linear in it
    loss = loss_of(system.generic_) or (LogisticLoss() if task == "classification" else SquaredLoss())
    levels = {a: [_value(v, a) for v in system.levels_[a]] for a in names}
    n_options = math.prod(len(levels[a]) + 1 for a in names)  # (an integer: np.prod wraps around)
    if n_options > MAX_OPTIONS:
        raise InputError(MSG_SYSTEM_TOO_MANY_OPTIONS.format(n=n_options, limit=MAX_OPTIONS))
    options = all_options(names, levels)
    serving = nearest_seen(options, system.served_, system.option_sizes_)
    # the functions served, the generic model first, then in order of first use
    fids = list(dict.fromkeys([GENERIC] + [system.served_[serving[o]] for o in options]))
    attrs = system.candidate_attributes_
    users: dict[tuple, list[str]] = {}
    for o in options:
        users.setdefault(system.served_[serving[o]], []).append(option_label(names, o))
    models = []
    for fid in fids:
        if fid == GENERIC:
            coef, b = _linear(system.generic_, "the generic model", None, loss, users.get(fid, []))
            label, cand, rep = "generic", None, None
        else:
            name, key = fid
            coef, b = _linear(system.candidates_[name], f"candidate {name!r}", tuple(key) if attrs[name] else None,
                              loss, users.get(fid, []))
            label, cand = function_label(fid, attrs), name
            rep = [_value(v, a) for a, v in zip(attrs[name], key)]
        models.append({"function": label, "candidate": cand, "report": rep,
                       "intercept": _num(b, f"{label} intercept"), "coef": _nums(coef, f"{label} coef")})
    index = {f: k for k, f in enumerate(fids)}
    sizes = system.option_sizes_
    n_total = int(system.assignment_["n"].iloc[0]) if len(system.assignment_) else 0
    root = tuple(None for _ in names)
    option_rows = []
    for o in options:
        seen = o in system.served_
        option_rows.append({"option": list(o), "seen": bool(seen),
                            "n": (n_total if o == root else int(sizes.get(o, 0))) if seen else 0,
                            "served_by": list(serving[o]), "model": index[system.served_[serving[o]]]})
    generic = models[0]
    d = len(generic["coef"])
    gen = system.generic_
    feature_names = getattr(gen, "feature_names_", None)
    names_in = getattr(gen, "feature_names_in_", None)
    if feature_names is None:
        feature_names = [str(v) for v in names_in] if names_in is not None else [f"x{j}" for j in range(d)]
    candidates = {name: {"attributes": list(attrs[name]), "type": type(model).__name__}
                  for name, model in system.candidates_.items()}
    if isinstance(getattr(system, "file_candidates_", None), dict):  # read from a file: as it was
        candidates = {name: dict(c) for name, c in system.file_candidates_.items()}
    return {
        "estimator": SYSTEM_ESTIMATOR,
        "task": task,
        "loss": loss.name,
        "classes": _classes_dict(system) if task == "classification" else None,
        "features": {"names": [str(f) for f in feature_names],
                     "names_in": None if names_in is None else [str(v) for v in names_in]},
        "groups": {"attributes": names, "levels": levels,
                   "known": [[_value(v, a) for a, v in zip(names, k)] for k in system.groups_]},
        "models": models,
        "options": option_rows,
        "generic": {"intercept": generic["intercept"], "coef": list(generic["coef"])},
        "system": _settings(system),
        "candidates": candidates,
        "assignment": _table_rows(system.assignment_, names),
        "decisions": [{"step": int(r.step), "option": str(r.option), "action": str(r.action),
                       "detail": str(r.detail)} for r in system.decisions_.itertuples(index=False)],
    }


def _settings(system: Any) -> dict:
    rs = system.random_state
    seed = int(rs) if isinstance(rs, numbers.Integral) and not isinstance(rs, bool) else None
    return {"metric": str(system.metric_), "alpha": float(system.alpha),
            "correction": system.correction, "test": str(system.test), "n_boot": int(system.n_boot),
            "envy": bool(system.envy), "kind": str(system.kind), "min_group_size": int(system._min_group_size()),
            "random_state": seed, "procedure": str(system.procedure), "rungs": [float(t) for t in system.rungs]}


def _table_rows(table: pd.DataFrame, names: list[str]) -> list[dict]:
    rows = []
    for rec in table.to_dict(orient="records"):
        row: dict[str, Any] = {"option": str(rec["option"]),
                               "report": [None if _missing(rec.get(a)) else _value(rec[a], a) for a in names]}
        for c in TABLE_ORDER:
            if c not in table.columns:
                continue
            if c in TABLE_TEXT:
                row[c] = None if _missing(rec.get(c)) else str(rec[c])
            elif c in TABLE_INTS:
                row[c] = int(rec[c])
            else:
                row[c] = _number_or_null(rec.get(c))
        rows.append(row)
    return rows


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


# --------------------------------------------------------------------------- reading
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _list_of(v: Any, check, source: str, where: str, what: str) -> list:
    if not isinstance(v, list) or not all(check(x) for x in v):
        raise _bad(source, where, f"must be a list of {what}")
    return v


def system_from_document(doc: dict, source: str) -> tuple[Any, list[str]]:
    """Build the :class:`FairUseSystem` of a system file; return it and the feature names.

    Every field is type-checked; a malformed file raises :class:`InputError` naming the
    field.
    """
    from ..model_io import _float, _scalar_value, _vector
    from ..model_io import _build_classes
    from ._system import FairUseSystem

    for key in SYSTEM_REQUIRED_KEYS:
        if key not in doc:
            from ..model_io import MSG_MISSING_KEYS

            raise InputError(MSG_MISSING_KEYS.format(source=source, keys=[key]))
    task = doc["task"]
    if task not in ("classification", "regression"):
        raise _bad(source, "task", f"must be 'classification' or 'regression'; got {_short(task)}")
    loss_name = doc.get("loss")  # (absent from files written before it was recorded: the task's first loss)
    if loss_name is None:
        loss = LogisticLoss() if task == "classification" else SquaredLoss()
    elif not isinstance(loss_name, str) or loss_name not in LOSSES or LOSSES[loss_name].task != task:
        known = sorted(n for n, cls in LOSSES.items() if cls.task == task)
        raise _bad(source, "loss", f"must be one of {known} for {task}; got {_short(loss_name)}")
    else:
        loss = LOSSES[loss_name]()
    classes = _build_classes(doc["classes"], source) if task == "classification" else None
    if task == "regression" and doc["classes"] is not None:
        raise _bad(source, "classes", "must be null for regression")

    # features
    feats = doc["features"]
    if not isinstance(feats, dict) or not {"names", "names_in"} <= set(feats):
        raise _bad(source, "features", "must be an object with 'names' and 'names_in'")
    if not isinstance(feats.get("names"), list) \
            or not all(isinstance(f, str) for f in feats["names"]):
        raise _bad(source, "features.names", "must be a list of strings")
    feature_names = list(feats["names"])
    d = len(feature_names)
    names_in = feats.get("names_in")
    if names_in is not None and (not isinstance(names_in, list) or names_in != feature_names):
        raise _bad(source, "features.names_in", "must be null or equal to features.names")

    # groups
    groups = doc["groups"]
    if not isinstance(groups, dict) or not isinstance(groups.get("attributes"), list) \
            or not groups["attributes"] or not all(isinstance(a, str) for a in groups["attributes"]) \
            or not isinstance(groups.get("levels"), dict):
        raise _bad(source, "groups", "must be {'attributes': [names], 'levels': {name: [values]}, 'known': [...]}")
    names = list(groups["attributes"])
    if len(set(names)) != len(names):
        raise _bad(source, "groups.attributes", "lists an attribute twice")
    if set(groups["levels"]) != set(names):
        raise _bad(source, "groups.levels", "must have one entry per attribute")
    # the writer's limit on the options, applied before anything is enumerated
    n_options = 1
    for a in names:
        lv = groups["levels"][a]
        n_options *= (len(lv) + 1) if isinstance(lv, list) else 1
        if n_options > MAX_OPTIONS:
            raise _bad(source, "groups.levels", MSG_FILE_TOO_MANY_OPTIONS.format(limit=MAX_OPTIONS))
    levels: dict[str, list] = {}
    for a in names:
        lv = groups["levels"][a]
        if not isinstance(lv, list) or not lv or not all(_scalar_value(v) for v in lv) or len(set(map(repr, lv))) != len(lv):
            raise _bad(source, f"groups.levels[{_short(a)}]", "must be a non-empty list of distinct strings or numbers")
        levels[a] = list(lv)
    level_sets = {a: set(levels[a]) for a in names}  # (membership in constant time: 100,000 options)
    known = groups.get("known")
    _list_of(known, lambda k: isinstance(k, list) and len(k) == len(names), source, "groups.known",
             f"groups, each a list of {len(names)} value(s)")
    for i, k in enumerate(known):
        for a, v in zip(names, k):
            if not _scalar_value(v) or v not in level_sets[a]:
                raise _bad(source, f"groups.known[{i}]", f"has {a}={_short(v)}, not among groups.levels")

    # candidates
    cands = doc["candidates"]
    if not isinstance(cands, dict):
        raise _bad(source, "candidates", "must be an object {name: {'attributes': [...], 'type': str}}")
    cand_attrs: dict[str, list[str]] = {}
    for name, c in cands.items():
        if name == GENERIC[0] or not name:
            raise _bad(source, f"candidates[{_short(name)}]", "is a reserved or empty name")
        if not isinstance(c, dict) or not isinstance(c.get("type"), str):
            raise _bad(source, f"candidates[{_short(name)}]", "must be {'attributes': [names], 'type': str}")
        at = _list_of(c.get("attributes"), lambda a: isinstance(a, str) and a in names, source,
                      f"candidates[{_short(name)}].attributes", f"attributes among {_short(names, 300)}")
        if len(set(at)) != len(at):
            raise _bad(source, f"candidates[{_short(name)}].attributes", "lists an attribute twice")
        cand_attrs[name] = list(at)

    # models
    models = doc["models"]
    if not isinstance(models, list) or not models:
        raise _bad(source, "models", "must be a non-empty list")
    fids: list[tuple] = []
    coefs, intercepts = [], []
    for k, m in enumerate(models):
        where = f"models[{k}]"
        if not isinstance(m, dict) or not {"candidate", "report", "intercept", "coef"} <= set(m):
            raise _bad(source, where, "must be an object with 'candidate', 'report', 'intercept' and 'coef'")
        coefs.append(_vector(m["coef"], d, source, f"{where}.coef"))
        intercepts.append(_float(m["intercept"], source, f"{where}.intercept"))
        if m.get("function") is not None and not isinstance(m["function"], str):
            raise _bad(source, f"{where}.function", "must be a string")
        cand = m["candidate"]
        if cand is None:
            if m["report"] is not None:
                raise _bad(source, f"{where}.report", "must be null for the generic model")
            fids.append(GENERIC)
            continue
        if not isinstance(cand, str) or cand not in cand_attrs:
            raise _bad(source, f"{where}.candidate", f"names no candidate of 'candidates': {_short(cand)}")
        at = cand_attrs[cand]
        rep = m["report"]
        if not isinstance(rep, list) or len(rep) != len(at):
            raise _bad(source, f"{where}.report", f"must list one value for each of {_short(at, 300)}")
        for a, v in zip(at, rep):
            if not _scalar_value(v) or v not in level_sets[a]:
                raise _bad(source, f"{where}.report", f"has {a}={_short(v)}, not among groups.levels")
        fids.append((cand, tuple(rep)))
    if fids[0] != GENERIC:
        raise _bad(source, "models[0]", "must be the generic model (candidate null)")
    if len(set(fids)) != len(fids):
        raise _bad(source, "models", "lists a model twice")
    gdoc = doc["generic"]
    if not isinstance(gdoc, dict) or not {"intercept", "coef"} <= set(gdoc):
        raise _bad(source, "generic", "must be an object with 'intercept' and 'coef'")
    g_coef = _vector(gdoc["coef"], d, source, "generic.coef")
    g_b = _float(gdoc["intercept"], source, "generic.intercept")
    if g_b != intercepts[0] or not np.array_equal(g_coef, coefs[0]):
        raise _bad(source, "generic", "differs from models[0], the generic model")

    # settings
    settings = _read_settings(doc["system"], source, task)

    # options: the complete table
    opts = doc["options"]
    if not isinstance(opts, list):
        raise _bad(source, "options", "must be a list")
    expected = all_options(names, levels)
    table: dict[tuple, dict] = {}
    for i, r in enumerate(opts):
        where = f"options[{i}]"
        if not isinstance(r, dict) or not {"option", "seen", "n", "served_by", "model"} <= set(r):
            raise _bad(source, where, "must be an object with 'option', 'seen', 'n', 'served_by' and 'model'")
        o = _option(r["option"], names, level_sets, source, f"{where}.option")
        by = _option(r["served_by"], names, level_sets, source, f"{where}.served_by")
        if not isinstance(r["seen"], bool):
            raise _bad(source, f"{where}.seen", "must be true or false")
        if not _is_int(r["n"]) or r["n"] < 0:
            raise _bad(source, f"{where}.n", "must be a non-negative integer")
        if not _is_int(r["model"]) or not 0 <= r["model"] < len(models):
            raise _bad(source, f"{where}.model", f"must be an index into models (0 to {len(models) - 1})")
        if o in table:
            raise _bad(source, "options", f"lists option {option_label(names, o)} twice")
        table[o] = {"seen": r["seen"], "n": r["n"], "served_by": by, "fid": fids[r["model"]], "where": where}
    if len(table) != len(expected):
        missing = [option_label(names, o) for o in expected if o not in table][:3]
        raise _bad(source, "options", f"must list every option the system can be asked about "
                                      f"({len(expected)}); missing e.g. {missing}")
    root = tuple(None for _ in names)
    if not table[root]["seen"] or table[root]["fid"] != GENERIC:
        raise _bad(source, "options", "must serve the root (nothing reported) the generic model, as seen")
    served = {o: t["fid"] for o, t in table.items() if t["seen"]}
    sizes = {o: t["n"] for o, t in table.items() if t["seen"] and o != root}
    for o, t in table.items():
        if t["seen"] and t["served_by"] != o:
            raise _bad(source, f"{t['where']}.served_by", "must be the option itself for a seen option")
        fid = t["fid"]
        if fid != GENERIC:
            pos = [names.index(a) for a in cand_attrs[fid[0]]]
            if any(o[j] is None for j in pos):
                raise _bad(source, f"{t['where']}.model", f"uses attribute(s) {cand_attrs[fid[0]]} that the "
                                                           f"option {option_label(names, o)} does not report")

    # the fitted system
    reports: dict[str, list[tuple]] = {}
    for fid in fids[1:]:
        reports.setdefault(fid[0], []).append(fid[1])
    k_of = {f: k for k, f in enumerate(fids)}
    cand_models = {}
    for name, reps in reports.items():
        rows = [k_of[(name, r)] for r in reps]
        cand_models[name] = FileLinearModel.build(
            loss=loss, attributes=cand_attrs[name], reports=reps if cand_attrs[name] else [()],
            coef=np.vstack([coefs[k] for k in rows]) if d else np.zeros((len(rows), 0)),
            intercept=np.array([intercepts[k] for k in rows]), classes=classes, n_features=d, names_in=names_in)
    generic = FileLinearModel.build(loss=loss, attributes=[], reports=[()], coef=coefs[0].reshape(1, d),
                                    intercept=np.array([intercepts[0]]), classes=classes, n_features=d,
                                    names_in=names_in)
    system = FairUseSystem(cand_models, generic, **settings)
    system.candidates_ = cand_models
    system.candidate_attributes_ = {name: list(cand_attrs[name]) for name in cand_attrs}
    system.generic_ = generic
    system.group_names_ = names
    system.groups_ = [tuple(k) for k in known]
    system.levels_ = levels
    if classes is not None:
        system.classes_ = classes
    system.metric_ = settings["metric"]
    system.served_ = served
    system.option_sizes_ = sizes
    system.n_features_in_ = d
    system.random_state_ = settings["random_state"] if settings["random_state"] is not None else "numpy Generator"
    system.assignment_ = _read_table(doc["assignment"], names, source)
    system.decisions_ = _read_decisions(doc["decisions"], source)
    system.file_candidates_ = {name: {"attributes": list(cand_attrs[name]), "type": cands[name]["type"]}
                               for name in cands}
    # the file's table must be what the nearest-seen-parent rule gives
    serving = nearest_seen(expected, served, sizes)
    for o, t in table.items():
        by = serving[o]
        if by != t["served_by"] or served[by] != t["fid"]:
            raise _bad(source, t["where"], (f"does not follow the nearest-seen-parent rule: option "
                                            f"{option_label(names, o)} is served by {option_label(names, by)} "
                                            f"({function_label(served[by], system.candidate_attributes_)})"))
    return system, feature_names


SYSTEM_REQUIRED_KEYS = ("estimator", "task", "classes", "features", "groups", "models", "options", "generic",
                        "system", "candidates", "assignment", "decisions")


def _option(v: Any, names: list[str], levels: dict, source: str, where: str) -> tuple:
    if not isinstance(v, list) or len(v) != len(names):
        raise _bad(source, where, f"must list a value or null for each of {_short(names, 300)}")
    from ..model_io import _scalar_value

    for a, x in zip(names, v):
        if x is not None and (not _scalar_value(x) or x not in levels[a]):
            raise _bad(source, where, f"has {a}={_short(x)}, not among groups.levels")
    return tuple(v)


def _read_settings(s: Any, source: str, task: str) -> dict:
    from ..audit._metrics import get_metric

    if isinstance(s, dict) and set(s) == set(SETTINGS) - set(LATER_SETTINGS):
        s = {**s, **LATER_SETTINGS}
    if not isinstance(s, dict) or set(s) != set(SETTINGS):
        raise _bad(source, "system", f"must be an object with exactly the settings {list(SETTINGS)}")
    if s["procedure"] not in ("ladder", "split", "crossfit"):
        raise _bad(source, "system.procedure", "must be 'ladder', 'split' or 'crossfit'")
    rungs = s["rungs"]
    if not isinstance(rungs, list) or not rungs or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and 0.0 < t <= 1.0 for t in rungs):
        raise _bad(source, "system.rungs", "must be a non-empty list of strengths in (0, 1]")
    if not isinstance(s["metric"], str):
        raise _bad(source, "system.metric", "must be a metric name")
    try:
        get_metric(s["metric"], task)
    except (InputError, KeyError, ValueError) as exc:
        raise _bad(source, "system.metric", f"is not a metric of {task}: {exc}") from None
    alpha = s["alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 0.5:
        raise _bad(source, "system.alpha", "must be a number in (0, 0.5)")
    if s["correction"] not in ("holm", "bonferroni", None):
        raise _bad(source, "system.correction", "must be 'holm', 'bonferroni' or null")
    if s["test"] not in ("auto", "t", "bootstrap", "exact"):
        raise _bad(source, "system.test", "must be 'auto', 't', 'bootstrap' or 'exact'")
    if s["kind"] not in ("full", "minimal"):
        raise _bad(source, "system.kind", "must be 'full' or 'minimal'")
    if not isinstance(s["envy"], bool):
        raise _bad(source, "system.envy", "must be true or false")
    for key in ("n_boot", "min_group_size"):
        if not _is_int(s[key]) or s[key] < 1:
            raise _bad(source, f"system.{key}", "must be a positive integer")
    if s["random_state"] is not None and not _is_int(s["random_state"]):
        raise _bad(source, "system.random_state", "must be an integer or null")
    out = {k: (float(s[k]) if k == "alpha" else s[k]) for k in SETTINGS}
    out["rungs"] = tuple(float(t) for t in out["rungs"])
    return out


def _read_table(rows: Any, names: list[str], source: str) -> pd.DataFrame:
    from ..model_io import _scalar_value

    if not isinstance(rows, list) or not rows:
        raise _bad(source, "assignment", "must be a non-empty list of rows")
    records = []
    for i, r in enumerate(rows):
        where = f"assignment[{i}]"
        if not isinstance(r, dict):
            raise _bad(source, where, "must be an object")
        present = [c for c in TABLE_ORDER if c in r]
        expected = [c for cols in TABLE_COLUMNS.values() for c in [tuple(sorted(cols))] if sorted(present) == list(c)]
        if {"option", "report"} - set(r) or set(r) - {"option", "report", *TABLE_ORDER} or not expected:
            raise _bad(source, where, "must be an object with 'option', 'report' and the columns of one "
                                      f"procedure: {', '.join(f'{k}: {sorted(v)}' for k, v in TABLE_COLUMNS.items())}")
        if i == 0:
            columns = present
        elif present != columns:
            raise _bad(source, where, f"must have the same columns as assignment[0]: {columns}")
        if not isinstance(r["option"], str):
            raise _bad(source, f"{where}.option", "must be a string")
        rep = r["report"]
        if not isinstance(rep, list) or len(rep) != len(names) \
                or not all(v is None or _scalar_value(v) for v in rep):
            raise _bad(source, f"{where}.report", f"must list a value or null for each of {_short(names, 300)}")
        rec: dict[str, Any] = {"option": r["option"], **dict(zip(names, rep))}
        for c in present:
            if c in TABLE_TEXT and r[c] is not None and not isinstance(r[c], str):
                raise _bad(source, f"{where}.{c}", "must be a string or null")
            if c in TABLE_INTS and (not _is_int(r[c]) or r[c] < 0):
                raise _bad(source, f"{where}.{c}", "must be a non-negative integer")
            v = r[c]
            if c in TABLE_FLOATS and v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise _bad(source, f"{where}.{c}", "must be a number or null")
        for c in present:
            rec[c] = r[c] if c not in TABLE_FLOATS else (np.nan if r[c] is None else float(r[c]))
        records.append(rec)
    frame = pd.DataFrame(records)
    procedure = next(k for k, v in TABLE_COLUMNS.items() if sorted(v) == sorted(columns))
    return frame[["option", *names, *TABLE_COLUMNS[procedure]]]


def _read_decisions(rows: Any, source: str) -> pd.DataFrame:
    if not isinstance(rows, list):
        raise _bad(source, "decisions", "must be a list")
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or set(r) != {"step", "option", "action", "detail"} or not _is_int(r["step"]) \
                or not all(isinstance(r[c], str) for c in ("option", "action", "detail")):
            raise _bad(source, f"decisions[{i}]", "must be {'step': int, 'option': str, 'action': str, 'detail': str}")
    return pd.DataFrame(rows, columns=["step", "option", "action", "detail"])
