"""The assignment rule: which model each reporting option is served.

Everything here works on arrays prepared by :class:`~fairuse_opt.FairUseSystem`: the
assignment rows' targets, each row's report, and the score of every *function* on
every row.  A function is a candidate model used with one fixed report (its values of
the attributes the candidate uses), written ``(candidate name, report)``; the generic
model is :data:`GENERIC`.

The rule (``docs/system.md`` explains why each step is there):

1. *Split.*  The assignment rows are halved within every (report, label) cell: a
   selection half and a test half.
2. *Select* (selection half only), options in order of how many attributes they
   report: an option's plan is the function with the best metric among the generic
   model, its parents' plans and the candidates that use only what the option reports.
3. *Test* (test half only): for every option planned a personalized function, one
   one-sided paired bootstrap test (or McNemar) of H0 "the plan is no better than the
   generic model" and of H0 "no better than each parent's plan"; the option's p-value
   is the largest of them (intersection-union test).  Holm's correction across all
   options tested.
4. *Serve* the plan where the corrected p-value is at most ``alpha`` and the plan also
   beats the generic model on the whole assignment sample; the generic model otherwise.
5. *Envy* (whole assignment sample): while an option ``g`` does better with the function
   served to another option ``r`` (``g`` scored as if it had reported ``r``) than with
   its own, ``r`` is served the generic model instead.  Every step is recorded.

Every served personalized function has passed its test, so the family-wise guarantee
against the generic model holds whatever steps 4 and 5 do: they only take
personalization away.  ``kind="minimal"`` replaces steps 1-3 by one candidate tested on
every option that can use it (on the whole sample when there is nothing to choose).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..audit._metrics import Metric
from ..audit._stats import (
    adjust_pvalues,
    bootstrap_summary,
    mcnemar_test,
    resample_counts,
    stratified_halves,
)
from ._options import ancestors_by_distance, n_reported, option_label, parents

__all__ = ["GENERIC", "AssignmentProblem", "AssignmentResult", "assign"]

logger = logging.getLogger("fairuse_opt.system")

#: The generic model as a function.
GENERIC: tuple = ("generic", ())
#: Envy is a strict improvement by more than this (metric units).
ENVY_TOL = 1e-12


def function_label(fid: tuple, names_of: dict[str, list[str]]) -> str:
    """``generic`` or ``name[Age=60+]``."""
    if fid == GENERIC:
        return "generic"
    name, key = fid[0], fid[1]
    base, _, strength = name.partition("@")
    attrs = names_of[name] if name in names_of else names_of[base]
    text = base if not attrs else f"{base}[{', '.join(f'{a}={v}' for a, v in zip(attrs, key))}]"
    return f"{text}@{strength}" if strength else text


@dataclass
class AssignmentProblem:
    """The prepared inputs of :func:`assign`.

    Attributes
    ----------
    names : list of str
        Group attributes.
    y : ndarray (n,)
        Targets (0/1 for classification).
    row_keys : list of tuple
        Distinct reports of the assignment rows; ``row_codes[i]`` indexes them.
    row_codes : ndarray of int (n,)
    options : list of tuple
        Options with at least one member, root excluded, sorted by
        :func:`~fairuse_opt.system._options.option_order`.
    members : dict
        Boolean member mask of every option.
    scores : ndarray (n, F)
        Score (probability of class 1, or prediction) of every function on every row.
    columns : dict
        Column of ``scores`` of every function.
    eligible : dict
        For every option, its candidate functions (candidates using only what it
        reports, with its values), in candidate order.
    names_of : dict
        Attributes each candidate uses.
    classification : bool
    reference : ndarray (n,) or None
        Score of the reference model (the generic model trained alongside the
        candidates) when the generic model was trained on other rows; shrunk
        functions then add the candidate's departure from it to the generic model
        (:func:`~fairuse_opt.system._blend.blend_scores`).
    """

    names: list[str]
    y: np.ndarray
    row_keys: list[tuple]
    row_codes: np.ndarray
    options: list[tuple]
    members: dict[tuple, np.ndarray]
    scores: np.ndarray
    columns: dict[tuple, int]
    eligible: dict[tuple, list[tuple]]
    names_of: dict[str, list[str]]
    classification: bool
    reference: np.ndarray | None = None
    #: a regressor's loss (None: the squared error): shrunk functions blend on its link
    loss: Any = None


@dataclass
class AssignmentResult:
    """What :func:`assign` decided.

    Attributes
    ----------
    served : dict
        Function served to every option (root included).
    planned : dict
        Function planned for every option on the selection half.
    table : DataFrame
        One row per option (see :attr:`FairUseSystem.assignment_`).
    decisions : DataFrame
        Every decision in order: ``step``, ``option``, ``action``, ``detail``.
    """

    served: dict[tuple, tuple]
    planned: dict[tuple, tuple]
    table: pd.DataFrame
    decisions: pd.DataFrame
    split: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _value(metric: Metric, y: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Metric of every column of ``S`` on all its rows, oriented as a loss."""
    state = metric.prepare(y, S)
    v = metric.evaluate(state, np.ones((1, y.size), dtype=np.int64))[0]
    return -v if metric.greater_is_better else v


