"""fairuse_opt: personalized models that make fair use of group attributes.

A personalized model makes *fair use* of group attributes when every intersectional
group is better off reporting its attributes than with a generic model trained without
them (rationality) and than by reporting any other group (envy-freeness).
"""

from .exceptions import (
    FairUseError,
    FairUseInfeasibleError,
    FairUseWarning,
    InputError,
    SmallGroupWarning,
    SolverError,
    SolverWarning,
    UnseenGroupError,
    VerificationError,
)

__version__ = "0.1.0"

__all__ = [
    "FairUseError",
    "FairUseInfeasibleError",
    "FairUseWarning",
    "InputError",
    "SmallGroupWarning",
    "SolverError",
    "SolverWarning",
    "UnseenGroupError",
    "VerificationError",
    "__version__",
]

from .certificate import Certificate  # noqa: E402
from .estimators import FairUseClassifier, FairUseRegressor  # noqa: E402
from ._formulation import ModelVariables  # noqa: E402

__all__ += ["Certificate", "FairUseClassifier", "FairUseRegressor", "ModelVariables"]
