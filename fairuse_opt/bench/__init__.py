"""The study benchmark: how often personalization harms a group on new patients, and what fixes it.

``fairuse bench`` (or ``python -m fairuse_opt.bench``) runs datasets x model classes x
personalization techniques x methods x folds; each fold is split train / assignment /
test, every model is audited on the test fold, and the results go to an output folder
as tidy CSV files, a markdown summary and plots.  See :data:`GRID` for the combinations
that run, :func:`run_bench` for the Python entry point, and :mod:`.failure_modes` for the
synthetic failure-mode suite.
"""

from ._cells import AUDIT_METRICS, measure, run_cell, training_violations
from ._config import DEFAULT_DATASETS, BenchConfig, DatasetSpec, load_config
from ._grid import GRID, METHODS, MODELS, TECHNIQUES, Cell, build_cells, derive_seed, fold_split
from ._methods import BUILDERS, system_available
from ._runner import REUSABLE, BenchRun, CellStore, run_grid
from ._summary import HEADLINE, TIMING_COLUMNS, headline_table, method_table, tidy_results
from ._cli import run_bench

__all__ = ["run_bench", "run_grid", "BenchConfig", "DatasetSpec", "load_config", "DEFAULT_DATASETS",
           "GRID", "MODELS", "TECHNIQUES", "METHODS", "BUILDERS", "Cell", "build_cells",
           "derive_seed", "fold_split", "run_cell", "measure", "training_violations",
           "AUDIT_METRICS", "CellStore", "BenchRun", "REUSABLE", "HEADLINE", "TIMING_COLUMNS",
           "headline_table", "method_table", "tidy_results", "system_available"]
