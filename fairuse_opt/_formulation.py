"""Compatibility import: the formulation lives in :mod:`fairuse_opt.problem`."""

from .problem.cvx import ModelVariables, Program  # noqa: F401
from .problem.data import TrainData, _worth_merging  # noqa: F401
from .problem.problem import Problem, SetSpec  # noqa: F401

__all__ = ["TrainData", "Program", "SetSpec", "ModelVariables", "Problem"]
