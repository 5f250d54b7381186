"""Training rows on the standardised scale, merged, grouped.

:class:`TrainData` holds the distinct rows (features, group) with the loss's sufficient
statistics, sorted by group so that every group's rows are one contiguous slice (a
view, never a copy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TrainData", "wide_basis", "centred_rows", "stable_order"]


def stable_order(codes: np.ndarray) -> np.ndarray:
    """``np.argsort(codes, kind="stable")`` for group codes: on 16-bit integers when they
    fit (numpy then sorts by radix, in O(n): 0.26 ms against 1.9 ms for 100,000 int64
    codes)."""
    codes = np.asarray(codes)
    if codes.size and codes.dtype.kind in "iu" and 0 <= int(codes.min()) and int(codes.max()) < 1 << 15:
        return np.argsort(codes.astype(np.int16), kind="stable")
    return np.argsort(codes, kind="stable")


def centred_rows(X: np.ndarray, w: np.ndarray, codes: np.ndarray):
    """The rows of ``X`` centred on their weighted mean and sorted by group (stably), in
    one read of ``X`` whatever its memory layout.

    Returns ``(Z, mean, var, order)``: ``Z`` (n, d) C-ordered, ``mean`` and ``var`` the
    weighted mean and variance of each column (``var`` from the centred rows: no
    cancellation for columns far from 0), ``order`` the sorting permutation (``None``
    when the codes are already sorted: ``Z`` rows are then ``X``'s).

    ``X`` is read a block of consecutive rows at a time (about 512 KB, in cache),
    centred, its squares summed, and the block's rows scattered to their places in ``Z``
    (each group's rows of a block land in one run of ``Z``).  A DataFrame's values are
    Fortran-ordered: gathering ``Z``'s rows from it (``take``) copied the whole array to
    C order at every block (26.6 of 30 s of a 10^6-row fit); a memory map is read
    sequentially, once.
    """
    n, d = X.shape
    W = float(w.sum())
    mean = (w @ X) / W if d else np.zeros(0)
    order = stable_order(codes) if codes.size and np.any(codes[1:] < codes[:-1]) else None
    Z = np.empty((n, d))
    var = np.zeros(d)
    if not d:
        return Z, mean, var, order
    dest = None
    if order is not None:
        dest = np.empty(n, dtype=np.intp)
        dest[order] = np.arange(n)
    step = max(1024, (1 << 16) // d)
    buf = np.empty((min(step, n), d)) if order is not None else None
    for a in range(0, n, step):
        b = min(a + step, n)
        blk = buf[:b - a] if dest is not None else Z[a:b]
        blk[...] = X[a:b]
        blk -= mean
        var += w[a:b] @ (blk * blk)
        if dest is not None:
            Z[dest[a:b]] = blk
    return Z, mean, var / W, order


@dataclass
class TrainData:
    """Training rows, standardised and merged.

    Attributes
    ----------
    Z : ndarray (m, d)
        Distinct rows of standardised features, sorted by group.
    codes : ndarray (m,)
        Intersectional group code of each distinct row.
    stats : ndarray (m, k)
        Sufficient statistics of the loss (see :mod:`fairuse_opt.model.losses`).
    n_rows : int
        Number of original rows (before merging).
    group_rows : list of slice
        The rows of each group (contiguous).
    """

    Z: np.ndarray
    codes: np.ndarray
    stats: np.ndarray
    n_groups: int
    n_rows: int
    group_rows: list = field(default_factory=list)
    group_weight: np.ndarray | None = None
    total_weight: float = 0.0

    @classmethod
    def build(cls, Z: np.ndarray, codes: np.ndarray, stats: np.ndarray, n_groups: int,
              merge: bool = True) -> "TrainData":
        n = Z.shape[0]
        keep = stats[:, 0] > 0  # rows of weight zero carry no loss
        if not keep.all():
            Z, codes, stats = Z[keep], codes[keep], stats[keep]
        if merge and Z.shape[0] > 1 and _worth_merging(Z, codes):
            key = np.column_stack([Z, codes.astype(np.float64)])
            uniq, inverse = np.unique(key, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            merged = np.zeros((uniq.shape[0], stats.shape[1]))
            np.add.at(merged, inverse, stats)
            Z, codes, stats = uniq[:, :-1], uniq[:, -1].astype(np.int64), merged
        if codes.size and np.any(codes[1:] < codes[:-1]):  # each group one contiguous slice
            order = stable_order(codes)
            Z, codes, stats = Z[order], codes[order], stats[order]
        bounds = np.searchsorted(codes, np.arange(n_groups + 1))
        group_rows = [slice(int(bounds[g]), int(bounds[g + 1])) for g in range(n_groups)]
        group_weight = np.array([stats[r, 0].sum() for r in group_rows])
        return cls(Z=np.ascontiguousarray(Z, dtype=np.float64), codes=np.asarray(codes, dtype=np.int64),
                   stats=stats, n_groups=n_groups, n_rows=n, group_rows=group_rows,
                   group_weight=group_weight, total_weight=float(stats[:, 0].sum()))

    def thinned(self, rows: int, min_per_group: int = 100) -> "TrainData":
        """About ``rows`` of the distinct rows, evenly spaced within each group (each group
        keeps at least ``min(its size, min_per_group)``), with the same sufficient
        statistics per row: the group means and the weighted mean of the loss are
        estimated without bias when the rows are in no particular order.  A start for
        an iterative method on all rows, never a fit of its own."""
        n = self.n_distinct
        stride = max(1, -(-n // max(int(rows), 1)))
        idx = []
        for r in self.group_rows:
            size = r.stop - r.start
            take = min(size, max(-(-size // stride), min_per_group))
            if take:
                idx.append(r.start + (np.arange(take) * size) // take)
        idx = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
        # rows already merged, weighted and sorted by group: build only slices and sums
        return TrainData.build(self.Z[idx], self.codes[idx], self.stats[idx], self.n_groups, merge=False)

    @property
    def n_distinct(self) -> int:
        return int(self.Z.shape[0])

    def group_size(self, g: int) -> int:
        r = self.group_rows[g]
        return r.stop - r.start


def _worth_merging(Z: np.ndarray, codes: np.ndarray, sample: int = 5000) -> bool:
    """Merging sorts every row (a third of a 10^6-row fit): skip it when a random sample
    of rows shows almost no duplicates (continuous features).  The fit is the same
    either way; only its cost changes."""
    n = Z.shape[0]
    if n <= 2 * sample:
        return True
    rng = np.random.default_rng(0)
    idx = rng.choice(n, sample, replace=False)
    # distinct rows counted by a random projection of each (equal rows project alike;
    # two distinct rows that happen to project alike only make merging look worthwhile,
    # and merging is exact): np.unique(axis=0) sorted the rows as bytes, 40x slower
    proj = Z[idx] @ rng.normal(size=Z.shape[1]) + codes[idx] * np.pi
    return np.unique(proj).shape[0] < 0.95 * sample


def wide_basis(Zc: np.ndarray) -> np.ndarray:
    """An orthonormal basis ``V`` (d, r) of the row space of the centred raw features
    ``Zc`` (m, d), ``r <= m``, for data with more features than rows.

    With weights shared by every group and an L2 penalty on the raw-scale weights, every
    problem of a fit depends on the weights ``w`` only through the scores ``Zc @ w`` and
    ``||w||^2``; the component of ``w`` orthogonal to the row space changes no score and
    only adds to the penalty, so every optimum (constrained or not) has ``w = V c``.
    Fitting ``c`` on the features ``Zc @ V`` (m, r) is therefore the same problem with
    ``r`` instead of ``d`` weights (200 rows x 10,000 features: 200 weights, not a
    10,000 x 10,000 Hessian).  Directions of singular value below numpy's rank
    tolerance are dropped (they move no score beyond rounding).

    The basis is the ``Q`` of a QR factorisation of ``Zc'`` with column pivoting
    (rank-revealing: the directions whose diagonal entry of ``R`` is below numpy's rank
    tolerance relative to the first are dropped); 1,500 x 1,510: 0.6 s, where the SVD
    took 1.6 s.
    """
    from scipy.linalg import qr

    if Zc.shape[0] == 0:
        return np.zeros((Zc.shape[1], 0))
    Q, R, _ = qr(Zc.T, mode="economic", pivoting=True)
    diag = np.abs(np.diag(R))
    keep = diag > (diag[0] if diag.size else 0.0) * max(Zc.shape) * np.finfo(np.float64).eps
    return np.ascontiguousarray(Q[:, keep])

