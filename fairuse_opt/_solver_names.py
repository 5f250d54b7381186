"""The names of the solver backends, defined once (no imports: the command line reads
them without loading numpy or cvxpy).  :mod:`fairuse_opt.solvers.base` re-exports them."""

#: The conic solvers reached through cvxpy.
CONIC_SOLVERS = ("CLARABEL", "ECOS", "SCS")
#: The numpy backend.
NATIVE = "NATIVE"
#: What ``solver=`` accepts (case-insensitive).
SOLVER_CHOICES = ("auto", "native") + CONIC_SOLVERS
#: The choices under which the native backend may run (it is tried first).
NATIVE_CHOICES = ("auto", "native")
#: The conic solvers tried as fallbacks of another; SCS only when asked for (its
#: first-order accuracy rarely passes the 1e-7 verification).
FALLBACK_SOLVERS = ("CLARABEL", "ECOS")
