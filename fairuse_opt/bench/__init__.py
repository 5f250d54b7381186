"""The study benchmark: how often personalization harms a group on new patients, and what fixes it.

``fairuse bench`` (or ``python -m fairuse_opt.bench``) runs datasets x model classes x
personalization techniques x methods x folds; each fold is split train / assignment /
test, every model is audited on the test fold, and the results go to an output folder
as tidy CSV files, a markdown summary and plots.  See :data:`GRID` for the combinations
that run, :func:`run_bench` for the Python entry point, and :mod:`.failure_modes` for the
synthetic failure-mode suite.
"""

import importlib

#: Public name -> submodule (imported on first use, so that ``fairuse --help`` stays light).
_NAMES = {
    "AUDIT_METRICS": "_cells", "measure": "_cells", "run_cell": "_cells",
    "training_violations": "_cells", "DEFAULT_DATASETS": "_config", "BenchConfig": "_config",
    "DatasetSpec": "_config", "load_config": "_config", "GRID": "_grid", "METHODS": "_grid",
    "MODELS": "_grid", "TECHNIQUES": "_grid", "Cell": "_grid", "build_cells": "_grid",
    "derive_seed": "_grid", "fold_split": "_grid", "BUILDERS": "_methods",
    "system_available": "_methods", "REUSABLE": "_runner", "BenchRun": "_runner",
    "CellStore": "_runner", "run_grid": "_runner", "HEADLINE": "_summary",
    "TIMING_COLUMNS": "_summary", "headline_table": "_summary", "method_table": "_summary",
    "tidy_results": "_summary", "run_bench": "_cli",
}


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["run_bench", "run_grid", "BenchConfig", "DatasetSpec", "load_config", "DEFAULT_DATASETS",
           "GRID", "MODELS", "TECHNIQUES", "METHODS", "BUILDERS", "Cell", "build_cells",
           "derive_seed", "fold_split", "run_cell", "measure", "training_violations",
           "AUDIT_METRICS", "CellStore", "BenchRun", "REUSABLE", "HEADLINE", "TIMING_COLUMNS",
           "headline_table", "method_table", "tidy_results", "system_available"]