def _losses(problem: AssignmentProblem, metric: Metric, rows: np.ndarray,
            fids: list[tuple]) -> np.ndarray:
    if rows.size == 0:
        return np.full(len(fids), np.nan)
    cols = [problem.columns[f] for f in fids]
    return _value(metric, problem.y[rows], problem.scores[np.ix_(rows, cols)])


class _Paired:
    """Paired comparisons of several functions on the same rows and bootstrap resamples."""

    def __init__(self, problem: AssignmentProblem, metric: Metric, rows: np.ndarray,
                 fids: list[tuple], rng: np.random.Generator, *, n_boot: int, test: str,
                 alpha: float):
        y = problem.y[rows]
        # rows cell after cell: (report, label) cells, as in the audit
        label = (y > 0.5) if problem.classification else np.zeros(y.size, dtype=bool)
        order = np.lexsort((label, problem.row_codes[rows]))
        rows, y, label = rows[order], y[order], label[order]
        cell_id = problem.row_codes[rows] * 2 + label
        cells = np.diff(np.flatnonzero(np.r_[True, cell_id[1:] != cell_id[:-1], True]))
        S = problem.scores[np.ix_(rows, [problem.columns[f] for f in fids])]
        state = metric.prepare(y, S)
        sign = -1.0 if metric.greater_is_better else 1.0
        self.point = sign * metric.evaluate(state, np.ones((1, y.size), dtype=np.int64))[0]
        self.boot = np.empty((n_boot, len(fids)))
        for start, counts in resample_counts(rng, cells, n_boot):
            vb = metric.evaluate(state, counts)
            self.boot[start:start + len(vb)] = sign * vb
        self.index = {f: k for k, f in enumerate(fids)}
        self.correct = (S > 0.5) == (y == 1)[:, None] if test == "exact" else None
        self.alpha = alpha

    def gain(self, f: tuple, base: tuple) -> dict[str, float]:
        """Gain of ``f`` over ``base`` (positive: ``f`` is better): point, ``alpha`` and
        ``1 - alpha`` bootstrap percentiles, one-sided p-value of a benefit."""
        i, j = self.index[f], self.index[base]
        summ = bootstrap_summary((self.boot[:, j] - self.boot[:, i])[:, None], 1.0 - 2.0 * self.alpha)
        p = float(summ["p_benefit"][0])
        if self.correct is not None:
            p = mcnemar_test(self.correct[:, i], self.correct[:, j])[1]
        return {"gain": float(self.point[j] - self.point[i]), "low": float(summ["ci_low"][0]),
                "high": float(summ["ci_high"][0]), "p": p}


def _split(problem: AssignmentProblem, rng: np.random.Generator) -> np.ndarray:
    label = problem.y > 0.5 if problem.classification else np.zeros(problem.y.size, dtype=bool)
    return stratified_halves(rng, problem.row_codes * 2 + label)


