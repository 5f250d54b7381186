"""Work shared between fits of one candidate pool (internal).

:func:`~fairuse_opt.fit_system` fits many estimators on the same rows: on each
attribute subset, the one-hot, intersectional and decoupled models, unconstrained and
with fair use.  They standardise, merge and sort the same rows and fit the same generic
model; a fair-use fit starts from the unconstrained fit of the same encoding, which the
pool has just made.  Inside :func:`shared_fits` an estimator's fit keeps these results,
keyed by a digest of its arrays and the parameters they depend on, and a later fit on
the same arrays reuses them instead of computing them again: the same deterministic
computation on the same inputs, so every model is the one a fit on its own gives, to
the last bit.  Outside :func:`shared_fits` nothing is kept.

Only the results of the most recent :data:`MAX_DESIGNS` sets of arrays are kept (the
pool fits every candidate on an attribute subset one after the other), so the memory
held is a few copies of the standardised rows.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections import OrderedDict
from typing import Any, Iterator

import numpy as np

__all__ = ["shared_fits", "active", "digest", "lookup", "store"]

#: sets of arrays (standardised rows and what was fitted on them) kept at once
MAX_DESIGNS = 2

_CACHE: contextvars.ContextVar[OrderedDict | None] = contextvars.ContextVar("fairuse_opt_fit_cache",
                                                                             default=None)
#: digests of the read-only arrays most recently hashed in the block, by identity (the
#: pool passes one array per row subset to all its candidates; the array is kept, so its
#: id is not reused while it is here)
_DIGESTS: contextvars.ContextVar[list | None] = contextvars.ContextVar("fairuse_opt_fit_digests", default=None)
_MAX_DIGESTS = 8


@contextlib.contextmanager
def shared_fits() -> Iterator[None]:
    """Within the block, fits on the same arrays share their preparation, their generic
    model and their unconstrained fit (see the module docstring)."""
    token, token_d = _CACHE.set(OrderedDict()), _DIGESTS.set([])
    try:
        yield
    finally:
        _CACHE.reset(token)
        _DIGESTS.reset(token_d)


def active() -> bool:
    """Whether a :func:`shared_fits` block is open."""
    return _CACHE.get() is not None


def digest(*arrays: np.ndarray) -> bytes:
    """A digest of the arrays' dtypes, shapes and values (whatever their memory order)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(_array_digest(np.asarray(a)))
    return h.digest()


def _array_digest(a: np.ndarray) -> bytes:
    # read-only arrays only (their values cannot change between two fits)
    memo = _DIGESTS.get() if not a.flags.writeable and a.size >= 4096 else None
    if memo is not None:
        for arr, d in memo:
            if arr is a:
                return d
    h = hashlib.sha256()  # (hardware-accelerated: 1.7 ms for 2.4 MB, blake2b 3.5 ms)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    if a.flags.c_contiguous:
        h.update(memoryview(a).cast("B"))
    elif a.flags.f_contiguous:
        h.update(b"F")
        h.update(memoryview(a.T).cast("B"))
    else:
        h.update(np.ascontiguousarray(a).tobytes())
    d = h.digest()
    if memo is not None:
        memo.append((a, d))
        del memo[:-_MAX_DIGESTS]
    return d


def lookup(design: bytes, kind: str, key: Any = None) -> Any:
    """What was stored under ``(design, kind, key)``, else ``None``."""
    cache = _CACHE.get()
    if cache is None or design not in cache:
        return None
    cache.move_to_end(design)
    return cache[design].get((kind, key))


def store(design: bytes, kind: str, value: Any, key: Any = None) -> None:
    """Keep ``value`` under ``(design, kind, key)`` (nothing outside :func:`shared_fits`)."""
    cache = _CACHE.get()
    if cache is None:
        return
    cache.setdefault(design, {})[(kind, key)] = value
    cache.move_to_end(design)
    while len(cache) > MAX_DESIGNS:
        cache.popitem(last=False)
