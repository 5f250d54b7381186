"""The ladder assignment: which model each reporting option is served (the default rule).

Everything that decides *what* is tested is fixed before the assignment sample is looked
at, so that the whole assignment sample tests:

1. *Plan* (given): for every option, the candidate chosen on the training part by
   cross-validation (:func:`fairuse_opt.system._select.select_plans`), or none when no
   candidate beat the generic model there.  Without given plans (a
   :class:`~fairuse_opt.FairUseSystem` fitted on its own), the assignment rows are halved
   by report (not by label): plans are chosen on one half, tested on the other.
2. *Rungs*: the plan shrunk toward the generic model at strengths ``t`` in ``rungs``
   (log-odds scale, :mod:`~fairuse_opt.system._blend`), weakest first.  A weak rung has
   a larger standardised effect than the full candidate when the candidate overfits, and
   keeps part of its gain.
3. *Tests*: for every rung of every option with at least ``min_group_size`` rows, one
   one-sided paired test of H0 "the rung is no better than the generic model in the
   option's population": the paired t-test on per-row differences for a metric that is
   a mean of row losses, exact McNemar for the error rate on request, the unstratified
   paired bootstrap for AUC and ECE.  None of them conditions on the label mix.
4. *Family*: a graphical procedure (:mod:`~fairuse_opt.audit._graphical`): the level
   starts shared equally by the first rungs of the fully reported options; a rejected
   rung passes its level to the option's next rung, an option's last rung to the other
   options; partial reports sit at the tail (they receive level once the fully reported
   options are done), so they cost the fully reported groups no power.  Each option is
   served its strongest rejected rung, else the generic model.
5. *Envy*: for every pair (``g``, ``r``) where ``g`` can claim ``r``'s report and ``r`` is
   served a different personalized model, a one-sided paired test of "``g`` does better
   with ``r``'s model than with its own"; Holm's correction over the pairs; a
   significant envy takes ``r``'s personalization away (generic model).  Repeated until
   no envy is significant.  Point estimates never remove anything.

Guarantee: every served personalized function passed its test inside a graphical
procedure that controls the family-wise error rate at ``alpha``; steps 1, 2 and 5 only
decide what is tested or take personalization away.  So the probability that *any*
option is served a model worse than the generic model in its population is at most
``alpha`` (asymptotically for the t-test, approximately for the bootstrap, exactly for
McNemar under its assumptions), if the assignment sample is independent of the data
the models and the plans came from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..audit._graphical import graphical_adjusted_pvalues, ladder_graph
from ..audit._metrics import Metric, _AdditiveMetric
from ..audit._paired import bootstrap_benefit, min_detectable_gain, paired_t
from ..audit._stats import adjust_pvalues, mcnemar_test, stratified_halves
from ._assign import GENERIC, AssignmentProblem, AssignmentResult, function_label
from ._blend import blend_scores, shrunk_name
from ._options import n_reported, option_label

__all__ = ["assign_ladder", "LadderPlan", "DEFAULT_RUNGS", "POWER", "MSG_NOTHING_CERTIFIED",
           "nothing_certified_message"]

logger = logging.getLogger("fairuse_opt.system")

#: Default shrinkage strengths, weakest first.
DEFAULT_RUNGS = (0.25, 0.5, 1.0)
#: Power at which the minimum detectable gain (testability) is stated.
POWER = 0.8
#: Warned when the ladder certifies nothing.
MSG_NOTHING_CERTIFIED = (
    "the system serves every option the generic model: no personalized model showed a significant "
    "{metric} gain at family-wise level alpha = {alpha:g}. {n_tested} option(s) were tested; the smallest "
    "gain a test could certify with 80% power is {mdg_min:.3g} to {mdg_max:.3g} ({metric}, median "
    "{mdg_med:.3g}, over {n_mdg} option(s)), against cross-validated gains of {cv_min:.3g} to {cv_max:.3g} on "
    "the training part; {n_untested} option(s) had no plan or were too small to test. More assignment rows, fewer options "
    "or procedure='crossfit' give the tests more power (see assignment_['min_detectable_gain'])."
)


@dataclass
class LadderPlan:
    """The plan of one option, fixed before the assignment sample is used.

    Attributes
    ----------
    function : tuple
        The function (candidate, report) to test, or :data:`GENERIC` (nothing to test).
    cv_gain : float
        Its cross-validated gain over the generic model on the training part (NaN when
        unknown).
    why : str
        Why the option has no plan (when ``function`` is generic).
    """

    function: tuple
    cv_gain: float = np.nan
    why: str = ""
    best: tuple | None = None  # without a plan: the best candidate function (for testability only)


def _row_losses(metric: Metric, y: np.ndarray, S: np.ndarray) -> np.ndarray | None:
    """Per-row losses (n, K) for a mean-of-row-losses metric, oriented as losses."""
    if not isinstance(metric, _AdditiveMetric):
        return None
    L = metric.prepare(y, S)
    return -L if metric.greater_is_better else L


def _compare(metric: Metric, test: str, y: np.ndarray, base: np.ndarray, cand: np.ndarray,
             rng: np.random.Generator, n_boot: int) -> dict[str, float]:
    """One-sided paired test of H0 "``cand`` is no better than ``base``" on these rows."""
    S = np.column_stack([base, cand])
    L = _row_losses(metric, y, S)
    if L is not None:
        res = paired_t(L[:, 0] - L[:, 1])
        if test == "exact":
            correct = (S > 0.5) == (y == 1)[:, None]
            res["p"] = mcnemar_test(correct[:, 1], correct[:, 0])[1]
        return res
    return bootstrap_benefit(metric, y, S, rng, n_boot)


def _halves_plans(problem: AssignmentProblem, metric: Metric, rng: np.random.Generator
                  ) -> tuple[dict[tuple, LadderPlan], np.ndarray]:
    """Plans chosen on one half of the assignment rows (halved by report), for a system
    fitted without plans; returns the plans and the mask of the selection half."""
    select = stratified_halves(rng, problem.row_codes)
    plans: dict[tuple, LadderPlan] = {}
    for o in problem.options:
        rows = np.flatnonzero(problem.members[o] & select)
        fids = problem.eligible[o]
        if not fids:
            plans[o] = LadderPlan(GENERIC, why="no candidate uses only what this option reports")
            continue
        if rows.size == 0:
            plans[o] = LadderPlan(GENERIC, why="no rows in the selection half")
            continue
        S = problem.scores[np.ix_(rows, [problem.columns[f] for f in [GENERIC] + fids])]
        state = metric.prepare(problem.y[rows], S)
        v = metric.evaluate(state, np.ones((1, rows.size), dtype=np.int64))[0]
        v = -v if metric.greater_is_better else v
        if np.isnan(v).all():
            plans[o] = LadderPlan(GENERIC, why="the metric is undefined on the selection half")
            continue
        k = int(np.nanargmin(np.where(np.isnan(v), np.inf, v)))
        plans[o] = LadderPlan(GENERIC if k == 0 else fids[k - 1], cv_gain=float(v[0] - v[k]),
                              why="" if k else "no candidate beats the generic model on the selection half")
    return plans, select


def assign_ladder(problem: AssignmentProblem, *, metric: Metric, alpha: float, rungs: tuple[float, ...],
                  plans: dict[tuple, LadderPlan] | None, test: str, n_boot: int, envy: bool,
                  min_group_size: int, generators: dict[tuple, np.random.Generator],
                  split_rng: np.random.Generator) -> AssignmentResult:
    """Run the ladder assignment (module docstring).

    Returns
    -------
    AssignmentResult
        ``served`` maps options to functions; a shrunk function is written
        ``(shrunk_name(candidate, t), report)`` (the system registers the shrunk models).
        ``planned`` maps options to their plan.
    """
    names, names_of = problem.names, problem.names_of
    root = tuple(None for _ in names)
    n = problem.y.size
    decisions: list[dict] = []

    def note(option, action, detail=""):
        decisions.append({"step": len(decisions) + 1, "option": option_label(names, option),
                          "action": action, "detail": detail})

    def label(fid):
        if fid == GENERIC:
            return "generic"
        name, key, *t = fid
        base = function_label((name, key), names_of)
        return base if not t or (t[0] >= 1 and problem.reference is None) else f"{base}@{t[0]:g}"

    testing = np.ones(n, dtype=bool)
    select = np.zeros(n, dtype=bool)
    if plans is None and all(len(problem.eligible[o]) <= 1 for o in problem.options):
        # nothing to choose: every option's only candidate is tested on all its rows
        plans = {o: (LadderPlan(problem.eligible[o][0]) if problem.eligible[o] else
                     LadderPlan(GENERIC, why="no candidate uses only what this option reports"))
                 for o in problem.options}
    elif plans is None:
        plans, select = _halves_plans(problem, metric, split_rng)
        testing = ~select
    rungs = tuple(sorted(float(t) for t in rungs))
    full = len(names)
    info: dict[tuple, dict[str, Any]] = {}
    gen_col = problem.columns[GENERIC]
    # ------------------------------------------------------------ tests of every rung
    tested: list[tuple] = []
    pvals: dict[tuple, list[float]] = {}
    results: dict[tuple, list[dict]] = {}
    for o in problem.options:
        plan = plans.get(o, LadderPlan(GENERIC, why="no plan for this option (not seen when training)"))
        rows = np.flatnonzero(problem.members[o] & testing)
        rec = info.setdefault(o, {"n": int(problem.members[o].sum()), "n_select": int((problem.members[o] & select).sum()),
                                  "n_test": int(rows.size), "candidate": label(plan.function),
                                  "cv_gain": plan.cv_gain, "why": plan.why, "gain": np.nan, "gain_low": np.nan,
                                  "p_value": np.nan, "p_adjusted": np.nan, "mdg": np.nan, "strength": 0.0})
        if plan.function == GENERIC:
            if plan.best is not None and plan.best in problem.columns and rows.size >= 2:
                d = _compare(metric, test, problem.y[rows], problem.scores[rows, gen_col],
                             _scores_of(problem, (*plan.best, 1.0), rows), generators[o], n_boot)
                k_tier = 0 if n_reported(o) == full else 1
                rec["pending_sd"] = (d["sd"], int(d["n"]), k_tier)
            continue
        y = problem.y[rows]
        base = problem.scores[rows, gen_col]
        cand = problem.scores[rows, problem.columns[plan.function]]
        ref = None if problem.reference is None else problem.reference[rows]
        full_res = _compare(metric, test, y, base, blend_scores(base, cand, 1.0, problem.classification, ref, problem.loss),
                            generators[o], n_boot)
        rec["gain_full"] = full_res["gain"]
        if rows.size < min_group_size:
            rec["why"] = f"too small to test ({rows.size} rows < min_group_size = {min_group_size})"
            continue
        res = [full_res if t >= 1 else
               _compare(metric, test, y, base, blend_scores(base, cand, t, problem.classification, ref, problem.loss),
                        generators[o], n_boot) for t in rungs]
        if any(np.isnan(r["p"]) for r in res):
            rec["why"] = "the metric is undefined on this option's rows (one class)"
            continue
        tested.append(o)
        results[o] = res
        pvals[o] = [r["p"] for r in res]
    # ------------------------------------------------------------ the graphical procedure
    tiers = [0 if n_reported(o) == full else 1 for o in tested]
    w, G, nodes = ladder_graph([len(rungs)] * len(tested), tiers)
    p_flat = [pvals[tested[i]][k] for i, k in nodes]
    p_adj = graphical_adjusted_pvalues(p_flat, w, G) if nodes else np.zeros(0)
    adj = {o: [np.nan] * len(rungs) for o in tested}
    for (i, k), q in zip(nodes, p_adj):
        adj[tested[i]][k] = float(q)
    n_tier = {t: tiers.count(t) for t in set(tiers)}
    first_tier = min(tiers) if tiers else 0
    served: dict[tuple, tuple] = {root: GENERIC}
    strength: dict[tuple, float] = {root: 0.0}
    for o in problem.options:
        rec = info[o]
        served[o], strength[o] = GENERIC, 0.0
        plan = plans.get(o, LadderPlan(GENERIC))
        if o in results:
            res, q = results[o], adj[o]
            # testability: at the level the option starts with (its tier's share of alpha)
            k_tier = 0 if n_reported(o) == full else 1
            level = alpha / n_tier[k_tier]
            rec["mdg"] = min_detectable_gain(res[-1]["sd"], int(res[-1]["n"]), level, POWER)
            passed = [k for k in range(len(rungs)) if q[k] <= alpha]
            top = max(passed) if passed else 0
            rec.update(gain=res[top]["gain"], p_value=res[top]["p"], p_adjusted=q[top],
                       gain_low=res[top]["gain"] - _z(alpha) * res[top]["se"])
            if k_tier != first_tier and not passed:
                rec["why"] = ("a partial report, tested once every fully reported group is certified: "
                              f"adjusted p = {q[0]:.3g} > alpha = {alpha:g}")
            if passed:
                t = rungs[top]
                fid = (plan.function if t >= 1 and problem.reference is None
                       else (plan.function[0], plan.function[1], t))
                served[o], strength[o] = fid, t
                rec["why"] = (f"certified at strength {t:g}: gain {res[top]['gain']:.4g} over the generic "
                              f"model (adjusted p = {q[top]:.3g} <= alpha = {alpha:g})")
                note(o, "serve", label(fid))
            elif k_tier == first_tier:
                rec["why"] = (f"no significant gain at the weakest rung (t = {rungs[0]:g}): adjusted "
                              f"p = {q[0]:.3g} > alpha = {alpha:g}; the smallest gain this option's test "
                              f"could certify is about {rec['mdg']:.3g}")
        if "pending_sd" in rec:  # testability of an option without a plan, at its tier's level
            sd, n_rows, k_tier = rec.pop("pending_sd")
            rec["mdg"] = min_detectable_gain(sd, n_rows, alpha / max(1, n_tier.get(k_tier, 0) + 1), POWER)
        rec["strength"] = strength[o]
    logger.debug("ladder: %d option(s) tested (%d hypotheses), %d served a personalized model",
                len(tested), len(nodes), sum(f != GENERIC for f in served.values()))
    # ------------------------------------------------------------ envy
    if envy:
        _envy_by_test(problem, metric, alpha, served, strength, info, note, label, generators, n_boot,
                      min_group_size)
    # ------------------------------------------------------------ table
    rows_out = [{"option": option_label(names, root), **{a: None for a in names}, "reported": "",
                 "n": n, "n_select": int(select.sum()), "n_test": int(testing.sum()), "candidate": "generic",
                 "served": "generic", "strength": 0.0, "cv_gain": np.nan, "gain_generic": np.nan,
                 "gain_generic_low": np.nan, "p_value": np.nan, "p_adjusted": np.nan,
                 "min_detectable_gain": np.nan, "reason": "nothing reported: the generic model"}]
    for o in problem.options:
        rec = info[o]
        rows_out.append({"option": option_label(names, o), **dict(zip(names, o)),
                         "reported": ", ".join(a for a, v in zip(names, o) if v is not None),
                         "n": rec["n"], "n_select": rec["n_select"], "n_test": rec["n_test"],
                         "candidate": rec["candidate"], "served": label(served[o]), "strength": rec["strength"],
                         "cv_gain": rec["cv_gain"], "gain_generic": rec["gain"],
                         "gain_generic_low": rec["gain_low"], "p_value": rec["p_value"],
                         "p_adjusted": rec["p_adjusted"], "min_detectable_gain": rec["mdg"],
                         "reason": rec.get("reason") or rec["why"] or "not tested"})
    table = pd.DataFrame(rows_out)
    planned = {o: plans.get(o, LadderPlan(GENERIC)).function for o in problem.options}
    planned[root] = GENERIC
    served_named = {o: (f if len(f) == 2 else (shrunk_name(f[0], f[2]), f[1])) for o, f in served.items()}
    return AssignmentResult(served=served_named, planned=planned, table=table,
                            decisions=pd.DataFrame(decisions, columns=["step", "option", "action", "detail"]),
                            split=select if plans is not None and select.any() else np.zeros(0, dtype=bool))


def _z(alpha: float) -> float:
    from scipy import stats

    return float(stats.norm.isf(alpha))


def _claimable(g: tuple, r: tuple) -> bool:
    """Option ``g`` can claim option ``r`` when ``r`` reports only attributes ``g`` reported."""
    return all(v is None or g[j] is not None for j, v in enumerate(r))


def _scores_of(problem: AssignmentProblem, fid: tuple, rows: np.ndarray) -> np.ndarray:
    if len(fid) == 2:
        return problem.scores[rows, problem.columns[fid]]
    base = problem.scores[rows, problem.columns[GENERIC]]
    cand = problem.scores[rows, problem.columns[(fid[0], fid[1])]]
    ref = None if problem.reference is None else problem.reference[rows]
    return blend_scores(base, cand, fid[2], problem.classification, ref, problem.loss)


def _envy_by_test(problem, metric, alpha, served, strength, info, note, label, generators, n_boot,
                  min_group_size) -> None:
    """Step 5: only significant envy (Holm over the pairs) removes a personalization."""
    options = problem.options
    names = problem.names
    while True:
        pairs, ps = [], []
        for g in options:
            rows = np.flatnonzero(problem.members[g])
            if rows.size < min_group_size:
                continue
            own = served[g]
            others = list(dict.fromkeys(served[r] for r in options
                                        if r != g and _claimable(g, r) and served[r] not in (GENERIC, own)))
            if not others:
                continue
            y = problem.y[rows]
            mine = _scores_of(problem, own, rows)
            for f in others:
                res = _compare(metric, "t", y, mine, _scores_of(problem, f, rows), generators[g], n_boot)
                if not np.isnan(res["p"]):
                    pairs.append((g, f, res["gain"]))
                    ps.append(res["p"])
        if not pairs:
            return
        q = adjust_pvalues(ps, "holm")
        sig = [(pairs[i], q[i]) for i in range(len(pairs)) if q[i] <= alpha]
        if not sig:
            return
        (g, f, gap), qv = max(sig, key=lambda s: s[0][2])
        for r in [r for r in options if served[r] == f]:
            served[r], strength[r] = GENERIC, 0.0
            info[r]["strength"] = 0.0
            info[r]["reason"] = (f"envy: option {option_label(names, g)} does significantly better with this "
                                 f"option's model ({label(f)}) than with its own (gain {gap:.4g}, Holm-adjusted "
                                 f"p = {qv:.3g}); served the generic model instead")
            note(r, "envy: generic instead", f"envied by {option_label(names, g)} (gap {gap:.4g}, p_adj {qv:.3g})")
        logger.info("envy: %s envies %s significantly; removed", option_label(names, g), label(f))


def nothing_certified_message(table: pd.DataFrame, metric: str, alpha: float) -> str | None:
    """The warning text when the ladder's table serves nothing personalized; else None."""
    rest = table.iloc[1:]
    if (rest["served"] != "generic").any():
        return None
    mdg = rest["min_detectable_gain"].to_numpy(dtype=float)
    cv = rest["cv_gain"].to_numpy(dtype=float)
    tested = np.isfinite(mdg)
    if not tested.any():
        return MSG_NOTHING_CERTIFIED.split(". ")[0].format(metric=metric, alpha=alpha) + (
            f"; no option could be tested ({len(rest)} option(s): no plan from the training part, or fewer rows "
            "than min_group_size).")
    finite_cv = cv[np.isfinite(cv)]
    return MSG_NOTHING_CERTIFIED.format(
        metric=metric, alpha=alpha, n_tested=int(np.isfinite(rest["p_value"].to_numpy(dtype=float)).sum()),
        n_mdg=int(tested.sum()), mdg_min=float(np.min(mdg[tested])),
        mdg_max=float(np.max(mdg[tested])), mdg_med=float(np.median(mdg[tested])),
        cv_min=float(finite_cv.min()) if finite_cv.size else float("nan"),
        cv_max=float(finite_cv.max()) if finite_cv.size else float("nan"),
        n_untested=int((~np.isfinite(rest["p_value"].to_numpy(dtype=float))).sum()))