def assign(problem: AssignmentProblem, *, metric: Metric, alpha: float, correction: str | None,
           test: str, n_boot: int, envy: bool, kind: str, min_group_size: int,
           split_rng: np.random.Generator, generators: dict[tuple, np.random.Generator],
           minimal: str | None = None) -> AssignmentResult:
    """Run the assignment rule (module docstring).

    Parameters
    ----------
    problem : AssignmentProblem
    metric : Metric
        The assignment metric.
    alpha : float
        Level of the one-sided tests.
    correction : {"holm", "bonferroni", None}
        Correction across all options tested.
    test : {"bootstrap", "exact"}
        Paired stratified bootstrap, or exact McNemar tests (error rate).
    n_boot : int
        Bootstrap resamples.
    envy : bool
        Resolve envy among the served functions (step 5).
    kind : {"full", "minimal"}
    min_group_size : int
        Options with fewer test rows are not tested (served the generic model).
    split_rng : numpy.random.Generator
        Randomness of the selection/test split.
    generators : dict
        One generator per option (bootstrap).
    minimal : str, optional
        For ``kind="minimal"``: the candidate to use; ``None`` chooses the candidate
        with the best metric on the selection half.

    Returns
    -------
    AssignmentResult
    """
    names, names_of = problem.names, problem.names_of
    root = tuple(None for _ in names)
    n = problem.y.size
    decisions: list[dict] = []

    def note(option, action, detail=""):
        decisions.append({"step": len(decisions) + 1, "option": option_label(names, option),
                          "action": action, "detail": detail})

    def label(fid):
        return function_label(fid, names_of)

    candidates = list(dict.fromkeys(f[0] for fs in problem.eligible.values() for f in fs))
    # ---------------------------------------------------------------- 1. split
    one_choice = kind == "minimal" and (minimal is not None or len(candidates) <= 1)
    if one_choice:
        select = np.ones(n, dtype=bool)
        testing = np.ones(n, dtype=bool)
    else:
        select = _split(problem, split_rng)
        testing = ~select
    # ---------------------------------------------------------------- 2. select
    planned: dict[tuple, tuple] = {root: GENERIC}
    info: dict[tuple, dict[str, Any]] = {}
    if kind == "minimal" and minimal is None and candidates:
        minimal = _choose_minimal(problem, metric, candidates, select)
    for o in problem.options:
        m = problem.members[o]
        rec = info.setdefault(o, {"n": int(m.sum()), "n_select": int((m & select).sum()) if not one_choice else 0,
                                  "n_test": int((m & testing).sum())})
        if kind == "minimal":
            own = [f for f in problem.eligible[o] if f[0] == minimal]
            choices = [GENERIC] + own
            if one_choice:
                planned[o] = own[0] if own else GENERIC
                rec["why"] = ("" if own else f"candidate {minimal!r} cannot serve this option")
                continue
        else:
            inherited = [planned[p] for p in parents(o) if p in planned]
            choices = list(dict.fromkeys([GENERIC] + inherited + problem.eligible[o]))
        rows = np.flatnonzero(m & select)
        if rows.size == 0:
            planned[o] = GENERIC
            rec["why"] = "no rows in the selection half"
            continue
        losses = _losses(problem, metric, rows, choices)
        if np.isnan(losses).all():
            planned[o] = GENERIC
            rec["why"] = "the metric is undefined on the selection half (one class)"
            continue
        best = int(np.nanargmin(np.where(np.isnan(losses), np.inf, losses)))  # first best: generic wins ties
        planned[o] = choices[best]
        rec["why"] = "" if best else "no candidate beats the generic model on the selection half"
    # ---------------------------------------------------------------- 3. test
    # The family: for every option, its plan and the distinct plans of its ancestors,
    # each against the generic model on the option's test rows.  All are fixed by the
    # selection half, so Holm's correction over them controls the family-wise error.
    family: list[tuple[tuple, tuple]] = []
    paired: dict[tuple, _Paired] = {}
    for o in problem.options:
        rec = info[o]
        rec.update(candidate=label(planned[o]), gain_generic=np.nan, gain_generic_low=np.nan,
                   gain_generic_high=np.nan, gain_parent=np.nan, gain_parent_low=np.nan,
                   gain_parent_high=np.nan, parent_compared="", p_value=np.nan, p_parent=np.nan)
        hyps = [planned[o]] if planned[o] != GENERIC else []
        if kind == "full":
            hyps += [planned[a] for level in ancestors_by_distance(o) for a in level if a in planned]
        if envy:  # plans of claimable options that this option prefers on the selection half
            hyps += _envied_on_selection(problem, metric, o, planned, select, one_choice)
        hyps = [f for f in dict.fromkeys(hyps) if f != GENERIC]
        if not hyps:
            continue
        rows = np.flatnonzero(problem.members[o] & testing)
        if rows.size < min_group_size:
            rec["why"] = f"too small to test ({rows.size} test rows < {min_group_size})"
            continue
        pair = _Paired(problem, metric, rows, [GENERIC] + hyps, generators[o], n_boot=n_boot,
                       test=test, alpha=alpha)
        if np.isnan(pair.point).any():
            rec["why"] = "the metric is undefined on the test half (one class)"
            continue
        paired[o] = pair
        family += [(o, f) for f in hyps]
    p_raw = [paired[o].gain(f, GENERIC)["p"] for o, f in family]
    p_adj = dict(zip(family, adjust_pvalues(p_raw, correction)))
    certified = {of for of, p in p_adj.items() if p <= alpha}
    for o in problem.options:
        if (o, planned[o]) in p_adj:
            g = paired[o].gain(planned[o], GENERIC)
            info[o].update(gain_generic=g["gain"], gain_generic_low=g["low"], gain_generic_high=g["high"],
                           p_value=g["p"], p_adjusted=float(p_adj[(o, planned[o])]))
    logger.info("%d test(s) in the family (%s correction), %d significant", len(family), correction,
                len(certified))

    def beats_generic(o, f):
        whole = np.flatnonzero(problem.members[o])
        loss_f, loss_gen = _losses(problem, metric, whole, [f, GENERIC])
        return bool(loss_f < loss_gen)

    # ---------------------------------------------------------------- 4. serve
    served: dict[tuple, tuple] = {root: GENERIC}
    for o in problem.options:  # parents come first
        rec = info[o]
        served[o] = GENERIC
        plan = planned[o]
        personal_parents = list(dict.fromkeys(
            served[p] for p in parents(o) if served.get(p, GENERIC) not in (GENERIC, plan)))
        if plan != GENERIC and o in paired and personal_parents:
            worst = max((paired[o].gain(plan, f) for f in personal_parents), key=lambda d: d["p"])
            which = max(personal_parents, key=lambda f: paired[o].gain(plan, f)["p"])
            rec.update(gain_parent=worst["gain"], gain_parent_low=worst["low"], gain_parent_high=worst["high"],
                       parent_compared=label(which), p_parent=worst["p"])
        why = rec.get("why", "")
        if plan != GENERIC and o in paired:
            if (o, plan) not in certified:
                why = (f"no significant gain over the generic model on the test half (adjusted "
                       f"p = {rec['p_adjusted']:.3g} > alpha = {alpha:g})")
            elif personal_parents and rec["p_parent"] > alpha:
                why = (f"not significantly better than the parent's model {rec['parent_compared']} "
                       f"(p = {rec['p_parent']:.3g} > alpha = {alpha:g})")
            elif not beats_generic(o, plan):
                why = "significant on the test half but not better on the whole assignment sample"
            else:
                served[o] = plan
                rec["reason"] = (f"significant gain (adjusted p = {rec['p_adjusted']:.3g} <= alpha = {alpha:g}"
                                 + (f"; over the parent's model p = {rec['p_parent']:.3g}"
                                    if personal_parents else "") + ")")
                note(o, "serve", label(plan))
                continue
        # otherwise a parent's model, if it is certified for this option too
        inherit = [f for f in personal_parents if (o, f) in certified and beats_generic(o, f)]
        if inherit:
            whole = np.flatnonzero(problem.members[o])
            best = inherit[int(np.argmin(_losses(problem, metric, whole, inherit)))]
            served[o] = best
            rec["reason"] = (f"{why + '; ' if why else ''}served the parent's model {label(best)}, "
                             f"significant for this option too (adjusted p = {p_adj[(o, best)]:.3g})")
            note(o, "serve the parent's model", label(best))
            continue
        rec["reason"] = why or "not tested"
    # ---------------------------------------------------------------- 5. envy
    if envy:
        _resolve_envy(problem, metric, served, info, note, label, certified, p_adj)
    # ---------------------------------------------------------------- table
    rows_out = []
    rows_out.append({"option": option_label(names, root), **{a: None for a in names}, "reported": "",
                     "n": n, "n_select": int(select.sum()) if not one_choice else 0,
                     "n_test": int(testing.sum()), "candidate": "generic", "served": "generic",
                     "reason": "nothing reported: the generic model"})
    for o in problem.options:
        rec = info[o]
        rows_out.append({"option": option_label(names, o), **dict(zip(names, o)),
                         "reported": ", ".join(a for a, v in zip(names, o) if v is not None),
                         "n": rec["n"], "n_select": rec["n_select"], "n_test": rec["n_test"],
                         "candidate": rec["candidate"], "served": label(served[o]),
                         "gain_generic": rec["gain_generic"], "gain_generic_low": rec["gain_generic_low"],
                         "gain_generic_high": rec["gain_generic_high"],
                         "parent_compared": rec["parent_compared"], "gain_parent": rec["gain_parent"],
                         "gain_parent_low": rec["gain_parent_low"], "gain_parent_high": rec["gain_parent_high"],
                         "p_value": rec["p_value"], "p_adjusted": rec.get("p_adjusted", np.nan),
                         "p_parent": rec["p_parent"],
                         "reason": rec["reason"]})
    table = pd.DataFrame(rows_out)
    return AssignmentResult(served=served, planned=planned, table=table,
                            decisions=pd.DataFrame(decisions, columns=["step", "option", "action", "detail"]),
                            split=select if not one_choice else np.zeros(0, dtype=bool))


