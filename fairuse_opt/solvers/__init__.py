"""The solvers layer: backends behind one interface, one result type.

``native`` (numpy methods on the parameter vector, :mod:`.native`) and the conic
solvers ``CLARABEL``, ``ECOS``, ``SCS`` through cvxpy (:mod:`.conic`).  Solver names
are defined once, in :mod:`fairuse_opt._solver_names` (re-exported by :mod:`.base`).
"""

from .base import CONIC_SOLVERS, NATIVE, SOLVER_CHOICES, Result, Task
from .conic import ConicBackend, solver_order

__all__ = ["Result", "Task", "SOLVER_CHOICES", "CONIC_SOLVERS", "NATIVE", "ConicBackend", "solver_order"]
