"""Graphical multiple-testing procedures (Bretz, Maurer, Brannath and Posch, 2009).

A family of one-sided hypotheses ``H_1 .. H_m`` with raw p-values ``p_j`` is tested at a
family-wise level ``alpha`` by a *graph*: initial weights ``w_j >= 0`` (summing to at most
1) and a transition matrix ``G`` (``G[j, l] >= 0``, ``G[j, j] = 0``, rows summing to at
most 1).  While some ``H_j`` has ``p_j <= w_j alpha`` it is rejected and its weight is
passed on along its edges (``w_l += w_j G[j, l]``); the graph is then updated so that
edges into ``H_j`` are routed through it:

    G[l, k] <- (G[l, k] + G[l, j] G[j, k]) / (1 - G[l, j] G[j, l])   (l != k; 0 if the
                                                                      denominator is 0)

The procedure controls the family-wise error rate in the strong sense for any graph
(it is a closed test of weighted Bonferroni tests).  Holm's step-down procedure is the
graph with equal weights and equal edges between all hypotheses; a fixed sequence is a
chain with all the weight on its first node.  Adjusted p-values follow the same steps
(``p_adj`` is the smallest ``alpha`` at which the hypothesis is rejected), so rejecting
where ``p_adj <= alpha`` gives the same decisions as the procedure itself.

:func:`ladder_graph` builds the graph the certified system uses: per option a chain of
shrinkage rungs, and tiers of options (fully reported groups first, partial reports at the
tail).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["graphical_adjusted_pvalues", "graphical_rejections", "ladder_graph", "holm_graph",
           "TAIL_EPSILON"]

#: Share of a tier's passed weight that flows to the next tier while nodes of its own
#: tier remain (an "epsilon edge": the tail tier waits until its predecessor is done).
TAIL_EPSILON = 1e-6


def _check(p: np.ndarray, w: np.ndarray, G: np.ndarray) -> None:
    m = p.size
    if w.shape != (m,) or G.shape != (m, m):
        raise ValueError("weights must have shape (m,) and transitions (m, m)")
    if (w < 0).any() or w.sum() > 1 + 1e-9:
        raise ValueError("weights must be >= 0 and sum to at most 1")
    if (G < 0).any() or (np.diag(G) != 0).any() or (G.sum(axis=1) > 1 + 1e-9).any():
        raise ValueError("transitions must be >= 0, 0 on the diagonal, rows summing to at most 1")


def _remove(j: int, active: np.ndarray, w: np.ndarray, G: np.ndarray) -> None:
    """Reject node ``j``: pass its weight on and route the edges through it (in place)."""
    active[j] = False
    idx = np.flatnonzero(active)
    w[idx] += w[j] * G[j, idx]
    w[j] = 0.0
    if idx.size:
        Glj = G[idx, j][:, None]
        Gjk = G[j, idx][None, :]
        denom = 1.0 - (G[idx, j] * G[j, idx])[:, None]
        num = G[np.ix_(idx, idx)] + Glj * Gjk
        with np.errstate(divide="ignore", invalid="ignore"):
            new = np.where(denom > 1e-15, num / denom, 0.0)
        np.fill_diagonal(new, 0.0)
        G[np.ix_(idx, idx)] = new
    G[j, :] = 0.0
    G[:, j] = 0.0


def graphical_adjusted_pvalues(pvalues: Sequence[float], weights: Sequence[float],
                               transitions: np.ndarray) -> np.ndarray:
    """Adjusted p-values of the graphical procedure.

    Parameters
    ----------
    pvalues : array-like, shape (m,)
        Raw one-sided p-values; NaN marks a hypothesis that is not tested (it is never
        rejected, and its weight is passed on as if it were: it holds no evidence but
        costs nothing, since its node is removed before anything is tested).
    weights : array-like, shape (m,)
        Initial weights.
    transitions : ndarray, shape (m, m)
        Transition matrix.

    Returns
    -------
    ndarray, shape (m,)
        ``p_adj[j]``: the smallest family-wise level at which ``H_j`` is rejected (1 when it
        never is, NaN for untested hypotheses).
    """
    p = np.asarray(pvalues, dtype=np.float64).copy()
    w = np.asarray(weights, dtype=np.float64).copy()
    G = np.array(transitions, dtype=np.float64, copy=True)
    _check(p, w, G)
    m = p.size
    active = np.ones(m, dtype=bool)
    out = np.full(m, np.nan)
    # untested nodes leave the graph first, passing their weight on
    for j in np.flatnonzero(np.isnan(p)):
        _remove(j, active, w, G)
    running = 0.0
    while active.any():
        idx = np.flatnonzero(active)
        with np.errstate(divide="ignore"):
            ratio = np.where(w[idx] > 0, p[idx] / np.where(w[idx] > 0, w[idx], 1.0), np.inf)
        k = int(np.argmin(ratio))
        j = int(idx[k])
        if not np.isfinite(ratio[k]):
            out[idx] = 1.0  # no weight left: never rejected
            break
        running = max(running, min(1.0, float(ratio[k])))
        out[j] = running
        _remove(j, active, w, G)
    return out


def graphical_rejections(pvalues: Sequence[float], weights: Sequence[float], transitions: np.ndarray,
                         alpha: float) -> np.ndarray:
    """Which hypotheses the graphical procedure rejects at family-wise level ``alpha``
    (run step by step, as in the definition; equal to ``adjusted <= alpha``)."""
    p = np.asarray(pvalues, dtype=np.float64).copy()
    w = np.asarray(weights, dtype=np.float64).copy()
    G = np.array(transitions, dtype=np.float64, copy=True)
    _check(p, w, G)
    active = np.ones(p.size, dtype=bool)
    rejected = np.zeros(p.size, dtype=bool)
    for j in np.flatnonzero(np.isnan(p)):
        _remove(j, active, w, G)
    while True:
        idx = np.flatnonzero(active)
        hit = idx[p[idx] <= w[idx] * alpha]
        if hit.size == 0:
            return rejected
        j = int(hit[np.argmin(p[hit] - w[hit] * alpha)])
        rejected[j] = True
        _remove(j, active, w, G)


def holm_graph(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Holm's procedure as a graph: weights ``1/m``, edges ``1/(m-1)`` between all nodes."""
    w = np.full(m, 1.0 / m) if m else np.zeros(0)
    G = np.full((m, m), 1.0 / (m - 1)) if m > 1 else np.zeros((m, m))
    np.fill_diagonal(G, 0.0)
    return w, G