def _choose_minimal(problem: AssignmentProblem, metric: Metric, candidates: list[str],
                    select: np.ndarray) -> str:
    """The candidate with the best metric on the selection rows that every candidate can
    score with their own report (ties: the first)."""
    full = [o for o in problem.options if n_reported(o) == len(problem.names)]
    usable = np.zeros(problem.y.size, dtype=bool)
    per_cand = {c: np.zeros(problem.y.size) for c in candidates}
    for o in full:
        fids = {f[0]: f for f in problem.eligible[o]}
        if all(c in fids for c in candidates):
            m = problem.members[o] & select
            usable |= m
            for c in candidates:
                per_cand[c][m] = problem.scores[m, problem.columns[fids[c]]]
    rows = np.flatnonzero(usable)
    if rows.size == 0:
        return candidates[0]
    S = np.column_stack([per_cand[c][rows] for c in candidates])
    losses = _value(metric, problem.y[rows], S)
    return candidates[int(np.nanargmin(np.where(np.isnan(losses), np.inf, losses)))]


def _envied_on_selection(problem, metric, o, planned, select, one_choice) -> list[tuple]:
    """Plans of options that ``o`` can claim and that beat ``o``'s plan on the selection
    half: the models ``o`` may envy, tested for ``o`` so that envy can be resolved by
    reassignment (chosen on the selection half, so the family stays fixed)."""
    if one_choice:
        return []
    rows = np.flatnonzero(problem.members[o] & select)
    claims = [planned[r] for r in problem.options if r != o and _claimable(o, r)]
    claims = [f for f in dict.fromkeys(claims) if f not in (GENERIC, planned[o])]
    if rows.size == 0 or not claims:
        return []
    losses = _losses(problem, metric, rows, [planned[o]] + claims)
    return [f for f, v in zip(claims, losses[1:]) if v < losses[0] - ENVY_TOL]


