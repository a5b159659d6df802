"""Pending records: files a run wrote that are not in the store yet (two-phase commit for sweep trials).

A sweep trial is a run whose records only count once the study has it as COMPLETE. The trial
writes its record and prediction files into ``<results_dir>/pending/<experiment>/runs`` and
``.../predictions`` (``RunHooks.records_dir``), where no reader looks (readers glob
``<results_dir>/runs/*.parquet`` only); after the study has the trial COMPLETE its worker
:func:`promote` s them into the store, and a failed or pruned trial's folder is :func:`discard` ed.
A worker killed in between leaves the folder; the next worker of the study finishes the job (see
:mod:`xlexp.sweep.commit`): promotion is idempotent, so a promotion interrupted half way is simply
run again, and a file already in the store is never written twice.

Every move is an ``os.replace`` inside one results folder (one file system): a reader sees a file
whole or not at all. Predictions move first and records last, as a run writes them: a records file
in the store means its unit's predictions are there too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from xlexp.results.store import predictions_dir, runs_dir

PENDING = "pending"


def pending_root(results_dir: Path | str) -> Path:
    return Path(results_dir) / PENDING


def pending_dir(results_dir: Path | str, experiment: str) -> Path:
    """Where one experiment's files wait (``RunHooks.records_dir`` of a sweep trial)."""
    return pending_root(results_dir) / experiment


def pending_lock(folder: Path) -> Path:
    """The lock file its trial's worker holds while the folder is its own (``xlexp.results.liveness``)."""
    return folder.with_name(folder.name + ".lock")


def list_pending(results_dir: Path | str, prefix: str = "") -> dict[str, Path]:
    """Pending folders whose experiment name starts with ``prefix``, by experiment name."""
    root = pending_root(results_dir)
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and p.name.startswith(prefix)}


def pending_files(folder: Path) -> list[Path]:
    """The finished files of a pending folder (record files first in the list of what a caller counts)."""
    return sorted(runs_dir(folder).glob("*.parquet")) + sorted(predictions_dir(folder).glob("*.parquet"))


def _move_all(src: Path, dest: Path) -> list[Path]:
    moved = []
    try:
        files = sorted(src.iterdir())
    except FileNotFoundError:  # nothing pending there (or another worker finished the promotion)
        return moved
    for f in files:
        if f.name.startswith(".") or f.suffix != ".parquet":  # a writer's temp file: never finished, never promoted
            f.unlink(missing_ok=True)
            continue
        target = dest / f.name
        if target.exists():  # an interrupted promotion moved it already (names are unique per run and unit)
            f.unlink(missing_ok=True)
            continue
        dest.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(f, target)
        except FileNotFoundError:  # another worker of the study promoted it a moment ago
            continue
        moved.append(target)
    return moved


def promote(folder: Path, results_dir: Path | str) -> list[Path]:
    """Move a pending folder's files into the store (predictions first, records last) and remove it.
    Returns the record files now in the store. Safe to run again after an interruption."""
    _move_all(predictions_dir(folder), predictions_dir(results_dir))
    records = _move_all(runs_dir(folder), runs_dir(results_dir))
    shutil.rmtree(folder, ignore_errors=True)
    remove_if_empty(folder.parent)
    return records


def discard(folder: Path) -> int:
    """Delete a pending folder (a failed or pruned trial's files); returns how many record files it held."""
    n = len(list(runs_dir(folder).glob("*.parquet"))) if folder.is_dir() else 0
    shutil.rmtree(folder, ignore_errors=True)
    remove_if_empty(folder.parent)
    return n


def remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only when empty: other trials may be pending there
    except OSError:
        pass
