"""``xlexp store check``: every record and prediction file of a results store read as the views read
it, the bad ones (truncated, not Parquet, a required column missing or of the wrong type) listed, and
with ``repair`` moved to ``<results_dir>/quarantine/`` (kept, never deleted) together with the removal
of temp files whose writer died mid-write.

Why a module of its own: the views never need it (they skip a bad file with one warning, see
``xlexp.results.store``); this is the maintenance command's side of the store. It judges a file with the
store's own reader (``read_store_file``) and folders, importing them from ``xlexp.results.store``,
which never imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path

from xlexp.errors import XlexpError
from xlexp.results.store import (
    REQUIRED_PREDICTION_COLUMNS,
    REQUIRED_RECORD_COLUMNS,
    predictions_dir,
    read_store_file,
    runs_dir,
)


def quarantine_dir(results_dir: Path | str) -> Path:
    return Path(results_dir) / "quarantine"


def check_store(results_dir: Path | str, repair: bool = False) -> tuple[int, list[tuple[Path, str]]]:
    """Read every record and prediction file; returns (number of good files, [(bad file, why)]).
    With ``repair`` each bad file is moved to ``<results_dir>/quarantine/`` (kept, not deleted: it
    may be recoverable, and a store never silently loses data), and leftover temp files of writers
    that died mid-write are removed (those untouched for an hour: see :func:`_writer_gone`)."""
    good, bad = 0, []
    for folder, required in (
        (runs_dir(results_dir), REQUIRED_RECORD_COLUMNS),
        (predictions_dir(results_dir), REQUIRED_PREDICTION_COLUMNS),
    ):
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.parquet")):
            frame, why = read_store_file(f, required)
            if frame is None:
                bad.append((f, why or "unreadable"))
            else:
                good += 1
        if repair:
            for tmp in folder.glob(".*.tmp"):  # a writer killed between write and rename
                if _writer_gone(tmp):
                    tmp.unlink(missing_ok=True)
    if repair:
        for f, _ in bad:
            dest = _free_name(quarantine_dir(results_dir) / f.parent.name / f.name)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dest)
            except OSError as e:
                raise XlexpError(
                    f"cannot move {f} to {dest.parent}: {e.strerror or e} (make "
                    f"{quarantine_dir(results_dir)} a writable folder)"
                ) from None
    return good, bad


def _free_name(dest: Path) -> Path:
    """``dest``, or ``<stem>.1<suffix>``, ``.2``, ... when a file of that name is already in the
    quarantine (a second bad file of one name must never overwrite the first)."""
    n = 0
    candidate = dest
    while candidate.exists():
        n += 1
        candidate = dest.with_name(f"{dest.stem}.{n}{dest.suffix}")
    return candidate


TEMP_MAX_AGE_S = 3600  # a writer renames its temp file within seconds of creating it


def _writer_gone(tmp: Path, now: float | None = None) -> bool:
    """``.<name>.<pid>.tmp`` untouched for an hour: its writer is gone. Not judged by the pid in its
    name: on a shared results folder that pid is another host's or another PID namespace's, and a
    live writer's temp file removed mid-write loses its unit."""
    import time

    try:
        return (time.time() if now is None else now) - tmp.stat().st_mtime >= TEMP_MAX_AGE_S
    except OSError:
        return False
