"""fairuse_opt: personalized models that make fair use of group attributes.

A personalized model makes *fair use* of group attributes when every intersectional
group is better off reporting its attributes than with a generic model trained without
them (rationality) and than by reporting any other group (envy-freeness).
"""

__version__ = "0.1.0"

from ._formulation import ModelVariables
from .audit import FairUseReport, Metric, SklearnGroupModel, audit
from .certificate import Certificate
from .estimators import FairUseClassifier, FairUseRegressor
from .system import FairUseSystem, fit_system
from .exceptions import (
    FairUseError,
    FairUseInfeasibleError,
    FairUseWarning,
    FallbackWarning,
    InputError,
    SmallGroupWarning,
    SolverError,
    SolverWarning,
    UnseenGroupError,
    VerificationError,
)

__all__ = [
    "FairUseClassifier",
    "FairUseRegressor",
    "FairUseSystem",
    "fit_system",
    "Certificate",
    "ModelVariables",
    "audit",
    "FairUseReport",
    "Metric",
    "SklearnGroupModel",
    "FairUseError",
    "FairUseInfeasibleError",
    "FairUseWarning",
    "FallbackWarning",
    "InputError",
    "SmallGroupWarning",
    "SolverError",
    "SolverWarning",
    "UnseenGroupError",
    "VerificationError",
    "__version__",
]