def ladder_graph(n_rungs: Sequence[int], tiers: Sequence[int], *, epsilon: float = TAIL_EPSILON,
                 spill: float = 0.0) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """The graph of the shrinkage ladder.

    Option ``i`` has ``n_rungs[i]`` nodes (its rungs, weakest first) and belongs to tier
    ``tiers[i]`` (0: tested first).  The initial weight is shared equally by the first
    rungs of the options of the lowest tier present.  A rung passes all its weight to
    the option's next rung; an option's last rung passes its weight equally to the first
    rungs of the other options of its tier, except a share ``epsilon`` that goes, equally,
    to the first rungs of the options of the other tiers (all of it when its tier has no
    other option).  A tier therefore receives weight (beyond the epsilon shares) only
    once every hypothesis of the tiers before it is rejected.

    With ``spill`` in [0, 1), a rung that is not an option's last passes only
    ``1 - spill`` of its weight to the option's next rung, and ``spill`` to the other
    options as its last rung would (the options' first rungs): a group certified at a
    weak rung then lends part of its level to the other groups at once, instead of
    keeping it for its own stronger rungs.

    Returns
    -------
    weights : ndarray
    transitions : ndarray
    nodes : list of (option index, rung index)
    """
    nodes = [(i, k) for i, r in enumerate(n_rungs) for k in range(int(r))]
    m = len(nodes)
    w = np.zeros(m)
    G = np.zeros((m, m))
    if m == 0:
        return w, G, nodes
    pos = {node: j for j, node in enumerate(nodes)}
    present = [i for i, r in enumerate(n_rungs) if r > 0]
    first_tier = min(tiers[i] for i in present)
    starters = [i for i in present if tiers[i] == first_tier]
    for i in starters:
        w[pos[(i, 0)]] = 1.0 / len(starters)
    if not 0.0 <= spill < 1.0:
        raise ValueError(f"spill must be in [0, 1), got {spill!r}")
    for i in present:
        last = int(n_rungs[i]) - 1
        same = [h for h in present if h != i and tiers[h] == tiers[i]]
        other = [h for h in present if tiers[h] != tiers[i]]
        share_same = (1.0 - epsilon) if (same and other) else (1.0 if same else 0.0)
        share_other = 1.0 - share_same if other else 0.0
        for k in range(last + 1):
            src = pos[(i, k)]
            out = 1.0 if k == last else spill
            if k < last:
                G[src, pos[(i, k + 1)]] = 1.0 - spill if (same or other) else 1.0
                if not (same or other):
                    continue
            for h in same:
                G[src, pos[(h, 0)]] += out * share_same / len(same)
            for h in other:
                G[src, pos[(h, 0)]] += out * share_other / len(other)
    return w, G, nodes
