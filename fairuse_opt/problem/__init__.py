"""The problem layer: data, the problem object (numpy) and its compiler to cvxpy."""

from .cvx import FORMS, ModelVariables, Program
from .data import TrainData
from .problem import Problem, SetSpec

__all__ = ["Problem", "SetSpec", "TrainData", "Program", "ModelVariables", "FORMS"]
