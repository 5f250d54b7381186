"""Run the grid serially, with joblib or on a Dask cluster; store one file per cell; resume.

Every executor runs the same pure function (:func:`~fairuse_opt.bench._cells.run_cell`)
on a cell and sends the record back to this process, which writes it (temp file, then
:func:`os.replace`: a killed run never leaves a half-written cell).  Results stream back
as cells finish (joblib's ``return_as="generator_unordered"``, Dask's ``as_completed``),
so progress is shown and a finished cell is saved at once.  With Dask,
``client.map`` is used rather than joblib's Dask backend because the records come back
to the client: workers on other machines need not share the output folder's
filesystem, and a cell that raises inside a worker is already caught and recorded by
``run_cell`` (no retries, no lost grid).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..exceptions import FairUseError
from ._cells import run_cell
from ._config import BenchConfig, load_dataset
from ._errors import MSG_NEED_DASK
from ._grid import Cell, build_cells

__all__ = ["CellStore", "BenchRun", "run_grid", "load_tasks", "REUSABLE"]

logger = logging.getLogger("fairuse_opt.bench")

#: Statuses a rerun keeps; ``failed`` and ``unavailable`` cells are run again.
REUSABLE = ("ok", "skipped")
CELLS_DIR = "cells"


class CellStore:
    """One JSON file per cell, ``<out>/cells/<cell_id>.json``, written atomically."""

    def __init__(self, out: str | os.PathLike[str]):
        self.folder = Path(out) / CELLS_DIR

    def path(self, cell_id: str) -> Path:
        return self.folder / f"{cell_id}.json"

    def write(self, record: dict) -> Path:
        from .._files import write_atomic

        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.path(record["cell_id"])
        write_atomic(final, json.dumps(record, indent=1, sort_keys=True, allow_nan=False, default=str))
        return final

    def read(self, cell_id: str) -> dict | None:
        path = self.path(cell_id)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):  # unreadable: run the cell again
            return None

    def done(self, cell: Cell) -> dict | None:
        """The stored record of a cell if a rerun may keep it (also one an earlier version
        stored under :attr:`Cell.legacy_id`, then numbered as now: the fold from 1)."""
        record = self.read(cell.cell_id)
        if record is None:
            record = self.read(cell.legacy_id)
            if record is not None:
                record = {**record, "cell_id": cell.cell_id, "fold": cell.number}
        if record is None or record.get("status") not in REUSABLE or record.get("spec") != _jsonable(cell.spec):
            return None
        return record


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


@dataclass
class BenchRun:
    """What :func:`run_grid` did.

    Attributes
    ----------
    cells : list of Cell
        The grid, in order.
    records : list of dict
        One record per cell (same order).
    computed, reused : list of str
        Cell ids run now, and kept from an earlier run.
    datasets_unavailable : dict
        Dataset name -> reason it could not be loaded.
    seconds : float
        Wall time of the run.
    """

    cells: list
    records: list
    computed: list = field(default_factory=list)
    reused: list = field(default_factory=list)
    datasets_unavailable: dict = field(default_factory=dict)
    seconds: float = 0.0


def load_tasks(config: BenchConfig) -> tuple[dict[str, str], dict[str, str]]:
    """Load every dataset once: ``(name -> task, name -> reason it is unavailable)``."""
    from ..datasets import DatasetNotFoundError, MissingDependencyError
    tasks, missing = {}, {}
    for spec in config.datasets:
        try:
            *_, task = load_dataset(spec)
        except (DatasetNotFoundError, MissingDependencyError) as exc:
            missing[spec.name] = str(exc)
            logger.warning("dataset %s left out: %s", spec.name, exc)
            continue
        tasks[spec.name] = task
    return tasks, missing


def _serial(cells: list[Cell]) -> Iterator[dict]:
    for cell in cells:
        yield run_cell(cell)


def _joblib(cells: list[Cell], n_jobs: int) -> Iterator[dict]:
    from joblib import Parallel, delayed
    yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(run_cell)(c) for c in cells)


def _dask(cells: list[Cell], address: str, n_jobs: int) -> Iterator[dict]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise FairUseError(MSG_NEED_DASK.format(reason=exc)) from exc
    cluster = None
    if address == "local":
        cluster = LocalCluster(n_workers=max(1, n_jobs), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(address)
    try:
        logger.info("dask: %s", client)
        futures = client.map(run_cell, cells, key=[f"fairuse-bench-{c.cell_id}" for c in cells],
                             pure=False)
        for future in as_completed(futures):
            yield future.result()
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_grid(config: BenchConfig, out: str | os.PathLike[str], *, n_jobs: int = 1,
             scheduler: str | None = None,
             on_record: Callable[[dict], None] | None = None) -> BenchRun:
    """Run (or resume) the grid of ``config``; one record file per cell under ``out``.

    Parameters
    ----------
    config : BenchConfig
    out : path
        Output folder (created).
    n_jobs : int, default 1
        Parallel processes (joblib, ``-1``: every core), or Dask workers of a local
        cluster.
    scheduler : str, optional
        Address of a Dask scheduler, or ``"local"`` for a
        :class:`distributed.LocalCluster` of ``n_jobs`` single-threaded workers.
    on_record : callable, optional
        Called with each new record (progress).

    Returns
    -------
    BenchRun
    """
    started = time.perf_counter()
    tasks, missing = load_tasks(config)
    cells = build_cells(config, tasks)
    store = CellStore(out)
    kept = {c.cell_id: r for c in cells if (r := store.done(c)) is not None}
    todo = [c for c in cells if c.cell_id not in kept]
    logger.info("%d cells: %d already done, %d to run", len(cells), len(kept), len(todo))
    if scheduler is not None:
        stream: Iterable[dict] = _dask(todo, scheduler, n_jobs)
    elif n_jobs != 1 and len(todo) > 1:
        stream = _joblib(todo, n_jobs)
    else:
        stream = _serial(todo)
    fresh: dict[str, dict] = {}
    for k, record in enumerate(stream, 1):
        record = _jsonable(record)  # the same values whether fresh or read back from disk
        store.write(record)
        fresh[record["cell_id"]] = record
        level = logging.WARNING if record["status"] == "failed" else logging.INFO
        logger.log(level, "[%d/%d] %s %s %.1f s%s", k, len(todo), record["cell_id"], record["status"],
                   record.get("cell_seconds", 0.0),
                   f": {record['reason']}" if record["status"] == "failed" else "")
        if on_record is not None:
            on_record(record)
    records = [fresh.get(c.cell_id) or kept[c.cell_id] for c in cells]
    return BenchRun(cells, records, computed=[c.cell_id for c in todo], reused=list(kept),
                    datasets_unavailable=missing, seconds=time.perf_counter() - started)
