"""Rich progress bars that switch themselves off when output is not a terminal (CI, log files)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_enabled(setting) -> bool:
    if setting in (True, "true", "on"):
        return True
    if setting in (False, "false", "off"):
        return False
    return sys.stderr.isatty()


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        disable=not enabled, transient=False,
    )
    with progress:
        yield progress
