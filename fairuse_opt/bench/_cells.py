"""Run one cell: split, fit, audit on the test fold, and measure."""

from __future__ import annotations

import time
import traceback
import warnings
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .._groups import GroupIndex
from ..audit import audit
from ..audit._metrics import get_metric
from ._config import load_dataset
from ._grid import Cell, fold_split
from ._methods import FitData, Skip, build_model

__all__ = ["run_cell", "measure", "AUDIT_METRICS", "TRAIN_TOL"]

#: Metrics of the test audit, per task.
AUDIT_METRICS = {"classification": ("error", "auc", "log_loss", "ece"), "regression": ("mse",)}
#: A training-set violation: a group's mean training loss worse by more than this.
TRAIN_TOL = 1e-6
_CONDITIONS = ("rationality", "envy")
_TRACEBACK_LINES = 12


def run_cell(cell: Cell) -> dict:
    """Fit and audit one cell; never raises (a failure is recorded with its traceback).

    Returns
    -------
    dict
        JSON-ready record: ``cell_id``, ``spec``, ``status`` (``"ok"``, ``"skipped"``,
        ``"unavailable"`` or ``"failed"``), ``reason``, ``traceback``, sizes, timings,
        ``train_violations``, ``metrics`` (one entry per audit metric) and ``groups``
        (per-group rationality and envy rows of the audit).
    """
    record: dict[str, Any] = {
        "cell_id": cell.cell_id, "spec": cell.spec, "dataset": cell.dataset.name, "task": cell.task,
        "fold": cell.number, "model": cell.model, "technique": cell.technique, "method": cell.method,
        "status": "ok", "reason": "", "traceback": "", "metrics": [], "groups": [], "warnings": []}
    started = time.perf_counter()
    with threadpool_limits(limits=1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            record.update(_run(cell))
        except Skip as exc:
            record["status"], record["reason"] = exc.status, str(exc)
        except Exception as exc:  # a crashed cell is recorded; the grid goes on
            record["status"] = "failed"
            record["reason"] = f"{type(exc).__name__}: {exc}"[:500]
            record["traceback"] = "".join(traceback.format_exc().splitlines(True)[-_TRACEBACK_LINES:])
    record["warnings"] = sorted({f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught})[:20]
    record["cell_seconds"] = time.perf_counter() - started
    return record


def _run(cell: Cell) -> dict:
    X, y, groups, task = load_dataset(cell.dataset)
    settings = dict(cell.settings)
    tr, asg, te = fold_split(cell.dataset, groups, y, task, cell.fold, folds=settings["folds"],
                             assign_size=settings["assign_size"], seed=settings["seed"])
    part = lambda obj, idx: obj.iloc[idx].reset_index(drop=True)  # noqa: E731
    data = FitData(part(X, tr), part(y, tr), part(groups, tr), part(X, asg), part(y, asg),
                   part(groups, asg), task, cell.seed, settings)
    out: dict[str, Any] = {"n_train": len(tr), "n_assign": len(asg), "n_test": len(te)}
    t0 = time.perf_counter()
    fitted = build_model(cell.model, cell.technique, cell.method, data)
    out["fit_seconds"] = time.perf_counter() - t0
    out["n_fit"] = len(fitted.X_train)
    out.update(fitted.info)
    t0 = time.perf_counter()
    measured = measure(fitted.model, fitted.generic, part(X, te), part(y, te), part(groups, te),
                       task=task, n_boot=settings["n_boot"], alpha=settings["alpha"],
                       correction=settings["correction"], random_state=cell.audit_seed,
                       personalized=cell.technique != "generic")
    out["audit_seconds"] = time.perf_counter() - t0
    out.update(measured)
    if cell.technique != "generic":
        out["train_violations"] = training_violations(fitted.model, fitted.generic, fitted.X_train,
                                                      fitted.y_train, fitted.g_train, task)
    return out


def _scores(model: Any, X, task: str, **kw) -> np.ndarray:
    if task == "classification":
        return np.asarray(model.predict_proba(X, **kw))[:, 1]
    return np.asarray(model.predict(X, **kw), dtype=np.float64)


def _generic_scores(generic: Any, X, task: str) -> np.ndarray:
    if task == "classification":
        return np.asarray(generic.predict_proba(X))[:, 1]
    return np.asarray(generic.predict(X), dtype=np.float64)


def _target(y, task: str) -> np.ndarray:
    y = np.asarray(y)
    if task == "classification":
        levels = np.unique(y)
        return (y == levels[-1]).astype(np.float64)
    return y.astype(np.float64)


def measure(model: Any, generic: Any, X, y, groups, *, task: str, n_boot: int, alpha: float,
            correction: str, random_state: int, personalized: bool = True) -> dict:
    """Overall test metrics and the audit's counts on one test set.

    Returns
    -------
    dict
        ``metrics``: per metric, the model's and the generic model's overall value,
        the numbers of groups with a significant rationality / envy violation and
        benefit (corrected p-value <= alpha, read from the audit's columns), the number
        of groups judged, and the smallest and largest rationality gain.  ``groups``:
        the audit's per-group rationality and envy rows.
    """
    names = AUDIT_METRICS[task]
    target = _target(y, task)
    own = _scores(model, X, task, groups=groups) if personalized else _generic_scores(model, X, task)
    base = _generic_scores(generic, X, task)
    overall = {m: (get_metric(m, task)(target, own), get_metric(m, task)(target, base)) for m in names}
    out: dict[str, Any] = {"n_groups_test": int(GroupIndex.from_frame(groups.drop_duplicates()).n_groups)}
    if not personalized:
        out["metrics"] = [{"metric": m, "value": v, "generic_value": b} for m, (v, b) in overall.items()]
        out["groups"] = []
        return out
    report = audit(model, X, y, groups=groups, generic=generic, metrics=list(names), n_boot=n_boot,
                   alpha=alpha, correction=correction, random_state=random_state, task=task)
    table = report.table
    rows = table[table["condition"].isin(_CONDITIONS)].copy()
    metrics = []
    for m in names:
        entry: dict[str, Any] = {"metric": m, "value": overall[m][0], "generic_value": overall[m][1]}
        for cond in _CONDITIONS:
            part = rows[(rows["metric"] == m) & (rows["condition"] == cond)]
            judged = part[np.isfinite(part["p_violation_adj"].astype(float))]
            entry[f"{cond}_judged"] = int(len(judged))
            entry[f"{cond}_violations"] = int((judged["p_violation_adj"] <= alpha).sum())
            entry[f"{cond}_benefits"] = int((judged["p_benefit_adj"] <= alpha).sum())
            if cond == "rationality":
                gains = judged["gain"].astype(float)
                entry["min_gain"] = float(gains.min()) if len(gains) else None
                entry["max_gain"] = float(gains.max()) if len(gains) else None
        metrics.append(entry)
    out["metrics"] = metrics
    keep = ["group", "metric", "condition", "comparison", "n", "value", "baseline", "gain",
            "ci_low", "ci_high", "p_violation_adj", "p_benefit_adj", "verdict"]
    out["groups"] = [{k: _plain(v) for k, v in r.items()}
                     for r in rows[[c for c in keep if c in rows]].to_dict("records")]
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v if isinstance(v, (str, int, bool)) or v is None else str(v)


def _row_loss(target: np.ndarray, score: np.ndarray, task: str) -> np.ndarray:
    if task == "classification":
        p = np.clip(score, 1e-15, 1 - 1e-15)
        return -(target * np.log(p) + (1 - target) * np.log1p(-p))
    return (target - score) ** 2


def training_violations(model: Any, generic: Any, X, y, groups, task: str) -> dict:
    """Groups whose mean *training* loss (log loss or squared error) is worse under their
    own report than under the generic model (rationality) or than under the best other
    report (envy), by more than :data:`TRAIN_TOL`.  Point estimates, no test."""
    target = _target(y, task)
    frame = groups.astype(str).reset_index(drop=True)
    keys = [tuple(r) for r in frame.itertuples(index=False, name=None)]
    distinct = sorted(set(keys))
    codes = np.array([distinct.index(k) for k in keys])
    own = _row_loss(target, _scores(model, X, task, groups=groups), task)
    base = _row_loss(target, _generic_scores(generic, X, task), task)
    reports = [_row_loss(target, _scores(model, X, task, report=_report_key(groups, k)), task)
               for k in distinct]
    rat = envy = 0
    for g in range(len(distinct)):
        rows = codes == g
        mine = own[rows].mean()
        rat += int(mine > base[rows].mean() + TRAIN_TOL)
        others = [r[rows].mean() for j, r in enumerate(reports) if j != g]
        envy += int(bool(others) and mine > min(others) + TRAIN_TOL)
    return {"rationality": rat, "envy": envy}


def _report_key(groups: pd.DataFrame, key: tuple) -> tuple:
    """A report in the groups' original value types (the frame may hold non-strings)."""
    frame = groups.reset_index(drop=True)
    as_str = frame.astype(str)
    match = np.flatnonzero((as_str == list(key)).all(axis=1).to_numpy())
    return tuple(frame.iloc[int(match[0])])
