"""fairuse_opt: personalized models that make fair use of group attributes.

A personalized model makes *fair use* of group attributes when every intersectional
group is better off reporting its attributes than with a generic model trained without
them (rationality) and than by reporting any other group (envy-freeness).

The public names below are imported on first use, so that ``import fairuse_opt`` (and
the ``fairuse`` command's ``--help``) does not pay for cvxpy, scikit-learn and scipy.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported when the name is first used).
_LAZY = {
    "FairUseClassifier": ".estimators",
    "FairUseRegressor": ".estimators",
    "FairUseSystem": ".system",
    "fit_system": ".system",
    "Certificate": ".certificate",
    "ModelVariables": "._formulation",
    "audit": ".audit",
    "audit_predictions": ".audit",
    "FittedGroupModel": ".audit",
    "FairUseReport": ".audit",
    "Metric": ".audit",
    "SklearnGroupModel": ".audit",
    "FairUseError": ".exceptions",
    "FairUseInfeasibleError": ".exceptions",
    "FairUseWarning": ".exceptions",
    "FallbackWarning": ".exceptions",
    "InputError": ".exceptions",
    "SmallGroupWarning": ".exceptions",
    "SolverError": ".exceptions",
    "SolverWarning": ".exceptions",
    "UnseenGroupError": ".exceptions",
    "VerificationError": ".exceptions",
}

__all__ = [*_LAZY, "__version__"]


def _load(name: str):
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    return value


class _Package(types.ModuleType):
    """The package module: public names resolve lazily.

    ``audit`` is both a subpackage and the function it exports; as before, the
    package attribute ``fairuse_opt.audit`` is the function (the import system's
    ``setattr`` of the subpackage is ignored for that one name).
    """

    @property
    def audit(self):  # noqa: D401 - the audit function
        return _load("audit")

    @audit.setter
    def audit(self, value) -> None:
        pass

    def __getattr__(self, name: str):
        if name in _LAZY:
            value = _load(name)
            setattr(self, name, value)
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(_LAZY))


sys.modules[__name__].__class__ = _Package
