"""Fair-use audit of personalized models on held-out data.

:func:`audit` checks, per intersectional group, whether a personalized model helps the
group compared with a generic model (rationality) and whether the group would do
better reporting another group (envy), with paired, seeded bootstrap resamples drawn
within each group and one-sided tests, corrected across groups (Holm by default).  Each
verdict comes with the one-sided confidence bound it used.  :func:`audit_predictions`
audits predictions a user already has; :class:`FittedGroupModel` audits a fitted
scikit-learn estimator or pipeline as it is (``audit`` wraps one by itself);
:class:`SklearnGroupModel` fits any scikit-learn estimator on features plus group
indicators.
"""

from ._adapter import SklearnGroupModel
from ._audit import audit
from ._fitted import FittedGroupModel
from ._predictions import audit_predictions
from ._errors import ModelInterfaceError
from ._metrics import Metric, expected_calibration_error
from ._report import VERDICTS, AuditSummary, FairUseReport, format_number

__all__ = [
    "audit",
    "audit_predictions",
    "FittedGroupModel",
    "AuditSummary",
    "FairUseReport",
    "Metric",
    "ModelInterfaceError",
    "SklearnGroupModel",
    "VERDICTS",
    "expected_calibration_error",
    "format_number",
]
