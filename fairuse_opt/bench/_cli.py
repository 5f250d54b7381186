"""The ``bench`` command: arguments, logging, and the run."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the heavy modules are imported when the benchmark runs, not for --help
    from ._config import BenchConfig

__all__ = ["add_arguments", "run_bench", "main", "DEFAULT_OUT"]

#: Output folder when ``--out`` is not given (relative to the current folder).
DEFAULT_OUT = "fairuse_bench_output"
PROG = "fairuse bench"


def _list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _int_in(low: int, high: int, what: str):
    """An argparse type: an integer in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: give an integer from {low} to {high}")
        return value
    return parse


def _n_jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"invalid --n-jobs {text!r}: give a positive number of processes, "
                                         "or -1 for every core")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark's options to a parser (``fairuse bench`` and ``python -m``)."""
    parser.add_argument("--config", default=None, help="TOML or JSON config file (see benchmarks/README.md)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help="datasets (space- or comma-separated registry names or config dataset "
                             "names; default: the config's, else apnea and the datasets extra's)")
    parser.add_argument("--folds", type=_int_in(2, 1000, "count"), default=None,
                        help="folds per dataset (default 5)")
    parser.add_argument("--models", type=_list, default=None,
                        help="model classes to keep, e.g. logistic,rf (default: all)")
    parser.add_argument("--techniques", type=_list, default=None,
                        help="techniques to keep, e.g. generic,onehot (default: all)")
    parser.add_argument("--methods", type=_list, default=None,
                        help="methods to keep, e.g. unconstrained,system (default: all)")
    parser.add_argument("--n-boot", type=_int_in(1, 10 ** 6, "count"), default=None,
                        help="audit resamples (default 1000)")
    parser.add_argument("--seed", type=_int_in(0, 2 ** 32 - 1, "seed"), default=None, help="base seed (default 0)")
    parser.add_argument("--n-jobs", type=_n_jobs, default=1,
                        help="parallel processes (joblib; -1: all cores), or local Dask workers")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run on a Dask cluster: a scheduler address, or 'local' for a local "
                             "cluster of --n-jobs workers (needs the dask extra)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"output folder (default {DEFAULT_OUT}); a rerun resumes from its cells")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    parser.add_argument("--verbose", action="store_true",
                        help="also the library's progress lines (every fit's solver runs; many lines)")
    return parser


def _datasets(config: "BenchConfig", names: list[str] | None) -> list:
    if names is None:
        return list(config.datasets)
    names = [n for item in names for n in _list(item)]
    by_name = {s.name: s for s in config.datasets}
    return [by_name.get(n, n) for n in names]


#: Said after Ctrl-C when finished cells were kept.
MSG_RESUME = "the finished cells stay in {cells}: the same command resumes from them"


def run_bench(args: argparse.Namespace, command: str) -> int:
    """Run the benchmark for parsed arguments; write the outputs; return 0 (1 if a cell failed).

    Every finished cell is written at once to ``OUT/cells`` (kept for a rerun to resume);
    the tables, ``run.json``, the plots and ``summary.md`` are written together at the end,
    all of them or none.  A ``KeyboardInterrupt`` leaves with ``detail`` saying where the
    finished cells are.
    """
    from ._config import load_config
    from ._runner import CELLS_DIR, run_grid
    from ._summary import write_outputs
    config = load_config(args.config)
    config = config.with_overrides(datasets=_datasets(config, args.datasets), folds=args.folds,
                                   models=args.models, techniques=args.techniques,
                                   methods=args.methods, n_boot=args.n_boot, seed=args.seed)
    from ._grid import METHODS, MODELS, TECHNIQUES, _check_choice

    for what, values, known in (("model", config.models, MODELS), ("technique", config.techniques, TECHNIQUES),
                                ("method", config.methods, METHODS)):
        _check_choice(what, values, known)  # before any dataset is loaded
    try:
        run = run_grid(config, args.out, n_jobs=args.n_jobs, scheduler=args.scheduler)
        written = write_outputs(run, config, args.out, command, plots=not args.no_plots)
    except KeyboardInterrupt as exc:
        cells = Path(args.out) / CELLS_DIR
        if cells.is_dir() and any(cells.glob("*.json")):
            exc.detail = MSG_RESUME.format(cells=cells)  # type: ignore[attr-defined]
        raise
    failed = [r for r in run.records if r["status"] == "failed"]
    logging.getLogger("fairuse_opt.bench").info(
        "done in %.1f s: %d cells (%d run, %d kept), %d failed; summary %s", run.seconds,
        len(run.cells), len(run.computed), len(run.reused), len(failed), written["summary"])
    return 1 if failed else 0


def _setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("fairuse_opt.bench")
    if not any(getattr(h, "_fairuse_bench", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("fairuse: %(message)s"))
        handler._fairuse_bench = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def cmd_bench(args: argparse.Namespace, progress: Any = None) -> int:
    """Entry point of the ``fairuse bench`` subcommand (``progress`` unused: logging).

    The ``fairuse`` command's own handler (prefix ``fairuse:``) prints the progress; only
    ``python -m fairuse_opt.bench`` installs :func:`_setup_logging`'s, so no line is
    printed twice.
    """
    argv = getattr(args, "argv", None)
    command = "fairuse " + " ".join(map(shlex.quote, argv)) if argv else PROG
    return run_bench(args, command)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fairuse_opt.bench [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = add_arguments(argparse.ArgumentParser(prog="python -m fairuse_opt.bench",
                                                   description=__doc__))
    args = parser.parse_args(argv)
    _setup_logging(args.quiet)
    from .._files import recording
    from ..cli import interrupted_message
    from ..exceptions import FairUseError, InputError
    with recording() as written:
        try:
            return run_bench(args, " ".join(["python -m fairuse_opt.bench", *map(shlex.quote, argv)]))
        except (InputError, OSError, ImportError, FairUseError) as exc:
            print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            print(f"{PROG}: error: {interrupted_message(written, getattr(exc, 'detail', None))}", file=sys.stderr)
            return 130