def _claimable(g: tuple, r: tuple) -> bool:
    """Whether option ``g`` can claim option ``r``: ``r`` reports only attributes that ``g``
    reported (with any values).  Claiming ``r`` means declining some attributes and/or
    misreporting values; an option that reports an attribute ``g`` did not report is not
    a claim about ``g``'s members (those who have that value simply report it)."""
    return all(v is None or g[j] is not None for j, v in enumerate(r))


def _resolve_envy(problem, metric, served, info, note, label, certified, p_adj) -> None:
    """Step 5.  While some option envies another: if an envious option can adopt a model
    it envies that is certified for it, the largest such gain is taken (reassignment);
    otherwise the envied model is taken away from the options serving it (the pair is
    banned for good) and each gets its best other certified model that the envious option
    does not envy, or the generic model.  Reassignments stop after a bounded number of
    rounds (they could in principle cycle); every removal bans one (option, model) pair
    for good, so the loop ends, with no option envying another."""
    options = problem.options
    names = problem.names
    rows_of = {g: np.flatnonzero(problem.members[g]) for g in options}
    budget = 4 * len(options) + 10
    banned: set[tuple] = set()
    while True:
        fids = list(dict.fromkeys(served[o] for o in options))
        if fids == [GENERIC]:
            return
        adopt, remove = None, None
        for g in options:
            own = served[g]
            claims = [served[r] for r in options if r != g and _claimable(g, r)]
            cand = list(dict.fromkeys([own] + [f for f in claims if f != own]))
            if len(cand) < 2:
                continue
            losses = _losses(problem, metric, rows_of[g], cand)
            if np.isnan(losses[0]):
                continue
            for k in range(1, len(cand)):
                gap = losses[0] - losses[k]
                if gap <= ENVY_TOL:
                    continue
                if budget > 0 and (g, cand[k]) in certified and (g, cand[k]) not in banned:
                    if adopt is None or gap > adopt[0]:
                        adopt = (gap, g, cand[k])
                elif remove is None or gap > remove[0]:
                    remove = (gap, g, cand[k])
        if adopt is not None:
            budget -= 1
            gap, g, fid = adopt
            old = served[g]
            served[g] = fid
            info[g]["reason"] = (f"envy: reassigned to {label(fid)} (certified for this option, adjusted "
                                 f"p = {p_adj[(g, fid)]:.3g}), better than {label(old)} by {gap:.4g}")
            note(g, "envy: reassigned", f"{label(old)} -> {label(fid)} (gap {gap:.4g})")
            continue
        if remove is None:
            return
        gap, g, fid = remove
        envy_loss = _losses(problem, metric, rows_of[g], [served[g]])[0]
        for r in [r for r in options if served[r] == fid and _claimable(g, r)]:
            banned.add((r, fid))
            # the best other model certified for r that g does not envy, else the generic one
            others = [f for (o, f) in certified if o == r and (r, f) not in banned and f != fid]
            others = [f for f in others
                      if not _losses(problem, metric, rows_of[g], [f])[0] < envy_loss - ENVY_TOL
                      and _losses(problem, metric, rows_of[r], [f, GENERIC])[0]
                      < _losses(problem, metric, rows_of[r], [GENERIC])[0]]
            new = GENERIC
            if others:
                new = others[int(np.argmin(_losses(problem, metric, rows_of[r], others)))]
            served[r] = new
            info[r]["reason"] = (f"envy: option {option_label(names, g)} does better with this option's "
                                 f"model ({label(fid)}) than with its own, by {gap:.4g}, and that model "
                                 f"is not certified for it; served {label(new)} instead")
            note(r, f"envy: {label(new)} instead", f"envied by {option_label(names, g)} (gap {gap:.4g})")
        logger.info("envy: %s envies %s; removed", option_label(names, g), label(fid))
